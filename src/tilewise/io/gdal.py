"""GDAL: its settings, and reading any raster it knows (GeoTIFF has its own format, `geotiff`).

A one-band raster is an image with axes `("y", "x")`, a multi-band one `("c", "y", "x")`. GDAL
datasets are not thread-safe, so reads use one dataset per thread. GDAL reaches remote files
itself through its virtual file systems (`s3://...` and `/vsis3/...`, `/vsicurl/`, ...).

A file holding several rasters (a multi-page TIFF, a NetCDF with several variables) is refused
rather than read as its first raster: GDAL lists them as subdatasets, and opening the file
alone silently gives the first page, or no band at all.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from ..axes import parse_axes
from ..errors import InputError, UnsupportedFormatError
from ..regions import Box
from . import handles
from .blocks import BlockedSource
from .location import is_local
from .objectstore import configure_gdal_endpoint

#: GDAL's block cache per process. Halo blocks are cached by `io.blocks`, so GDAL's cache need
#: only serve a GeoTIFF writer; its default (5% of memory) would count against the budget.
GDAL_CACHE = 16 * 1024 * 1024

# Microscopy TIFFs have no georeference, which is no cause for a warning per file. A filter
# installed once: `warnings.catch_warnings` around each open is not thread-safe, and readers
# open files in worker threads.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def configure_gdal() -> None:
    """Size GDAL's block cache to `GDAL_CACHE`, unless the user set GDAL_CACHEMAX.

    Call it before the first read (GDAL reads the setting when it first caches a block, and
    the probe may read first); worker processes inherit it through the environment. Calling it
    again changes nothing. An S3 endpoint named the botocore way (`AWS_ENDPOINT_URL`) is
    given to GDAL's `/vsis3/` too (see `objectstore`).
    """
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE // 2**20))
    configure_gdal_endpoint()


def stack_error(path: str, pages: int) -> UnsupportedFormatError:
    """The refusal of a TIFF holding several images: reading its first alone would lose data."""
    return UnsupportedFormatError(
        f"{path} holds {pages} pages (a stack), which GDAL reads one at a time; open it with "
        "format='tiff' to read the stack with tifffile")


@dataclass(frozen=True, eq=False)
class GDALSource(BlockedSource):
    """Any raster GDAL reads (VRT, JPEG 2000, PNG, NetCDF, HDF, ERDAS Imagine, ...)."""

    format: ClassVar[str] = "gdal"
    cache_bytes: ClassVar[int] = GDAL_CACHE

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None = None) -> GDALSource:
        try:
            with _open(path) as ds:
                _refuse_subdatasets(path, ds.subdatasets)
                count, height, width = ds.count, ds.height, ds.width
                by, bx = ds.block_shapes[0]
                dtype = np.dtype(ds.dtypes[0])
                meta: dict[str, Any] = {"crs": ds.crs, "transform": ds.transform,
                                        "nodata": ds.nodata}
                if any(ds.descriptions):
                    meta["band_names"] = tuple(d or f"band{i + 1}"
                                               for i, d in enumerate(ds.descriptions))
                if len(set(ds.dtypes)) > 1:
                    raise InputError(f"{path} mixes band data types {set(ds.dtypes)}, "
                                     "which tilewise cannot hold in one image")
        except RasterioIOError as exc:
            raise InputError(f"cannot read {path} as a raster: {exc}") from None
        if count == 1:
            shape, blocks, names = (height, width), (by, bx), ("y", "x")
        else:
            shape, blocks, names = (count, height, width), (count, by, bx), ("c", "y", "x")
        if axes is not None:
            names = parse_axes(axes, len(shape), path)
        return cls(shape, dtype, names, blocks, meta, path)

    def read_window(self, box: Box) -> np.ndarray:
        ds = handles.thread_handle(handles.version(self.path), _open)
        rows, cols = box.slices[-2:]
        window = Window.from_slices(rows, cols)
        if len(self.shape) == 2:
            return ds.read(1, window=window)
        bands = box.slices[0]
        return ds.read(list(range(bands.start + 1, bands.stop + 1)), window=window)


def _open(path: str) -> rasterio.DatasetReader:
    """A GDAL dataset; one in an object store reached at the environment's endpoint."""
    if not is_local(path):
        configure_gdal_endpoint()
    return rasterio.open(path)


def _refuse_subdatasets(path: str, subdatasets: list[str]) -> None:
    if not subdatasets:
        return
    if all(s.startswith("GTIFF_DIR:") for s in subdatasets):
        raise stack_error(path, len(subdatasets))
    shown = ", ".join(subdatasets[:3]) + (", ..." if len(subdatasets) > 3 else "")
    raise UnsupportedFormatError(
        f"{path} holds {len(subdatasets)} rasters ({shown}); tilewise reads files holding one "
        "raster and will not pick one for you")
