"""Percentile benchmark: exact 2nd/98th percentiles of a 12288 x 12288 float32 GeoTIFF.

    python benchmarks/bench_percentile.py

Cases, each in its own child process of this one command (peak RSS is the case's alone):
- tilewise `tw.percentile(img, [2, 98])`, memory="256MiB" (exact);
- `numpy.nanpercentile` on the whole array read into memory (exact, the reference);
- `dask.array.percentile` on a rioxarray read with 1024 chunks (approximate).
Each reports wall time (reading included), peak RSS and the error against the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import case_options, dispatch, emit, median, run_child  # noqa: E402

Q = [2, 98]


def case_tilewise(src: str, memory: str) -> None:
    import tilewise as tw

    start = time.perf_counter()
    got = tw.percentile(tw.open(src), Q).compute(memory=memory)
    emit({"seconds": time.perf_counter() - start, "values": [float(v) for v in got]})


def case_numpy(src: str) -> None:
    import rasterio

    start = time.perf_counter()
    with rasterio.open(src) as ds:
        a = ds.read(1)
    got = np.nanpercentile(a, Q)
    emit({"seconds": time.perf_counter() - start, "values": [float(v) for v in got]})


def case_dask(src: str) -> None:
    import dask
    import dask.array as da
    import rioxarray

    start = time.perf_counter()
    arr = rioxarray.open_rasterio(src, chunks={"band": 1, "y": 1024, "x": 1024}).squeeze("band")
    with dask.config.set(scheduler="threads", num_workers=2):
        got = da.percentile(arr.data.ravel(), Q).compute()
    emit({"seconds": time.perf_counter() - start, "values": [float(v) for v in got]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12288)
    parser.add_argument("--memory", default="256MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = case_options(parser).parse_args()
    if dispatch(args, globals()):
        return

    from make_data import make

    src = make(os.path.join(HERE, "data", f"dem_{args.size}.tif"), args.size)
    me = os.path.abspath(__file__)
    cases = [("numpy.nanpercentile, whole array", [me, "--case", "numpy", "--args", src]),
             (f"tilewise percentile, memory={args.memory}",
              [me, "--case", "tilewise", "--args", src, args.memory]),
             ("dask.array.percentile, 1024 chunks", [me, "--case", "dask", "--args", src])]
    runs: dict[str, list[dict]] = {name: [] for name, _ in cases}
    for _ in range(args.repeat):
        for name, argv in cases:
            runs[name].append(run_child(argv))
    reference = None
    print(f"input {src}: {args.size} x {args.size} float32; q = {Q}; median of {args.repeat}")
    print(f"{'case':<40}{'wall s':>8}{'vs numpy':>10}{'peak RSS':>11}{'vs numpy':>10}"
          f"{'max abs error':>15}")
    for name, _ in cases:
        r = median(runs[name])
        if reference is None:
            reference = r
        error = max(abs(a - b) for a, b in zip(r["values"], reference["values"], strict=True))
        print(f"{name:<40}{r['seconds']:>8.2f}{r['seconds'] / reference['seconds']:>10.2f}"
              f"{r['peak_rss'] / 2**30:>9.2f}GB{r['peak_rss'] / reference['peak_rss']:>10.2f}"
              f"{error:>15.3g}")
    print(json.dumps({name: runs[name][0]["values"] for name in runs}))


if __name__ == "__main__":
    main()
