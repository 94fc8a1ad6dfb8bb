"""Executors by name: one module each, behind the interface (and capabilities) in `base`."""

from __future__ import annotations

from ..errors import ParameterError
from .base import Capabilities, Executor, WorkerLost, check_picklable
from .processes import ProcessExecutor
from .serial import SerialExecutor
from .threads import ThreadExecutor

EXECUTORS: dict[str, type[Executor]] = {
    cls.name: cls for cls in (SerialExecutor, ThreadExecutor, ProcessExecutor)
}
DEFAULT = "threads"

__all__ = ["DEFAULT", "EXECUTORS", "Capabilities", "Executor", "WorkerLost", "check_picklable",
           "get_executor"]


def get_executor(name: str | Executor | None, workers: int | None) -> Executor:
    """The executor named (default "threads") with `workers` workers, or the executor object
    given, which keeps its own worker count."""
    if isinstance(name, Executor):
        if workers is not None and workers != name.workers:
            raise ParameterError(f"workers={workers!r} differs from the {name.workers} workers "
                                 f"of the executor object given; leave workers out")
        return name
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers={workers!r} must be a positive integer")
    name = DEFAULT if name is None else name
    if name not in EXECUTORS:
        raise ParameterError(
            f"executor={name!r} is unknown; choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name](workers)
