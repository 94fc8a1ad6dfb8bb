"""Runs jobs in worker processes, for functions that hold the GIL or are not thread-safe.

Workers are started with `spawn` (no inherited GDAL or thread state) once per worker count and
Python process, and reused by every run after: the reduction sweeps and the output pass of one
`save`, and every later `save`, so that only the first run waits for interpreters to import
NumPy, SciPy, GDAL and Zarr. They end when the process exits, or at `shutdown()`.

A run's work is pickled once into a file; each job sends only that file's name and the tile,
and a worker loads the work on its first job of the run (dropping the open files and cached
blocks of earlier runs). The work holds paths, never open file handles; in-memory arrays reach
workers through shared memory.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, wait
from typing import Any

import cloudpickle

from ..allocator import return_large_arrays
from ..errors import UnguardedMainError
from .base import Capabilities, Executor, WorkerLost, run_bounded

#: prctl option: the signal a process receives when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Seconds a starting worker waits for the others before it reports in anyway.
START_TIMEOUT = 120.0

#: In a worker: the barrier at which starting workers meet, and the work of the current run.
_barrier: Any = None
_work: tuple[str, Callable[[Any], Any]] | None = None


def _start(barrier: Any) -> None:
    global _barrier
    # Ctrl-C reaches the whole process group; the driver alone decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    _barrier = barrier
    return_large_arrays()


def _die_with_parent() -> None:
    """On Linux, be killed when the driver dies, even by SIGKILL: an orphaned worker would
    go on writing tiles into outputs that a resumed run is writing too."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the driver died before prctl took effect
            os._exit(1)


def _load(path: str) -> Callable[[Any], Any]:
    """The work pickled at `path`, with the warning filters of the run that pickled it."""
    from ..io import blocks, handles

    with open(path, "rb") as f:
        work, filters = pickle.load(f)
    warnings.filters[:] = filters
    handles.clear()  # handles of an earlier run's outputs may name files since replaced
    blocks.cache.clear()
    return work


def _meet(path: str) -> None:
    """Call the warm-up pickled at `path`, then wait until every worker has."""
    warm_up = _load(path)
    if warm_up is not None:
        warm_up()
    with contextlib.suppress(threading.BrokenBarrierError):
        _barrier.wait(START_TIMEOUT)


def _call(path: str, job: Any) -> Any:
    global _work
    if _work is None or _work[0] != path:
        _work = (path, _load(path))
    return _work[1](job)


class _Pool:
    """A pool of `workers` started processes, kept for every run of this Python process."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.barrier = context.Barrier(workers)
        self.executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_start,
                                            initargs=(self.barrier,))
        self.workers = workers
        #: The processes the pool has started (it forgets one that dies; this does not).
        self.seen: dict[int, Any] = {}
        self.closed = threading.Event()
        self.started = False
        #: The thread the workers were started from, alive as long as the pool.
        self.starter: threading.Thread | None = None

    def meet(self, path: str) -> None:
        """Have every worker load `path`, starting the workers if need be.

        A fresh pool starts a process per job submitted while none is idle, from the thread
        that submits it; on Linux a worker dies with that thread (`_die_with_parent`), so the
        first jobs are submitted from a thread that lives as long as the pool.
        """
        futures: list[Future] = []
        if self.started:
            futures = [self.executor.submit(_meet, path) for _ in range(self.workers)]
        else:
            submitted = threading.Event()
            failed: list[BaseException] = []

            def spawn() -> None:
                try:
                    futures.extend(self.executor.submit(_meet, path)
                                   for _ in range(self.workers))
                except BaseException as exc:  # handed to the caller, raised in its thread
                    failed.append(exc)
                finally:
                    submitted.set()
                self.closed.wait()

            self.starter = threading.Thread(target=spawn, daemon=True, name="tilewise-workers")
            self.starter.start()
            submitted.wait()
            if failed:
                raise _start_error(failed[0])
            self.started = True
        try:
            wait(futures)
            for future in futures:
                future.result()
        except BrokenExecutor as exc:
            self.remember()
            raise WorkerLost("processes", (), f"{exc}: {_how_it_died(self.seen.values())} "
                             "while starting (a script without `if __name__ == '__main__':` "
                             "fails so: each worker imports it again)") from None
        except BaseException:
            # Interrupted (Ctrl-C): a worker yet to reach the barrier must not wait
            # START_TIMEOUT there for the others (the process would hang at exit).
            self.barrier.abort()
            raise
        self.barrier.reset()
        self.remember()

    def remember(self) -> None:
        self.seen.update(getattr(self.executor, "_processes", None) or {})

    @property
    def pids(self) -> list[int]:
        return sorted(self.seen)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.closed.set()
        # Joined, so that the starter's references to the pool's queues and locks go while
        # the interpreter is whole: a daemon thread dropping them during exit could be
        # stopped between unlinking a semaphore and telling the resource tracker ("leaked
        # semaphore" warnings after a run, mostly after Ctrl-C).
        if self.starter is not None:
            self.starter.join()


_pools: dict[int, _Pool] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> _Pool:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = _Pool(workers)
        return pool


def _discard(pool: _Pool) -> None:
    with _pools_lock:
        if _pools.get(pool.workers) is pool:
            del _pools[pool.workers]
    pool.shutdown()


def shutdown() -> None:
    """End every worker process of this Python process (they start again when needed)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown()


atexit.register(shutdown)


def worker_pids(workers: int) -> list[int]:
    """The process ids of the started pool of `workers` workers (none if not started)."""
    pool = _pools.get(workers)
    return pool.pids if pool is not None else []


class _Tracked:
    """A pool's `submit`, remembering the futures of one run, to wait for those still
    running when the run stops early (a shared pool has no shutdown that would wait)."""

    def __init__(self, executor: ProcessPoolExecutor, path: str) -> None:
        self.executor, self.path = executor, path
        self.futures: list[Future] = []

    def submit(self, call: Callable[..., Any], job: Any) -> Future:
        future = self.executor.submit(call, self.path, job)
        self.futures.append(future)
        if len(self.futures) > 1024:
            self.futures = [f for f in self.futures if not f.done()]
        return future


class ProcessExecutor(Executor):
    name = "processes"
    capabilities = Capabilities(pickles_work=True, process_per_worker=True,
                                copies_results=True, shared_memory_inputs=True)

    @property
    def started(self) -> bool:
        pool = _pools.get(self.workers)
        return pool is not None and pool.started

    def start(self, warm_up: Callable[[], Any] | None = None) -> None:
        """Start the workers (or find them started) and have each call `warm_up`, so that
        their resident memory includes what the work imports and initialises."""
        with _pickled(warm_up) as path:
            pool = _pool(self.workers)
            try:
                pool.meet(path)
            except BaseException:  # lost or interrupted: half-started workers are ended
                _discard(pool)
                raise

    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        with _pickled(work) as path:
            pool = _pool(self.workers)
            if not pool.started:
                self.start()
            tracked = _Tracked(pool.executor, path)

            def pulled() -> Iterator[Any]:
                for job in jobs:
                    pool.remember()
                    yield job

            try:
                yield from run_bounded(tracked, _call, pulled(), in_flight, self.name)
            except WorkerLost as lost:
                pool.remember()
                _discard(pool)  # joins the workers: how the lost one ended is known
                raise WorkerLost(self.name, lost.jobs, _how_it_died(pool.seen.values())
                                 ) from None
            finally:
                wait(tracked.futures)  # jobs already running finish before the run returns


@contextlib.contextmanager
def _pickled(work: Any) -> Iterator[str]:
    """A file holding `work` and this thread's warning filters, removed afterwards."""
    payload = cloudpickle.dumps((work, list(warnings.filters)),
                                protocol=pickle.HIGHEST_PROTOCOL)
    fd, path = tempfile.mkstemp(prefix="tilewise-work-", suffix=".pickle")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        yield path
    finally:
        os.remove(path)


def _start_error(exc: BaseException) -> BaseException:
    """What starting workers raised, named for what it almost always is in a worker: the
    script imported again by a spawned worker, without a main guard, starting a run."""
    # multiprocessing runs a spawned worker's copy of the script as `__mp_main__`.
    if isinstance(exc, RuntimeError) and "__mp_main__" in sys.modules:
        return UnguardedMainError(
            "a tilewise run with executor='processes' started while a worker process was "
            "importing the main script: put the code that runs it under "
            "`if __name__ == '__main__':`")
    return exc


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
