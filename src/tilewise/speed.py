"""How fast a pipeline computes, measured on a central box before a run.

Two things are chosen from it rather than assumed, since cache sizes, the work an op does per
pixel and whether it releases the GIL differ from machine to machine and op to op: the side of
the sub-blocks a tile's op chain runs on (`subblocks`), by the time per output pixel at a few
candidate sides, halo recomputation included; and how well two threads share the work, which
decides between threads and processes when the caller leaves it open. Sources are read before
any timing (I/O is not what is chosen here), and each timing is the faster of two runs, as
other processes may take the CPU away during one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import subblocks
from .axes import SPATIAL, UNSPLIT
from .pipeline import Pipeline
from .regions import Box

#: Candidate sub-block sides, in pixels per spatial axis of a 2-D tile (a 3-D tile gets
#: blocks of as many pixels); None, the whole box, is always a candidate.
SIDES = (128, 256, 512)
#: Pixels of the measurement box: 1024 x 1024 in 2-D, or 512 x 512 for slower pipelines.
BOX_PIXELS = (1024 * 1024, 512 * 512)
#: The choice of sub-block may take this share of the run's estimated computing time, or
#: `LEAST_SECONDS`, whichever is more, but never more than `MOST_SHARE` of it: sub-blocks
#: save at most about a third of the computing time (W2: 6.9 s in 1024^2 tiles, 4.8 s in
#: 256^2), so a cheap run (a 3 x 3 op on a small DEM: 0.1 s of computing) is not measured
#: for longer than it computes. Beyond, the tiles are computed whole.
SHARE = 0.03
LEAST_SECONDS = 0.25
MOST_SHARE = 0.1
#: A larger sub-block is kept while its time per pixel is within this fraction of the best.
TIE = 0.05
#: Sub-blocks whose halos, recomputed, make the chain compute this many times the pixels it
#: computes on the box whole are not timed: saving at most a third of the time, they cannot
#: win (MSTP's halo of 2,023 pixels: 3.5x in sub-blocks of 256 on a 512 x 512 box; timing
#: such sides took 7 s of a 36 s run).
MOST_RECOMPUTED = 1.5
#: The thread speed-up is timed over about this many seconds (at least 2 runs, at most 6, of
#: each of one and two threads): one slow run of two threads, from another process taking a
#: core for a moment, read as ops holding the GIL and chose processes 25% slower than threads.
SPEEDUP_SECONDS = 0.2
#: Two threads cannot do more than twice the work of one: a speed-up above that says another
#: process slowed the single-thread runs (2.44x was measured so for an op that holds the GIL,
#: during a test suite), and the measurement is taken again, at most this many times in all.
SPEEDUP_TRIES = 3


@dataclass(frozen=True)
class Speed:
    """What the measurement found: seconds per output pixel at each sub-block side tried
    (None: the box whole), the side chosen, and why when nothing was measured."""

    per_pixel: dict[int | None, float] = field(default_factory=dict)
    side: int | None = None
    box: tuple[int, ...] = ()
    note: str = ""

    @property
    def seconds_per_pixel(self) -> float:
        """Of the chosen side, or of the rough first timing when nothing else was measured."""
        return self.per_pixel.get(self.side, min(self.per_pixel.values(), default=0.0))


def central_box(shape: tuple[int, ...], axes: tuple[str, ...], pixels: int) -> Box:
    """A central box of about `pixels` pixels over the spatial (or else splittable) axes,
    channels whole, one plane of the other axes."""
    spatial = [a in SPATIAL for a in axes]
    side = max(1, round(pixels ** (1 / max(1, sum(spatial)))))
    size = tuple(min(n, side) if s else (n if a in UNSPLIT else 1)
                 for n, s, a in zip(shape, spatial, axes, strict=True))
    start = tuple((n - k) // 2 for n, k in zip(shape, size, strict=True))
    return Box(start, tuple(a + k for a, k in zip(start, size, strict=True)))


def sides(axes: tuple[str, ...]) -> list[int]:
    """The candidate sides for an image with `axes`: blocks of as many pixels as the 2-D
    `SIDES` over its spatial axes."""
    dims = max(1, sum(a in SPATIAL for a in axes))
    return [max(1, round((side * side) ** (1 / dims))) for side in SIDES]


def _best_of(run: Callable[[], object], times: int) -> float:
    best = math.inf
    for _ in range(times):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _reads(pipeline: Pipeline, box: Box) -> dict[int, object]:
    regions = pipeline.regions(box)
    return {id(n): n.read(regions[id(n)]) for n in pipeline.sources if id(n) in regions}


def per_pixel(pipeline: Pipeline) -> float:
    """Seconds per output pixel of the whole chain on a small central box, sources read."""
    small = central_box(pipeline.shape, pipeline.axes, 256 * 256)
    reads = _reads(pipeline, small)
    return _best_of(lambda: pipeline.compute(small, None, reads), 2) / small.size


def measure(pipeline: Pipeline, tile: tuple[int, ...] | None = None) -> Speed:
    """Time the pipeline on a central box (no larger than `tile`, if known) at each candidate
    sub-block side; choose the largest side within `TIE` of the fastest."""
    shape, axes = pipeline.shape, pipeline.axes
    candidates = sides(axes)

    def box_of(pixels: int) -> Box:
        box = central_box(shape, axes, pixels)
        if tile is None:
            return box
        size = tuple(min(k, t) for k, t in zip(box.shape, tile, strict=True))
        start = tuple((n - k) // 2 for n, k in zip(shape, size, strict=True))
        return Box(start, tuple(a + k for a, k in zip(start, size, strict=True)))

    largest = box_of(BOX_PIXELS[0])
    splitting = [s for s in candidates if subblocks.splits(pipeline, largest, s)]
    if not splitting:
        return Speed(note="a tile fits one sub-block")
    least = min(subblocks.recomputed(pipeline, largest, s) for s in splitting)
    if least > MOST_RECOMPUTED:
        return Speed(note=f"sub-blocks would compute {least:.1f}x the pixels, halos recomputed")
    first = per_pixel(pipeline)
    work = first * math.prod(shape)
    budget = max(SHARE * work, min(LEAST_SECONDS, MOST_SHARE * work))
    for pixels in BOX_PIXELS:
        box = box_of(pixels)
        tried = [s for s in candidates if subblocks.splits(pipeline, box, s)
                 and subblocks.recomputed(pipeline, box, s) <= MOST_RECOMPUTED]
        if 2 * (len(tried) + 1) * box.size * first <= budget:
            break
    else:
        return Speed({None: first}, None, (), f"not measured: at {first * 1e9:.0f} ns per "
                     f"pixel it would take more than {budget:.2f} s")
    if not tried:
        return Speed({None: first}, None, (), "a tile fits one sub-block")
    reads = _reads(pipeline, box)
    times: dict[int | None, float] = {}
    for side in [*tried, None]:
        times[side] = _best_of(
            lambda side=side: subblocks.compute(pipeline, box, None, side, reads), 2) / box.size
    best = min(times.values())
    chosen = next(s for s in [None, *reversed(tried)] if times[s] <= best * (1 + TIE))
    return Speed(times, chosen, box.shape)


def thread_speedup(pipeline: Pipeline, side: int | None) -> float:
    """How many times more pixels two threads compute than one in the same time (2.0: the
    ops release the GIL; 1.0: they hold it), on a central box in sub-blocks of `side`."""
    box = central_box(pipeline.shape, pipeline.axes, 512 * 512)
    reads = _reads(pipeline, box)

    def one() -> None:
        subblocks.compute(pipeline, box, None, side, reads)

    def two() -> None:
        other = threading.Thread(target=one)
        other.start()
        one()
        other.join()

    for _ in range(SPEEDUP_TRIES):
        single = _best_of(one, 2)
        times = min(6, max(2, round(SPEEDUP_SECONDS / (3 * max(single, 1e-6)))))
        speedup = 2 * min(single, _best_of(one, times - 2)) / _best_of(two, times)
        if speedup <= 2 * (1 + TIE):
            break
    return speedup
