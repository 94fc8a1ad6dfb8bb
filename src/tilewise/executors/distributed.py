"""Runs jobs on a dask.distributed cluster: a `LocalCluster` of processes on this machine, or
any cluster a scheduler address, a cluster object or a `Client` reaches (dask-jobqueue,
Kubernetes, a cloud service).

The scheduler never sees a graph of all jobs: tasks are submitted in groups (one message per
group) and refilled from `as_completed` as they finish, with at most `TASKS_PER_THREAD` per
worker thread in flight (or the driver's `in_flight`, if larger). Tasks waiting in a queue hold
no tile memory; a worker thread runs one at a time. One task runs a batch of jobs, one after
the other: a task costs dask milliseconds (messages, state transitions, the worker's thread
pool), more than a small tile takes, so each task is given as many jobs as take about
`TASK_SECONDS` by the workers' own measured time per job (one job a task until a first time is
measured, so that the first tile finishes as soon as it can), at most `MAX_BATCH`, and no more
than whose results fit `RESULT_SHARE` of a worker thread's memory. The work object (paths,
options, the cloudpickled pipeline) is scattered once per sweep with a replica on every worker,
so a dead worker takes no only copy with it, and each task receives it by reference.

Worker loss costs only its tasks: dask reschedules a task whose worker died, and the batch is
run again whole (a job reports its results only with its batch, so none is recorded twice or
before its worker said it was written). A task that killed
`distributed.scheduler.allowed-failures` workers (`KilledWorker`) is resubmitted one job a task,
each up to `RETRIES` more times before the run ends with `WorkerLost` naming the job that keeps
killing workers. A lost scheduler or a closed client ends the run with `ClusterLostError`; the
journal keeps every tile reported before.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dask.sizeof import sizeof

from ..allocator import keep_small_arrays, return_large_arrays
from ..axes import count
from ..errors import ClusterLostError, ParameterError
from .base import Capabilities, Executor, WorkerLost, default_workers

#: Tasks in flight per worker thread: enough that a worker never waits for the round trip to
#: the client between two tasks.
TASKS_PER_THREAD = 8
#: Seconds of work a task is given (by the workers' measured time per job): long enough that
#: dask's own cost of a task (3 to 9 ms on a loaded 2-core machine) is a few percent of it,
#: short enough that a lost worker, or the last task of a run, costs little.
TASK_SECONDS = 0.1
#: Jobs per task at most: bounds the message that carries them, and what is redone when a
#: worker dies mid-task even for jobs measured as taking no time.
MAX_BATCH = 256
#: A task's results (held on the worker until its last job is done, then in transit to the
#: driver) take at most this share of a worker thread's memory (`memory_limit / nthreads`),
#: beside the tile it computes, and at most `MAX_RESULT_BYTES`.
RESULT_SHARE = 8
MAX_RESULT_BYTES = 64 * 2**20
#: Weight of the newest task's time per job in the running estimate.
SMOOTHING = 0.5
#: Resubmissions of a job whose task dask gave up on (`KilledWorker`) before the run does.
RETRIES = 2
#: Seconds to wait for a first worker to join a cluster that has none yet (an adaptive or
#: job-queue cluster whose jobs are still queued).
WAIT_FOR_WORKERS = 300
#: Seconds a broadcast of the run's work to the workers may take before it is tried again, and
#: the tries: one sent while a worker killed by its tile was being restarted was seen waiting
#: for over ten minutes (distributed 2026.8), where a new one goes through at once.
SCATTER_SECONDS = 60
SCATTER_TRIES = 3
#: Why dask cancels every future when the client loses its scheduler.
CONNECTION_LOST = "scheduler-connection-lost"


@dataclass(frozen=True)
class Done:
    """What a task sends back: each job's result, in order, the seconds the jobs took
    together and the bytes of their results."""

    results: list[Any]
    seconds: float
    nbytes: int


@dataclass(frozen=True, eq=False)
class _Payload:
    """The work as scattered: with the driver's warning filters (NumPy's all-NaN warnings
    silenced), installed once in each worker process."""

    work: Callable[[Any], Any]
    filters: tuple[Any, ...]

    def __call__(self, jobs: list[Any]) -> Done:
        _prepare_worker()
        missing = [f for f in self.filters if f not in warnings.filters]
        if missing:
            warnings.filters[:0] = missing
        started = time.perf_counter()
        results = [self.work(job) for job in jobs]
        return Done(results, time.perf_counter() - started, sizeof(results))


def _call(payload: _Payload, jobs: list[Any]) -> Done:
    return payload(jobs)


_prepared = False


def _prepare_worker() -> None:
    """In a worker process, once: the allocator set as tilewise sets it in its own processes
    (`allocator`), over the trim threshold dask's nanny sets."""
    global _prepared
    if not _prepared:
        return_large_arrays()
        keep_small_arrays()
        _prepared = True


def _warm(call: Callable[[], Any] | None) -> None:
    """In a worker: import tilewise (by unpickling this function), then `call()`, which loads
    what the work needs; what it raises, the tiles raise again, with their own message."""
    _prepare_worker()
    if call is not None:
        with contextlib.suppress(Exception):
            call()


class Batches:
    """How many jobs the next task gets: `fixed`, or as many as take `TASK_SECONDS` by the
    time per job measured so far (one until a task has reported), no more than `MAX_BATCH`
    nor than whose results fit `result_bytes`."""

    def __init__(self, fixed: int | None = None, result_bytes: int = MAX_RESULT_BYTES) -> None:
        self.fixed = fixed
        self.result_bytes = result_bytes
        #: Seconds and result bytes per job, smoothed over the tasks reported; None before.
        self.seconds: float | None = None
        self.nbytes = 0.0

    @property
    def measured(self) -> bool:
        return self.fixed is not None or self.seconds is not None

    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.seconds is None:
            return 1
        jobs = min(MAX_BATCH, math.ceil(TASK_SECONDS / max(self.seconds, 1e-9)))
        if self.nbytes:
            jobs = min(jobs, int(self.result_bytes // self.nbytes))
        return max(1, jobs)

    def report(self, done: Done) -> None:
        """Take a finished task's times and sizes into the estimate."""
        jobs = max(1, len(done.results))
        seconds, nbytes = done.seconds / jobs, done.nbytes / jobs
        if self.seconds is None:
            self.seconds, self.nbytes = seconds, nbytes
        else:
            self.seconds += SMOOTHING * (seconds - self.seconds)
            self.nbytes += SMOOTHING * (nbytes - self.nbytes)


def batch_size(seconds_per_job: float) -> int:
    """Jobs per task for jobs of `seconds_per_job` (results aside): what `plan` shows."""
    batches = Batches()
    batches.seconds = seconds_per_job
    return batches.size()


class DaskExecutor(Executor):
    """Tiles as tasks on a dask cluster; `scheduler` is None (start a `LocalCluster` of
    `workers` processes with `threads_per_worker` threads each, closed with the executor),
    an address (`tcp://host:8786`), a cluster object (`SLURMCluster`, `LocalCluster`) or a
    `distributed.Client`. `workers` counts worker threads once connected. `batch` fixes the
    tiles per task (by default sized to the workers' measured time, see `Batches`)."""

    name = "dask"
    capabilities = Capabilities(pickles_work=True, process_per_worker=True,
                                copies_results=True, retries_lost_workers=True,
                                remote_workers=True)

    def __init__(self, workers: int | None = None, scheduler: Any = None, *,
                 threads_per_worker: int = 1, memory_limit: int | str = "auto",
                 batch: int | None = None) -> None:
        if scheduler is not None and workers is not None:
            raise ParameterError(
                f"workers={workers!r} sizes the LocalCluster tilewise starts; the cluster at "
                f"scheduler={_describe(scheduler)} has its own workers: leave workers out")
        if isinstance(scheduler, str) and "://" not in scheduler:
            raise ParameterError(f"scheduler={scheduler!r} is not a scheduler address such as "
                                 "tcp://host:8786")
        self.requested = workers
        self.scheduler = scheduler
        self.threads_per_worker = threads_per_worker
        self.memory_limit = memory_limit
        self.batch = None if batch is None else count(batch, "batch", ParameterError, least=1)
        self._client: Any = None
        self._cluster: Any = None
        self._owns_client = False
        self._announced = False
        self._threads = 0

    def __repr__(self) -> str:
        where = "a LocalCluster" if self.scheduler is None else _describe(self.scheduler)
        return f"<tilewise executor dask on {where}>"

    @property
    def workers(self) -> int:  # type: ignore[override]
        """Worker threads in the cluster when it was connected to (the run is planned for
        them; a cluster that grows later gets more tasks in flight, not larger tiles)."""
        if not self._threads:
            self._connect()
        return self._threads

    @property
    def client(self) -> Any:
        """The `distributed.Client`, connecting (or starting the LocalCluster) on first use."""
        if self._client is None:
            self._connect()
        return self._client

    def _connect(self) -> None:
        from distributed import Client, LocalCluster

        target = self.scheduler
        if target is None:
            workers = self.requested or default_workers()
            self._cluster = LocalCluster(n_workers=workers,
                                         threads_per_worker=self.threads_per_worker,
                                         processes=True, memory_limit=self.memory_limit)
            target = self._cluster
        if isinstance(target, Client):
            self._client = target
        else:
            try:
                self._client = Client(target, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                self.close()
                raise ParameterError(f"scheduler={_describe(target)} cannot be reached "
                                     f"({type(exc).__name__}: {exc})") from None
            self._owns_client = True
        try:
            self._client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except TimeoutError:
            raise ClusterLostError(f"the dask cluster at {self.address} has had no worker "
                                   f"for {WAIT_FOR_WORKERS} s") from None
        self._threads = sum(self._client.nthreads().values())
        self._warm_up(None)  # imports tilewise in the workers while the driver plans

    def start(self, warm_up: Callable[[], Any] | None = None) -> None:
        """Have every worker call `warm_up` (open the inputs, import the ops' modules) in a
        task of its own, not waited for: it runs while the driver plans, not in the first tiles
        (the workers' memory is theirs, estimated, not measured here)."""
        self._warm_up(warm_up)

    def _warm_up(self, call: Callable[[], Any] | None) -> None:
        from distributed import fire_and_forget

        client = self.client
        with contextlib.suppress(Exception):  # a lost cluster is reported by the run
            for address in client.scheduler_info(n_workers=-1)["workers"]:
                fire_and_forget(client.submit(_warm, call, workers=[address],
                                              allow_other_workers=True, pure=False,
                                              key=f"tilewise-warm-up-{uuid.uuid4().hex[:8]}"))

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    def in_flight(self, allowed: int) -> int:
        return max(allowed, TASKS_PER_THREAD * self.workers)

    def batching(self, seconds_per_job: float | None) -> str:
        if self.batch is not None:
            return f"{self.batch} tiles a task (batch=)"
        guess = "" if not seconds_per_job else \
            f"; about {batch_size(seconds_per_job)} by the measured speed"
        return (f"each of the tiles that take about {TASK_SECONDS:g} s on the workers (1 until "
                f"timed, at most {MAX_BATCH}{guess})")

    def memory_per_worker(self) -> int | None:
        """The smallest `memory_limit / nthreads` of the cluster's workers (a worker thread
        runs one tile at a time); None when a worker has no limit."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        limits = [w["memory_limit"] // w["nthreads"] for w in workers if w["nthreads"]]
        return None if not limits or 0 in limits else min(limits)

    def notice(self) -> str | None:
        if self._announced:
            return None
        self._announced = True
        info = self.client.scheduler_info(n_workers=-1)
        workers = info["workers"]
        line = (f"tilewise: dask cluster {self.address}, {len(workers)} workers, "
                f"{self.workers} threads")
        if "dashboard" in info.get("services", {}):
            line += f"; dashboard {self.client.dashboard_link}"
        return line

    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        from distributed import as_completed

        client = self.client
        # Threads now, not when connected: an adaptive cluster may have grown.
        threads = sum(client.nthreads().values())
        limit = max(in_flight, TASKS_PER_THREAD * threads)
        memory = self.memory_per_worker()
        batches = Batches(self.batch, min(MAX_RESULT_BYTES, (memory or 2**62) // RESULT_SHARE))
        payload = _Payload(work, tuple(warnings.filters))
        scattered = [self._scatter(payload)]
        prefix = f"tilewise-{uuid.uuid4().hex[:8]}"
        numbers = itertools.count()
        pending: dict[Any, list[tuple[Any, int]]] = {}
        finished = as_completed(loop=client.loop, with_results=True, raise_errors=False)
        source = iter(jobs)

        def submit(tasks: list[list[tuple[Any, int]]]) -> None:
            keys = [(prefix, next(numbers)) for _ in tasks]
            try:
                futures = client.map(_call, [scattered[0]] * len(tasks),
                                     [[job for job, _ in task] for task in tasks], key=keys,
                                     pure=False)
            except Exception as exc:  # a closed client raises from submission
                raise self._lost(exc) from None
            pending.update(zip(futures, tasks, strict=True))
            finished.update(futures)

        def refill() -> None:
            # Until a task has reported its time, one single job per thread: the first
            # tiles finish as soon as they can, and time the next tasks' batches.
            room = limit if batches.measured else threads
            tasks = []
            while len(pending) + len(tasks) < room:
                task = [(job, 0) for job in itertools.islice(source, batches.size())]
                if not task:
                    break
                tasks.append(task)
            if tasks:
                submit(tasks)

        try:
            refill()
            for future, result in finished:
                task = pending.pop(future)
                if future.status == "finished":
                    batches.report(result)
                    yield from zip((job for job, _ in task), result.results, strict=True)
                else:
                    self._retry_or_raise(future.status, result, task, scattered, payload,
                                         submit)
                if len(pending) <= limit // 2 or not batches.measured:
                    refill()
        finally:
            if pending and client.status == "running":
                with contextlib.suppress(Exception):
                    client.cancel(list(pending))
            pending.clear()

    def _scatter(self, payload: _Payload) -> Any:
        client = self.client
        for _ in range(SCATTER_TRIES):
            try:
                [future] = client.sync(client._scatter, [payload], broadcast=True, hash=False,
                                       callback_timeout=SCATTER_SECONDS)
                return future
            except TimeoutError:
                continue
            except Exception as exc:
                raise self._lost(exc) from None
        raise self._lost(TimeoutError(f"sending the work to the workers took over "
                                      f"{SCATTER_SECONDS} s, {SCATTER_TRIES} times"))

    def _retry_or_raise(self, status: str, result: Any, task: list[tuple[Any, int]],
                        scattered: list[Any], payload: _Payload,
                        submit: Callable[[list[list[tuple[Any, int]]]], None]) -> None:
        """Resubmit the jobs of a task dask lost or gave up on; raise what the work raised."""
        from distributed.scheduler import KilledWorker

        if status == "error":
            _, exc, traceback = result
            if not isinstance(exc, KilledWorker):
                raise exc.with_traceback(traceback)
            if len(task) > 1:  # one job a task, to find the one that kills its workers
                submit([[(job, attempt + 1)] for job, attempt in task])
                return
            [(job, attempt)] = task
            if attempt >= RETRIES:
                raise WorkerLost(self.name, (job,), f"its task killed the workers that ran it "
                                 f"{attempt + 1} times, dask giving up each time: {exc}")
        elif getattr(result, "reason", None) == CONNECTION_LOST \
                or self.client.status != "running":
            raise self._lost(result)
        else:  # cancelled by the cluster (its scattered work lost with every replica)
            scattered[0] = self._scatter(payload)
        submit([[(job, attempt + 1) for job, attempt in task]])

    def _lost(self, exc: BaseException) -> ClusterLostError:
        address = self.scheduler if isinstance(self.scheduler, str) else (
            self._client.scheduler.address if self._client is not None else "?")
        why = ("the scheduler stopped, or the network to it failed"
               if getattr(exc, "reason", None) == CONNECTION_LOST
               else f"{type(exc).__name__}: {exc}".replace("\n", " "))
        return ClusterLostError(f"the connection to the dask scheduler at {address} was lost "
                                f"({why})")

    def each_worker(self, call: Callable[[], Any]) -> None:
        if self._client is not None and self._client.status == "running":
            with contextlib.suppress(Exception):
                self._client.run(call)

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
        self._client = self._cluster = None
        self._owns_client = self._announced = False


def _describe(scheduler: Any) -> str:
    if isinstance(scheduler, str):
        return repr(scheduler)
    address = getattr(scheduler, "scheduler_address", None)
    return f"{type(scheduler).__name__}({address!r})" if address else type(scheduler).__name__
