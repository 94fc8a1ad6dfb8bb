"""Reading windows block by block, so that a halo never decodes a storage block twice.

A compressed GeoTIFF or Zarr array decodes whole blocks: a tile's halo reaches a few pixels into
its neighbours' blocks but pays for decoding all of them, and each neighbour decodes them again
for its own core. For a 2048 x 2048 tile, 512 x 512 blocks and a halo of 11 pixels that is 20
extra blocks on top of 16. Here, a block only partly inside a window is decoded once, kept in a
small per-process LRU cache, and served from there to every later window that needs it; blocks
wholly inside a window and not cached are read in as few calls as possible, straight into the
result.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from ..regions import Box
from . import handles
from .base import Source

#: Most bytes of decoded blocks a process keeps; a run sets the capacity from its budget.
CAPACITY = 64 * 1024 * 1024


class BlockCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._blocks: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def put(self, key: Hashable, block: np.ndarray) -> None:
        with self._lock:
            if key in self._blocks or block.nbytes > self.capacity:
                return
            self._blocks[key] = block
            self.used += block.nbytes
            while self.used > self.capacity:
                _, old = self._blocks.popitem(last=False)
                self.used -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self.used = 0


cache = BlockCache(CAPACITY)


def read_blocked(source: Hashable, box: Box, shape: tuple[int, ...], blocks: tuple[int, ...],
                 dtype: np.dtype, read: Callable[[Box], np.ndarray]) -> np.ndarray:
    """The pixels of `box`, assembled from blocks of shape `blocks` of an image of `shape`."""
    first = tuple(a // b for a, b in zip(box.start, blocks, strict=True))
    last = tuple(-(-e // b) for e, b in zip(box.stop, blocks, strict=True))
    image = Box.of_shape(shape)
    out = np.empty(box.shape, dtype)
    whole: list[tuple[int, ...]] = []
    for index in np.ndindex(*(b - a for a, b in zip(first, last, strict=True))):
        index = tuple(i + f for i, f in zip(index, first, strict=True))
        block = Box(tuple(i * b for i, b in zip(index, blocks, strict=True)),
                    tuple((i + 1) * b for i, b in zip(index, blocks, strict=True))).intersect(image)
        part = block.intersect(box)
        cached = cache.get((source, index))
        if cached is not None:
            out[part.within(box)] = cached[part.within(block)]
        elif box.contains(block):
            whole.append(index)
        else:
            data = read(block)
            cache.put((source, index), data)
            out[part.within(box)] = data[part.within(block)]
    for run in _runs(whole):
        region = Box(tuple(i * b for i, b in zip(run[0], blocks, strict=True)),
                     tuple((i + 1) * b for i, b in zip(run[1], blocks, strict=True))
                     ).intersect(image)
        out[region.within(box)] = read(region)
    return out


def _runs(indices: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Group block indices (in C order) into rectangles: rows of consecutive blocks along the
    last axis, merged with the rows below them while they span the same columns."""
    rows: list[list[tuple[int, ...]]] = []
    for index in indices:
        if rows and rows[-1][-1][:-1] == index[:-1] and rows[-1][-1][-1] + 1 == index[-1]:
            rows[-1].append(index)
        else:
            rows.append([index])
    rects: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    for row in rows:
        lo, hi = row[0], row[-1]
        if rects and len(lo) > 1:
            plo, phi = rects[-1]
            if (plo[-1], phi[-1]) == (lo[-1], hi[-1]) and plo[:-2] == lo[:-2] \
                    and phi[-2] + 1 == lo[-2]:
                rects[-1] = (plo, hi)
                continue
        rects.append((lo, hi))
    return rects


@dataclass(frozen=True, eq=False)
class BlockedSource(Source):
    """A file whose storage blocks are decoded whole: reads go block by block, through the cache."""

    def read(self, box: Box) -> np.ndarray:
        data = read_blocked(self.version(), box, self.shape, self.blocks, self.dtype,
                            self.read_window)
        data.flags.writeable = False
        return data

    def version(self) -> tuple[Hashable, ...]:
        """What names this image's blocks in the cache and its handles: the file's path and
        modification time, and whatever picks one of the images a file holds (a TIFF series)."""
        return handles.version(self.path)

    @abstractmethod
    def read_window(self, box: Box) -> np.ndarray:
        """The pixels of `box` in one direct read."""
