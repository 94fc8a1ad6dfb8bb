"""The plan of a run: the tile shape, chosen from the memory budget, and a lazy job iterator.

The tile shape comes from measurement, not folklore: the pipeline runs once on a small probe
tile under `tracemalloc` (which sees every NumPy allocation, temporaries included), giving the
peak bytes per pixel of the largest window the pipeline holds. Tiles are then grown, in whole
units of the sink chunks (and source blocks, when that is cheap), while

    workers * bytes_per_pixel * window_pixels(tile) + queued * output_bytes(tile) <= budget

where `queued` counts finished tiles waiting for the driver to write them (sinks that workers
cannot write in parallel, such as an array in memory). Each tile covers whole sink chunks of
every output, so no two tiles ever write the same chunk.
"""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.utils import format_bytes

from .axes import SPATIAL, UNSPLIT, count
from .errors import BudgetError, ParameterError
from .grids import Grids
from .pipeline import Pipeline
from .regions import Box, TileGrid

#: Pixels of the probe tile (per splittable spatial extent: 256 x 256, 40 x 40 x 40).
PROBE_PIXELS = 256 * 256
#: Pixels per spatial axis of the untraced warm-up tile run before the probe.
WARM_UP_SIDE = 8
#: Measured peaks are scaled by this, for allocations `tracemalloc` cannot see (GDAL, codecs).
SAFETY = 1.25
#: Tiles larger than this many pixels gain nothing (halo overhead is already small).
MAX_TILE_PIXELS = 2048 * 2048
#: Aim for at least this many tiles per worker, so that no worker idles at the end.
TILES_PER_WORKER = 4


@dataclass(frozen=True)
class Job:
    index: tuple[int, ...]
    #: The tile on the driving grid.
    box: Box
    #: The tile's position in C order, as journals record it.
    flat: int = 0
    #: Each output's part of the tile, on its own grid.
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class Plan:
    grid: TileGrid
    bytes_per_pixel: float
    tile_bytes: int
    workers: int
    in_flight: int
    #: How each output follows the driving grid.
    outputs: Grids | None = None
    #: Bytes of decoded source blocks each reading process may keep (see `io.blocks`).
    read_cache: int = 0
    #: Bytes of the budget taken before tiles: caches and worker processes' baselines.
    fixed: int = 0

    def job(self, flat: int) -> Job:
        index = self.grid.index(flat)
        box = self.grid.box(index)
        return Job(index, box, flat, self.outputs.boxes(box) if self.outputs else (box,))

    def jobs(self) -> Iterator[Job]:
        """Tile jobs in C order, made one at a time as the executor asks for them."""
        return (self.job(flat) for flat in range(len(self.grid)))

    def __len__(self) -> int:
        return len(self.grid)


def probe(pipeline: Pipeline,
          finish: Callable[[tuple[np.ndarray, ...], Box], Any] | None = None) -> float:
    """Peak bytes per pixel of the largest node region, measured on one central tile.

    The sources are read before tracing starts and counted as the bytes of their windows: a
    small probe window would otherwise be charged for whole storage blocks it decodes.
    `finish`, if given, runs on the outputs inside the measurement (a reduction's kernels).
    The pipeline first runs untraced on a tiny tile, so that what happens once per process
    (an op's first import of its library, a JIT compilation) is not charged per pixel: a
    first call importing `reproject` allocates 90 MB, several times a tile's working memory.
    """
    warm = probe_box(pipeline, WARM_UP_SIDE)
    pipeline.compute(warm, None, _reads(pipeline, pipeline.regions(warm)))
    box = probe_box(pipeline, round(PROBE_PIXELS ** (1 / max(1, _spatial(pipeline)))))
    regions = pipeline.regions(box)
    reads = _reads(pipeline, regions)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        outputs = pipeline.compute(box, None, reads)
        if finish is not None:
            finish(outputs, box)
        del outputs
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()
    peak += sum(a.nbytes for a in reads.values())
    return SAFETY * max(peak, 1) / max(r.size for r in regions.values())


def _spatial(pipeline: Pipeline) -> int:
    return sum(a in SPATIAL for a in pipeline.axes)


def probe_box(pipeline: Pipeline, side: int) -> Box:
    """A central box `side` pixels along each spatial axis (whole unsplit axes, one plane of
    the others)."""
    size = tuple(min(n, max(1, side)) if a in SPATIAL else (n if a in UNSPLIT else 1)
                 for n, a in zip(pipeline.shape, pipeline.axes, strict=True))
    return central(pipeline.shape, size)


def _reads(pipeline: Pipeline, regions: Mapping[int, Box]) -> dict[int, np.ndarray]:
    return {id(n): n.read(regions[id(n)]) for n in pipeline.sources}


def window_pixels(pipeline: Pipeline, box: Box) -> int:
    """Pixels of the largest region any node computes for an output tile `box`."""
    return max(r.size for r in pipeline.regions(box).values())


def resolve_tile(tile: int | Mapping[str, int] | Sequence[int] | None,
                 shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...] | None:
    """The user's `tile=` as pixels per axis.

    An int applies to the spatial axes. Axes left out keep their full extent if spatial or
    unsplit (channels), and are cut one plane at a time otherwise (time, user axes).
    """
    if tile is None:
        return None
    if isinstance(tile, Mapping):
        given = dict(tile)
    elif isinstance(tile, (list, tuple)):
        if len(tile) != len(shape):
            raise ParameterError(f"tile={tile!r} gives {len(tile)} sizes for axes {axes}")
        given = dict(zip(axes, tile, strict=True))
    else:
        split = [a for a in axes if a not in UNSPLIT]
        given = {a: tile for a in ([a for a in split if a in SPATIAL] or split)}
    unknown = [a for a in given if a not in axes]
    if unknown:
        raise ParameterError(f"tile names axis {unknown[0]!r}, not one of the image axes {axes}")
    out = []
    for a, n in zip(axes, shape, strict=True):
        if a in given:
            out.append(min(n, count(given[a], f"tile[{a!r}]", ParameterError, least=1)))
        else:
            out.append(n if a in UNSPLIT or a in SPATIAL else 1)
    return tuple(out)


def choose(pipeline: Pipeline, *, unit: tuple[int, ...], budget: int, workers: int,
           queued: int, out_bytes_per_pixel: float, tile: tuple[int, ...] | None,
           finish: Callable[[tuple[np.ndarray, ...], Box], Any] | None = None,
           tile_from: str = "tile=") -> Plan:
    """Pick the largest tile (in whole `unit`s) whose run fits `budget`, or check `tile`
    (`tile_from` says where it came from, for the message when it does not fit)."""
    shape, axes = pipeline.shape, pipeline.axes
    per_pixel = probe(pipeline, finish)
    in_flight = workers + queued

    def cost(size: tuple[int, ...]) -> int:
        box = central(shape, size)
        return math.ceil(workers * per_pixel * window_pixels(pipeline, box)
                         + queued * out_bytes_per_pixel * box.size)

    if tile is not None:
        need = cost(tile)
        if need > budget:
            named = dict(zip(axes, tile, strict=True))
            fix = ("use a smaller tile or a larger memory" if tile_from == "tile=" else
                   "raise memory, or pass overwrite to start again with tiles that fit")
            raise BudgetError(
                f"tile {named} (from {tile_from}) needs about {format_bytes(need)} with "
                f"{workers} workers but the memory budget is {format_bytes(budget)}; {fix}")
        return Plan(TileGrid(shape, tile), per_pixel, need, workers, in_flight,
                    pipeline.grids)

    # Channels are never split (as for a user's tile and the probe): an op that makes its
    # bands from one computation (a multi-direction hillshade) would redo it for each band.
    size = tuple(n if a in UNSPLIT else min(n, u)
                 for n, u, a in zip(shape, unit, axes, strict=True))
    if cost(size) > budget:
        raise BudgetError(
            f"the smallest tile this output allows, {dict(zip(axes, size, strict=True))}, "
            f"needs about {format_bytes(cost(size))} with {workers} workers, more than the "
            f"memory budget {format_bytes(budget)}; raise memory or lower workers")
    growable = [i for i, a in enumerate(axes) if a not in UNSPLIT]
    order = sorted(growable, key=lambda i: (axes[i] not in SPATIAL, -i))
    min_tiles = min(TILES_PER_WORKER * workers, _count(shape, size))
    while True:
        best = None
        for i in order:
            if size[i] >= shape[i]:
                continue
            bigger = list(size)
            bigger[i] = min(shape[i], size[i] * 2)
            bigger = tuple(bigger)
            if (cost(bigger) <= budget and math.prod(bigger) <= MAX_TILE_PIXELS
                    and _count(shape, bigger) >= min_tiles):
                key = (axes[i] not in SPATIAL, size[i])
                if best is None or key < best[0]:
                    best = (key, bigger)
        if best is None:
            break
        size = best[1]
    return Plan(TileGrid(shape, size), per_pixel, cost(size), workers, in_flight,
                pipeline.grids)


def central(shape: tuple[int, ...], size: tuple[int, ...]) -> Box:
    start = tuple((n - k) // 2 for n, k in zip(shape, size, strict=True))
    return Box(start, tuple(a + k for a, k in zip(start, size, strict=True)))


def _count(shape: tuple[int, ...], size: tuple[int, ...]) -> int:
    return math.prod(-(-n // k) for n, k in zip(shape, size, strict=True))


def lcm(values: Sequence[int]) -> int:
    return math.lcm(*values) if values else 1


def read_pixels(pipeline: Pipeline, grid: TileGrid) -> int:
    """Pixels read from the sources over every tile of `grid`, halos included.

    Along each source axis, a tile's window depends on the tile's position along at most one
    axis of the driving grid (the one it follows through every op's map), so the total is a
    product of per-axis sums: cheap even for a million tiles. Which driving axis a source axis
    follows is found by moving a tile along each driving axis; a source axis that moves with
    two (an op whose footprint is not per axis, such as a rotation) makes the sum exact by
    visiting every tile, up to `EXACT_TILES`, and an estimate from a sample beyond.
    """
    counts = grid.counts
    ndim = len(counts)

    def windows(index: tuple[int, ...]) -> dict[int, Box]:
        regions = pipeline.regions(grid.box(index))
        return {id(n): regions[id(n)] for n in pipeline.sources if id(n) in regions}

    origin = windows((0,) * ndim)
    total = 0
    for node in pipeline.sources:
        base = origin[id(node)]
        follows: list[set[int]] = [set() for _ in base.shape]
        for axis in range(ndim):
            for k in {1, counts[axis] - 1} - {0}:
                moved = windows(tuple(k if i == axis else 0 for i in range(ndim)))[id(node)]
                for d in range(base.ndim):
                    if (moved.start[d], moved.stop[d]) != (base.start[d], base.stop[d]):
                        follows[d].add(axis)
        if any(len(f) > 1 for f in follows):
            total += _visited(grid, lambda index, n=node: windows(index)[id(n)].size)
            continue
        sums = [0] * ndim
        for axis in range(ndim):
            lengths = []
            for k in range(counts[axis]):
                w = windows(tuple(k if i == axis else 0 for i in range(ndim)))[id(node)]
                lengths.append(math.prod(w.shape[d] for d in range(base.ndim)
                                         if axis in follows[d]))
            sums[axis] = sum(lengths)
        fixed = math.prod(base.shape[d] for d in range(base.ndim) if not follows[d])
        used = {a for f in follows for a in f}
        total += fixed * math.prod(sums[a] if a in used else counts[a] for a in range(ndim))
    return total


#: Tiles visited one by one when a source's window is not separable by axis.
EXACT_TILES = 10_000


def _visited(grid: TileGrid, size: Callable[[tuple[int, ...]], int]) -> int:
    n = len(grid)
    step = max(1, n // EXACT_TILES)
    seen = [size(grid.index(flat)) for flat in range(0, n, step)]
    return round(sum(seen) * n / len(seen))
