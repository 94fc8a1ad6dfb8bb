"""N-dimensional boxes and tile grids: pure values, no I/O.

A `Box` is a half-open region `[start, stop)` per axis in the global pixel grid of an image.
Everything tilewise knows about where data lives (the tile an output is cut into, the window an
op must read, the halo that makes a tile exact) is a `Box` derived from another by `grow`,
`intersect` and `union`. A `TileGrid` cuts a shape into tiles lazily: it never holds them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    start: tuple[int, ...]
    stop: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.start) != len(self.stop):
            raise ValueError(f"start {self.start} and stop {self.stop} differ in length")
        if any(b < a for a, b in zip(self.start, self.stop)):
            raise ValueError(f"box stop {self.stop} lies before start {self.start}")

    @classmethod
    def of_shape(cls, shape: Sequence[int]) -> Box:
        return cls(tuple(0 for _ in shape), tuple(int(n) for n in shape))

    @property
    def ndim(self) -> int:
        return len(self.start)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    def grow(self, margin: Sequence[int]) -> Box:
        """The box widened by `margin` pixels on both sides of each axis (unclipped)."""
        return Box(
            tuple(a - m for a, m in zip(self.start, margin)),
            tuple(b + m for b, m in zip(self.stop, margin)),
        )

    def shift(self, offset: Sequence[int]) -> Box:
        return Box(
            tuple(a + o for a, o in zip(self.start, offset)),
            tuple(b + o for b, o in zip(self.stop, offset)),
        )

    def intersect(self, other: Box) -> Box:
        start = tuple(max(a, c) for a, c in zip(self.start, other.start))
        stop = tuple(max(s, min(b, d)) for s, b, d in zip(start, self.stop, other.stop))
        return Box(start, stop)

    def union(self, other: Box) -> Box:
        """The smallest box that holds both (a bounding box, not a set union)."""
        return Box(
            tuple(min(a, c) for a, c in zip(self.start, other.start)),
            tuple(max(b, d) for b, d in zip(self.stop, other.stop)),
        )

    def contains(self, other: Box) -> bool:
        return all(a <= c and d <= b for a, b, c, d in
                   zip(self.start, self.stop, other.start, other.stop))

    def within(self, outer: Box) -> tuple[slice, ...]:
        """Slices that cut this box out of an array that holds `outer`."""
        if not outer.contains(self):
            raise ValueError(f"{self} does not lie within {outer}")
        return tuple(slice(a - o, b - o) for a, b, o in zip(self.start, self.stop, outer.start))

    def __str__(self) -> str:
        return "[" + ", ".join(f"{a}:{b}" for a, b in zip(self.start, self.stop)) + "]"


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
        return tuple(max(1, -(-n // t)) for n, t in zip(self.shape, self.tile))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def box(self, index: Sequence[int]) -> Box:
        start = tuple(i * t for i, t in zip(index, self.tile))
        stop = tuple(min(s + t, n) for s, t, n in zip(start, self.tile, self.shape))
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
