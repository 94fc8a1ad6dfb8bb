"""Cloud Optimized GeoTIFF output: a GeoTIFF with internal overviews, laid out for HTTP reads.

A path ending in `.cog.tif` is written as a COG. Its overviews are built from the data as the
copy thread of `geotiff` moves each finished row of blocks out of the staging file, never by
reading the output again: each block is halved into level 1, and each level, once a full row
of its own 512-pixel blocks is assembled, is written to a TIFF of its own and halved into the
next level, down to the first level that fits in one block (as GDAL's COG driver does). When
the last row is copied, a VRT names the full-resolution TIFF and its levels as overviews, and
GDAL's COG driver (`OVERVIEWS=FORCE_USE_EXISTING`) writes the COG from it: IFDs first, then
the smallest overview's blocks up to the full resolution's, which `rio cogeo validate` checks.
That final copy re-reads and re-compresses the output (see docs/cog.md for what it costs).

Each level halves the one before, per axis: a level of n pixels has ceil(n / 2), pixel o
coming from pixels 2o and 2o + 1 (2o alone at an odd end). "nearest" keeps pixel 2o, so level
k is `a[..., ::2**k, ::2**k]`; "average" is the mean of the block's values, NaN and nodata
skipped (a block with none left is nodata, or NaN), computed in float64, rounded half up for
integer types. The default is "average" for floats and "nearest" for integers (classes and
masks must not be averaged); an image's metadata `{"overviews": "average"}` chooses.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import rasterio
import rasterio.shutil

from ..errors import ParameterError
from .base import fsync
from .geotiff import BLOCK, CREATION_OPTIONS, GeoTIFFSink
from .pyramid import block_mean

#: The resampling methods, by the name `meta["overviews"]` gives.
METHODS = ("average", "nearest")
#: Columns halved at a time, to bound the float64 temporaries of "average".
SPAN = 8 * BLOCK


def default_method(dtype: np.dtype) -> str:
    return "average" if dtype.kind == "f" else "nearest"


def halve(a: np.ndarray, method: str, nodata: float | None) -> np.ndarray:
    """Level k + 1 from level k (`a`: bands, rows, columns), as the module docstring says."""
    if method == "nearest":
        return np.ascontiguousarray(a[..., ::2, ::2])
    out = np.empty((*a.shape[:-2], -(-a.shape[-2] // 2), -(-a.shape[-1] // 2)), a.dtype)
    for col in range(0, a.shape[-1], SPAN):
        out[..., col // 2:(col + SPAN) // 2] = _average(a[..., col:col + SPAN], nodata)
    return out


def _average(a: np.ndarray, nodata: float | None) -> np.ndarray:
    h, w = a.shape[-2:]
    work = np.full((*a.shape[:-2], h + h % 2, w + w % 2), np.nan)
    work[..., :h, :w] = a
    if nodata is not None and not np.isnan(nodata):
        work[work == nodata] = np.nan
    parts = (work[..., 0::2, 0::2], work[..., 0::2, 1::2], work[..., 1::2, 0::2],
             work[..., 1::2, 1::2])
    valid = [~np.isnan(p) for p in parts]
    total = np.nan_to_num(parts[0]) + np.nan_to_num(parts[1])
    total += np.nan_to_num(parts[2])
    total += np.nan_to_num(parts[3])
    count = valid[0].astype(np.int8) + valid[1] + valid[2] + valid[3]
    return block_mean(total, count, a.dtype, nodata)


def level_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """The overview sizes: halved until a level fits in one block (none for a small image)."""
    shapes = []
    while height > BLOCK or width > BLOCK:
        height, width = -(-height // 2), -(-width // 2)
        shapes.append((height, width))
    return shapes


class Level:
    """One overview level: a strip of a block's height filled in rows, then written to its
    TIFF and handed, halved, to the next level."""

    def __init__(self, ds: Any, bands: int, dtype: np.dtype, pass_on: Callable[..., None]):
        self.ds, self.pass_on = ds, pass_on
        self.height, self.width = ds.height, ds.width
        self.start = 0
        self.strip = np.empty((bands, min(BLOCK, self.height), self.width), dtype)

    def put(self, row: int, col: int, piece: np.ndarray) -> None:
        """Place `piece` at (row, col); rows arrive in order, each row left to right."""
        top = row - self.start
        self.strip[:, top:top + piece.shape[-2], col:col + piece.shape[-1]] = piece
        end = row + piece.shape[-2]
        if col + piece.shape[-1] == self.width and end == self.start + self.strip.shape[-2]:
            self.ds.write(self.strip, window=((self.start, end), (0, self.width)))
            self.pass_on(self.start, 0, self.strip)
            self.start = end
            self.strip = self.strip[:, :min(BLOCK, self.height - end)]


class Pyramid:
    """The overview levels of one image, built from its full-resolution blocks in row order."""

    def __init__(self, stack: ExitStack, folder: str, bands: int, height: int, width: int,
                 dtype: np.dtype, profile: dict[str, Any], method: str,
                 nodata: float | None) -> None:
        self.method, self.nodata = method, nodata
        self.paths: list[str] = []
        self.levels: list[Level] = []
        for k, (h, w) in enumerate(level_shapes(height, width), start=1):
            path = os.path.join(folder, f"overview{k}.tif")
            ds = stack.enter_context(rasterio.open(
                path, "w", **{**profile, "height": h, "width": w, "count": bands,
                              "blockysize": BLOCK, "blockxsize": BLOCK}))
            self.paths.append(path)
            self.levels.append(Level(ds, bands, dtype, self._feeder(k + 1)))

    def _feeder(self, level: int) -> Callable[[int, int, np.ndarray], None]:
        return lambda row, col, data: self.add(level, row, col, data)

    def add(self, level: int, row: int, col: int, data: np.ndarray) -> None:
        """Halve `data`, at (row, col) of level `level - 1` (0: full resolution), into
        level `level`, if there is one."""
        if level > len(self.levels):
            return
        data = data if data.ndim == 3 else data[np.newaxis]
        self.levels[level - 1].put(row // 2, col // 2, halve(data, self.method, self.nodata))

    def block_copied(self, row: int, col: int, block: np.ndarray) -> None:
        self.add(1, row, col, block)


@dataclass(frozen=True, eq=False)
class COGSink(GeoTIFFSink):
    """A GeoTIFF sink whose output is a COG with internal overviews (module docstring)."""

    rows_in_order: ClassVar[bool] = True  # the overviews are built from rows of blocks

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ParameterError(f"{self.path}: overviews must be one of {', '.join(METHODS)}, "
                                 f"not {self.method!r}")

    @property
    def method(self) -> str:
        """How overviews are resampled: the image's `meta["overviews"]`, else by dtype."""
        return self.meta.get("overviews", default_method(self.dtype))

    @property
    def cache_bytes(self) -> int:  # type: ignore[override]
        """GDAL's cache, plus a strip of every level and the temporaries of halving one."""
        bands = self.shape[0] if len(self.shape) == 3 else 1
        strips = sum(min(BLOCK, h) * w for h, w in level_shapes(*self.shape[-2:]))
        return super().cache_bytes + bands * (strips * self.dtype.itemsize
                                              + 6 * BLOCK * SPAN * 8)

    def copy_rows(self, ready: Callable[[int], bool]) -> str:
        """Copy the staged tiles into a full-resolution TIFF and its overview levels, then
        assemble them into the COG; "" if `ready` said to stop."""
        full = os.path.join(self.staging, "full.tif")
        profile = {**self._profile(), "blockysize": BLOCK, "blockxsize": BLOCK}
        nodata = profile["nodata"]
        with ExitStack() as stack:
            pyramid = Pyramid(stack, self.staging, profile["count"], *self.shape[-2:],
                              self.dtype, _plain(profile), self.method, nodata)
            if not self.copy_blocks(ready, full, profile, pyramid.block_copied):
                return ""
        target = os.path.join(self.staging, os.path.basename(self.path))
        assemble(full, pyramid.paths, target, profile["num_threads"])
        fsync(target)
        return target


def _plain(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile of an overview level's TIFF: no georeference (the VRT gives the COG its)."""
    return {k: v for k, v in profile.items() if k not in ("crs", "transform")}


def assemble(full: str, overviews: list[str], target: str, threads: str) -> None:
    """Write the COG at `target` from the full-resolution TIFF and its overview TIFFs."""
    vrt = full[:-4] + ".vrt"
    rasterio.shutil.copy(full, vrt, driver="VRT")
    tree = ET.parse(vrt)
    for band in tree.getroot().iter("VRTRasterBand"):
        for path in overviews:
            overview = ET.SubElement(band, "Overview")
            ET.SubElement(overview, "SourceFilename", relativeToVRT="0").text = path
            ET.SubElement(overview, "SourceBand").text = band.get("band")
    tree.write(vrt)
    options = {"compress": CREATION_OPTIONS["compress"], "level": CREATION_OPTIONS["zstd_level"],
               "bigtiff": CREATION_OPTIONS["bigtiff"], "blocksize": BLOCK,
               "overviews": "FORCE_USE_EXISTING" if overviews else "NONE",
               "num_threads": threads}
    rasterio.shutil.copy(vrt, target, driver="COG", **{k.upper(): v for k, v in options.items()})
    for path in (vrt, full, *overviews):
        os.remove(path)

