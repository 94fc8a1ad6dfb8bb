"""GeoTIFF through rasterio (GDAL): any band count, tiled, compressed, BigTIFF when needed.

A one-band file is an image with axes `("y", "x")`, a multi-band one `("c", "y", "x")`, read
as any GDAL raster is (see `gdal`). A TIFF holding a stack of pages (microscopy Z-stacks,
ImageJ and OME-TIFF series) and no GeoTIFF keys is the `tiff` format's (tifffile), whose sniffer
the registry tries first; opened here anyway (`format="geotiff"`) it is refused, since GDAL
would read its first page alone. Reduced-resolution pages (overviews) and masks are not planes.

Output is staged, not written into the TIFF tile by tile: GDAL writes a TIFF's tile index only
when the file is closed, so a killed writer leaves a TIFF whose finished tiles cannot be found,
and a run could not resume. Workers write their tiles into a Zarr array at `NAME.partial`
(LZ4, in parallel, fsynced); a thread of the driver copies each finished row of tiles, block by
block, into a GeoTIFF inside the staging folder (GDAL compressing with every core), and when
the last row is copied the GeoTIFF is renamed to `NAME`. A resumed run copies from the start.
A `.cog.tif` output is a COG, whose overviews are built from the blocks as they are copied
(`cog`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import rasterio
import zarr
from rasterio.windows import Window

from ..errors import UnsupportedFormatError
from ..regions import Box
from . import handles
from .base import Finisher, Sink, fsync, read_head
from .gdal import GDAL_CACHE, GDALSource, stack_error
from .location import is_local
from .zarr_array import create_store, sync_chunks, write_chunks

#: Block side of written GeoTIFFs (GDAL wants a multiple of 16).
BLOCK = 512
#: ZSTD at level 1 compresses float rasters as well as DEFLATE at five times the speed, and
#: GDAL >= 2.3 (QGIS, rasterio, ArcGIS Pro >= 2.x) reads it; pass compress= to choose another.
CREATION_OPTIONS = {"compress": "zstd", "zstd_level": 1, "bigtiff": "if_safer"}
#: The staging array's codec: fast to write and read back, as it lives only during the run.
STAGING_CODEC = zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")
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

    def create(self) -> None:
        create_store(self.staging, self.shape, self.chunks, self.dtype, self.axes, {},
                     compressors=STAGING_CODEC)

    def write(self, box: Box, data: np.ndarray) -> None:
        write_chunks(self.staging, box, data)

    def sync(self, box: Box) -> None:
        sync_chunks(self.staging, box)

    def finisher(self) -> TiffCopy:
        return TiffCopy(self)

    def finish(self) -> str:
        copy = TiffCopy(self)
        copy.tile_done(Box.of_shape(self.shape))
        return copy.result()

    def copy_rows(self, ready: Callable[[int], bool]) -> str:
        """Copy the staged tiles into a GeoTIFF, a row of blocks at a time, each row as soon
        as `ready(stop)` says that every tile above `stop` is staged; "" if stopped."""
        target = os.path.join(self.staging, os.path.basename(self.path))
        if not self.copy_blocks(ready, target, self._profile()):
            return ""
        fsync(target)
        return target

    def copy_blocks(self, ready: Callable[[int], bool], target: str, profile: dict[str, Any],
                    copied: Callable[[int, int, np.ndarray], None] | None = None) -> bool:
        """Copy the staged tiles into a new TIFF at `target`, block by block in rows, calling
        `copied(row, col, block)` after each block; False if `ready` said to stop."""
        staged = zarr.open_array(self.staging, mode="r")
        with rasterio.open(target, "w", **profile) as ds:
            names = self.meta.get("band_names")
            if names is not None and len(names) == profile["count"]:
                for i, name in enumerate(names, start=1):
                    ds.set_band_description(i, str(name))
            bands = list(range(1, profile["count"] + 1))
            height, width = self.shape[-2:]
            by, bx = profile["blockysize"], profile["blockxsize"]
            for row in range(0, height, by):
                rows = slice(row, min(row + by, height))
                if not ready(rows.stop):
                    return False
                for col in range(0, width, bx):
                    cols = slice(col, min(col + bx, width))
                    block = staged[..., rows, cols]
                    window = Window.from_slices(rows, cols)
                    if block.ndim == 2:
                        ds.write(block, 1, window=window)
                    else:
                        ds.write(block, bands, window=window)
                    if copied is not None:
                        copied(row, col, block)
        return True

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
        handles.forget(self.staging)


class TiffCopy(Finisher):
    """Copies finished rows of tiles from the staging array into the GeoTIFF in a thread of
    the driver, while the workers compute the rows below, so that the copy costs little time
    after the last tile. A resumed run copies everything again (the TIFF is not resumable)."""

    def __init__(self, sink: GeoTIFFSink) -> None:
        self.height = sink.shape[-2]
        self.row_pixels = math.prod(sink.shape) // self.height
        #: Per band of tile rows (by its first row): pixels staged in one of its rows, and its end.
        self.covered: dict[int, int] = {}
        self.stops: dict[int, int] = {}
        self.ready_to = 0
        self.stopped = False
        self.error: BaseException | None = None
        self.target = ""
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(sink,), daemon=True,
                                       name="tilewise-tiff-copy")
        self.thread.start()

    def tile_done(self, box: Box) -> None:
        y0, y1 = box.start[-2], box.stop[-2]
        with self.changed:
            self.covered[y0] = self.covered.get(y0, 0) + box.size // (y1 - y0)
            self.stops[y0] = y1
            while (self.ready_to < self.height
                   and self.covered.get(self.ready_to, 0) >= self.row_pixels):
                self.ready_to = self.stops[self.ready_to]
            self.changed.notify_all()

    def _ready(self, stop: int) -> bool:
        with self.changed:
            self.changed.wait_for(lambda: self.stopped or self.ready_to >= stop)
            return not self.stopped

    def _run(self, sink: GeoTIFFSink) -> None:
        try:
            self.target = sink.copy_rows(self._ready)
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
