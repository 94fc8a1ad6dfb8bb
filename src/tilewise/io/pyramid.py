"""Multiscale pyramids made from finished tiles: every level a block reduction of level 0.

Level k halves level k - 1 along the pyramid's axes, and is defined from level 0: along each
such axis, pixel o of level k covers level-0 pixels [o * 2**k, min((o + 1) * 2**k, n)), so a
level of an n-pixel axis has ceil(n / 2**k) pixels. "mean" is the mean of the block's values,
NaN and nodata skipped (a block with none left is nodata, or NaN), rounded half up for integer
types; "nearest" keeps the block's first pixel (`a[::2**k]`), for labels and masks. Every level
keeps the image's dtype.

The block sums are built in float64 by adding neighbours in pairs, one pyramid axis after the
other, level after level, and the counts of values alongside. For integer data each sum is
exact (below 2**53), so level k is exactly the rounded mean of its level-0 block: summing
level k - 1's sums in pairs equals summing the block at once, where averaging level k - 1's
rounded means would not. For floats the pairs are added in an order fixed by the block's place
in the whole image, so a tile that starts at a multiple of 2**levels along the pyramid's axes
(the OME-Zarr sink makes tiles so) gives exactly the whole array's levels, and its last tile
along an axis holds the partial blocks at the image's end.

A tile is reduced in slabs along the first pyramid axis, so the float64 temporaries stay below
`SLAB` pixels' worth whatever the tile's size; the levels of the tile (a third of its pixels,
or less) are held until it is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..regions import Box

#: The ways a level is made from its blocks.
METHODS = ("mean", "nearest")
#: Level-0 pixels reduced at a time ("mean"): bounds its float64 temporaries to a few MiB.
SLAB = 1 << 20


@dataclass(frozen=True)
class Pyramid:
    """`levels` levels below level 0, halving the array axes at positions `axes`."""

    levels: int
    axes: tuple[int, ...]
    method: str = "mean"
    nodata: float | None = None

    def shape(self, shape: tuple[int, ...], k: int) -> tuple[int, ...]:
        """The shape of level k of an image of `shape`."""
        return tuple(-(-n // 2**k) if i in self.axes else n for i, n in enumerate(shape))

    def box(self, box: Box, k: int) -> Box:
        """The part of level k made from the level-0 tile `box` (which starts at a multiple
        of 2**levels along the pyramid's axes)."""
        start = tuple(a // 2**k if i in self.axes else a for i, a in enumerate(box.start))
        stop = tuple(-(-b // 2**k) if i in self.axes else b for i, b in enumerate(box.stop))
        return Box(start, stop)

    def reduce(self, tile: np.ndarray) -> list[np.ndarray]:
        """Levels 1 to `levels` of a level-0 tile, each its part of that level."""
        if self.method == "nearest":
            return [np.ascontiguousarray(tile[self._every(2**k, tile.ndim)])
                    for k in range(1, self.levels + 1)]
        out = [np.empty(self.shape(tile.shape, k), tile.dtype) for k in range(1, self.levels + 1)]
        axis, step = self.axes[0], 2**self.levels
        length = tile.shape[axis]
        rows = max(step, SLAB // max(1, tile.size // max(1, length)) // step * step)
        for row in range(0, length, rows):
            part = tile[self._along(axis, slice(row, row + rows), tile.ndim)]
            for k, level in enumerate(self._means(part), start=1):
                start = row // 2**k
                out[k - 1][self._along(axis, slice(start, start + level.shape[axis]),
                                       tile.ndim)] = level
        return out

    def _means(self, part: np.ndarray) -> list[np.ndarray]:
        valid = self._valid(part)
        sums: np.ndarray = part if valid is None else np.where(valid, part, 0)
        counts = None if valid is None else valid.astype(np.int64)
        levels = []
        for _ in range(self.levels):
            for axis in self.axes:
                sums = self._pairs(sums, axis, np.float64)
                if counts is not None:
                    counts = self._pairs(counts, axis, np.int64)
            levels.append(self._finish(sums, counts, part, len(levels) + 1))
        return levels

    def _pairs(self, a: np.ndarray, axis: int, dtype: type) -> np.ndarray:
        """Neighbours along `axis` added in pairs (the last alone at an odd end), in `dtype`.
        (Slices, not `np.add.reduceat`, which is several times slower.)"""
        n = a.shape[axis]
        out = a[self._along(axis, slice(0, n, 2), a.ndim)].astype(dtype)
        out[self._along(axis, slice(0, n // 2), a.ndim)] += a[self._along(axis, slice(1, n, 2),
                                                                          a.ndim)]
        return out

    def _valid(self, part: np.ndarray) -> np.ndarray | None:
        """Where `part` holds a value that counts: None when every one does."""
        valid = ~np.isnan(part) if part.dtype.kind in "fc" else None
        if self.nodata is not None and not np.isnan(self.nodata):
            kept = part != self.nodata
            valid = kept if valid is None else valid & kept
        return None if valid is None or valid.all() else valid

    def _finish(self, sums: np.ndarray, counts: np.ndarray | None, part: np.ndarray,
                k: int) -> np.ndarray:
        """Level k's means from its block sums (and counts; None: blocks are full but at the
        image's end, where their lengths say how many values they hold)."""
        if counts is None:
            counts = np.ones((1,) * part.ndim, np.int64)
            for axis in self.axes:
                n = part.shape[axis]
                lengths = np.minimum(2**k, n - np.arange(0, n, 2**k))
                counts = counts * lengths.reshape([-1 if i == axis else 1
                                                   for i in range(part.ndim)])
        return block_mean(sums, counts, part.dtype, self.nodata)

    def _every(self, step: int, ndim: int) -> tuple[slice, ...]:
        return tuple(slice(None, None, step) if i in self.axes else slice(None)
                     for i in range(ndim))

    @staticmethod
    def _along(axis: int, cut: slice, ndim: int) -> tuple[slice, ...]:
        return tuple(cut if i == axis else slice(None) for i in range(ndim))


def block_mean(sums: np.ndarray, counts: np.ndarray, dtype: np.dtype,
               nodata: float | None) -> np.ndarray:
    """Means of blocks from their sums and counts of valid values, in `dtype`: integers
    rounded half up (as GDAL's averaging overviews), a block without values nodata (or NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    if dtype.kind in "iub":
        mean = np.floor(mean + 0.5)
    empty = counts == 0
    if empty.any():
        mean[np.broadcast_to(empty, mean.shape)] = np.nan if nodata is None else nodata
    return mean.astype(dtype)
