"""Executors by name: one module each, behind the interface in `base`."""

from __future__ import annotations

from ..errors import ParameterError
from .base import Executor
from .processes import ProcessExecutor
from .serial import SerialExecutor
from .threads import ThreadExecutor

EXECUTORS: dict[str, type[Executor]] = {
    cls.name: cls for cls in (SerialExecutor, ThreadExecutor, ProcessExecutor)
}
DEFAULT = "threads"

__all__ = ["DEFAULT", "EXECUTORS", "Executor", "get_executor"]


def get_executor(name: str | None, workers: int) -> Executor:
    name = DEFAULT if name is None else name
    if name not in EXECUTORS:
        raise ParameterError(
            f"executor={name!r} is unknown; choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name](workers)
