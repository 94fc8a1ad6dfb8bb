"""Fitting a run into its memory budget: what the run's processes hold first, then the tiles.

The budget bounds the peak resident memory of the run's whole process tree. What is taken
before any tile is measured, not assumed (`resident`): the resident size of the driver (its
interpreter, the libraries it imported, the caller's own data) and of every worker process,
started and loaded with the pipeline's ops before tiles are sized. To it come what fills during
the run: in every process that reads files, its format library's cache (GDAL's block cache,
`Source.cache_bytes`) and the cache of decoded halo blocks (`io.blocks`); the writer's cache;
and in-memory inputs copied into shared memory for worker processes. What is left is shared by
the tiles in flight (see `plan.choose`), whose op chains run in sub-blocks of a measured side
(`speed`); a budget too small for the measured side falls back to smaller sub-blocks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..allocator import return_large_arrays
from ..errors import BudgetError
from ..executors import Executor, WorkerLost
from ..io import Sink
from ..io import blocks as block_reads
from ..pipeline import Pipeline
from ..plan import Costs, Plan, Probe, choose, lcm, probe
from ..regions import Box
from ..speed import Speed, measure, sides
from . import resident
from .loop import lost_error
from .tilejob import WarmUp

#: Source blocks join the tile alignment unless that makes the unit this many times larger.
BLOCK_ALIGN_LIMIT = 4
#: Bytes per output byte a worker holds while it writes a tile: the chunks cut out of the tile,
#: and their compressed forms (measured for Zarr with `tracemalloc`).
ENCODE_COPIES = 2
#: Resident memory of a cluster's worker process before its first tile (interpreter, NumPy,
#: SciPy, GDAL, dask.distributed), for workers this process cannot measure.
REMOTE_WORKER_BASELINE = 128 * 1024 * 1024
#: Layers of blocks across the image that the halo-block cache holds: the two either side of
#: a boundary between rows of tiles, and one more for the rows in flight (see `halo_blocks`).
HALO_LAYERS = 3
#: Blocks beside a tile that its side halo decodes, kept for its neighbour (see `halo_blocks`).
SIDE_BLOCKS = 8
#: `block=` for a side chosen by measurement.
MEASURE = "measure"


def unit(pipeline: Pipeline, sinks: Sequence[Sink]) -> tuple[int, ...]:
    """The tile size multiple per driving axis: whole chunks of every output and, when that
    costs little, whole blocks of the driving output's source."""
    shape, blocks = pipeline.shape, pipeline.driver.blocks
    if not sinks:
        return tuple(min(b, n) for b, n in zip(blocks, shape, strict=True))
    chunks = pipeline.grids.unit([s.chunks for s in sinks])
    return tuple(lcm([u, b]) if lcm([u, b]) <= BLOCK_ALIGN_LIMIT * u else u
                 for u, b in zip(chunks, blocks, strict=True))


def halo_blocks(pipeline: Pipeline) -> int:
    """Bytes of the blocks that halos graze and tiles share (see `io.blocks`): for each file,
    `HALO_LAYERS` layers of blocks across the image (those either side of the boundary between
    a row of tiles and the next) and `SIDE_BLOCKS` more (those either side of a tile's
    boundary with its neighbour in the row)."""
    total = 0
    for node in pipeline.sources:
        source = node.source
        if source.paths:
            layer = math.prod(-(-n // b) for n, b in zip(source.shape[1:], source.blocks[1:],
                                                        strict=True))
            block = math.prod(source.blocks) * source.dtype.itemsize
            total += (HALO_LAYERS * layer + SIDE_BLOCKS) * block
    return total


def fixed_costs(pipeline: Pipeline, sinks: Sequence[Sink], runner: Executor, budget: int
                ) -> tuple[Costs, int]:
    """What the run's processes hold now, measured, and what their caches will hold; and the
    halo-block cache each reading process gets."""
    extra = runner.workers if runner.capabilities.process_per_worker else 0
    readers = (extra or 1) if any(n.source.paths for n in pipeline.sources) else 0
    # A library's cache (GDAL's) is one per process, however many of its files it reads.
    library_cache = max((n.source.cache_bytes for n in pipeline.sources), default=0)
    # Each sink keeps its own (a COG's overview strips); a sum overestimates GDAL's one cache.
    writer_cache = sum(s.cache_bytes for s in sinks)
    shared = sum(n.source.array.nbytes for n in pipeline.sources
                 if runner.capabilities.shared_memory_inputs
                 and getattr(n.source, "array", None) is not None)
    if runner.capabilities.remote_workers:
        # Workers that may be on other machines hold what their own memory limits say (the
        # budget is theirs, see `options`); their interpreters are not this process tree's.
        parts = [(f"for {extra} worker processes, estimated", REMOTE_WORKER_BASELINE * extra)]
        shared = 0
    else:
        name = f"the driver and {extra} worker processes" if extra else "the driver process"
        parts = [(f"for {name}, resident now", resident.tree())]
        if extra and not runner.started:
            parts = [("for the driver process, resident now", parts[0][1]),
                     (f"for {extra} worker processes, estimated",
                      resident.workers_estimate(extra))]
    # The halo-block cache only saves decoding: it takes at most a quarter of what the budget
    # leaves for tiles, so that interpreters filling most of a small budget still leave tiles.
    # (A cluster's budget is one worker's: its share is an eighth of it.)
    taken = sum(b for _, b in parts) + library_cache * readers + writer_cache + shared
    room = budget // 2 if runner.capabilities.remote_workers else max(budget - taken, 0)
    read_cache = min(block_reads.CAPACITY, halo_blocks(pipeline), room // (4 * max(readers, 1)))
    caches = ("for caches", (library_cache + read_cache) * readers + writer_cache)
    if runner.capabilities.remote_workers:
        return Costs((*parts, caches)), read_cache
    return Costs((*parts, caches, ("for inputs in shared memory", shared))), read_cache


@dataclass(frozen=True)
class Sizing:
    """One sweep to fit into a budget: what `plan.choose` needs besides the fixed costs."""

    pipeline: Pipeline
    sinks: tuple[Sink, ...]
    budget: int
    runner: Executor
    tile: tuple[int, ...] | None
    probe: Probe
    tile_from: str = "tile="

    @classmethod
    def of(cls, pipeline: Pipeline, sinks: Sequence[Sink], budget: int, runner: Executor,
           tile: tuple[int, ...] | None,
           finish: Callable[[tuple[np.ndarray, ...], Any], Any] | None = None,
           tile_from: str = "tile=", measured: Probe | None = None) -> Sizing:
        if tile is not None:
            pipeline.grids.check_tile(tile)
        return cls(pipeline, tuple(sinks), budget, runner, tile,
                   measured or probe(pipeline, finish), tile_from)

    def plan(self, side: int | None, fixed: Costs, read_cache: int, grow: bool = True) -> Plan:
        """The largest tile that fits with sub-blocks of `side` besides `fixed`, each reading
        process keeping `read_cache` bytes of halo blocks (`grow` False: the smallest, checked
        to fit)."""
        sinks, pixels = self.sinks, math.prod(self.pipeline.shape)
        remote = self.runner.capabilities.remote_workers
        single = [s for s in sinks if not s.written_by_workers(remote)]
        # A result sent back from a worker process exists twice while it is in transit.
        copies = 2 if self.runner.capabilities.copies_results else 1
        out_bytes = copies * sum(s.dtype.itemsize * math.prod(s.shape) / pixels for s in single)
        writes = ENCODE_COPIES * sum(s.dtype.itemsize * math.prod(s.shape) / pixels
                                     for s in sinks if s.written_by_workers(remote))
        aligned = unit(self.pipeline, sinks)
        return choose(self.pipeline, probe=self.probe, unit=aligned,
                      budget=self.budget, workers=self.runner.workers,
                      queued=self.runner.workers if single else 0,
                      out_bytes_per_pixel=out_bytes, tile=self.tile, block=side,
                      writes=writes, fixed=fixed, tile_from=self.tile_from,
                      write_count=self.write_count if sinks else None,
                      strip_unit=self.strip_unit(aligned, read_cache), grow=grow)

    def write_count(self, box: Box) -> int:
        """Separate writes of the outputs for a driving tile at `box`."""
        return sum(s.writes(b) for s, b in zip(self.sinks, self.pipeline.grids.boxes(box),
                                               strict=True))

    def strip_unit(self, aligned: tuple[int, ...], read_cache: int) -> tuple[int, ...]:
        """The unit of a tile spanning whole rows (see `plan.choose`): the usual `aligned`
        unit in whole source blocks along the axes it splits, unless one cache of halo blocks
        serves every worker and holds all of them (`halo_blocks`), so that a block is decoded
        once however many tiles it is split into."""
        shared = not self.runner.capabilities.process_per_worker
        if shared and read_cache >= halo_blocks(self.pipeline):
            return aligned
        return tuple(lcm([u, b]) for u, b in zip(aligned, self.pipeline.driver.blocks,
                                                  strict=True))

    def frugal(self, grow: bool = True) -> Plan:
        """The plan with the smallest sub-blocks, the workers estimated if not started yet:
        a budget that cannot hold its smallest tile is refused before any time is measured or
        worker started (`grow` False: only that is checked)."""
        return self.plan(min(sides(self.pipeline.axes)),
                         *fixed_costs(self.pipeline, self.sinks, self.runner, self.budget),
                         grow=grow)

    def fit(self, block: int | str | None = MEASURE) -> Plan:
        """The measured sub-block side (or `block`, if given; None: tiles whole), falling back
        to smaller sides while the tiles would not fit, after starting the workers."""
        self.frugal(grow=False)
        speed = (measure(self.pipeline, self.tile) if block == MEASURE
                 else Speed(side=block, note="given"))
        try:
            self.runner.start(WarmUp.of(self.pipeline, self.sinks))
        except WorkerLost as lost:
            raise lost_error(lost, "while starting") from None
        fixed, read_cache = fixed_costs(self.pipeline, self.sinks, self.runner, self.budget)
        smaller = [s for s in sorted(sides(self.pipeline.axes), reverse=True)
                   if speed.side is None or s < speed.side]
        for side in [speed.side, *smaller[:-1]]:
            with contextlib.suppress(BudgetError):
                return dataclasses.replace(self.plan(side, fixed, read_cache),
                                           read_cache=read_cache,
                                           speed=speed)
        last = smaller[-1] if smaller else speed.side
        return dataclasses.replace(self.plan(last, fixed, read_cache), read_cache=read_cache,
                                   speed=speed)


def fit(pipeline: Pipeline, sinks: Sequence[Sink], budget: int, runner: Executor,
        tile: tuple[int, ...] | None,
        finish: Callable[[tuple[np.ndarray, ...], Any], Any] | None = None,
        tile_from: str = "tile=", block: int | str | None = MEASURE,
        measured: Probe | None = None) -> Plan:
    """The plan of a sweep over `pipeline`'s tiles writing `sinks` within `budget` (see
    `Sizing.fit`); `measured` is the probe of `pipeline`, if the caller ran it already."""
    return_large_arrays()
    return Sizing.of(pipeline, sinks, budget, runner, tile, finish, tile_from,
                     measured).fit(block)
