"""NumPy `.npy` files, read and written in place by positional reads and writes (`pread`).

Not memory maps: the pages of a mapped file that a run touches count in its resident memory
until the kernel reclaims them, so a run reading a 1 GiB input through a map shows 1 GiB more
resident memory than its budget however small its tiles. A window is a few contiguous byte runs
of the file (one per row of a 2-D window), read straight into the result's buffer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..axes import parse_axes
from ..errors import InputError
from ..regions import Box
from . import handles
from .base import Sink, Source, fsync, read_head, write_all

#: The first bytes of every .npy file.
MAGIC = b"\x93NUMPY"


def is_npy(path: str, head: bytes) -> bool:
    """Whether a file starting with `head` is a .npy array, whatever its suffix."""
    return head.startswith(MAGIC)


@dataclass(frozen=True)
class Layout:
    """Where a .npy file's pixels lie: C-order `shape` (a Fortran-order file is the C-order
    array of the reversed shape) of `dtype` from byte `offset`."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int

    @classmethod
    def read(cls, path: str) -> Layout:
        # NumPy parses the header (every version of it); the map is dropped untouched.
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        fortran = arr.flags.f_contiguous and not arr.flags.c_contiguous
        shape = tuple(reversed(arr.shape)) if fortran else arr.shape
        return cls(shape, arr.dtype, fortran, arr.offset)

    def runs(self, box: Box) -> tuple[np.ndarray, int]:
        """The file offset of each contiguous run of `box`, in the C order of the window, and
        the run's bytes (the n-th run is bytes `[n * run, (n + 1) * run)` of the C-order
        window): the trailing axes it covers whole join the run of the last axis it does not.
        Offsets come as one array, as a 2-D tile of a wide image is a run per row (a tile of
        a 16-band output 8192 runs)."""
        item = self.dtype.itemsize
        inner = _split(self.shape, box)
        run = (box.shape[inner - 1] if inner else 1) * math.prod(self.shape[inner:]) * item
        if run == 0:
            return np.empty(0, np.int64), 0
        strides = [math.prod(self.shape[d + 1:]) * item for d in range(len(self.shape))]
        first = self.offset + (box.start[inner - 1] * strides[inner - 1] if inner else 0)
        offsets = np.array([first], np.int64)
        for d in range(inner - 1):
            steps = np.arange(box.start[d], box.stop[d], dtype=np.int64) * strides[d]
            offsets = (offsets[:, None] + steps[None, :]).reshape(-1)
        return offsets, run


def _split(shape: tuple[int, ...], box: Box) -> int:
    """How many leading axes of a C-order array of `shape` split `box` into runs: those
    before the trailing axes `box` covers whole, and the last axis it does not."""
    inner = len(shape)
    while inner > 0 and box.start[inner - 1] == 0 and box.stop[inner - 1] == shape[inner - 1]:
        inner -= 1
    return inner


def _window(layout: Layout, box: Box) -> Box:
    return Box(tuple(reversed(box.start)), tuple(reversed(box.stop))) if layout.fortran else box


def _open_read(path: str) -> tuple[Layout, Any]:
    return Layout.read(path), open(path, "rb", buffering=0)


def _read(layout: Layout, f: Any, box: Box) -> np.ndarray:
    window = _window(layout, box)
    out = np.empty(window.shape, layout.dtype)
    buffer = memoryview(out.reshape(-1).view(np.uint8))
    offsets, run = layout.runs(window)
    fd = f.fileno()
    for n, at in enumerate(offsets.tolist()):
        if os.preadv(fd, [buffer[n * run:(n + 1) * run]], at) != run:
            raise InputError(f"{f.name} ends before its header says it does")
    return out.T if layout.fortran else out


@dataclass(frozen=True, eq=False)
class NpySource(Source):
    format: ClassVar[str] = "npy"

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None) -> NpySource:
        try:
            layout = Layout.read(path)
        except FileNotFoundError:
            raise InputError(f"input {path} does not exist") from None
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read {path} as a .npy array: {exc}") from None
        shape = tuple(reversed(layout.shape)) if layout.fortran else layout.shape
        return cls(shape, layout.dtype, parse_axes(axes, len(shape), path),
                   tuple(1 for _ in shape), {}, path)

    def read(self, box: Box) -> np.ndarray:
        return _read(*handles.process_handle(handles.version(self.path), _open_read), box)


@dataclass(frozen=True, eq=False)
class NpySink(Sink):
    parallel_writes: ClassVar[bool] = True

    @classmethod
    def owns(cls, path: str) -> bool:
        """A file of this format (whoever wrote it: a plain file is what the user named)."""
        return os.path.isfile(path) and is_npy(path, read_head(path))

    @classmethod
    def default_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(1 for _ in shape)

    def writes(self, box: Box) -> int:
        """One per contiguous run of the (C-order) file: a row of a 2-D tile, a band of a
        full-width one."""
        return math.prod(box.shape[:max(_split(self.shape, box) - 1, 0)])

    def create(self) -> None:
        np.lib.format.open_memmap(self.staging, mode="w+", dtype=self.dtype,
                                  shape=self.shape).flush()
        fsync(self.staging)

    def write(self, box: Box, data: np.ndarray) -> None:
        layout, f = handles.process_handle((self.staging, 0), _open_write)
        data = np.ascontiguousarray(data, layout.dtype)
        buffer = memoryview(data.reshape(-1).view(np.uint8))
        offsets, run = layout.runs(box)
        fd = f.fileno()
        for n, at in enumerate(offsets.tolist()):
            write_all(fd, buffer[n * run:(n + 1) * run], at)

    def sync(self, box: Box) -> None:
        # Written through the file, not a map: fsync makes any process's writes durable.
        fsync(self.staging)

    def close(self) -> None:
        for _, f in handles.forget(self.staging):
            f.close()


def _open_write(path: str) -> tuple[Layout, Any]:
    return Layout.read(path), open(path, "r+b", buffering=0)
