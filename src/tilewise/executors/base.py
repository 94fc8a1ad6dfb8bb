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
from typing import Any


class Executor(ABC):
    name: str = ""
    #: Whether each worker is a process of its own (with its own interpreter and caches).
    separate_processes: bool = False

    def __init__(self, workers: int) -> None:
        self.workers = workers

    @abstractmethod
    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        """Yield `(job, work(job))` for every job, in completion order."""


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
