"""Reading windows block by block, so that a storage block is decoded once per run.

A compressed GeoTIFF or Zarr array decodes whole blocks: a tile's halo reaches a few pixels into
its neighbours' blocks but pays for decoding all of them, and each neighbour's halo reaches
back into the tile's. For a 2048 x 2048 tile, 512 x 512 blocks and a halo of 11 pixels that is
20 extra blocks on top of 16; for a strip of 32 rows, a whole row of blocks for each strip.
Here the blocks two windows may share (those a window holds only in part, and its outermost
whole ones where its edge falls inside a block: a neighbour's halo reaches into them) are kept
in a per-process cache after decoding and served from there to every later window; a thread
needing one that another thread is decoding waits for it rather than decoding it again, after
reading everything else it needs. A window decodes the blocks it shares first, one by one,
claiming each only as it starts on it: threads on neighbouring strips, which share every block
they touch in part, then split those blocks between them as they go, where claiming them all
up front had one thread decode them while the other waited (and a neighbour waiting for the
rest of a window too had them read one after the other). Other blocks wholly inside a window
are read last, in as few calls as possible, straight into the result.

The cache evicts the oldest block first, not the least recently used: in C order, the blocks a
window has just read from the cache are those no later window needs, while those decoded for
the next row of tiles were decoded a whole row ago.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

import numpy as np

from ..regions import Box
from . import handles
from .base import Source

#: Most bytes of decoded blocks a process keeps; a run sets the capacity from its budget.
CAPACITY = 128 * 1024 * 1024


class BlockCache:
    """Decoded blocks by key, the oldest evicted past `capacity`, and the blocks that threads
    are decoding now."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._blocks: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            return self._blocks.get(key)

    def claim(self, key: Hashable) -> np.ndarray | threading.Event | None:
        """The block, if cached; else the event another thread sets once it has decoded it;
        else None, and the caller is to decode it, then `put` or `release` it."""
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                return block
            if key in self._pending:
                return self._pending[key]
            self._pending[key] = threading.Event()
            return None

    def put(self, key: Hashable, block: np.ndarray) -> None:
        """Keep a decoded block (if it fits), and wake the threads waiting for it."""
        with self._lock:
            if key not in self._blocks and block.nbytes <= self.capacity:
                self._blocks[key] = block
                self.used += block.nbytes
                while self.used > self.capacity:
                    _, old = self._blocks.popitem(last=False)
                    self.used -= old.nbytes
        self.release(key)

    def release(self, key: Hashable) -> None:
        """Wake the threads waiting for a claimed block (they decode it themselves if it was
        not kept)."""
        with self._lock:
            event = self._pending.pop(key, None)
        if event is not None:
            event.set()

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self.used = 0


cache = BlockCache(CAPACITY)


def read_blocked(source: Hashable, box: Box, shape: tuple[int, ...], blocks: tuple[int, ...],
                 dtype: np.dtype, read: Callable[[Box], np.ndarray]) -> np.ndarray:
    """The pixels of `box`, assembled from blocks of shape `blocks` of an image of `shape`."""
    window = _Window(box, Box.of_shape(shape), blocks, np.empty(box.shape, dtype), read)
    whole: list[tuple[int, ...]] = []
    waiting: list[tuple[tuple[int, ...], threading.Event]] = []
    for index in _indices(box, blocks):
        block = window.block(index)
        if box.contains(block) and not _edge(index, box, blocks, shape):
            found = cache.get((source, index))
            if found is None:
                whole.append(index)
            else:
                window.fill(block, found)
            continue
        # A shared block is claimed only as it is decoded, so that threads on neighbouring
        # windows share out the decoding instead of one waiting for all the other claimed.
        found = cache.claim((source, index))
        if isinstance(found, threading.Event):
            waiting.append((index, found))
            continue
        if found is None:
            try:
                found = read(block)
            except BaseException:
                cache.release((source, index))  # its waiters decode it themselves
                raise
            cache.put((source, index), found)
        window.fill(block, found)
    window.read_whole(whole)
    for index, decoded in waiting:
        decoded.wait()
        data = cache.get((source, index))
        block = window.block(index)
        window.fill(block, read(block) if data is None else data)
    return window.out


@dataclass(frozen=True)
class _Window:
    """A window `box` of an `image` being assembled into `out` from blocks of shape `blocks`."""

    box: Box
    image: Box
    blocks: tuple[int, ...]
    out: np.ndarray
    read: Callable[[Box], np.ndarray]

    def block(self, index: tuple[int, ...]) -> Box:
        """The pixels of the block at `index`."""
        return Box(tuple(i * b for i, b in zip(index, self.blocks, strict=True)),
                   tuple((i + 1) * b for i, b in zip(index, self.blocks, strict=True))
                   ).intersect(self.image)

    def fill(self, block: Box, data: np.ndarray) -> None:
        """Copy the part of a decoded block that lies in the window."""
        part = block.intersect(self.box)
        self.out[part.within(self.box)] = data[part.within(block)]

    def read_whole(self, indices: list[tuple[int, ...]]) -> None:
        """Read blocks inside the window straight into `out`, in as few calls as possible."""
        for run in _runs(indices):
            region = Box(self.block(run[0]).start, self.block(run[1]).stop)
            self.out[region.within(self.box)] = self.read(region)


def _indices(box: Box, blocks: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """The indices of the blocks `box` touches, in C order."""
    first = tuple(a // b for a, b in zip(box.start, blocks, strict=True))
    last = tuple(-(-e // b) for e, b in zip(box.stop, blocks, strict=True))
    for index in np.ndindex(*(b - a for a, b in zip(first, last, strict=True))):
        yield tuple(i + f for i, f in zip(index, first, strict=True))


def _edge(index: tuple[int, ...], box: Box, blocks: tuple[int, ...],
          shape: tuple[int, ...]) -> bool:
    """Whether a block wholly inside `box` is its first or last along an axis where `box`
    starts or ends inside a block: a neighbouring window's halo reaches into it."""
    for i, start, stop, b, n in zip(index, box.start, box.stop, blocks, shape, strict=True):
        if start % b and i * b - start < b:
            return True
        if stop % b and stop < n and (i + 1) * b > stop - b:
            return True
    return False


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
