"""Runs every job in the calling thread, in order: for debugging and for tiny jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .base import Executor


class SerialExecutor(Executor):
    name = "serial"

    def __init__(self, workers: int = 1) -> None:
        super().__init__(1)

    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        for job in jobs:
            yield job, work(job)
