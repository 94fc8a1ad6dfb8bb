"""Rebin the L1448 13CO spectral cube by 5 x 5 spatial pixels and save it to Zarr, WCS included.

    .venv/bin/python examples/l1448_rebin.py [CUBE.fits] [OUT.zarr]

The cube defaults to $TILEWISE_DATA/astronomy/l1448_13co.fits (else ../shared/data beside the
clone), the output to examples/out/l1448_rebin.zarr. tilewise reads the cube with astropy, its
axes named from CTYPE (spectral `z`, latitude `y`, longitude `x`) and its WCS carried as the
`wcs` metadata field.
"""

from __future__ import annotations

import os
import sys

import tilewise as tw
from tilewise import library as ops

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("TILEWISE_DATA", os.path.join(HERE, "..", "..", "shared", "data"))


def main(cube_path: str, out_path: str) -> None:
    cube = tw.open(cube_path)
    small = ops.rebin(cube, factors={"y": 5, "x": 5}, how="mean")
    tw.save(small, out_path, overwrite=True, progress=False)
    saved = tw.open(out_path)
    centre = saved.meta["wcs"].pixel_to_world(0, 0, 0)
    print(f"{cube.shape} -> {saved.shape} {saved.dtype} in {out_path}")
    print(f"first pixel's centre: {centre[0].to_string('hmsdms')}, {centre[1]:.1f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    cube_path = args[0] if args else os.path.join(DATA, "astronomy", "l1448_13co.fits")
    out_path = args[1] if len(args) > 1 else os.path.join(HERE, "out", "l1448_rebin.zarr")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    main(cube_path, out_path)
