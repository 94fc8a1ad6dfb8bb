"""Runs jobs on a dask.distributed cluster: a `LocalCluster` of processes on this machine, or
any cluster a scheduler address, a cluster object or a `Client` reaches (dask-jobqueue,
Kubernetes, a cloud service).

One job is one task, and the scheduler never sees a graph of all of them: jobs are submitted
in batches (one message per batch) and refilled from `as_completed` as they finish, with at
most `TASKS_PER_THREAD` per worker thread in flight (or the driver's `in_flight`, if larger).
Tasks waiting in a queue hold no tile memory; a worker thread runs one at a time. The work
object (paths, options, the cloudpickled pipeline) is scattered once per sweep with a replica
on every worker, so a dead worker takes no only copy with it, and each task receives it by
reference with its job.

Worker loss costs only its tasks: dask reschedules a task whose worker died; a task that
killed `distributed.scheduler.allowed-failures` workers (`KilledWorker`) is resubmitted up to
`RETRIES` more times before the run ends with `WorkerLost`. A lost scheduler or a closed client
ends the run with `ClusterLostError`; the journal keeps every tile reported before.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ClusterLostError, ParameterError
from .base import Capabilities, Executor, WorkerLost, default_workers

#: Tasks in flight per worker thread: enough that a worker never waits for the round trip to
#: the client between two tiles.
TASKS_PER_THREAD = 8
#: Resubmissions of a tile whose task dask gave up on (`KilledWorker`) before the run does.
RETRIES = 2
#: Seconds to wait for a first worker to join a cluster that has none yet (an adaptive or
#: job-queue cluster whose jobs are still queued).
WAIT_FOR_WORKERS = 300
#: Why dask cancels every future when the client loses its scheduler.
CONNECTION_LOST = "scheduler-connection-lost"


@dataclass(frozen=True, eq=False)
class _Payload:
    """The work as scattered: with the driver's warning filters (NumPy's all-NaN warnings
    silenced), installed once in each worker process."""

    work: Callable[[Any], Any]
    filters: tuple[Any, ...]

    def __call__(self, job: Any) -> Any:
        missing = [f for f in self.filters if f not in warnings.filters]
        if missing:
            warnings.filters[:0] = missing
        return self.work(job)


def _call(payload: _Payload, job: Any) -> Any:
    return payload(job)


class DaskExecutor(Executor):
    """Tiles as tasks on a dask cluster; `scheduler` is None (start a `LocalCluster` of
    `workers` processes with `threads_per_worker` threads each, closed with the executor),
    an address (`tcp://host:8786`), a cluster object (`SLURMCluster`, `LocalCluster`) or a
    `distributed.Client`. `workers` counts worker threads once connected."""

    name = "dask"
    capabilities = Capabilities(pickles_work=True, process_per_worker=True,
                                copies_results=True, retries_lost_workers=True,
                                remote_workers=True)

    def __init__(self, workers: int | None = None, scheduler: Any = None, *,
                 threads_per_worker: int = 1, memory_limit: int | str = "auto") -> None:
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

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    def in_flight(self, allowed: int) -> int:
        return max(allowed, TASKS_PER_THREAD * self.workers)

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
        limit = max(in_flight, TASKS_PER_THREAD * sum(client.nthreads().values()))
        payload = _Payload(work, tuple(warnings.filters))
        scattered = [self._scatter(payload)]
        prefix = f"tilewise-{uuid.uuid4().hex[:8]}"
        numbers = itertools.count()
        pending: dict[Any, tuple[Any, int]] = {}
        finished = as_completed(loop=client.loop, with_results=True, raise_errors=False)
        source = iter(jobs)

        def submit(batch: list[tuple[Any, int]]) -> None:
            keys = [(prefix, next(numbers)) for _ in batch]
            try:
                futures = client.map(_call, [scattered[0]] * len(batch),
                                     [job for job, _ in batch], key=keys, pure=False)
            except Exception as exc:  # a closed client raises from submission
                raise self._lost(exc) from None
            pending.update(zip(futures, batch, strict=True))
            finished.update(futures)

        def refill() -> None:
            batch = list(itertools.islice(source, limit - len(pending)))
            if batch:
                submit([(job, 0) for job in batch])

        try:
            refill()
            for future, result in finished:
                job, attempt = pending.pop(future)
                if future.status == "finished":
                    yield job, result
                else:
                    self._retry_or_raise(future.status, result, job, attempt, scattered,
                                         payload, submit)
                if len(pending) <= limit // 2:
                    refill()
        finally:
            if pending and client.status == "running":
                with contextlib.suppress(Exception):
                    client.cancel(list(pending))
            pending.clear()

    def _scatter(self, payload: _Payload) -> Any:
        try:
            [future] = self.client.scatter([payload], broadcast=True, hash=False)
        except Exception as exc:
            raise self._lost(exc) from None
        return future

    def _retry_or_raise(self, status: str, result: Any, job: Any, attempt: int,
                        scattered: list[Any], payload: _Payload,
                        submit: Callable[[list[tuple[Any, int]]], None]) -> None:
        """Resubmit a job whose task dask lost or gave up on; raise what the work raised."""
        from distributed.scheduler import KilledWorker

        if status == "error":
            _, exc, traceback = result
            if not isinstance(exc, KilledWorker):
                raise exc.with_traceback(traceback)
            if attempt >= RETRIES:
                raise WorkerLost(self.name, (job,), f"its task killed the workers that ran it "
                                 f"{attempt + 1} times, dask giving up each time: {exc}")
        elif getattr(result, "reason", None) == CONNECTION_LOST \
                or self.client.status != "running":
            raise self._lost(result)
        else:  # cancelled by the cluster (its scattered work lost with every replica)
            scattered[0] = self._scatter(payload)
        submit([(job, attempt + 1)])

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
