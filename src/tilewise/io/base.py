"""The two interfaces every format implements: a `Source` reads windows, a `Sink` writes tiles.

Both are small picklable values. They hold paths and open files lazily inside whichever process
and thread uses them, so a worker process never receives an open file handle.

A sink writes into a staging path (`NAME.partial`) that survives a failed or killed run, so
that the run can resume (see `journal`). `write` hands a tile to the file system and returns;
`sync` makes it durable (the driver's recorder calls it before journaling the tile), and
`commit` moves the finished output into place in one rename, so nothing at the final path ever
looks complete but is not. Sinks whose format workers can write in parallel say so
(`parallel_writes`: Zarr, `.npy`, and GeoTIFF, which is staged in a raw file of its blocks,
`blockfile`); the driver writes the others (an array in memory).

Each names its format (the registry's name for it, see `registry`) and the bytes of per-process
cache its library keeps (GDAL's block cache), which the run plans into the memory budget.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import OutputExistsError
from ..regions import Box
from . import fingerprint as fingerprints


@dataclass(frozen=True, eq=False)
class Source(ABC):
    """A readable n-d array: a file on disk (or at a URL) or an array in memory."""

    shape: tuple[int, ...]
    dtype: np.dtype
    axes: tuple[str, ...]
    blocks: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    #: The registry's name of the format this source reads.
    format: ClassVar[str] = ""
    #: Bytes of cache each process reading this source keeps besides `io.blocks` (GDAL's).
    cache_bytes: ClassVar[int] = 0

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file or folder this source reads: its one `path`, or none for an array. A
        source spanning many files (a stack) names them all, so that its fingerprint covers
        them and an output replacing any of them is refused."""
        return () if self.path is None else (self.path,)

    def fingerprint(self) -> dict[str, Any]:
        """A JSON-able identity of the source's content, cheap to compute (see `fingerprint`):
        a resumed run compares it to the one recorded, and a changed format shows in it."""
        return {"source": self.path, "format": self.format, **fingerprints.of_files(self.paths)}

    @abstractmethod
    def read(self, box: Box) -> np.ndarray:
        """The pixels of `box`, as an array the caller may not write to."""

    def for_processes(self) -> Source:
        """A form of this source that can be pickled cheaply into worker processes."""
        return self

    def release(self) -> None:
        """Free what `for_processes` set up."""


@dataclass(frozen=True, eq=False)
class Sink(ABC):
    """A new output file, written tile by tile into a staging path and moved into place last."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    axes: tuple[str, ...]
    chunks: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    #: Whether tiles may be written concurrently from workers (else the driver writes them).
    parallel_writes: ClassVar[bool] = False
    #: Whether workers on other machines may write it too (chunks at a path every machine
    #: reaches, or in an object store), each making its own writes durable with `sync`.
    remote_writes: ClassVar[bool] = False
    #: Whether it may be written to a URL (an object store), not only to a local path.
    writes_urls: ClassVar[bool] = False
    #: Whether the staged output survives a failed run, to be resumed (files do, memory not).
    resumable: ClassVar[bool] = True
    #: Bytes of cache the writing process keeps for this format (GDAL's block cache).
    cache_bytes: ClassVar[int] = 0

    @property
    def staging(self) -> str:
        return self.path + ".partial"

    def written_by_workers(self, remote: bool) -> bool:
        """Whether workers write their tiles themselves: for workers that may be on other
        machines (`remote`), only if this format allows it."""
        return self.parallel_writes and (self.remote_writes or not remote)

    def exists(self) -> tuple[bool, bool]:
        """Whether the staged output exists, and whether the final one does."""
        return os.path.lexists(self.staging), os.path.lexists(self.path)

    @classmethod
    def check(cls, shape: tuple[int, ...], dtype: np.dtype, axes: tuple[str, ...],
              path: str) -> None:
        """Raise a `TilewiseError` if this format cannot hold such an image."""

    @classmethod
    def owns(cls, path: str) -> bool:
        """Whether `path` holds something this format's sink could have written, so that
        `overwrite` may replace it; a folder or a file of another kind is never replaced."""
        return False

    @classmethod
    @abstractmethod
    def default_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
        """The chunk shape this format is written in; tiles are whole multiples of it."""

    @classmethod
    def planned_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...],
                       meta: Mapping[str, Any]) -> tuple[int, ...]:
        """The chunk shape tiles are whole multiples of, for an image with this metadata:
        `default_chunks`, unless the format's options in `meta` need coarser tiles (an
        OME-Zarr pyramid's levels)."""
        return cls.default_chunks(shape, axes)

    def writes(self, box: Box) -> int:
        """Separate writes a tile at `box` takes, one per chunk it covers; the planner weighs
        them when a tile's shape changes how many there are (see `plan.choose`)."""
        return math.prod(-(-n // c) for n, c in zip(box.shape, self.chunks, strict=True))

    @property
    def settings(self) -> dict[str, Any]:
        """The format options this output is written with (JSON-able; the journal keeps them,
        so that a resumed run with other options is refused): none by default."""
        return {}

    @abstractmethod
    def create(self) -> None:
        """Create the empty staged output (called once, by the driver)."""

    @abstractmethod
    def write(self, box: Box, data: np.ndarray) -> None:
        """Write one tile; `box` covers whole chunks except at the image end."""

    def sync(self, box: Box) -> None:
        """Make the tile at `box` durable (fsync what it touched), from any process."""

    def close(self) -> None:
        """Flush and close whatever this process holds open."""

    def finish(self) -> str:
        """Make the staged data final; return the path to move into place."""
        return self.staging

    def finisher(self) -> Finisher | None:
        """Something that makes the output final while tiles are still being written, if any."""
        return None

    def commit(self, overwrite: bool, final: str | None = None) -> None:
        """Move the finished output (`final`, else what `finish` makes) into place in one step."""
        self.close()
        final = final or self.finish()
        if os.path.lexists(self.path):
            if not overwrite:
                raise OutputExistsError(f"output {self.path} appeared during the run")
            remove(self.path)
        os.replace(final, self.path)
        fsync(os.path.dirname(self.path))
        if final != self.staging:
            remove(self.staging)

    def abort(self) -> None:
        """Remove the staged output."""
        self.close()
        if os.path.lexists(self.staging):
            remove(self.staging)


class Finisher(ABC):
    """Finishes an output alongside the run, e.g. copies finished rows into a GeoTIFF."""

    @abstractmethod
    def tile_done(self, box: Box) -> None:
        """Tell it that the tile at `box` is durably staged."""

    @abstractmethod
    def result(self) -> str:
        """Wait until it is done; the path to move into place."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop, leaving the staged tiles as they are."""


def read_head(path: str, size: int = 512) -> bytes:
    """The first bytes of a file, for a format's sniffer (b'' if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def fsync(path: str) -> None:
    """Flush a file or a folder to disk, where the filesystem supports it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_all(fd: int, data: memoryview, at: int) -> None:
    """Write `data` at byte `at` of the file `fd`. A write may be short (a full filesystem):
    writing the rest then raises the OSError that says why."""
    done = os.pwrite(fd, data, at)
    while done < len(data):
        data, at = data[done:], at + done
        done = os.pwrite(fd, data, at)
