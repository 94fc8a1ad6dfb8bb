"""Executors by name: one module each, behind the interface (and capabilities) in `base`."""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError
from .base import Capabilities, Executor, WorkerLost, check_picklable, default_workers
from .distributed import DaskExecutor
from .processes import ProcessExecutor
from .serial import SerialExecutor
from .threads import ThreadExecutor

EXECUTORS: dict[str, type[Executor]] = {
    cls.name: cls for cls in (SerialExecutor, ThreadExecutor, ProcessExecutor, DaskExecutor)
}
DEFAULT = "threads"

__all__ = ["DEFAULT", "EXECUTORS", "Capabilities", "DaskExecutor", "Executor", "WorkerLost",
           "check_picklable", "get_executor"]


def get_executor(name: str | Executor | None, workers: int | None,
                 scheduler: Any = None, memory: int | None = None) -> Executor:
    """The executor named (default "threads", or "dask" when a `scheduler` is given) with
    `workers` workers, or the executor object given, which keeps its own worker count.
    `scheduler` (an address, a cluster or a `distributed.Client`) is for "dask" alone; a
    LocalCluster it starts shares `memory` (bytes) among its worker processes."""
    if isinstance(name, Executor):
        if scheduler is not None:
            raise ParameterError("scheduler= goes with executor='dask', not with an executor "
                                 "object; leave it out")
        if workers is not None and workers != name.workers:
            raise ParameterError(f"workers={workers!r} differs from the {name.workers} workers "
                                 f"of the executor object given; leave workers out")
        return name
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ParameterError(f"workers={workers!r} must be a positive integer")
    name = (DEFAULT if scheduler is None else DaskExecutor.name) if name is None else name
    if name not in EXECUTORS:
        raise ParameterError(
            f"executor={name!r} is unknown; choose one of {', '.join(EXECUTORS)}")
    if name == DaskExecutor.name:
        if scheduler is None and memory is not None:
            return DaskExecutor(workers, memory_limit=memory // (workers or default_workers()))
        return DaskExecutor(workers, scheduler)
    if scheduler is not None:
        raise ParameterError(f"scheduler= is for executor='dask', not executor={name!r}")
    if workers is None:
        raise ParameterError(f"executor={name!r} needs a number of workers")
    return EXECUTORS[name](workers)
