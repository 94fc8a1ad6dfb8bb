"""Core benchmark: a 3-op filter chain on a 12288 x 12288 float32 GeoTIFF, tilewise vs dask.

    python benchmarks/bench_core.py            # generates the input on first use

Every case runs in its own child process of this one command, so that peak memory (RSS of the
child and its workers) belongs to that case alone. Cases:
- tilewise with threads (2 and 1 workers) and processes (2 workers), memory="512MiB";
  and with threads into Zarr instead of GeoTIFF (GeoTIFF output is staged for resumability);
- dask `map_overlap` (rioxarray read, 1024 chunks, the same chain fused, boundary="reflect",
  threads) written with `rio.to_raster`;
- time to the first finished tile of a 1,000,000-tile tilewise plan, and the time dask needs
  to start (first task finished) a 65,536-chunk `map_overlap`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import case_options, dispatch, emit, median, run_child, table  # noqa: E402

from tilewise.io.geotiff import BLOCK, CREATION_OPTIONS  # noqa: E402

#: dask writes with exactly the GeoTIFF options tilewise uses.
OPTIONS = {"tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, **CREATION_OPTIONS}


class FirstTile(Exception):
    """Raised from a progress callback to stop a run after its first tile."""


def case_tilewise(src: str, out: str, executor: str, workers: int, memory: str) -> None:
    from chain import pipeline

    import tilewise as tw

    start = time.perf_counter()
    report = tw.save(pipeline(tw.open(src)), out, executor=executor, workers=workers,
                     memory=memory, overwrite=True, progress=False)
    emit({"seconds": time.perf_counter() - start, "tiles": report.tiles, "tile": report.tile})


def case_dask(src: str, out: str, workers: int) -> None:
    import dask
    import rioxarray
    from chain import HALO, whole

    start = time.perf_counter()
    arr = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 1024, "x": 1024}).squeeze("band")
    result = arr.copy(data=arr.data.map_overlap(whole, depth=HALO, boundary="reflect",
                                                dtype=np.float32))
    with dask.config.set(scheduler="threads", num_workers=workers):
        result.rio.to_raster(out, lock=threading.Lock(), **OPTIONS)
    emit({"seconds": time.perf_counter() - start, "tiles": result.data.npartitions})


def case_first_tile_tilewise() -> None:
    import tempfile

    import zarr
    from chain import pipeline

    import tilewise as tw

    with tempfile.TemporaryDirectory() as tmp:
        n = 16000  # 1000 x 1000 tiles of 16 x 16
        zarr.create_array(f"{tmp}/in.zarr", shape=(n, n), chunks=(256, 256), dtype="float32",
                          fill_value=1.0, dimension_names=["y", "x"])
        first: list[float] = []

        def stop(progress: tw.Progress) -> None:
            first.append(time.perf_counter() - start)
            raise FirstTile

        start = time.perf_counter()
        with contextlib.suppress(FirstTile):
            tw.save(pipeline(tw.open(f"{tmp}/in.zarr")), f"{tmp}/out.zarr", tile=16,
                    memory="512MiB", progress=stop)
        image = pipeline(tw.open(f"{tmp}/in.zarr"))
        tiles = (n // 16) ** 2
    emit({"seconds": first[0], "tiles": tiles, "tile": {"y": 16, "x": 16}, "shape": image.shape})


def case_first_tile_dask() -> None:
    import dask
    import dask.array as da
    from chain import HALO, whole
    from dask.callbacks import Callback

    x = da.ones((8192, 8192), chunks=32, dtype="float32")  # 65,536 chunks
    first: list[float] = []

    class Stop(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            first.append(time.perf_counter() - start)
            raise FirstTile

    start = time.perf_counter()
    try:
        with Stop(), dask.config.set(scheduler="threads", num_workers=2):
            x.map_overlap(whole, depth=HALO, boundary="reflect", dtype=np.float32).sum().compute()
    except FirstTile:
        pass
    emit({"seconds": first[0] if first else float("nan"), "tiles": x.npartitions})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12288)
    parser.add_argument("--memory", default="512MiB")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs per case; the table shows the median run")
    args = case_options(parser).parse_args()
    if dispatch(args, globals(), lambda a: int(a) if a.isdigit() else a):
        return

    from make_data import make

    src = make(os.path.join(HERE, "data", f"dem_{args.size}.tif"), args.size)
    out = os.path.join(HERE, "data", "out")
    os.makedirs(out, exist_ok=True)
    me = os.path.abspath(__file__)
    print(f"input {src}: {args.size} x {args.size} float32, {os.cpu_count()} cores")
    cases = [("dask map_overlap, threads, 2 workers",
              [me, "--case", "dask", "--args", src, f"{out}/dask.tif", "2"])]
    for executor, workers in (("threads", 2), ("threads", 1), ("processes", 2)):
        cases.append((f"tilewise {executor}, {workers} worker{'s' * (workers > 1)}",
                      [me, "--case", "tilewise", "--args", src, f"{out}/tw.tif", executor,
                       str(workers), args.memory]))
    # The same run into Zarr: what staging GeoTIFF output (for resumability) costs on top.
    cases.append(("tilewise threads, 2 workers, Zarr out",
                  [me, "--case", "tilewise", "--args", src, f"{out}/tw.zarr", "threads", "2",
                   args.memory]))
    runs: dict[str, list[dict]] = {name: [] for name, _ in cases}
    for _ in range(args.repeat):  # interleaved, so that machine noise hits every case alike
        for name, argv in cases:
            runs[name].append(run_child(argv))
    rows = [(name, median(runs[name])) for name, _ in cases]
    print(f"\nchain uniform(5) -> hypot(sobel) -> gaussian(2), halo 11, GeoTIFF out "
          f"({OPTIONS['compress']}), tilewise memory={args.memory}, median of {args.repeat}")
    table(rows, rows[0][1], 'vs dask', 38)
    threads = {name: r for name, r in rows}
    one, two = threads["tilewise threads, 1 worker"], threads["tilewise threads, 2 workers"]
    print(f"tilewise speed-up 2 workers vs 1: {one['seconds'] / two['seconds']:.2f}x; "
          f"tile {two['tile']}")

    tw_first = run_child([me, "--case", "first_tile_tilewise"])
    dask_first = run_child([me, "--case", "first_tile_dask"])
    print("\ntime to the first finished tile")
    print(f"  tilewise, {tw_first['tiles']:,} tiles: {tw_first['seconds']:.3f} s")
    print(f"  dask map_overlap, {dask_first['tiles']:,} chunks: {dask_first['seconds']:.3f} s")


if __name__ == "__main__":
    main()
