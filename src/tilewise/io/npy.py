"""NumPy `.npy` files, memory-mapped: read without loading, written in place by any worker.

A window read is copied out of the map and a tile written goes into it; either way its pages are
then dropped from the process (`pages`), so that a run's resident memory does not grow with
the part of the file it has touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..axes import parse_axes
from ..errors import InputError
from ..regions import Box
from . import handles
from .base import Sink, Source, fsync, read_head
from .pages import drop_mapped

#: The first bytes of every .npy file.
MAGIC = b"\x93NUMPY"


def is_npy(path: str, head: bytes) -> bool:
    """Whether a file starting with `head` is a .npy array, whatever its suffix."""
    return head.startswith(MAGIC)


def _open_read(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


@dataclass(frozen=True, eq=False)
class NpySource(Source):
    format: ClassVar[str] = "npy"

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None) -> NpySource:
        try:
            arr = _open_read(path)
        except FileNotFoundError:
            raise InputError(f"input {path} does not exist") from None
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read {path} as a .npy array: {exc}") from None
        return cls(arr.shape, arr.dtype, parse_axes(axes, arr.ndim, path),
                   tuple(1 for _ in arr.shape), {}, path)

    def read(self, box: Box) -> np.ndarray:
        window = handles.process_handle(handles.version(self.path), _open_read)[box.slices]
        data = np.array(window)
        drop_mapped(window)  # read pages would stay resident until the map is closed
        data.flags.writeable = False
        return data


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

    def create(self) -> None:
        np.lib.format.open_memmap(self.staging, mode="w+", dtype=self.dtype,
                                  shape=self.shape).flush()
        fsync(self.staging)

    def write(self, box: Box, data: np.ndarray) -> None:
        arr = handles.process_handle(
            (self.staging, 0), lambda p: np.lib.format.open_memmap(p, mode="r+"))
        arr[box.slices] = data
        drop_mapped(arr[box.slices])  # written pages stay dirty in the page cache, not here

    def sync(self, box: Box) -> None:
        # The map is shared: fsync writes its dirty pages, whichever process dirtied them.
        fsync(self.staging)

    def close(self) -> None:
        for arr in handles.forget(self.staging):
            arr.flush()
