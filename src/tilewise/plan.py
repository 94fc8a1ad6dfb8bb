"""The plan of a run: the tile shape, chosen from the memory budget, and a lazy job iterator.

The tile shape comes from measurement, not folklore: the pipeline runs once on a small probe
tile under `tracemalloc` (which sees every NumPy allocation, temporaries included), giving the
peak bytes per pixel of the largest window the op chain holds (`Probe`). A tile in flight then
costs its source windows (read once per tile), the chain's arrays on one sub-block (`subblocks`,
whose side `speed` measures) and the tile's outputs with their encoding for the file; tiles are
grown, in whole units of the sink chunks (and source blocks, when that is cheap), while

    fixed + workers * tile_cost(tile) + queued * output_bytes(tile) <= budget

where `fixed` is what the run's processes hold before any tile (measured: see `run.sizing`) and
`queued` counts finished tiles waiting for the driver to write them (sinks that workers cannot
write in parallel, such as an array in memory). Each tile covers whole sink chunks of every
output, so no two tiles ever write the same chunk.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.utils import format_bytes

from . import subblocks
from .axes import SPATIAL, UNSPLIT, count
from .errors import BudgetError, ParameterError
from .grids import Grids
from .pipeline import Pipeline
from .regions import Box, TileGrid
from .speed import Speed, central_box

#: Pixels of the probe tile (per splittable spatial extent: 256 x 256, 40 x 40 x 40).
PROBE_PIXELS = 256 * 256
#: Pixels of the untraced warm-up tile run before the probe (8 x 8 in 2-D).
WARM_UP_PIXELS = 8 * 8
#: Measured peaks are scaled by this, for allocations `tracemalloc` cannot see (codecs, SciPy's
#: line buffers).
SAFETY = 1.25
#: A source window exists twice while it is read: runs of whole blocks are decoded into arrays
#: of their own before they are copied into the window.
READ_COPIES = 2
#: Tiles larger than this many pixels gain nothing (halo overhead is already small).
MAX_TILE_PIXELS = 2048 * 2048
#: Aim for at least this many tiles per worker, so that no worker idles at the end.
TILES_PER_WORKER = 4
#: A tile larger than the rules above allow is still taken when the halo makes it that much
#: cheaper (see `makespan`), as long as every worker keeps a tile; and a tile of another shape
#: when it makes the run that much cheaper (see `choose`).
HALO_GAIN = 0.1
#: Seconds a separate write of a tile costs besides its bytes: the system call and the file
#: system's bookkeeping, measured on ext4 as 12 us for each 2 KiB row of a 16-band `.npy`
#: (two thirds of a multi-direction hillshade's run went to them).
WRITE_SECONDS = 12e-6


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
class Probe:
    """Peak bytes the probe tile took, per pixel: of the op chain per pixel of its largest
    window (sources excluded, `SAFETY` included), and of `finish` (a reduction's kernels) per
    pixel of the tile."""

    chain: float
    finish: float = 0.0
    #: Seconds per pixel of the tile that the op chain took (traced, so an overestimate).
    seconds: float = 0.0


@dataclass(frozen=True)
class Costs:
    """What a run's memory goes to, besides its tiles: named parts, in bytes."""

    parts: tuple[tuple[str, int], ...] = ()

    @property
    def total(self) -> int:
        return sum(n for _, n in self.parts)

    def __str__(self) -> str:
        return ", ".join(f"{format_bytes(n)} {name}" for name, n in self.parts if n)


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
    #: Bytes of the budget taken before tiles: the processes as measured, and caches.
    fixed: int = 0
    #: The side of the sub-blocks a tile's op chain runs on (None: the tile whole).
    block: int | None = None
    #: What the speed measurement found (None: the side was given).
    speed: Speed | None = None
    #: Bytes one tile takes while a worker computes it.
    worker_bytes: int = 0
    #: `fixed`, part by part.
    costs: Costs = Costs()

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
          finish: Callable[[tuple[np.ndarray, ...], Box], Any] | None = None) -> Probe:
    """The peak bytes of the op chain (and of `finish`, if given: a reduction's kernels, run
    on the outputs) on one central tile.

    The sources are read before tracing starts and left out: a small probe window would
    otherwise be charged for whole storage blocks it decodes, and a tile's windows are
    counted exactly by `tile_cost`. The pipeline first runs untraced on a tiny tile, so that
    what happens once per process (an op's first import of its library, a JIT compilation)
    is not charged per pixel: a first call importing `reproject` allocates 90 MB, several
    times a tile's working memory.
    """
    warm = central_box(pipeline.shape, pipeline.axes, WARM_UP_PIXELS)
    pipeline.compute(warm, None, _reads(pipeline, pipeline.regions(warm)))
    box = central_box(pipeline.shape, pipeline.axes, PROBE_PIXELS)
    regions = pipeline.regions(box)
    reads = _reads(pipeline, regions)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        outputs = pipeline.compute(box, None, reads)
        seconds = time.perf_counter() - started
        chain = tracemalloc.get_traced_memory()[1] - before
        kernels = 0
        if finish is not None:
            tracemalloc.reset_peak()
            held = tracemalloc.get_traced_memory()[0]
            finish(outputs, box)
            kernels = tracemalloc.get_traced_memory()[1] - held
        del outputs
    finally:
        if not tracing:
            tracemalloc.stop()
    return Probe(SAFETY * max(chain, 1) / max(r.size for r in regions.values()),
                 SAFETY * kernels / max(box.size, 1), seconds / max(box.size, 1))


def _reads(pipeline: Pipeline, regions: Mapping[int, Box]) -> dict[int, np.ndarray]:
    return {id(n): n.read(regions[id(n)]) for n in pipeline.sources}


def tile_cost(pipeline: Pipeline, box: Box, probe: Probe, block: int | None,
              writes: float = 0.0) -> int:
    """Peak bytes of one tile at `box` in a worker: its source windows while they are read;
    then those with the chain's arrays on one sub-block of side `block` and the tile's
    outputs; then the outputs with `finish`'s arrays and, `writes` per pixel, their
    encoding for the file."""
    regions = pipeline.regions(box)
    reads = sum(regions[id(n)].size * n.source.dtype.itemsize for n in pipeline.sources
                if id(n) in regions)
    outs = sum(b.size * img.dtype.itemsize for img, b in
               zip(pipeline.outputs, pipeline.grids.boxes(box), strict=True))
    if subblocks.splits(pipeline, box, block):
        sub = central(pipeline.shape, subblocks.shape(pipeline, box, block))
        chain = probe.chain * window_pixels(pipeline, sub) + outs
    else:
        chain = probe.chain * window_pixels(pipeline, box)
    after = outs + probe.finish * box.size + writes * box.size
    return math.ceil(max(READ_COPIES * reads, reads + chain, after))


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


def choose(pipeline: Pipeline, *, probe: Probe, unit: tuple[int, ...], budget: int,
           workers: int, queued: int, out_bytes_per_pixel: float, tile: tuple[int, ...] | None,
           block: int | None, writes: float = 0.0, fixed: Costs = Costs(),
           tile_from: str = "tile=", write_count: Callable[[Box], int] | None = None,
           strip_unit: tuple[int, ...] | None = None, grow: bool = True) -> Plan:
    """Pick the largest tile (in whole `unit`s) whose run fits `budget`, or check `tile`
    (`tile_from` says where it came from, for the message when it does not fit); with
    `grow` False, only check that the smallest tile fits.

    Tiles grow square-ish, which keeps halos small. An output written in place row by row
    (`.npy`) takes a write per row of a tile, so a tile spanning whole rows (in whole
    `strip_unit`s along the axes it splits) is taken instead when the time estimated from
    the probe's seconds per pixel, halos included, and `write_count(tile)` writes per tile
    is `HALO_GAIN` lower.
    """
    shape, axes = pipeline.shape, pipeline.axes
    in_flight = workers + queued
    left = budget - fixed.total

    def cost(size: tuple[int, ...]) -> int:
        box = central(shape, size)
        return (workers * tile_cost(pipeline, box, probe, block, writes)
                + math.ceil(queued * out_bytes_per_pixel * box.size))

    def plan(size: tuple[int, ...]) -> Plan:
        return Plan(TileGrid(shape, size), probe.chain, cost(size), workers, in_flight,
                    pipeline.grids, fixed=fixed.total, block=block,
                    worker_bytes=tile_cost(pipeline, central(shape, size), probe, block,
                                           writes), costs=fixed)

    if tile is not None:
        if cost(tile) > left:
            raise too_small(budget, fixed, cost(tile), workers, tile_named(axes, tile),
                            tile_from)
        return plan(tile)
    size = smallest(shape, unit, axes)
    if cost(size) > left:
        raise too_small(budget, fixed, cost(size), workers, tile_named(axes, size))
    if not grow:
        return plan(size)
    min_tiles = min(TILES_PER_WORKER * workers, _count(shape, size))

    def grown(size: tuple[int, ...]) -> tuple[int, ...]:
        while (bigger := _larger(pipeline, size, lambda t: cost(t) <= left, workers,
                                 min_tiles)) is not None:
            size = bigger
        return size

    size, grain = grown(size), unit
    if write_count is not None:
        strips = [grown(s) for s in _strips(shape, strip_unit or unit, axes)
                  if cost(s) <= left]
        seconds = {s: _seconds(pipeline, s, probe, write_count) for s in [size, *strips]}
        best = min(strips, key=seconds.__getitem__, default=size)
        if seconds[best] < (1 - HALO_GAIN) * seconds[size]:
            size, grain = best, strip_unit or unit
    return plan(evened(shape, size, grain))


def evened(shape: tuple[int, ...], size: tuple[int, ...], unit: tuple[int, ...]
           ) -> tuple[int, ...]:
    """The smallest tile (in whole `unit`s) that cuts `shape` into as many tiles as `size`
    does: the image's 2531 rows in tiles of 2048 are a tile of 2048 and one of 483, whose worker
    then waits; in tiles of 1536 they are more even, and each takes less memory."""
    def even(n: int, k: int, u: int) -> int:
        part = math.ceil(n / math.ceil(n / k))
        return min(k, math.ceil(part / u) * u)

    return tuple(even(n, k, u) for n, k, u in zip(shape, size, unit, strict=True))


def _strips(shape: tuple[int, ...], unit: tuple[int, ...], axes: tuple[str, ...]
            ) -> list[tuple[int, ...]]:
    """The smallest tiles that span the image along every axis from some spatial axis on (in
    C order, where their rows are contiguous), one for each such axis but the first."""
    spatial = [i for i, a in enumerate(axes) if a in SPATIAL and a not in UNSPLIT]
    least = smallest(shape, unit, axes)
    return [tuple(n if d >= k else u for d, (n, u) in enumerate(zip(shape, least, strict=True)))
            for k in spatial[1:]]


def _seconds(pipeline: Pipeline, size: tuple[int, ...], probe: Probe,
             write_count: Callable[[Box], int]) -> float:
    """The estimated time of a run in tiles of `size`: computing every pixel its windows read
    at the probe's speed, and its writes."""
    grid = TileGrid(pipeline.shape, size)
    return (probe.seconds * read_pixels(pipeline, grid)
            + WRITE_SECONDS * write_count(central(pipeline.shape, size)) * len(grid))


def _larger(pipeline: Pipeline, size: tuple[int, ...], fits: Callable[[tuple[int, ...]], bool],
            workers: int, min_tiles: int) -> tuple[int, ...] | None:
    """The tile `size` doubled along one axis (the spatial one it is shortest along, the
    last on ties), if that fits: and leaves at least `min_tiles` tiles of at most
    `MAX_TILE_PIXELS`, or cuts the estimated time (`makespan`) by `HALO_GAIN` and leaves every
    worker a tile."""
    shape, axes = pipeline.shape, pipeline.axes
    growable = [i for i, a in enumerate(axes) if a not in UNSPLIT]
    best = None
    for i in sorted(growable, key=lambda i: (axes[i] not in SPATIAL, -i)):
        if size[i] >= shape[i]:
            continue
        bigger = tuple(min(n, k * 2) if d == i else k
                       for d, (n, k) in enumerate(zip(shape, size, strict=True)))
        if not fits(bigger):
            continue
        key = (axes[i] not in SPATIAL, size[i])
        if best is not None and key >= best[0]:
            continue
        usual = math.prod(bigger) <= MAX_TILE_PIXELS and _count(shape, bigger) >= min_tiles
        # (estimated only past the usual rule: tiles are large by then, and so few)
        if usual or (_count(shape, bigger) >= min(workers, min_tiles)
                     and makespan(pipeline, bigger, workers)
                     <= (1 - HALO_GAIN) * makespan(pipeline, size, workers)):
            best = (key, bigger)
    return None if best is None else best[1]


def makespan(pipeline: Pipeline, size: tuple[int, ...], workers: int) -> float:
    """The estimated time of a run in tiles of `size`, in pixels computed, taking a tile's work
    as the pixels its windows read (its halo recomputed): Graham's bound for tiles handed to
    workers as they free up, the work over the workers plus most of the largest tile's. With a
    small halo it hardly depends on the tile's size, and smaller tiles balance better; with a
    halo as wide as the image (MSTP's radii reach 2023 pixels), every tile reads nearly the
    whole image, so fewer, larger tiles finish sooner, down to one per worker."""
    largest = window_pixels(pipeline, central(pipeline.shape, size))
    return (read_pixels(pipeline, TileGrid(pipeline.shape, size)) / workers
            + (1 - 1 / workers) * largest)


def smallest(shape: tuple[int, ...], unit: tuple[int, ...], axes: tuple[str, ...]
             ) -> tuple[int, ...]:
    """The smallest tile the alignment allows. Channels are never split (as for a user's tile
    and the probe): an op that makes its bands from one computation (a multi-direction
    hillshade) would redo it for each band."""
    return tuple(n if a in UNSPLIT else min(n, u)
                 for n, u, a in zip(shape, unit, axes, strict=True))


def tile_named(axes: tuple[str, ...], size: tuple[int, ...]) -> dict[str, int]:
    return dict(zip(axes, size, strict=True))


def too_small(budget: int, fixed: Costs, tiles: int, workers: int, tile: dict[str, int],
              tile_from: str | None = None) -> BudgetError:
    """The refusal of a budget that cannot hold `tile` on every worker besides `fixed`."""
    need = fixed.total + tiles
    where = f"({fixed}, {format_bytes(tiles)} for {workers} tile(s) in flight)"
    if tile_from is None:
        return BudgetError(
            f"the smallest tile this output allows, {tile}, needs about {format_bytes(need)} "
            f"{where}, more than the memory budget {format_bytes(budget)}; raise memory or "
            "lower workers")
    fix = ("use a smaller tile or a larger memory" if tile_from == "tile=" else
           "raise memory, or pass overwrite to start again with tiles that fit")
    return BudgetError(
        f"tile {tile} (from {tile_from}) needs about {format_bytes(need)} {where}, but the "
        f"memory budget is {format_bytes(budget)}; {fix}")


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
