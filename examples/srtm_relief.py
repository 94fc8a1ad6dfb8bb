"""The main job: smoothing, slope and a hillshade of the real SRTM 90 m DEM, tile by tile.

    python examples/srtm_relief.py [OUT_DIR] [--executor threads] [--workers 2] [--memory 1GiB]

The DEM comes from `tilewise.datasets`: `$TILEWISE_DATA/dem/srtm90.tif` if set, else fetched
once from PyPI (the `localtileserver==1.0.0` wheel ships it) into `~/.cache/tilewise`.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import ndimage

import tilewise as tw
from tilewise import datasets
from tilewise.preview import render

METRES_PER_DEGREE = 111_320.0


@tw.op(margin=4, dtype="float32")
def smooth(dem):
    """A 9 x 9 mean: removes the SRTM speckle before derivatives."""
    return ndimage.uniform_filter(dem.astype("float32"), size=9)


def _gradients(z, res_y, res_x):
    gy, gx = np.gradient(z, res_y, res_x)
    return gy, gx


@tw.op(margin=1, dtype="float32")
def slope(z, *, res_y, res_x):
    gy, gx = _gradients(z, res_y, res_x)
    return np.degrees(np.arctan(np.hypot(gx, gy)))


@tw.op(margin=1, dtype="uint8")
def hillshade(z, *, res_y, res_x, azimuth=315.0, altitude=45.0):
    gy, gx = _gradients(z, res_y, res_x)
    az, alt = np.radians(360.0 - azimuth + 90.0), np.radians(altitude)
    steep = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gy, gx)
    shade = np.sin(alt) * np.cos(steep) + np.cos(alt) * np.sin(steep) * np.cos(az - aspect)
    return np.clip(255 * shade, 0, 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out")
    parser.add_argument("--executor", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--memory", default="1GiB")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    dem = tw.open(datasets.path("srtm90"))
    print(f"input: {dem}")
    transform, lat = dem.meta["transform"], dem.meta["transform"].f
    # Degrees to metres at the DEM's latitude, so that slopes are in real degrees.
    res_x = transform.a * METRES_PER_DEGREE * np.cos(np.radians(lat))
    res_y = transform.e * METRES_PER_DEGREE
    z = smooth(dem)
    outputs = [z, slope(z, res_y=res_y, res_x=res_x), hillshade(z, res_y=res_y, res_x=res_x)]
    names = [os.path.join(args.out, n) for n in ("smooth.tif", "slope.tif", "hillshade.tif")]
    start = time.perf_counter()
    report = tw.save(outputs, names, executor=args.executor, workers=args.workers,
                     memory=args.memory, overwrite=True)
    print(f"wrote {', '.join(names)} in {time.perf_counter() - start:.1f} s: "
          f"{report.tiles} tiles of {report.tile}, {report.executor} x {report.workers}")
    for name, cmap in zip(names, ("terrain", "magma", "gray")):
        print("preview", render(name, name.removesuffix(".tif") + ".png", cmap=cmap))


if __name__ == "__main__":
    main()
