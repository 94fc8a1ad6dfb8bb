"""Runs jobs in worker processes, for functions that hold the GIL or are not thread-safe.

Workers are started with `spawn` (no inherited GDAL or thread state) and receive the pickled
work once, in their initializer; each job then sends only a tile index and box. The work holds
paths, never open file handles; in-memory arrays reach workers through shared memory.
"""

from __future__ import annotations

import multiprocessing
import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .base import Executor, run_bounded

_installed: Callable[[Any], Any] | None = None


def _install(payload: bytes, filters: list) -> None:
    global _installed
    warnings.filters[:] = filters
    _installed = pickle.loads(payload)


def _call(job: Any) -> Any:
    assert _installed is not None, "worker used before its initializer ran"
    return _installed(job)


class ProcessExecutor(Executor):
    name = "processes"
    separate_processes = True

    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        payload = pickle.dumps(work, protocol=pickle.HIGHEST_PROTOCOL)
        pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_install, initargs=(payload, list(warnings.filters)))
        try:
            yield from run_bounded(pool, _call, jobs, in_flight)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
