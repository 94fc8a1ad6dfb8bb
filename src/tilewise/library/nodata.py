"""Nodata: where an image holds data, and holes filled from their surroundings (GDAL's
`GDALFillNodata`, through `rasterio.fill.fillnodata`), as in CNES's mask, fill, smooth chain.

Why the fill's halo is `floor(max_search_distance) + smoothing_iterations`: for each column
GDAL keeps the nearest valid pixel above and below a hole pixel, no more than
`max_search_distance` rows away, then steps left and right by at most
`floor(max_search_distance)` columns taking the nearest of those per quadrant; a hole pixel's
value therefore depends only on the square of that radius around it, and the square is whole
in a tile grown by `floor(max_search_distance)`. Each smoothing pass is a 3 x 3 mean over
filled pixels, which reads one pixel further (GDAL also leaves the window's first and last rows
unsmoothed, a wrong row that moves one pixel inwards per pass). A smaller halo is not exact:
`docs/nodata.md` counts the wrong pixels.
"""

from __future__ import annotations

import math

import numpy as np
from rasterio.fill import fillnodata as gdal_fillnodata

from ..axes import count
from ..errors import ParameterError
from ..graph import Image
from ..ops import Op
from .kernels import nodata_of, number
from .registry import builtin

#: GDAL's mask convention (`rasterio`'s `read_masks`, `fillnodata(mask=...)`).
VALID, NODATA = 255, 0


def valid(a: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where `a` holds data: neither NaN nor the image's nodata value."""
    ok = ~np.isnan(a) if a.dtype.kind == "f" else np.ones(a.shape, bool)
    if nodata is not None and not math.isnan(nodata):
        ok &= a != nodata
    return ok


def _mask(a, *, nodata):
    return np.where(valid(a, nodata), VALID, NODATA)


@builtin(halo="0")
def nodata_mask(image: Image) -> Image:
    """Where the image holds data: uint8 255, and 0 at NaN or the nodata value (GDAL's masks)."""
    return Op(_mask, dtype="uint8", meta={"nodata": None}, name="nodata_mask")(
        image, nodata=nodata_of(image))


def fill_margin(max_search_distance: float, smoothing_iterations: int) -> int:
    """The halo that makes `fillnodata` on tiles equal it on the whole image."""
    return math.floor(max_search_distance) + smoothing_iterations


def _fill(a, *, nodata, max_search_distance, smoothing_iterations, planes):
    ok = valid(a, nodata)
    out = np.array(a)
    # GDAL fills 2-d bands: move y and x last and fill each plane of the other axes.
    data, good = np.moveaxis(out, planes, (-2, -1)), np.moveaxis(ok, planes, (-2, -1))
    for index in np.ndindex(data.shape[:-2]):
        if good[index].all():
            continue
        filled = gdal_fillnodata(np.array(data[index]), good[index].astype("uint8"),
                                 max_search_distance=max_search_distance,
                                 smoothing_iterations=smoothing_iterations)
        # GDAL rewrites whole rows through float32, which rounds float64 and large integers.
        data[index] = np.where(good[index], data[index], filled)
    return out


@builtin(halo="floor(max_search_distance) + smoothing_iterations, on y and x")
def fillnodata(image: Image, *, max_search_distance: float = 100.0,
               smoothing_iterations: int = 0) -> Image:
    """Holes (NaN, nodata) filled by GDAL's inverse-distance search up to max_search_distance
    pixels, then smoothed; pixels farther from data keep the nodata value; same dtype."""
    distance = number(max_search_distance, "max_search_distance", "fillnodata", positive=True)
    passes = count(smoothing_iterations, "smoothing_iterations of op 'fillnodata'",
                   ParameterError)
    if "y" not in image.axes or "x" not in image.axes:
        raise ParameterError(f"op 'fillnodata' needs an image with axes 'y' and 'x', "
                             f"not {image.axes}")
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "iu" and dtype not in (np.float32, np.float64):
        raise ParameterError(f"op 'fillnodata' fills integer, float32 or float64 images, "
                             f"not {dtype}")
    margin = fill_margin(distance, passes)
    planes = (image.axes.index("y"), image.axes.index("x"))
    return Op(_fill, margin={"y": margin, "x": margin}, name="fillnodata")(
        image, nodata=nodata_of(image), max_search_distance=distance,
        smoothing_iterations=passes, planes=planes)
