"""Sum a FITS image and a FITS cube tile by tile, and save the sums with their WCS.

    .venv/bin/python examples/fits_sums.py [IMAGE.fits] [CUBE.fits] [OUT_FOLDER]

- The HST ACS image of 47 Tuc (by default $TILEWISE_DATA/astronomy/j8bt06nyq_flt.fits, its SCI
  extension, 1024 x 1024 float32): 4 x 4 pixel sums (`rebin`, how="sum"), saved to Zarr with
  the WCS rescaled to the larger pixels; and its total, an exactly rounded sum over every tile
  (`tw.reduce`), equal to `math.fsum` of the pixels.
- The L1448 13CO cube (l1448_13co.fits, 53 x 105 x 105): the integrated intensity map, the sum
  along the spectral axis (`rebin` with factor -1 along z), saved to Zarr with the cube's WCS,
  whose spectral axis now has one pixel spanning the 53 channels.

Both outputs land in examples/out/ by default; each prints where its first pixel lies on the sky.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

import tilewise as tw
from tilewise import library as ops

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("TILEWISE_DATA", os.path.join(HERE, "..", "..", "shared", "data"))


def image_sums(path: str, out: str) -> None:
    image = tw.open(path, hdu="SCI")
    total = tw.reduce(image, "sum").compute(tile=256)
    pixels = image.compute()
    assert total == math.fsum(pixels[~np.isnan(pixels)].astype("float64").ravel())
    tw.save(ops.rebin(image, factors=4, how="sum"), out, overwrite=True, progress=False)
    saved = tw.open(out)
    ra, dec = saved.meta["wcs"].pixel_to_world_values(0, 0)
    print(f"{path}: total {total:.6g} (exact); 4 x 4 sums {saved.shape} {saved.dtype} in "
          f"{out}, first pixel's centre at RA {ra:.6f}, Dec {dec:.6f} degrees")


def cube_sums(path: str, out: str) -> None:
    cube = tw.open(path)
    moment0 = ops.rebin(cube, factors={"z": -1}, how="sum")
    tw.save(moment0, out, overwrite=True, progress=False)
    saved = tw.open(out)
    np.testing.assert_array_equal(saved.compute(), moment0.compute(tile=cube.shape))
    world = saved.meta["wcs"].pixel_to_world(0, 0, 0)
    print(f"{path}: {cube.shape} summed along {cube.axes[0]!r} to {saved.shape} in {out}, "
          f"first pixel's centre at {world[0].to_string('hmsdms')}, {world[1]:.1f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    image = args[0] if args else os.path.join(DATA, "astronomy", "j8bt06nyq_flt.fits")
    cube = args[1] if len(args) > 1 else os.path.join(DATA, "astronomy", "l1448_13co.fits")
    folder = args[2] if len(args) > 2 else os.path.join(HERE, "out")
    os.makedirs(folder, exist_ok=True)
    image_sums(image, os.path.join(folder, "hst_sum4x4.zarr"))
    cube_sums(cube, os.path.join(folder, "l1448_moment0.zarr"))
