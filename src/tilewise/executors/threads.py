"""Runs jobs on a pool of threads in this process.

NumPy, SciPy's ndimage and GDAL release the GIL for their heavy loops, so threads use every core
for typical raster pipelines without copying any data between processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import Executor, run_bounded


class ThreadExecutor(Executor):
    name = "threads"

    def run(self, work: Callable[[Any], Any], jobs: Iterable[Any], in_flight: int
            ) -> Iterator[tuple[Any, Any]]:
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tilewise")
        try:
            yield from run_bounded(pool, work, jobs, in_flight)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
