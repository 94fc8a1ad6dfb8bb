"""Core benchmark: the 3-op chain W2 on a 12288 x 12288 float32 GeoTIFF, tilewise vs dask.

    python benchmarks/bench_core.py [--size 12288] [--repeat 3]   # makes the input first

Every case runs in its own child process of this one command, so that peak memory (the RSS of
the child and every process under it, `measure.py`) belongs to that case alone; cases are
interleaved `--repeat` times and the tables show the median run. The rows are those of issue 11
that a machine with this many cores can run, with as many workers as it has cores (on 16 cores,
pass `--size 16384 --memory 8GiB` for the issue's 16-core rows):
- W2 wall time, GeoTIFF (ZSTD) out: dask `map_overlap` (rioxarray read, 1024 chunks, the
  chain fused, threads, `rio.to_raster`) against tilewise with the executor left to it,
  threads and processes, `memory=--memory`;
- the same into Zarr: dask (threads, and a `LocalCluster` of one-thread processes) against
  tilewise;
- peak RSS of the process tree against the budget: 2 threads in 256 MiB, 2 processes in 512 MiB;
- scaling study for many cores on few: tilewise with 16 workers on 256 x 256 tiles;
- per tilewise case: the time to its first finished tile, and the tail (the end of the run
  after the last tile: committing, and for GeoTIFF the last rows of the copy);
- the time to the first tile of a 1,000,000-tile plan, against dask's first task of a
  65,536-chunk `map_overlap`.
Run it against another checkout with `PYTHONPATH=/path/to/src` (options it lacks are not used).
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
#: A workers count for the scaling study: as many as a 16-core machine would get.
MANY = 16
#: Workers of every other case, dask's included: the cores this process may use.
CORES = len(os.sched_getaffinity(0))


class FirstTile(Exception):
    """Raised from a progress callback to stop a run after its first tile."""


def case_tilewise(src: str, out: str, executor: str, workers: int, memory: str,
                  tile: str = "") -> None:
    from chain import pipeline

    import tilewise as tw

    marks: list[float] = []
    start = time.perf_counter()
    report = tw.save(pipeline(tw.open(src)), out, executor=None if executor == "auto" else executor,
                     workers=workers, memory=memory, overwrite=True,
                     tile=int(tile) if tile else None,
                     progress=lambda p: marks.append(time.perf_counter()))
    end = time.perf_counter()
    emit({"seconds": end - start, "tiles": report.tiles, "tile": report.tile,
          "executor": report.executor, "first": marks[0] - start, "tail": end - marks[-1],
          "budget": memory})


def case_dask(src: str, out: str, workers: int, scheduler: str = "threads") -> None:
    import dask
    import rioxarray
    from chain import HALO, whole

    start = time.perf_counter()
    arr = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 1024, "x": 1024}).squeeze("band")
    result = arr.copy(data=arr.data.map_overlap(whole, depth=HALO, boundary="reflect",
                                                dtype=np.float32))
    if out.endswith(".zarr"):
        with _scheduler(scheduler, workers):
            result.data.to_zarr(out, overwrite=True)
    else:
        with dask.config.set(scheduler="threads", num_workers=workers):
            result.rio.to_raster(out, lock=threading.Lock(), **OPTIONS)
    emit({"seconds": time.perf_counter() - start, "tiles": result.data.npartitions})


@contextlib.contextmanager
def _scheduler(name: str, workers: int):
    import dask

    if name == "threads":
        with dask.config.set(scheduler="threads", num_workers=workers):
            yield
        return
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        yield


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
                    executor="threads", memory="512MiB", progress=stop)
    emit({"seconds": first[0], "tiles": (n // 16) ** 2})


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


def cases(me: str, src: str, out: str, memory: str) -> list[tuple[str, list[str]]]:
    """Each table row: its name and the child's command line."""
    def tilewise(name: str, target: str, executor: str, workers: int, budget: str = memory,
                 tile: str = "") -> tuple[str, list[str]]:
        return name, [me, "--case", "tilewise", "--args", src, f"{out}/{target}", executor,
                      str(workers), budget, tile]

    def dask(name: str, target: str, scheduler: str = "threads") -> tuple[str, list[str]]:
        return name, [me, "--case", "dask", "--args", src, f"{out}/{target}", str(CORES),
                      scheduler]

    return [
        dask("dask map_overlap, threads, tif", "dask.tif"),
        tilewise("tilewise default, tif", "tw.tif", "auto", CORES),
        tilewise("tilewise threads, tif", "tw.tif", "threads", CORES),
        tilewise("tilewise processes, tif", "tw.tif", "processes", CORES),
        dask("dask map_overlap, threads, zarr", "dask.zarr"),
        dask("dask LocalCluster 2x1, zarr", "dask.zarr", "cluster"),
        tilewise("tilewise default, zarr", "tw.zarr", "auto", CORES),
        tilewise("tilewise processes, zarr", "tw.zarr", "processes", CORES),
        tilewise("tilewise threads, tif, 256MiB", "tw.tif", "threads", 2, "256MiB"),
        tilewise("tilewise processes, tif, 512MiB", "tw.tif", "processes", 2, "512MiB"),
        tilewise(f"tilewise threads x{MANY}, tile 256, zarr", "tw.zarr", "threads", MANY,
                 tile="256"),
        tilewise(f"tilewise processes x{MANY}, tile 256, zarr", "tw.zarr", "processes", MANY,
                 "4GiB", "256"),
    ]


def details(rows: list[tuple[str, dict]]) -> None:
    """Per tilewise row: the executor run, the tile, time to first tile, the tail, RSS/budget."""
    from dask.utils import parse_bytes

    print(f"\n{'tilewise case':<40}{'executor':>11}{'tile':>12}{'first s':>9}{'tail s':>8}"
          f"{'tail %':>8}{'peak/budget':>13}")
    for name, r in rows:
        if "first" not in r:
            continue
        tile = "x".join(str(v) for v in r["tile"].values())
        print(f"{name:<40}{r['executor']:>11}{tile:>12}{r['first']:>9.2f}{r['tail']:>8.2f}"
              f"{100 * r['tail'] / r['seconds']:>7.1f}%"
              f"{r['peak_rss'] / parse_bytes(r['budget']):>13.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12288)
    parser.add_argument("--memory", default="512MiB")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per case; the table shows the median run")
    args = case_options(parser).parse_args()
    if dispatch(args, globals(), lambda a: int(a) if a.isdigit() else a):
        return

    from make_data import make

    src = make(os.path.join(HERE, "data", f"dem_{args.size}.tif"), args.size)
    out = os.path.join(HERE, "data", "out")
    os.makedirs(out, exist_ok=True)
    print(f"input {src}: {args.size} x {args.size} float32, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")
    rows_cases = cases(os.path.abspath(__file__), src, out, args.memory)
    runs: dict[str, list[dict]] = {name: [] for name, _ in rows_cases}
    for _ in range(args.repeat):  # interleaved, so that machine noise hits every case alike
        for name, argv in rows_cases:
            runs[name].append(run_child(argv, argv[argv.index("--args") + 2]))
    rows = [(name, median(runs[name])) for name, _ in rows_cases]
    print(f"\nW2: uniform(5) -> hypot(sobel) -> gaussian(2), halo 11, tilewise "
          f"memory={args.memory} unless named, median of {args.repeat}")
    print("\nGeoTIFF out (ZSTD)")
    table(rows[:4] + rows[8:10], rows[0][1], "vs dask", 40)
    print("\nZarr out; and many workers on few cores")
    table(rows[4:8] + rows[10:], rows[4][1], "vs dask", 40)
    details(rows)

    tw_first = run_child([os.path.abspath(__file__), "--case", "first_tile_tilewise"])
    dask_first = run_child([os.path.abspath(__file__), "--case", "first_tile_dask"])
    print("\ntime to the first finished tile")
    print(f"  tilewise, {tw_first['tiles']:,} tiles: {tw_first['seconds']:.3f} s")
    print(f"  dask map_overlap, {dask_first['tiles']:,} chunks: {dask_first['seconds']:.3f} s")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
