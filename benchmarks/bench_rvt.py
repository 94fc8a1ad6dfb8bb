"""Relief visualisation benchmark: each RVT op as shipped (`rvt.vis`) against tilewise's.

    python benchmarks/bench_rvt.py [--size 8192] [--repeat 1] [--only sky_view_factor ...]

Inputs: a SIZE x SIZE float32 DEM with 1 m pixels (synthetic terrain from `make_data`, a tiled
GeoTIFF), and `srtm90.tif` (SRTM, 2465 x 4269 int16 in degrees). RVT needs square pixels in
metres (it divides heights by one pixel size) and so does tilewise, which refuses degrees: the
SRTM DEM is warped once, untimed, to UTM zone 11N at 90 m (tilewise's `warp`, bilinear), and
both sides read that file. Where the warped grid has no data (outside the rotated footprint)
it is NaN, which turns RVT's whole sky illumination into NaN (docs/horizon.md); the work is
the same.

Each case runs in its own child process (`measure.py`): RVT reads the whole array, computes on
it with one thread (NumPy's element-wise loops are single-threaded) and saves a `.npy`;
tilewise streams the GeoTIFF through the op with 2 worker threads, memory 1 GiB, into a `.npy`
too. Both make their output durable (fsync) before the clock stops: tilewise does so for every
tile (its journal relies on it), and RVT's `np.save` would otherwise leave the writing to the
next case. The clock starts once each side's libraries are imported (rasterio and `rvt.vis`,
which imports NumPy and SciPy; tilewise, its library and the modules of its compiled kernels,
which import numba and load the kernels from numba's cache, as they are compiled for explicit
signatures when their module is imported: a fixed cost of each process, not work on the DEM).
The summary prints both sides' imports and the speed-up with them counted too, since a user's
process pays them once (tilewise's are ~0.8 s more than RVT's). A first child builds every op
once, untimed, so that the cache is filled (compiling is once per installation). The table
gives wall time and the peak RSS of the process tree, with ratios to RVT.

Each op is one row of OPS (the horizon ops, then the 3 x 3 terrain ops and relief models): its
name, how RVT computes it on an array with a pixel size, and
how tilewise builds it from a DEM image.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import case_options, dispatch, emit, median, run_child, table  # noqa: E402

MEMORY = "1GiB"
SRTM = os.path.join(HERE, "..", "..", "shared", "data", "dem", "srtm90.tif")


def _rvt():
    import rvt.vis

    return rvt.vis


def _tw():
    from tilewise import library

    return library


def _tw_imports() -> None:
    """tilewise's library, the modules of its compiled kernels (numba is imported with
    them, on the first op that needs one: an import, as RVT's NumPy and SciPy are) and of the
    formats read and written here (imported by their first file, as RVT's rasterio is
    imported before its clock starts)."""
    from tilewise.io import geotiff, npy, tiff  # noqa: F401
    from tilewise.library import box_sums, horizon_kernels, terrain_kernels  # noqa: F401

    _tw()


#: (name, RVT on an array `a` with pixel size `res`, tilewise on a DEM image)
OPS = [
    ("sky_view_factor",
     lambda a, res: _rvt().sky_view_factor(a, res)["svf"],
     lambda dem: _tw().sky_view_factor(dem)),
    ("anisotropic_sky_view_factor",
     lambda a, res: _rvt().sky_view_factor(a, res, compute_svf=False, compute_asvf=True)["asvf"],
     lambda dem: _tw().anisotropic_sky_view_factor(dem)),
    ("openness",
     lambda a, res: _rvt().sky_view_factor(a, res, compute_svf=False, compute_opns=True)["opns"],
     lambda dem: _tw().openness(dem)),
    ("local_dominance",
     lambda a, res: _rvt().local_dominance(a),
     lambda dem: _tw().local_dominance(dem)),
    ("sky_illumination",
     lambda a, res: _rvt().sky_illumination(a, res),
     lambda dem: _tw().sky_illumination(dem)),
    ("slope",
     lambda a, res: _rvt().slope_aspect(a, res, res, output_units="degree")["slope"],
     lambda dem: _tw().slope(dem)),
    ("aspect",
     lambda a, res: _rvt().slope_aspect(a, res, res, output_units="degree")["aspect"],
     lambda dem: _tw().aspect(dem)),
    ("hillshade",
     lambda a, res: _rvt().hillshade(a, res, res),
     lambda dem: _tw().hillshade(dem)),
    ("multi_hillshade",
     lambda a, res: _rvt().multi_hillshade(a, res, res),
     lambda dem: _tw().multi_hillshade(dem)),
    ("slrm",
     lambda a, res: _rvt().slrm(a),
     lambda dem: _tw().slrm(dem)),
    ("msrm",  # RVT's default feature_max, 20 m, as 20 pixels (SRTM's are 90 m)
     lambda a, res: _rvt().msrm(a, res, feature_min=0, feature_max=20 * res, scaling_factor=2),
     lambda dem: _tw().msrm(dem, feature_max=20 * abs(dem.meta["transform"].a))),
    ("mstp",
     lambda a, res: _rvt().mstp(a),
     lambda dem: _tw().mstp(dem)),
]


def row(name: str):
    return next(r for r in OPS if r[0] == name)


def dem(path: str, size: int) -> str:
    from make_data import make

    return make(path, size)


def srtm_utm(path: str) -> str:
    """srtm90.tif warped to UTM 11N at 90 m, made once."""
    import tilewise as tw
    from tilewise import library

    if not os.path.exists(path):
        warped = library.warp(tw.open(SRTM), crs="EPSG:32611", resolution=90)
        tw.save(warped, path, workers=2, progress=False)
    return path


def durable_save(path: str, array: np.ndarray) -> None:
    """`np.save`, then fsync: the output is on disk when the clock stops, as tilewise's is."""
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def case_rvt(src: str, out: str, name: str) -> None:
    started = time.perf_counter()
    import rasterio

    _rvt()
    start = time.perf_counter()
    with rasterio.open(src) as ds:
        a = ds.read(1).astype("float32")
        res = float(ds.res[0])
        if ds.nodata is not None:
            a[a == ds.nodata] = np.nan
    result = row(name)[1](a, res)
    durable_save(out, result.astype("float32"))
    emit({"seconds": time.perf_counter() - start, "imports": start - started, "tiles": 0})


def case_tilewise(src: str, out: str, name: str) -> None:
    started = time.perf_counter()
    import tilewise as tw

    _tw_imports()
    start = time.perf_counter()
    image = row(name)[2](tw.open(src))
    report = tw.save(image, out, executor="threads", workers=2, memory=MEMORY,
                     overwrite=True, progress=False)
    emit({"seconds": time.perf_counter() - start, "imports": start - started,
          "tiles": report.tiles})


def case_warm(src: str) -> None:
    """Build every op and compute a corner of it, so that numba's cache holds every kernel."""
    import tilewise as tw

    dem = tw.open(src)
    for _, _, build in OPS:
        image = build(dem)
        image[..., :64, :64].compute(executor="serial")
    emit({"seconds": 0.0, "tiles": 0})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", nargs="*", choices=[r[0] for r in OPS])
    parser.add_argument("--no-srtm", action="store_true", help="only the generated DEM")
    args = case_options(parser).parse_args()
    if dispatch(args, globals()):
        return

    data = os.path.join(HERE, "data")
    out = os.path.join(data, "out")
    os.makedirs(out, exist_ok=True)
    inputs = [(f"generated {args.size} x {args.size}, 1 m",
               dem(os.path.join(data, f"dem_{args.size}.tif"), args.size))]
    if not args.no_srtm:
        inputs.append(("srtm90.tif warped to UTM 11N, 90 m",
                       srtm_utm(os.path.join(data, "srtm90_utm11.tif"))))
    me = os.path.abspath(__file__)
    run_child([me, "--case", "warm", "--args", inputs[0][1]])
    print(f"{os.cpu_count()} cores; RVT: whole array, 1 thread; tilewise: threads, 2 workers, "
          f"memory={MEMORY}; median of {args.repeat}")
    summary = []
    for label, src in inputs:
        import rasterio

        with rasterio.open(src) as ds:
            megapixels = ds.width * ds.height / 1e6
        print(f"\n{label}: {src} ({megapixels:.1f} Mpixel)")
        for name, *_ in OPS:
            if args.only and name not in args.only:
                continue
            cases = [("RVT", ["rvt", f"{out}/rvt.npy"]),
                     ("tilewise", ["tilewise", f"{out}/tw.npy"])]
            runs: dict[str, list[dict]] = {who: [] for who, _ in cases}
            for _ in range(args.repeat):
                for who, (case, path) in cases:
                    runs[who].append(run_child([me, "--case", case, "--args", src, path, name],
                                               path))
            rows = [(f"{name}: {who}", median(runs[who])) for who, _ in cases]
            print()
            table(rows, rows[0][1], "vs RVT", 44)
            rvt, tw = (r for _, r in rows)
            summary.append((label, name, rvt, tw, megapixels, os.getloadavg()[0]))
    print(f"\n{'input':<40}{'op':<30}{'RVT s':>8}{'tw s':>8}{'speed-up':>10}{'RVT s/Mpx':>11}"
          f"{'tw s/Mpx':>10}{'imports RVT/tw s':>18}{'with imports':>14}{'load':>6}")
    for label, name, r, t, mpx, load in summary:
        with_imports = (r["seconds"] + r["imports"]) / (t["seconds"] + t["imports"])
        print(f"{label:<40}{name:<30}{r['seconds']:>8.2f}{t['seconds']:>8.2f}"
              f"{r['seconds'] / t['seconds']:>9.1f}x{r['seconds'] / mpx:>11.3f}"
              f"{t['seconds'] / mpx:>10.3f}{r['imports']:>10.2f} / {t['imports']:<5.2f}"
              f"{with_imports:>13.1f}x{load:>6.1f}")


if __name__ == "__main__":
    main()
