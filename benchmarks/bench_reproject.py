"""Reprojection benchmark: tilewise's `reproject` and `warp` against `reproject` and GDAL.

    python benchmarks/bench_reproject.py [--size 16384] [--repeat 3]

Input: a SIZE x SIZE float32 `.npy` file (synthetic terrain from `make_data.terrain`, written
block by block), memory-mapped by the peers and read by window by tilewise. Each case runs in
its own child process; the table shows the median of `--repeat` interleaved runs and the
largest peak RSS of the process tree (`measure.py`). Cases:
- astronomy: a TAN WCS turned by 30 degrees, same pixel scale and shape, bilinear:
  `reproject.reproject_interp(..., parallel=2)` into a memory-mapped float32 output, against
  tilewise (threads and processes, 2 workers, memory 512 MiB) into Zarr;
- geospatial: the same pixels as an EPSG:4326 grid warped to UTM 11N (GDAL's default grid),
  bilinear: `rasterio.warp.reproject` on the whole array (2 GDAL threads) against tilewise.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import case_options, dispatch, emit, median, run_child, table  # noqa: E402

MEMORY = "512MiB"


def make(path: str, size: int) -> str:
    """The input `.npy`, written in blocks of rows so that it is never whole in memory."""
    from make_data import terrain

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = np.lib.format.open_memmap(path + ".part", "w+", "float32", (size, size))
    for y in range(0, size, 1024):
        rows = slice(y, min(y + 1024, size))
        out[rows] = terrain(rows, slice(0, size), seed=0)
    out.flush()
    del out
    os.replace(path + ".part", path)
    return path


def celestial(size: int, degrees: float = 0.0):
    """A TAN WCS of a SIZE x SIZE image, 0.05 arcsec pixels, turned by `degrees`."""
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [6.0, -72.0]
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    t = math.radians(degrees)
    scale = 0.05 / 3600
    wcs.wcs.cd = scale * np.array([[-math.cos(t), math.sin(t)], [math.sin(t), math.cos(t)]])
    wcs.pixel_shape = (size, size)
    return wcs


def geo(size: int) -> dict:
    from affine import Affine
    from rasterio.crs import CRS

    return {"crs": CRS.from_epsg(4326), "transform": Affine(0.0003, 0, -120.0, 0, -0.0003, 38.0)}


def case_reproject(src: str, out: str) -> None:
    from reproject import reproject_interp

    start = time.perf_counter()
    a = np.load(src, mmap_mode="r")
    size = a.shape[0]
    result = np.lib.format.open_memmap(out, "w+", "float32", a.shape)
    reproject_interp((a, celestial(size)), celestial(size, 30), shape_out=a.shape,
                     output_array=result, return_footprint=False, parallel=2)
    result.flush()
    emit({"seconds": time.perf_counter() - start, "tiles": 0})


def case_gdal(src: str, out: str) -> None:
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    start = time.perf_counter()
    a = np.load(src, mmap_mode="r")
    g = geo(a.shape[0])
    h, w = a.shape
    left, top = g["transform"].c, g["transform"].f
    transform, width, height = calculate_default_transform(
        g["crs"], "EPSG:32611", w, h, left, top + h * g["transform"].e,
        left + w * g["transform"].a, top)
    result = np.lib.format.open_memmap(out, "w+", "float32", (height, width))
    reproject(np.asarray(a), result, src_transform=g["transform"], src_crs=g["crs"],
              dst_transform=transform, dst_crs="EPSG:32611", dst_nodata=np.nan,
              resampling=Resampling.bilinear, num_threads=2)
    result.flush()
    emit({"seconds": time.perf_counter() - start, "tiles": 0})


def case_tilewise(src: str, out: str, kind: str, executor: str) -> None:
    import tilewise as tw
    from tilewise import library as ops

    start = time.perf_counter()
    img = tw.open(src)
    size = img.shape[0]
    if kind == "reproject":
        img = tw.map(np.asarray, img, meta={"wcs": celestial(size)})
        result = ops.reproject(img, wcs=celestial(size, 30), shape=(size, size))
        # Zarr attributes cannot hold a WCS until meta.py registers it as a field.
        result = tw.map(np.asarray, result,
                        meta=lambda metas: {k: v for k, v in metas[0].items() if k != "wcs"})
    else:
        result = ops.warp(tw.map(np.asarray, img, meta=geo(size)), crs="EPSG:32611")
    report = tw.save(result, out, executor=executor, workers=2, memory=MEMORY,
                     overwrite=True, progress=False)
    emit({"seconds": time.perf_counter() - start, "tiles": report.tiles, "tile": report.tile})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["reproject", "warp"])
    args = case_options(parser).parse_args()
    if dispatch(args, globals()):
        return

    src = make(os.path.join(HERE, "data", f"wcs_{args.size}.npy"), args.size)
    out = os.path.join(HERE, "data", "out")
    os.makedirs(out, exist_ok=True)
    me = os.path.abspath(__file__)
    print(f"input {src}: {args.size} x {args.size} float32, {os.cpu_count()} cores, "
          f"tilewise memory={MEMORY}, median of {args.repeat}")
    groups = {
        "reproject": [("reproject_interp, parallel=2", ["reproject", f"{out}/rp.npy"])] + [
            (f"tilewise reproject, {ex}, 2 workers",
             ["tilewise", f"{out}/rp.zarr", "reproject", ex]) for ex in ("threads", "processes")],
        "warp": [("rasterio.warp.reproject, whole array", ["gdal", f"{out}/gdal.npy"])] + [
            (f"tilewise warp, {ex}, 2 workers", ["tilewise", f"{out}/warp.zarr", "warp", ex])
            for ex in ("threads", "processes")],
    }
    for group, cases in groups.items():
        if args.only and group != args.only:
            continue
        runs: dict[str, list[dict]] = {name: [] for name, _ in cases}
        for _ in range(args.repeat):  # interleaved, so that machine noise hits every case alike
            for name, (case, *rest) in cases:
                runs[name].append(run_child([me, "--case", case, "--args", src, *rest]))
        rows = [(name, median(runs[name])) for name, _ in cases]
        print()
        table(rows, rows[0][1], 'vs ref', 44)


if __name__ == "__main__":
    main()
