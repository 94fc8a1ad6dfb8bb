"""Generate the benchmark inputs: a large synthetic DEM as a tiled, compressed GeoTIFF.

    python benchmarks/make_data.py [--size 12288] [--out benchmarks/data/dem_12288.tif]

The terrain is a sum of smooth waves plus per-pixel noise, computed block by block from global
coordinates, so it is the same on every machine and never held in memory whole.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

BLOCK = 512


def terrain(rows: slice, cols: slice, seed: int) -> np.ndarray:
    y, x = np.mgrid[rows, cols].astype("float64")
    z = (1000 + 300 * np.sin(x / 517) * np.cos(y / 711) + 60 * np.sin((x + 2 * y) / 97)
         + 15 * np.cos((3 * x - y) / 23))
    rng = np.random.default_rng([seed, rows.start, cols.start])
    return (z + rng.normal(0, 2, z.shape)).astype("float32")


def make(path: str, size: int, seed: int = 0) -> str:
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32",
        "crs": "EPSG:32633", "transform": from_origin(500000, 5200000, 1.0, 1.0),
        "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate",
        "zlevel": 1, "bigtiff": "if_safer",
    }
    tmp = path + ".partial"
    with rasterio.open(tmp, "w", **profile) as ds:
        for r in range(0, size, BLOCK):
            for c in range(0, size, BLOCK):
                rows, cols = slice(r, min(r + BLOCK, size)), slice(c, min(c + BLOCK, size))
                ds.write(terrain(rows, cols, seed), 1, window=Window.from_slices(rows, cols))
    os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12288)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    out = args.out or os.path.join(here, "data", f"dem_{args.size}.tif")
    print(make(out, args.size))


if __name__ == "__main__":
    main()
