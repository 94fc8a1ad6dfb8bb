"""Threads or processes, chosen by measurement when the caller names no executor.

Threads share one interpreter and copy nothing, but ops that hold the GIL (much of SciPy,
pure-Python code) keep them from using every core; processes use every core whatever the ops
do, but must be started and cost a resident interpreter each. Two threads compute a central
box while one computes it once more: their speed-up `s` gives the fraction of the work that
holds the GIL, `f = 2/s - 1`, hence the speed-up of `n` threads, `1 / (f + (1 - f)/n)`
(Amdahl). Processes are chosen when they would finish the whole run at least `MARGIN` sooner,
counting their start when none are running yet, and when their interpreters leave the budget
room for tiles at least `SMALLER_TILES` times as large as threads get: smaller tiles decode the
halo blocks around them once per process, not once (at `memory="512MiB"`, 2 workers would get
512 x 512 tiles instead of 2048 x 2048 and run 1.7x slower, measured). Else threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BudgetError
from ..executors import Executor, check_picklable, get_executor
from ..executors import processes as process_pools
from ..graph import OpNode
from ..pipeline import Pipeline
from ..plan import Probe
from ..speed import thread_speedup

#: Processes must beat threads by this fraction of the run's time to be chosen.
MARGIN = 0.10
#: Seconds that starting worker processes costs before their first tile (spawned interpreters
#: importing NumPy, SciPy, GDAL and Zarr, measured on a 2-core machine).
STARTUP = 1.5
#: Seconds a run on started worker processes costs besides its tiles (the work sent to each).
WARM_START = 0.2
#: Processes are not chosen when their tiles would be this many times smaller than threads'.
SMALLER_TILES = 4


@dataclass(frozen=True)
class Choice:
    runner: Executor
    #: Why, in words, for `plan`.
    reason: str


def choose(pipeline: Pipeline, workers: int, probe: Probe,
           tile_pixels: Callable[[Executor], int]) -> Choice:
    """The executor for `pipeline` on `workers` workers, and why; `probe` timed the chain and
    `tile_pixels(executor)` is the size of the tiles that fit the budget with it (a
    `BudgetError` if none does)."""
    threads = get_executor("threads", workers)
    if workers == 1:
        return Choice(threads, "one worker")
    try:
        for node in pipeline.nodes:
            if isinstance(node, OpNode):
                check_picklable(node.op)
    except Exception:
        return Choice(threads, "an op cannot be pickled for worker processes")
    work = probe.seconds * math.prod(pipeline.shape)
    start = WARM_START if process_pools.worker_pids(workers) else STARTUP
    if (work / workers + start) * (1 + MARGIN) >= work:
        # Even if threads ran one at a time, processes would not repay their start.
        return Choice(threads, f"about {work:.2g} s of computing, too little to repay "
                      f"{'starting ' if start == STARTUP else ''}worker processes")
    speedup = thread_speedup(pipeline, None)
    serial = min(1.0, max(0.0, 2 / speedup - 1))
    by_threads = work * (serial + (1 - serial) / workers)
    by_processes = work / workers + start
    measured = f"two threads computed {speedup:.2f}x as fast as one"
    if by_processes * (1 + MARGIN) >= by_threads:
        return Choice(threads, f"{measured}: threads, processes would gain less than "
                      f"{MARGIN:.0%}")
    processes = get_executor("processes", workers)
    gain = f"{measured}, so processes would be about {by_threads / by_processes:.2f}x faster"
    try:
        small, large = tile_pixels(processes), tile_pixels(threads)
    except BudgetError:
        return Choice(threads, f"{gain}, but worker processes do not fit the memory budget")
    if small * SMALLER_TILES <= large:
        return Choice(threads, f"{gain}, but their interpreters leave the memory budget room "
                      f"for tiles of {small:,} pixels, not {large:,}")
    return Choice(processes, gain)

