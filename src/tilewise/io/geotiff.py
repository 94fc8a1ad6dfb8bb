"""GeoTIFF through rasterio (GDAL): any band count, tiled, compressed, BigTIFF when needed.

A one-band file is an image with axes `("y", "x")`, a multi-band one `("c", "y", "x")`, read
as any GDAL raster is (see `gdal`). A TIFF holding a stack of pages (microscopy Z-stacks,
ImageJ and OME-TIFF series) and no GeoTIFF keys is the `tiff` format's (tifffile), whose sniffer
the registry tries first; opened here anyway (`format="geotiff"`) it is refused, since GDAL
would read its first page alone. Reduced-resolution pages (overviews) and masks are not planes.

Output is staged, not written into the TIFF tile by tile: GDAL writes a TIFF's tile index only
when the file is closed, so a killed writer leaves a TIFF whose finished tiles cannot be found,
and a run could not resume. Workers write their tiles into a raw file of the TIFF's blocks in
the folder `NAME.partial` (`blockfile`: in parallel, one write per row of blocks, fsynced); a
thread of the driver copies each block of the TIFF as soon as
the tiles covering it are staged into a GeoTIFF inside the staging folder (GDAL compressing
with every core, the kernel asked to write it back as it grows), and when the last block is
copied the GeoTIFF is renamed to `NAME`. A resumed run copies from the start.
A `.cog.tif` output is a COG, whose overviews are built from the blocks as they are copied
(`cog`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import UnsupportedFormatError
from ..regions import Box
from .base import Finisher, Sink, fsync, read_head
from .blockfile import BlockFile, BlockReader
from .gdal import GDAL_CACHE, GDALSource, stack_error
from .location import is_local

#: Block side of written GeoTIFFs (GDAL wants a multiple of 16).
BLOCK = 512
#: ZSTD at level 1 compresses float rasters as well as DEFLATE at five times the speed, and
#: GDAL >= 2.3 (QGIS, rasterio, ArcGIS Pro >= 2.x) reads it; pass compress= to choose another.
CREATION_OPTIONS = {"compress": "zstd", "zstd_level": 1, "bigtiff": "if_safer"}
#: The staged blocks' file in the staging folder.
STAGED = "blocks.raw"
#: Bytes of the GeoTIFF copied between two requests that the kernel start writing it back.
WRITE_BACK = 64 * 1024 * 1024
#: The first bytes of a TIFF and of a BigTIFF, little- and big-endian.
MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_tiff(path: str, head: bytes) -> bool:
    """Whether a file starting with `head` is a TIFF, whatever its suffix."""
    return head[:4] in MAGIC


class _Silence(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def quiet_tifffile() -> Iterator[None]:
    """Silence tifffile's logger: it warns of tags it cannot parse (GDAL_NODATA of -3.4e38
    in a float32 file), which concern values GDAL reads itself."""
    log = logging.getLogger("tifffile")
    quiet = _Silence()
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def count_planes(tif: Any) -> int:
    """How many full-resolution images a `tifffile.TiffFile` holds: the planes of all its
    series (tifffile groups pages into series, and a series' overviews into its levels)."""
    return sum(math.prod(s.shape) // max(1, math.prod(s.keyframe.shape)) for s in tif.series)


def tiff_planes(path: str) -> int:
    """How many full-resolution images the TIFF at `path` holds (`count_planes`), or 1 when
    tifffile cannot parse it (GDAL then says what is wrong). Imported here: it is needed only
    for TIFFs."""
    import tifffile

    with quiet_tifffile():
        try:
            with tifffile.TiffFile(path) as tif:
                return count_planes(tif)
        except Exception:  # tifffile raises many kinds on a damaged file; GDAL names the damage
            return 1


@dataclass(frozen=True, eq=False)
class GeoTIFFSource(GDALSource):
    """A single-image TIFF, with or without georeference, one band or many."""

    format: ClassVar[str] = "geotiff"

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None = None) -> GDALSource:
        if is_local(path) and os.path.isfile(path):
            planes = tiff_planes(path)
            if planes > 1:
                raise stack_error(path, planes)
        return super().open(path, axes)


@dataclass(frozen=True, eq=False)
class GeoTIFFSink(Sink):
    cache_bytes: ClassVar[int] = GDAL_CACHE
    parallel_writes: ClassVar[bool] = True
    #: Whether the TIFF is copied in rows of blocks, top to bottom (see `TiffCopy`).
    rows_in_order: ClassVar[bool] = False

    @classmethod
    def check(cls, shape: tuple[int, ...], dtype: np.dtype, axes: tuple[str, ...],
              path: str) -> None:
        if axes not in (("y", "x"), ("c", "y", "x")):
            raise UnsupportedFormatError(
                f"{path}: GeoTIFF holds images with axes ('y', 'x') or ('c', 'y', 'x'), "
                f"not {axes}; write .zarr or .npy instead")
        if dtype.kind == "b" or not rasterio.dtypes.check_dtype(dtype.name):
            raise UnsupportedFormatError(
                f"{path}: GeoTIFF cannot store data type {dtype}; cast it in the op (dtype=)")

    @classmethod
    def owns(cls, path: str) -> bool:
        """A file of this format (whoever wrote it: a plain file is what the user named)."""
        return os.path.isfile(path) and is_tiff(path, read_head(path))

    @classmethod
    def default_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
        side = tuple(min(BLOCK, -(-n // 16) * 16) for n in shape[-2:])
        return (shape[0], *side) if len(shape) == 3 else side

    @property
    def staged(self) -> BlockFile:
        return BlockFile(os.path.join(self.staging, STAGED), self.shape,
                         self.default_chunks(self.shape, self.axes), self.dtype)

    def create(self) -> None:
        os.makedirs(self.staging, exist_ok=True)
        self.staged.create()
        fsync(self.staging)
        fsync(os.path.dirname(os.path.abspath(self.staging)))

    def write(self, box: Box, data: np.ndarray) -> None:
        self.staged.write(box, data)

    def sync(self, box: Box) -> None:
        fsync(self.staged.path)

    def finisher(self) -> TiffCopy:
        return TiffCopy(self)

    def finish(self) -> str:
        copy = TiffCopy(self)
        copy.tile_done(Box.of_shape(self.shape))
        return copy.result()

    def copy_staged(self, copy: TiffCopy) -> str:
        """Copy the staged tiles into a GeoTIFF, each block of the TIFF as soon as `copy` says
        it is staged whole, so that only the last tiles' blocks are left after the last tile;
        "" if stopped. The TIFF's blocks lie in the file in the order they were copied."""
        target = os.path.join(self.staging, os.path.basename(self.path))
        profile = self._profile()
        by, bx = profile["blockysize"], profile["blockxsize"]
        with (BlockReader(self.staged) as staged, rasterio.open(target, "w", **profile) as ds,
              WriteBack(target) as written):
            self._name_bands(ds, profile)
            for rows, cols in iter(copy.next_block, None):
                self._write(ds, profile, Window.from_slices(rows, cols),
                            staged.read(rows.start // by, cols.start // bx))
                written.add(math.prod(self.shape[:-2]) * (rows.stop - rows.start)
                            * (cols.stop - cols.start) * self.dtype.itemsize)
        if copy.stopped:
            return ""
        fsync(target)
        return target

    def copy_blocks(self, ready: Callable[[int], bool], target: str, profile: dict[str, Any],
                    copied: Callable[[int, int, np.ndarray], None] | None = None) -> bool:
        """Copy the staged tiles into a new TIFF at `target`, block by block in rows, calling
        `copied(row, col, block)` after each block; False if `ready` said to stop."""
        with BlockReader(self.staged) as staged, rasterio.open(target, "w", **profile) as ds:
            self._name_bands(ds, profile)
            height, width = self.shape[-2:]
            by, bx = profile["blockysize"], profile["blockxsize"]
            for row in range(0, height, by):
                rows = slice(row, min(row + by, height))
                if not ready(rows.stop):
                    return False
                for col in range(0, width, bx):
                    cols = slice(col, min(col + bx, width))
                    block = staged.read(row // by, col // bx)
                    self._write(ds, profile, Window.from_slices(rows, cols), block)
                    if copied is not None:
                        copied(row, col, block)
        return True

    def _name_bands(self, ds: Any, profile: dict[str, Any]) -> None:
        names = self.meta.get("band_names")
        if names is not None and len(names) == profile["count"]:
            for i, name in enumerate(names, start=1):
                ds.set_band_description(i, str(name))

    @staticmethod
    def _write(ds: Any, profile: dict[str, Any], window: Window, block: np.ndarray) -> None:
        if block.ndim == 2:
            ds.write(block, 1, window=window)
        else:
            ds.write(block, list(range(1, profile["count"] + 1)), window=window)

    def _profile(self) -> dict[str, Any]:
        height, width = self.shape[-2:]
        # Staged chunks follow the tiles; the TIFF's blocks must be multiples of 16.
        by, bx = self.default_chunks(self.shape, self.axes)[-2:]
        nodata = self.meta.get("nodata")
        if nodata is not None and not _fits(nodata, self.dtype):
            nodata = None
        return {
            "driver": "GTiff", "width": width, "height": height,
            "count": self.shape[0] if len(self.shape) == 3 else 1,
            "dtype": self.dtype.name, "crs": self.meta.get("crs"),
            "transform": self.meta.get("transform"), "nodata": nodata, "tiled": True,
            "blockysize": by, "blockxsize": bx,
            "num_threads": "ALL_CPUS", **CREATION_OPTIONS,
        }

    def close(self) -> None:
        self.staged.close()


class WriteBack:
    """Asks the kernel to start writing a growing file to disk every `WRITE_BACK` bytes, so
    that the fsync that makes it durable at the end has little left to wait for."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending = 0
        self.fd = -1

    def __enter__(self) -> WriteBack:
        if hasattr(os, "posix_fadvise"):
            self.fd = os.open(self.path, os.O_RDONLY)
        return self

    def add(self, size: int) -> None:
        self.pending += size
        if self.fd >= 0 and self.pending >= WRITE_BACK:
            self.pending = 0
            # On dirty pages, DONTNEED starts their writeback without waiting for it.
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


class TiffCopy(Finisher):
    """Copies staged tiles into the GeoTIFF in a thread of the driver while the workers compute
    the next ones, so that little is left to copy after the last tile: a block of the TIFF as
    soon as the tiles covering it are staged (`next_block`), or, for a sink that needs them in
    order (a COG, whose overviews are built from rows), each row of blocks once every tile
    above it is (`ready`). A resumed run copies everything again (the TIFF is not resumable)."""

    def __init__(self, sink: GeoTIFFSink) -> None:
        self.height, self.width = sink.shape[-2:]
        self.block = sink.default_chunks(sink.shape, sink.axes)[-2:]
        self.row_pixels = self.width
        #: Per band of tile rows (by its first row): pixels staged in one of its rows, and its end.
        self.covered: dict[int, int] = {}
        self.stops: dict[int, int] = {}
        self.ready_to = 0
        #: Pixels staged per TIFF block (by its index), and the blocks staged whole, not copied.
        self.filled: dict[tuple[int, int], int] = {}
        self.whole: deque[tuple[int, int]] = deque()
        self.blocks_left = math.prod(-(-n // b) for n, b in zip((self.height, self.width),
                                                                 self.block, strict=True))
        self.stopped = False
        self.error: BaseException | None = None
        self.target = ""
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(sink,), daemon=True,
                                       name="tilewise-tiff-copy")
        self.thread.start()

    def tile_done(self, box: Box) -> None:
        y0, y1 = box.start[-2], box.stop[-2]
        x0, x1 = box.start[-1], box.stop[-1]
        with self.changed:
            self.covered[y0] = self.covered.get(y0, 0) + (x1 - x0)
            self.stops[y0] = y1
            while (self.ready_to < self.height
                   and self.covered.get(self.ready_to, 0) >= self.row_pixels):
                self.ready_to = self.stops[self.ready_to]
            by, bx = self.block
            for i in range(y0 // by, -(-y1 // by)):
                for j in range(x0 // bx, -(-x1 // bx)):
                    part = ((min(y1, (i + 1) * by) - max(y0, i * by))
                            * (min(x1, (j + 1) * bx) - max(x0, j * bx)))
                    self.filled[i, j] = self.filled.get((i, j), 0) + part
                    if self.filled[i, j] == self._area(i, j):
                        self.whole.append((i, j))
            self.changed.notify_all()

    def _area(self, i: int, j: int) -> int:
        by, bx = self.block
        return ((min(self.height, (i + 1) * by) - i * by)
                * (min(self.width, (j + 1) * bx) - j * bx))

    def _ready(self, stop: int) -> bool:
        with self.changed:
            self.changed.wait_for(lambda: self.stopped or self.ready_to >= stop)
            return not self.stopped

    def next_block(self) -> tuple[slice, slice] | None:
        """The rows and columns of a TIFF block staged whole and not copied yet, waiting for
        one; None once every block was handed out, or when stopped."""
        with self.changed:
            if self.blocks_left == 0:
                return None
            self.changed.wait_for(lambda: self.stopped or self.whole)
            if self.stopped:
                return None
            i, j = self.whole.popleft()
            self.blocks_left -= 1
        by, bx = self.block
        return (slice(i * by, min(self.height, (i + 1) * by)),
                slice(j * bx, min(self.width, (j + 1) * bx)))

    def _run(self, sink: GeoTIFFSink) -> None:
        try:
            self.target = (sink.copy_rows(self._ready) if sink.rows_in_order
                           else sink.copy_staged(self))
        except BaseException as exc:
            self.error = exc

    def result(self) -> str:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.target

    def cancel(self) -> None:
        with self.changed:
            self.stopped = True
            self.changed.notify_all()
        self.thread.join()


def _fits(value: float, dtype: np.dtype) -> bool:
    if np.isnan(value):
        return dtype.kind == "f"
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return True
