"""Run one benchmark case in a child process and record its wall time and peak memory.

Peak memory is the largest sum of resident set sizes of the child and all its descendants
(worker processes included), sampled every 20 ms with psutil. Every case starts after an
`os.sync()`, so that no case pays for writing back the previous case's output, and with its
own output removed, so that no case pays for deleting it (a tool that overwrites unlinks or
truncates the old file inside its clock: 0.8 s for a 1 GiB `.npy`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import psutil


def run_child(args: list[str], output: str | None = None) -> dict:
    """Run `args` in a child Python; `output`, the file or folder it writes, is removed first."""
    if output is not None and os.path.isdir(output):
        shutil.rmtree(output)
    elif output is not None and os.path.lexists(output):
        os.remove(output)
    # Start every case with no dirty pages of an earlier case still being written back.
    os.sync()
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = peak
    return result


def case_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The hidden options by which a benchmark runs one of its own cases in a child."""
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--args", nargs="*", help=argparse.SUPPRESS)
    return parser


def dispatch(args: argparse.Namespace, cases: dict, convert: Callable = str) -> bool:
    """Run the case `--case` names (a `case_NAME` function of `cases`), if any."""
    if not args.case:
        return False
    cases[f"case_{args.case}"](*[convert(a) for a in args.args or []])
    return True


def emit(result: dict) -> None:
    print(json.dumps(result), flush=True)


def median(results: list[dict]) -> dict:
    """The run with the median wall time, its peak memory the largest of all runs."""
    ordered = sorted(results, key=lambda r: r["seconds"])
    return {**ordered[len(ordered) // 2], "peak_rss": max(r["peak_rss"] for r in results)}


def table(rows: list[tuple[str, dict]], reference: dict, versus: str = "vs ref",
          width: int = 44) -> None:
    """Each case's tiles, wall time and peak RSS, with ratios to `reference`."""
    print(f"{'case':<{width}}{'tiles':>8}{'wall s':>9}{versus:>9}{'peak RSS':>11}{versus:>9}")
    for name, r in rows:
        print(f"{name:<{width}}{r['tiles']:>8}{r['seconds']:>9.2f}"
              f"{r['seconds'] / reference['seconds']:>9.2f}"
              f"{r['peak_rss'] / 2**30:>9.2f}GB{r['peak_rss'] / reference['peak_rss']:>9.2f}")
