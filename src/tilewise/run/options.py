"""Run options as one checked value, built before anything is created or read.

Every option of `save`, `plan`, `compute` and `evaluate` is checked here, so a bad option
fails before a folder, a staged output or a journal exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psutil
from dask.utils import parse_bytes

from ..errors import ParameterError
from ..executors import Executor, get_executor
from .progress import ProgressSpec

ON_ERROR = ("stop", "continue")


@dataclass(frozen=True)
class Options:
    runner: Executor
    #: The memory budget in bytes.
    budget: int
    #: The user's `tile=`, resolved against the driving grid when the run is planned.
    tile: Any = None
    overwrite: bool = False
    progress: ProgressSpec = None
    on_error: str = "stop"

    @classmethod
    def of(cls, executor: str | Executor | None = None, workers: int | None = None,
           memory: int | str | None = None, tile: Any = None, overwrite: bool = False,
           progress: ProgressSpec = None, on_error: str = "stop") -> Options:
        if on_error not in ON_ERROR:
            raise ParameterError(f"on_error={on_error!r} must be one of {', '.join(ON_ERROR)}")
        budget = budget_bytes(memory)
        if workers is None and not isinstance(executor, Executor):
            workers = default_workers()
        return cls(get_executor(executor, workers), budget, tile, bool(overwrite), progress,
                   on_error)

    @property
    def keep_going(self) -> bool:
        return self.on_error == "continue"


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def budget_bytes(memory: int | str | None) -> int:
    """The memory budget in bytes; by default half of the memory available now."""
    if memory is None:
        return psutil.virtual_memory().available // 2
    try:
        value = parse_bytes(memory) if isinstance(memory, str) else int(memory)
    except (ValueError, TypeError):
        raise ParameterError(f"memory={memory!r} is not a size such as '2GiB'") from None
    if value < 1:
        raise ParameterError(f"memory={memory!r} is less than one byte; give a size such as "
                             "'2GiB'")
    return value
