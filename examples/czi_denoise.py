"""Denoise a Zeiss CZI acquisition in 3-D and write it as an OME-Zarr pyramid for napari.

    .venv/bin/python examples/czi_denoise.py [ACQUISITION.czi] [OUT.ome.zarr]

The notebook of ../shared/seeds/czi_denoise_notebook.md as one pipeline: the CZI (by default
$TILEWISE_DATA/microscopy/CD_s_1_t_3_c_2_z_5.czi: T=3, C=2, Z=5, 170 x 240, uint16) read with
pylibCZIrw; each channel normalised to its exact 1-99.8 % percentiles (a sweep over the whole
image first); non-local means over z, y and x, for every time point and channel, with the halo
its patches need; written as an OME-Zarr image (NGFF 0.5, default examples/out/czi_denoised
.ome.zarr) with two pyramid levels of block means, its channel names and its pixel sizes in
micrometres. A killed run resumes where it stopped: run the same command again.
"""

from __future__ import annotations

import os
import sys

import tilewise as tw
from tilewise import library as ops

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("TILEWISE_DATA", os.path.join(HERE, "..", "..", "shared", "data"))


def main(czi_path: str, out_path: str) -> None:
    # The output's options travel with the image's metadata, through every op, to the sink.
    czi = tw.open(czi_path, meta={"ome_zarr": {"version": "0.5", "levels": 2}})
    normalised = ops.normalize_channels(czi, percentiles=(1.0, 99.8))
    denoised = ops.denoise_nl_means(normalised, h=0.08, patch_size=3, patch_distance=1)
    report = tw.save(denoised, out_path, progress=False)
    print(f"{czi.shape} {czi.dtype} -> {out_path}: {report.tiles} tiles of {report.tile}")
    for level in range(3):
        image = tw.open(out_path, level=level)
        size = image.meta["physical"]["x"]["size"]
        print(f"level {level}: {image.shape} {image.dtype}, {size:.4f} micrometre pixels")
    print(f"channels: {', '.join(tw.open(out_path).meta['band_names'])}")


if __name__ == "__main__":
    args = sys.argv[1:]
    czi_path = args[0] if args else os.path.join(DATA, "microscopy", "CD_s_1_t_3_c_2_z_5.czi")
    out_path = args[1] if len(args) > 1 else os.path.join(HERE, "out", "czi_denoised.ome.zarr")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    main(czi_path, out_path)
