"""Runs jobs in worker processes, for functions that hold the GIL or are not thread-safe.

Workers are started with `spawn` (no inherited GDAL or thread state) and receive the pickled
work once, in their initializer; each job then sends only a tile index and box. The work holds
paths, never open file handles; in-memory arrays reach workers through shared memory.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import cloudpickle

from .base import Capabilities, Executor, WorkerLost, run_bounded

_installed: Callable[[Any], Any] | None = None
#: prctl option: the signal a process receives when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def _install(payload: bytes, filters: list) -> None:
    global _installed
    # Ctrl-C reaches the whole process group; the driver alone decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    warnings.filters[:] = filters
    _installed = pickle.loads(payload)


def _die_with_parent() -> None:
    """On Linux, be killed when the driver dies, even by SIGKILL: an orphaned worker would
    go on writing tiles into outputs that a resumed run is writing too."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the driver died before prctl took effect
            os._exit(1)


def _call(job: Any) -> Any:
    assert _installed is not None, "worker used before its initializer ran"
    return _installed(job)


class ProcessExecutor(Executor):
    name = "processes"
    capabilities = Capabilities(pickles_work=True, process_per_worker=True,
                                copies_results=True, shared_memory_inputs=True)

    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        payload = cloudpickle.dumps(work, protocol=pickle.HIGHEST_PROTOCOL)
        pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_install, initargs=(payload, list(warnings.filters)))
        # The pool forgets its processes when one dies: keep them, to say how it died.
        seen: dict[int, Any] = {}

        def pulled() -> Iterator[Any]:
            for job in jobs:
                seen.update(getattr(pool, "_processes", None) or {})
                yield job

        try:
            yield from run_bounded(pool, _call, pulled(), in_flight, self.name)
        except WorkerLost as lost:
            seen.update(getattr(pool, "_processes", None) or {})
            pool.shutdown(wait=True, cancel_futures=True)  # joins them: their exit is known
            raise WorkerLost(self.name, lost.jobs, _how_it_died(seen.values())) from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _how_it_died(processes: Iterable[Any]) -> str:
    """The exit of the worker that died (the pool ends the others with SIGTERM, which says
    nothing)."""
    for process in list(processes):
        code = process.exitcode
        if code is None or code == 0 or code == -signal.SIGTERM:
            continue
        if code < 0:
            return f"process {process.pid} killed by {signal.Signals(-code).name}"
        return f"process {process.pid} exited with code {code}"
    return "a worker process ended abruptly"
