"""N-dimensional boxes and tile grids: pure values, no I/O.

A `Box` is a half-open region `[start, stop)` per axis in the global pixel grid of an image.
Everything tilewise knows about where data lives (the tile an output is cut into, the window an
op must read, the halo that makes a tile exact) is a `Box` derived from another by `grow`,
`intersect` and `union`. A `TileGrid` cuts a shape into tiles lazily: it never holds them.

An `AxisMap` says which input pixels one axis of an op's output needs: output index `o` needs
input `[floor(o * num / den) + offset - margin, ceil((o + 1) * num / den) + offset + margin)`,
clipped to the input. A local filter is `num = den = 1` with a margin; rebinning by 4 is
`num = 4`; a 2x upsampling is `den = 2`; a lazy slice is an `offset`. An input axis that follows
no output axis (a plane picked by an integer index, an axis an op reduces) is read over a fixed
`span` from `offset`, or whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Box:
    start: tuple[int, ...]
    stop: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.start) != len(self.stop):
            raise ValueError(f"start {self.start} and stop {self.stop} differ in length")
        if any(b < a for a, b in zip(self.start, self.stop, strict=True)):
            raise ValueError(f"box stop {self.stop} lies before start {self.start}")

    @classmethod
    def of_shape(cls, shape: Sequence[int]) -> Box:
        return cls(tuple(0 for _ in shape), tuple(int(n) for n in shape))

    @property
    def ndim(self) -> int:
        return len(self.start)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop, strict=True))

    def grow(self, margin: Sequence[int]) -> Box:
        """The box widened by `margin` pixels on both sides of each axis (unclipped)."""
        return Box(
            tuple(a - m for a, m in zip(self.start, margin, strict=True)),
            tuple(b + m for b, m in zip(self.stop, margin, strict=True)),
        )

    def shift(self, offset: Sequence[int]) -> Box:
        return Box(
            tuple(a + o for a, o in zip(self.start, offset, strict=True)),
            tuple(b + o for b, o in zip(self.stop, offset, strict=True)),
        )

    def intersect(self, other: Box) -> Box:
        start = tuple(max(a, c) for a, c in zip(self.start, other.start, strict=True))
        stop = tuple(max(s, min(b, d))
                     for s, b, d in zip(start, self.stop, other.stop, strict=True))
        return Box(start, stop)

    def union(self, other: Box) -> Box:
        """The smallest box that holds both (a bounding box, not a set union)."""
        return Box(
            tuple(min(a, c) for a, c in zip(self.start, other.start, strict=True)),
            tuple(max(b, d) for b, d in zip(self.stop, other.stop, strict=True)),
        )

    def contains(self, other: Box) -> bool:
        return all(a <= c and d <= b for a, b, c, d in
                   zip(self.start, self.stop, other.start, other.stop, strict=True))

    def within(self, outer: Box) -> tuple[slice, ...]:
        """Slices that cut this box out of an array that holds `outer`."""
        if not outer.contains(self):
            raise ValueError(f"{self} does not lie within {outer}")
        return tuple(slice(a - o, b - o)
                     for a, b, o in zip(self.start, self.stop, outer.start, strict=True))

    def __str__(self) -> str:
        return "[" + ", ".join(f"{a}:{b}" for a, b in zip(self.start, self.stop, strict=True)) + "]"


@dataclass(frozen=True)
class TileGrid:
    """A shape cut into tiles of `tile` pixels per axis; the last tile of an axis may be short."""

    shape: tuple[int, ...]
    tile: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.shape) != len(self.tile) or any(t < 1 for t in self.tile):
            raise ValueError(f"invalid tile {self.tile} for shape {self.shape}")

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(max(1, -(-n // t)) for n, t in zip(self.shape, self.tile, strict=True))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def box(self, index: Sequence[int]) -> Box:
        start = tuple(i * t for i, t in zip(index, self.tile, strict=True))
        stop = tuple(min(s + t, n) for s, t, n in zip(start, self.tile, self.shape, strict=True))
        return Box(start, stop)

    def index(self, flat: int) -> tuple[int, ...]:
        """The index of the `flat`-th tile in C order."""
        out = []
        for c in reversed(self.counts):
            flat, i = divmod(flat, c)
            out.append(i)
        return tuple(reversed(out))

    def indices(self) -> Iterator[tuple[int, ...]]:
        """Tile indices in C order, produced lazily (`itertools.product` would not be)."""
        return (self.index(flat) for flat in range(len(self)))

    def __iter__(self) -> Iterator[Box]:
        return (self.box(i) for i in self.indices())


@dataclass(frozen=True)
class AxisMap:
    """How one input axis of a node follows the node's output (see the module docstring)."""

    #: The output axis this input axis follows, or None for a fixed range.
    axis: int | None
    num: int = 1
    den: int = 1
    margin: int = 0
    offset: int = 0
    #: For `axis=None`: pixels read from `offset` (None: to the end of the input axis).
    span: int | None = None

    def __post_init__(self) -> None:
        if self.num < 1 or self.den < 1 or self.margin < 0:
            raise ValueError(f"invalid axis map {self}")

    @property
    def identity(self) -> bool:
        return (self.axis is not None and self.num == self.den == 1 and not self.margin
                and not self.offset)

    @property
    def scale(self) -> Fraction:
        """Input pixels per output pixel."""
        return Fraction(self.num, self.den)

    def needs(self, start: int, stop: int, length: int) -> tuple[int, int]:
        """The input range that output range `[start, stop)` needs, clipped to `length`."""
        if self.axis is None:
            end = length if self.span is None else self.offset + self.span
            return self.offset, min(end, length)
        a = start * self.num // self.den + self.offset - self.margin
        b = -(-stop * self.num // self.den) + self.offset + self.margin
        return max(0, a), max(0, min(b, length))

    def produces(self, start: int, stop: int, length: int, out_length: int) -> tuple[int, int]:
        """The output range computed from input range `[start, stop)` of an input `length`
        long: every output pixel whose core lies inside it, up to the edges of the image."""
        first = 0 if start <= self.offset else -(-(start - self.offset) * self.den // self.num)
        last = out_length if stop >= length else (stop - self.offset) * self.den // self.num
        return min(first, out_length), max(min(last, out_length), 0)
