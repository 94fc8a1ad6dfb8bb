"""One sweep of tile jobs on an executor, with progress, and the caches cleaned up after.

Both passes of a run use it: the reduction sweeps and the output pass. A worker that dies is
reported here as a `WorkerLostError` naming the tiles it took with it. Where the executor says
where to watch the run (a dask dashboard), that line goes to stderr unless progress is off.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import UnpicklableFunctionError, WorkerLostError
from ..executors import Executor, WorkerLost, check_picklable
from ..graph import OpNode
from ..io import blocks as block_reads
from ..io import handles
from ..pipeline import Pipeline
from ..plan import Job, Plan
from .progress import ProgressSpec, Reporter


def drive(pipeline: Pipeline, plan: Plan, runner: Executor,
          make_work: Callable[[Pipeline], Callable[[Job], Any]],
          on_result: Callable[[Job, Any], None], progress: ProgressSpec, what: str,
          jobs: Iterator[Job] | None = None, total: int | None = None) -> None:
    """Run `make_work(pipeline)` on every job (all of `plan`'s by default)."""
    if runner.capabilities.shared_memory_inputs:
        pipeline = pipeline.with_sources(lambda source: source.for_processes())
    notice = runner.notice()
    if notice and progress is not False:
        print(notice, file=sys.stderr, flush=True)
    report = Reporter(progress, len(plan) if total is None else total, what)
    jobs = plan.jobs() if jobs is None else jobs
    try:
        for job, result in runner.run(make_work(pipeline), jobs, plan.in_flight):
            on_result(job, result)
            report.tile(job.box.size)
    except WorkerLost as lost:
        tiles = ", ".join(str(j.index) for j in lost.jobs[:4]) + (
            ", ..." if len(lost.jobs) > 4 else "")
        raise lost_error(lost, f"while computing tile(s) {tiles}") from None
    finally:
        report.close()
        forget_caches()
        runner.each_worker(forget_caches)
        for node in pipeline.sources:
            node.source.release()


def lost_error(lost: WorkerLost, doing: str) -> WorkerLostError:
    """A lost worker in words: which executor, how it died, what it was doing."""
    return WorkerLostError(f"a worker of the {lost.executor} executor died ({lost.detail}) "
                           f"{doing}")


def forget_caches() -> None:
    """Drop a process's decoded blocks and open stores after a sweep: a cluster's workers
    outlive the run, and an input may change before the next one."""
    block_reads.cache.clear()
    block_reads.cache.capacity = block_reads.CAPACITY  # a run sets its own
    handles.clear()


def check_sendable(pipeline: Pipeline, runner: Executor) -> None:
    """Refuse, before any work, ops whose functions cannot reach the executor's workers."""
    if not runner.capabilities.pickles_work:
        return
    for node in pipeline.nodes:
        if isinstance(node, OpNode):
            try:
                check_picklable(node.op)
            except Exception as exc:
                raise UnpicklableFunctionError(
                    f"the function of op {node.name!r} cannot be sent to worker processes "
                    f"({type(exc).__name__}: {exc}); use the threads executor, or make "
                    "it picklable") from None
