"""Outputs on different grids in one run: one driving grid, every output's tile mapped from it.

A run cuts one grid into tiles: the *driving* output's (the one with the most axes, then the
finest pixels). Every other output must be a rescaling of it: both descend, through ops that
keep or rescale axes (a filter, a rebinning, an upsampling), from inputs on one *root* grid.
Along each axis, an output pixel then covers `s` root pixels (a `Fraction`), so driving pixel
`x` sits at output pixel `x * s_driving / s_output`; a driving tile maps to an output box, and
tiles cut in whole `unit`s map to whole output chunks, so that no two tiles write one chunk of
any output. An axis of the driving output that another output lacks is never split; an axis
an output has that the driving output lacks is written whole by every tile.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from .errors import GridMismatchError, ParameterError
from .graph import Image, Node, SourceNode
from .regions import Box

Grid = tuple[tuple[int, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Lineage:
    """Where an image's grid comes from: per axis, the root axis it follows and the root
    pixels one of its pixels covers (axes with no root axis: None, 1)."""

    root: Grid
    axes: tuple[int | None, ...]
    scale: tuple[Fraction, ...]


def lineage(image: Image) -> Lineage:
    """Follow the first input of each node back to a source, while grids only rescale."""
    node: Node = image.node
    own = Lineage((image.shape, image.axes), tuple(range(image.ndim)),
                  tuple(Fraction(1) for _ in image.shape))
    maps = None if isinstance(node, SourceNode) or not node.inputs else node.maps(0)
    if not maps or any(m.offset or (m.axis is None and m.span is not None) for m in maps):
        return own
    parent = lineage(node.inputs[0])
    axes: list[int | None] = [None] * image.ndim
    scale = [Fraction(1)] * image.ndim
    for d, m in enumerate(maps):
        if m.axis is not None:
            axes[m.axis] = parent.axes[d]
            scale[m.axis] = parent.scale[d] * m.scale
    return Lineage(parent.root, tuple(axes), tuple(scale))


@dataclass(frozen=True)
class OutputGrid:
    """One output's place on the driving grid: per output axis, the driving axis it follows
    (None: written whole by every tile) and output pixels per driving pixel."""

    shape: tuple[int, ...]
    follows: tuple[int | None, ...]
    ratio: tuple[Fraction, ...]

    @functools.cached_property
    def identity(self) -> bool:
        """Whether this output is on the driving grid itself (the usual case: a fast path)."""
        return (self.follows == tuple(range(len(self.shape)))
                and all(r == 1 for r in self.ratio))

    def box(self, tile: Box, driving: tuple[int, ...]) -> Box:
        """The part of this output that the driving tile `tile` writes."""
        if self.identity:
            return tile
        start, stop = [], []
        for n, d, r in zip(self.shape, self.follows, self.ratio, strict=True):
            if d is None:
                start.append(0)
                stop.append(n)
                continue
            num, den = r.numerator, r.denominator
            a = min(n, tile.start[d] * num // den)
            b = n if tile.stop[d] >= driving[d] else min(n, tile.stop[d] * num // den)
            start.append(a)
            stop.append(max(a, b))
        return Box(tuple(start), tuple(stop))

    def unit(self, chunks: Sequence[int], driving: tuple[int, ...]) -> list[int]:
        """Per driving axis, the tile size multiple whose boxes are whole chunks of this
        output (the full extent for an axis this output lacks)."""
        units = list(driving)
        for c, d, r in zip(chunks, self.follows, self.ratio, strict=True):
            if d is not None:
                units[d] = r.denominator * c // math.gcd(r.numerator, c)
        return units


@dataclass(frozen=True)
class Grids:
    """The driving grid of a run and how each output follows it."""

    driver: int
    shape: tuple[int, ...]
    axes: tuple[str, ...]
    outputs: tuple[OutputGrid, ...]

    @property
    def mixed(self) -> bool:
        return any(o.shape != self.shape for o in self.outputs)

    def boxes(self, tile: Box) -> tuple[Box, ...]:
        return tuple(o.box(tile, self.shape) for o in self.outputs)

    def unit(self, chunks: Sequence[Sequence[int]]) -> tuple[int, ...]:
        """The tile size multiple, per driving axis, that aligns with every output's chunks."""
        out = [1] * len(self.shape)
        for grid, c in zip(self.outputs, chunks, strict=True):
            for i, u in enumerate(grid.unit(c, self.shape)):
                out[i] = math.lcm(out[i], u)
        return tuple(min(u, n) for u, n in zip(out, self.shape, strict=True))

    def check_tile(self, tile: tuple[int, ...]) -> None:
        """Refuse a user's tile that does not map to whole pixels of every output."""
        for grid in self.outputs:
            for d, r in zip(grid.follows, grid.ratio, strict=True):
                if d is not None and tile[d] < self.shape[d] and (tile[d] * r).denominator != 1:
                    raise ParameterError(
                        f"tile {dict(zip(self.axes, tile, strict=True))} does not cut an output "
                        f"of shape {grid.shape} into whole pixels (it has {r} pixels per pixel "
                        f"along {self.axes[d]!r}); use a multiple of {r.denominator}")


def of(outputs: Sequence[Image], names: Sequence[str] | None = None) -> Grids:
    """The driving grid for `outputs`, or a `GridMismatchError` saying which output does not
    follow it (`names` name the outputs in the message)."""
    names = list(names) if names is not None else [f"output {i}" for i in range(len(outputs))]
    lines = [lineage(img) for img in outputs]
    driver = max(range(len(outputs)), key=lambda i: (
        outputs[i].ndim, -math.prod(float(s) for s in lines[i].scale), -i))
    first, lead = outputs[driver], lines[driver]
    grids = []
    for img, line, name in zip(outputs, lines, names, strict=True):
        if (img.shape, img.axes) == (first.shape, first.axes):
            grids.append(OutputGrid(img.shape, tuple(range(img.ndim)),
                                    tuple(Fraction(1) for _ in img.shape)))
            continue
        if line.root != lead.root:
            raise GridMismatchError(
                f"outputs saved together must share one grid or rescale one: {names[driver]} "
                f"has shape {first.shape} axes {first.axes} but {name} has shape {img.shape} "
                f"axes {img.axes}; save them in separate calls")
        grids.append(_follow(img, line, lead))
    return Grids(driver, first.shape, first.axes, tuple(grids))


def _follow(img: Image, line: Lineage, lead: Lineage) -> OutputGrid:
    follows: list[int | None] = []
    ratio = []
    for root_axis, s in zip(line.axes, line.scale, strict=True):
        d = lead.axes.index(root_axis) if root_axis is not None and root_axis in lead.axes \
            else None
        follows.append(d)
        ratio.append(Fraction(1) if d is None else lead.scale[d] / s)
    return OutputGrid(img.shape, tuple(follows), tuple(ratio))
