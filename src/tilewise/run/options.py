"""Run options as one checked value, built before anything is created or read.

Every option of `save`, `plan`, `compute` and `evaluate` is checked here, so a bad option
fails before a folder, a staged output or a journal exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dask.config
import psutil
from dask.utils import parse_bytes

from ..errors import ParameterError
from ..executors import Executor, get_executor
from ..executors.base import default_workers
from ..io.gdal import configure_gdal
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
    #: Whether these options made the executor (by name), so that the run closes it (a
    #: LocalCluster it started) when done; an executor object given is the caller's.
    owned: bool = False
    #: fsspec options (credentials, endpoint) of the outputs in an object store.
    storage_options: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, executor: str | Executor | None = None, workers: int | None = None,
           memory: int | str | None = None, tile: Any = None, overwrite: bool = False,
           progress: ProgressSpec = None, on_error: str = "stop",
           scheduler: Any = None, storage_options: Mapping[str, Any] | None = None) -> Options:
        if on_error not in ON_ERROR:
            raise ParameterError(f"on_error={on_error!r} must be one of {', '.join(ON_ERROR)}")
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise ParameterError(f"storage_options={storage_options!r} must be a dict of "
                                 "fsspec options such as {'endpoint_url': ...}")
        given = None if memory is None else budget_bytes(memory)
        owned = not isinstance(executor, Executor)
        if workers is None and owned and executor != "dask" and scheduler is None:
            workers = default_workers()
        configure_gdal()  # before a LocalCluster starts: its workers inherit the setting
        runner = get_executor(executor, workers, scheduler, given)
        try:
            budget = _budget(runner, given)
        except BaseException:
            if owned:
                runner.close()
            raise
        return cls(runner, budget, tile, bool(overwrite), progress, on_error, owned,
                   storage_options)

    @property
    def keep_going(self) -> bool:
        return self.on_error == "continue"

    @contextlib.contextmanager
    def running(self) -> Iterator[Options]:
        """These options for the length of a run; then the executor they made is closed."""
        try:
            yield self
        finally:
            if self.owned:
                self.runner.close()


def _budget(runner: Executor, given: int | None) -> int:
    """The run's budget: `memory=`, or half of what is free here; for workers that say what
    they may use (a cluster's), at most that, up to the fraction at which dask pauses them."""
    per_worker = runner.memory_per_worker()
    if per_worker is None:
        return budget_bytes(None) if given is None else given
    pause = dask.config.get("distributed.worker.memory.pause", 0.8) or 1.0
    cluster = int(per_worker * runner.workers * pause)
    return cluster if given is None else min(given, cluster)


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
