"""The one interface every executor implements. Executors know nothing of rasters.

An executor receives a `work` callable once and an iterator of jobs, keeps at most `in_flight`
jobs submitted at any time (so memory stays bounded however many jobs there are), and yields
`(job, result)` pairs in completion order. Jobs are pulled from the iterator only as slots free
up, so a million-job run starts as fast as a ten-job one. What the driver must do for an
executor (pickle the work, count memory per worker process, ...) it declares in
`Capabilities`, never by its class. A worker that dies is a `WorkerLost` carrying the jobs it
took with it, unless the executor resubmits them itself.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait
from concurrent.futures import Executor as PoolExecutor
from dataclasses import dataclass
from typing import Any

import cloudpickle


@dataclass(frozen=True)
class Capabilities:
    """What the driver must do for an executor."""

    #: The work must be pickled (with cloudpickle) to reach the workers: check it up front.
    pickles_work: bool = False
    #: Each worker is a process of its own: its interpreter, libraries and caches count in the
    #: memory budget once per worker.
    process_per_worker: bool = False
    #: Results travel back to the driver by copy, so each exists twice while in transit.
    copies_results: bool = False
    #: In-memory inputs should be put in shared memory once, not copied to every worker.
    shared_memory_inputs: bool = False
    #: The executor resubmits the jobs of a lost worker itself (a cluster that replaces it),
    #: instead of ending the run with `WorkerLost`.
    retries_lost_workers: bool = False
    #: Workers may run on other machines (a cluster): they write only outputs that any machine
    #: may write (`Sink.remote_writes`) and make those writes durable before reporting a tile,
    #: since the driver's fsync reaches only its own disks; the driver writes the others.
    remote_workers: bool = False


class Executor(ABC):
    """Runs jobs; an instance may be passed as `executor=` and reused across runs."""

    name: str = ""
    capabilities: Capabilities = Capabilities()

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def __repr__(self) -> str:
        return f"<tilewise executor {self.name} x {self.workers}>"

    def start(self, warm_up: Callable[[], Any] | None = None) -> None:
        """Start the workers before the first job, and have each call `warm_up` (which loads
        what the work will need), so that the memory they take can be measured before tiles
        are sized; by default there is nothing to start."""

    @property
    def started(self) -> bool:
        """Whether the workers are running (and hold their memory) already."""
        return True

    @abstractmethod
    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        """Yield `(job, work(job))` for every job, in completion order."""

    def in_flight(self, allowed: int) -> int:
        """How many jobs `run` keeps submitted when the driver allows `allowed` (a cluster's
        executor keeps more queued, which hold no tile memory until they start)."""
        return allowed

    def batching(self, seconds_per_job: float | None) -> str:
        """How jobs are grouped into the executor's tasks, for `plan` ("": one job a task);
        `seconds_per_job` is the driver's estimate, if it has one."""
        return ""

    def memory_per_worker(self) -> int | None:
        """Bytes each worker may use, where the workers themselves say (a cluster's
        `memory_limit / nthreads`); None: the driver's budget decides."""
        return None

    def notice(self) -> str | None:
        """A line for the user when a run starts (where to watch it), at most once."""
        return None

    def each_worker(self, call: Callable[[], Any]) -> None:
        """Call `call()` in every worker process that outlives a run (a cluster's), e.g. to
        drop its caches; the driver's own process and short-lived workers need nothing."""

    def close(self) -> None:
        """Release what the executor started (a cluster); a run that made it calls this."""


class WorkerLost(Exception):
    """A worker died; `jobs` were in flight on the executor and got no result (one of them
    may have killed it; the others were lost with it). Results yielded before stand."""

    def __init__(self, executor: str, jobs: tuple[Any, ...], detail: str) -> None:
        super().__init__(f"{executor}: {detail}")
        self.executor, self.jobs, self.detail = executor, jobs, detail


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_picklable(obj: Any) -> None:
    """Raise what pickling `obj` for a worker process raises (cloudpickle, as it is sent)."""
    cloudpickle.dumps(obj)


def run_bounded(pool: PoolExecutor, call: Callable[[Any], Any], jobs: Iterable[Any],
                in_flight: int, name: str = "") -> Iterator[tuple[Any, Any]]:
    """Drive a `concurrent.futures` pool with at most `in_flight` jobs submitted; a pool
    broken by a dead worker is a `WorkerLost` naming the jobs in flight."""
    pending: dict[Future, Any] = {}
    source = iter(jobs)
    try:
        yield from _bounded(pool, call, source, in_flight, pending)
    except BrokenExecutor as exc:
        raise WorkerLost(name, tuple(pending.values()), str(exc)) from None
    finally:
        for future in pending:
            future.cancel()


def _bounded(pool: PoolExecutor, call: Callable[[Any], Any], source: Iterator[Any],
             in_flight: int, pending: dict[Future, Any]) -> Iterator[tuple[Any, Any]]:
    def refill() -> None:
        for job in source:
            pending[pool.submit(call, job)] = job
            if len(pending) >= in_flight:
                return

    refill()
    while pending:
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            result = future.result()
            yield pending.pop(future), result
        refill()
