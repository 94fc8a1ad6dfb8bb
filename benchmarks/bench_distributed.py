"""Cluster benchmark: tilewise's dask executor on a LocalCluster of 2 single-threaded workers.

    python benchmarks/bench_distributed.py [--size 8192] [--repeat 3] [--tiles 4096]
                                           [--tile 0] [--only overhead|w2]

Every case runs in its own child process, which starts its own LocalCluster (2 worker
processes, 1 thread each, on loopback) and times only the work, not the cluster's start; peak
RSS is that of the child and its workers together (`measure.py`). Cases:
- per-tile overhead: an op that returns its input, on `--tiles` tiles of 32 x 32 of an
  in-memory float32 image, reduced to its maximum (so that no output I/O counts), on the dask
  executor and, for reference, on the local processes and threads executors; reported as
  wall time per tile, and per tile and worker (wall x workers / tiles);
- W2, the 3-op chain of `bench_core.py`, on a SIZE x SIZE float32 GeoTIFF (`make_data.py`),
  written to Zarr: tilewise (`executor="dask"` on the cluster, its tiles planned from the
  workers' memory, or `--tile` pixels a side) against dask `map_overlap` (rioxarray read,
  1024 x 1024 chunks, the same chain fused, `to_zarr`) on the same kind of cluster; besides
  wall time, the CPU seconds the case's process tree (driver, scheduler, workers) used while
  working, which other jobs on a shared machine change far less.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import case_options, dispatch, emit, median, run_child, table  # noqa: E402

WORKERS = 2


def _cluster():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=":0")
    return cluster, Client(cluster)


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its descendants (the cluster's scheduler,
    nannies and workers): unlike wall time, barely changed by other jobs on the machine."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _same(a):
    return a


def case_overhead(executor: str, tiles: int) -> None:
    import tilewise as tw

    side = round(tiles ** 0.5) * 32
    image = tw.map(_same, tw.open(np.ones((side, side), "float32")))
    options = {"executor": executor, "workers": WORKERS, "tile": 32}
    cluster = None
    if executor == "dask":
        cluster, client = _cluster()
        options = {"scheduler": client, "tile": 32}
        tw.reduce(image[:64, :64], "max").compute(**options)  # workers import tilewise first
    start = time.perf_counter()
    tw.reduce(image, "max").compute(**options)
    seconds = time.perf_counter() - start
    if cluster is not None:
        cluster.close()
    emit({"seconds": seconds, "tiles": (side // 32) ** 2})


def case_w2_tilewise(src: str, out: str, tile: int) -> None:
    from chain import pipeline

    import tilewise as tw

    cluster, client = _cluster()
    client.run(lambda: __import__("scipy.ndimage"))  # both tools start with warm workers
    cpu, start = _cpu_seconds(), time.perf_counter()
    report = tw.save(pipeline(tw.open(src)), out, scheduler=client, overwrite=True,
                     progress=False, tile=tile or None)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    cluster.close()
    emit({"seconds": seconds, "cpu": cpu, "tiles": report.tiles, "tile": report.tile})


def case_w2_dask(src: str, out: str) -> None:
    import dask.array as da
    import rioxarray
    from chain import HALO, whole

    cluster, client = _cluster()
    client.run(lambda: __import__("scipy.ndimage"))
    cpu, start = _cpu_seconds(), time.perf_counter()
    arr = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 1024, "x": 1024},
                                  lock=False).squeeze("band", drop=True)
    result = arr.data.map_overlap(whole, depth=HALO, boundary="reflect", dtype=np.float32)
    da.to_zarr(result, out, overwrite=True, compute=True)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    cluster.close()
    emit({"seconds": seconds, "cpu": cpu, "tiles": result.npartitions})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per case; the table shows the median run")
    parser.add_argument("--tiles", type=int, default=4096, help="tiles of the overhead case")
    parser.add_argument("--tile", type=int, default=0,
                        help="tilewise's W2 tile side (default 0: planned from the budget)")
    parser.add_argument("--only", choices=("overhead", "w2"), default=None)
    args = case_options(parser).parse_args()
    if dispatch(args, globals(), lambda a: int(a) if a.isdigit() else a):
        return

    from make_data import make

    src = make(os.path.join(HERE, "data", f"dem_{args.size}.tif"), args.size)
    out = os.path.join(HERE, "data", "out")
    os.makedirs(out, exist_ok=True)
    me = os.path.abspath(__file__)
    print(f"{os.cpu_count()} cores, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    overhead = [(f"empty op, {executor}, {WORKERS} workers",
                 [me, "--case", "overhead", "--args", executor, str(args.tiles)])
                for executor in ("dask", "processes", "threads")]
    w2 = [("dask map_overlap -> to_zarr, LocalCluster 2x1",
           [me, "--case", "w2_dask", "--args", src, f"{out}/dask.zarr"]),
          ("tilewise executor=dask -> Zarr, LocalCluster 2x1",
           [me, "--case", "w2_tilewise", "--args", src, f"{out}/tw.zarr", str(args.tile)])]
    overhead = [] if args.only == "w2" else overhead
    w2 = [] if args.only == "overhead" else w2
    runs: dict[str, list[dict]] = {name: [] for name, _ in overhead + w2}
    for _ in range(args.repeat):  # interleaved, so that machine noise hits every case alike
        for name, argv in overhead + w2:
            runs[name].append(run_child(argv))
    if overhead:
        print(f"\nper-tile overhead: 32 x 32 tiles, an op returning its input, max-reduced; "
              f"median of {args.repeat}")
        print(f"{'case':<34}{'tiles':>8}{'wall s':>9}{'ms/tile':>9}{'ms/tile/worker':>16}")
    for name, _ in overhead:
        r = median(runs[name])
        per = 1000 * r["seconds"] / r["tiles"]
        print(f"{name:<34}{r['tiles']:>8}{r['seconds']:>9.2f}{per:>9.2f}{per * WORKERS:>16.2f}")
    if w2:
        rows = [(name, median(runs[name])) for name, _ in w2]
        print(f"\nW2 chain on {args.size} x {args.size} float32, Zarr out, median of "
              f"{args.repeat}")
        table(rows, rows[0][1], "vs dask", 50)
        for name, _ in w2:
            print(f"  {name.split(' ')[0]} runs: " + ", ".join(
                f"{r['seconds']:.2f} s ({r['cpu']:.2f} CPU s)" for r in runs[name]))
        cpu = {name: sorted(r["cpu"] for r in runs[name]) for name, _ in w2}
        print("CPU seconds of the process tree while working (median): " + ", ".join(
            f"{name.split(' ')[0]} {c[len(c) // 2]:.2f}" for name, c in cpu.items())
            + f"; tilewise / dask {rows[1][1]['cpu'] / rows[0][1]['cpu']:.2f} (of the median "
            "runs)")
        print(f"tilewise tile {rows[1][1]['tile']}")
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in ("dask.zarr", "tw.zarr"):
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)


if __name__ == "__main__":
    main()
