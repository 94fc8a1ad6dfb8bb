"""Fitting a run into its memory budget: fixed costs first, then the tile shape.

Fixed costs come off the budget before tiles: in every process that reads files, its format
library's cache (GDAL's block cache, `Source.cache_bytes`) and the cache of decoded halo
blocks (`io.blocks`); the writer's cache; and, for executors whose workers are processes, the
baseline of every worker process. What is left is shared by the
tiles in flight (see `plan.choose`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from dask.utils import format_bytes

from ..errors import BudgetError
from ..executors import Executor
from ..io import Sink
from ..io import blocks as block_reads
from ..pipeline import Pipeline
from ..plan import Plan, choose, lcm

#: Resident memory of a worker process before its first tile (interpreter, NumPy, SciPy, GDAL).
WORKER_BASELINE = 128 * 1024 * 1024
#: Source blocks join the tile alignment unless that makes the unit this many times larger.
BLOCK_ALIGN_LIMIT = 4


def unit(pipeline: Pipeline, sinks: Sequence[Sink]) -> tuple[int, ...]:
    """The tile size multiple per driving axis: whole chunks of every output and, when that
    costs little, whole blocks of the driving output's source."""
    shape, blocks = pipeline.shape, pipeline.driver.blocks
    if not sinks:
        return tuple(min(b, n) for b, n in zip(blocks, shape, strict=True))
    chunks = pipeline.grids.unit([s.chunks for s in sinks])
    return tuple(lcm([u, b]) if lcm([u, b]) <= BLOCK_ALIGN_LIMIT * u else u
                 for u, b in zip(chunks, blocks, strict=True))


def fixed_costs(pipeline: Pipeline, sinks: Sequence[Sink], runner: Executor, budget: int
                ) -> tuple[int, int]:
    """Bytes taken before any tile, and the halo-block cache each reading process gets."""
    workers = runner.workers
    extra = workers if runner.capabilities.process_per_worker else 0
    readers = (extra or 1) if any(n.source.paths for n in pipeline.sources) else 0
    # A library's cache (GDAL's) is one per process, however many of its files it reads.
    library_cache = max((n.source.cache_bytes for n in pipeline.sources), default=0)
    # Each sink keeps its own (a COG's overview strips); a sum overestimates GDAL's one cache.
    writer_cache = sum(s.cache_bytes for s in sinks)
    read_cache = min(block_reads.CAPACITY, budget // (8 * max(readers, 1)))
    fixed = ((library_cache + read_cache) * readers + writer_cache
             + WORKER_BASELINE * extra)
    if budget <= fixed:
        raise BudgetError(
            f"the memory budget of {format_bytes(budget)} does not cover the fixed cost of "
            f"{runner.name} with {workers} workers ({format_bytes(fixed)}); raise memory"
            + (", lower workers, or use the threads executor" if extra else " or lower workers"))
    return fixed, read_cache


def fit(pipeline: Pipeline, sinks: Sequence[Sink], budget: int, runner: Executor,
        tile: tuple[int, ...] | None,
        finish: Callable[[tuple[np.ndarray, ...], Any], Any] | None = None,
        tile_from: str = "tile=") -> Plan:
    """The plan of a sweep over `pipeline`'s tiles writing `sinks` within `budget`."""
    fixed, read_cache = fixed_costs(pipeline, sinks, runner, budget)
    if tile is not None:
        pipeline.grids.check_tile(tile)
    single = [s for s in sinks if not s.written_by_workers(runner.capabilities.remote_workers)]
    queued = runner.workers if single else 0
    # A result sent back from a worker process exists twice while it is in transit.
    copies = 2 if runner.capabilities.copies_results else 1
    shape = pipeline.shape
    pixels = math.prod(shape)
    out_bytes = copies * sum(s.dtype.itemsize * math.prod(s.shape) / pixels for s in single)
    plan = choose(pipeline, unit=unit(pipeline, sinks), budget=budget - fixed,
                  workers=runner.workers, queued=queued, out_bytes_per_pixel=out_bytes,
                  tile=tile, finish=finish, tile_from=tile_from)
    return dataclasses.replace(plan, read_cache=read_cache, fixed=fixed)
