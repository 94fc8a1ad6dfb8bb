"""A tile's op chain evaluated in sub-blocks: tiles sized for I/O, computation sized for caches.

Tiles suit I/O when they cover whole source blocks and whole output chunks, but an op chain
run on a large tile streams every intermediate array through memory. Here the sources are read
once for the whole tile; the chain then runs on one sub-block at a time, each on its part of
those windows (its own halo recomputed from them), and each sub-block's outputs are copied into
the tile's. Every output pixel sees what it would see in a tile of its own, so the result is
that of any tiling, bit for bit. Sub-blocks split the spatial axes only, in whole pixels of
every output (an output at half resolution gets sub-blocks of even size).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from .axes import SPATIAL
from .pipeline import Pipeline
from .regions import Box


def shape(pipeline: Pipeline, box: Box, side: int) -> tuple[int, ...]:
    """The sub-block shape for the driving tile `box`: `side` pixels along spatial axes (in
    whole pixels of every output), the tile's extent along the others."""
    units = pipeline.grids.unit([tuple(1 for _ in o.shape) for o in pipeline.grids.outputs])
    return tuple(min(n, -(-side // u) * u) if a in SPATIAL else n
                 for n, u, a in zip(box.shape, units, pipeline.axes, strict=True))


def splits(pipeline: Pipeline, box: Box, side: int | None) -> bool:
    """Whether sub-blocks of `side` cut the driving tile `box` (the planner asks this of
    every tile size it weighs, so the sub-blocks themselves are not listed)."""
    return side is not None and shape(pipeline, box, side) != box.shape


def split(pipeline: Pipeline, box: Box, side: int | None) -> list[Box]:
    """The sub-blocks of the driving tile `box`, in C order (the tile itself if `side` is
    None or the tile is no larger)."""
    if not splits(pipeline, box, side):
        return [box]
    size = shape(pipeline, box, side)
    starts = [range(a, b, k) for a, b, k in zip(box.start, box.stop, size, strict=True)]
    return [Box(start, tuple(min(s + k, b) for s, k, b in zip(start, size, box.stop,
                                                               strict=True)))
            for start in itertools.product(*starts)]


def recomputed(pipeline: Pipeline, box: Box, side: int | None) -> float:
    """How many times the pixels the chain computes for `box` whole (every node's region, halos
    included) its sub-blocks of `side` compute together: what recomputing their halos costs."""
    return (sum(_computed(pipeline, block) for block in split(pipeline, box, side))
            / _computed(pipeline, box))


def _computed(pipeline: Pipeline, box: Box) -> int:
    return sum(region.size for region in pipeline.regions(box).values())


def compute(pipeline: Pipeline, box: Box, index: tuple[int, ...] | None, side: int | None,
            reads: Mapping[int, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """Every output on its part of the driving tile `box`, computed in sub-blocks of `side`
    (`index` None: a probe). Sources are read here unless `reads` holds their windows."""
    blocks = split(pipeline, box, side)
    if len(blocks) == 1:
        return pipeline.compute(box, index, reads)
    regions = pipeline.regions(box)
    windows = {id(n): (regions[id(n)], reads[id(n)] if reads and id(n) in reads
                       else n.read(regions[id(n)]))
               for n in pipeline.sources if id(n) in regions}
    owns = pipeline.grids.boxes(box)
    outs = tuple(np.empty(own.shape, img.dtype) for img, own in
                 zip(pipeline.outputs, owns, strict=True))
    for block in blocks:
        parts = {}
        for key, sub in pipeline.regions(block).items():
            if key in windows and windows[key][0].contains(sub):
                whole, data = windows[key]
                parts[key] = data[sub.within(whole)]
        results = pipeline.compute(block, index, parts)
        for out, result, own, part in zip(outs, results, owns, pipeline.grids.boxes(block),
                                          strict=True):
            out[part.within(own)] = result
    return outs
