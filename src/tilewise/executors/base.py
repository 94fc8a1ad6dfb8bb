"""The one interface every executor implements. Executors know nothing of rasters.

An executor receives a picklable `work` callable once and an iterator of jobs, keeps at most
`in_flight` jobs submitted at any time (so memory stays bounded however many jobs there are),
and yields `(job, result)` pairs in completion order. Jobs are pulled from the iterator only
as slots free up, so a million-job run starts as fast as a ten-job one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures import Executor as PoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    pickles_work: bool = False
    process_per_worker: bool = False
    copies_results: bool = False
    shared_memory_inputs: bool = False
    retries_lost_workers: bool = False


class Executor(ABC):
    name: str = ""
    capabilities: Capabilities = Capabilities()

    def __init__(self, workers: int) -> None:
        self.workers = workers

    @abstractmethod
    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        """Yield `(job, work(job))` for every job, in completion order."""


class WorkerLost(Exception):
    """A worker died; `jobs` were in flight on the executor and got no result."""

    def __init__(self, executor: str, jobs: tuple[Any, ...], detail: str) -> None:
        super().__init__(f"{executor}: {detail}")
        self.executor, self.jobs, self.detail = executor, jobs, detail


def check_picklable(obj: Any) -> None:
    import cloudpickle

    cloudpickle.dumps(obj)


def run_bounded(pool: PoolExecutor, call: Callable[[Any], Any], jobs: Iterable[Any],
                in_flight: int) -> Iterator[tuple[Any, Any]]:
    """Drive a `concurrent.futures` pool with at most `in_flight` jobs submitted."""
    pending: dict[Future, Any] = {}
    source = iter(jobs)
    try:
        for job in source:
            pending[pool.submit(call, job)] = job
            if len(pending) >= in_flight:
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                job = pending.pop(future)
                yield job, future.result()
            for job in source:
                pending[pool.submit(call, job)] = job
                if len(pending) >= in_flight:
                    break
    finally:
        for future in pending:
            future.cancel()
