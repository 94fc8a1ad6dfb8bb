"""A raw file of an image's blocks, one after another in row-major order of the block grid.

The GeoTIFF sink stages its tiles here: a tile is a few whole block rows of the grid, each one
contiguous run of the file (one positional write), and a block of the TIFF is one read. Blocks
at the image's bottom and right edges are stored whole, padded; the file is sparse, so disk is
taken only where tiles were written. Uncompressed: a compressed Zarr array held the GIL for
half of a 2-core run (zarr's Python per chunk) and its chunk files took an fsync each.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..regions import Box
from . import handles
from .base import fsync, write_all


@dataclass(frozen=True)
class BlockFile:
    """`shape` stored in blocks of `block` (its leading axes whole) at `path`."""

    path: str
    shape: tuple[int, ...]
    block: tuple[int, ...]
    dtype: np.dtype

    @property
    def grid(self) -> tuple[int, int]:
        return (-(-self.shape[-2] // self.block[-2]), -(-self.shape[-1] // self.block[-1]))

    @property
    def block_bytes(self) -> int:
        return math.prod(self.block) * self.dtype.itemsize

    def create(self) -> None:
        with open(self.path, "wb") as f:
            f.truncate(math.prod(self.grid) * self.block_bytes)
        fsync(self.path)

    def write(self, box: Box, data: np.ndarray) -> None:
        """Write the tile `data` at `box` through this process's handle of the file: each row
        of whole blocks in one write; the parts of blocks a tile smaller than a block (or not
        on the block grid) covers, row by row."""
        by, bx = self.block[-2:]
        (y0, x0), (y1, x1) = box.start[-2:], box.stop[-2:]
        fd = handles.process_handle((self.path, 0), _open_write).fileno()
        if y0 % by or x0 % bx or (y1 % by and y1 < self.shape[-2]) or (
                x1 % bx and x1 < self.shape[-1]):
            self._write_parts(fd, box, data)
            return
        i0, j0 = y0 // by, x0 // bx
        rows, cols = -(-(y1 - y0) // by), -(-(x1 - x0) // bx)
        lead = self.block[:-2]
        if (y1 - y0, x1 - x0) != (rows * by, cols * bx):
            whole = np.zeros((*lead, rows * by, cols * bx), self.dtype)
            whole[..., :y1 - y0, :x1 - x0] = data
            data = whole
        n = len(lead)
        order = (n, n + 2, *range(n), n + 1, n + 3)
        blocks = np.ascontiguousarray(
            data.reshape(*lead, rows, by, cols, bx).transpose(order), self.dtype)
        buffer = memoryview(blocks.reshape(-1).view(np.uint8))
        run = cols * self.block_bytes
        for r in range(rows):
            write_all(fd, buffer[r * run:(r + 1) * run],
                      ((i0 + r) * self.grid[1] + j0) * self.block_bytes)

    def _write_parts(self, fd: int, box: Box, data: np.ndarray) -> None:
        by, bx = self.block[-2:]
        (y0, x0), (y1, x1) = box.start[-2:], box.stop[-2:]
        item = self.dtype.itemsize
        data = data.astype(self.dtype, copy=False)
        for i in range(y0 // by, -(-y1 // by)):
            for j in range(x0 // bx, -(-x1 // bx)):
                base = (i * self.grid[1] + j) * self.block_bytes
                r0, r1 = max(y0, i * by), min(y1, (i + 1) * by)
                c0, c1 = max(x0, j * bx), min(x1, (j + 1) * bx)
                for lead in itertools.product(*(range(n) for n in self.block[:-2])):
                    plane = base + sum(k * math.prod(self.block[d + 1:]) for d, k in
                                       enumerate(lead)) * item
                    for r in range(r0, r1):
                        row = np.ascontiguousarray(data[(*lead, r - y0, slice(c0 - x0,
                                                                               c1 - x0))])
                        write_all(fd, memoryview(row.view(np.uint8)),
                                  plane + ((r - i * by) * bx + c0 - j * bx) * item)

    def close(self) -> None:
        """Close this process's handles of the file."""
        for f in handles.forget(self.path):
            f.close()


class BlockReader:
    """Reads whole blocks of a `BlockFile` (a reader of its own, for the thread copying them)."""

    def __init__(self, blocks: BlockFile) -> None:
        self.blocks = blocks
        self.fd = os.open(blocks.path, os.O_RDONLY)

    def read(self, i: int, j: int) -> np.ndarray:
        """Block `(i, j)` of the grid, cut to the image at its edges."""
        b = self.blocks
        out = np.empty(b.block, b.dtype)
        at = (i * b.grid[1] + j) * b.block_bytes
        if os.preadv(self.fd, [memoryview(out.reshape(-1).view(np.uint8))],
                     at) != b.block_bytes:
            raise OSError(f"{b.path} ends before block {(i, j)}")
        by, bx = b.block[-2:]
        return out[..., :min(by, b.shape[-2] - i * by), :min(bx, b.shape[-1] - j * bx)]

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _open_write(path: str) -> Any:
    return open(path, "r+b", buffering=0)
