"""xarray DataArrays as sources, and the georeference convention both ways.

Dimensions become axes, rioxarray's `band` becoming tilewise's channel axis `c` (and back, in
`Image.to_xarray`). The georeference follows the CF grid-mapping convention rioxarray reads
and writes: a scalar coordinate (`spatial_ref`) whose attributes hold the CRS as WKT
(`crs_wkt`, `spatial_ref`) and GDAL's geotransform (`GeoTransform`); without it, a regular
1-D `x` and `y` coordinate of pixel centres gives the transform. `_FillValue` is the nodata
value, string band labels are band names. A dask-backed DataArray stays lazy (a `DaskSource`);
any other is read into memory as NumPy.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..axes import parse_axes
from .base import Source
from .dask_array import DaskSource, is_dask_array
from .memory import ArraySource

#: rioxarray's name of the band dimension.
BAND = "band"
#: The coordinate that holds the grid mapping, by rioxarray's default.
GRID_MAPPING = "spatial_ref"


def is_dataarray(obj: object) -> bool:
    """Whether `obj` is an xarray DataArray (without importing xarray if nobody has)."""
    module = sys.modules.get("xarray")
    return module is not None and isinstance(obj, module.DataArray)


def dims_to_axes(dims: Any) -> list[str]:
    return ["c" if d == BAND else str(d) for d in dims]


def axes_to_dims(axes: Any) -> list[str]:
    return [BAND if a == "c" else a for a in axes]


def open_dataarray(arr: Any, axes: str | tuple[str, ...] | None) -> Source:
    names = parse_axes(dims_to_axes(arr.dims) if axes is None else axes, arr.ndim,
                       f"the DataArray {arr.name!r}")
    meta = georeference(arr)
    if is_dask_array(arr.data):
        return DaskSource.of(arr.data, names, meta)
    data = np.asarray(arr.data)
    return ArraySource(data.shape, data.dtype, names, data.shape, meta, None, data)


def georeference(arr: Any) -> dict[str, Any]:
    """The metadata an xarray DataArray carries: CRS, transform, nodata, band names."""
    from rasterio.crs import CRS

    name = arr.attrs.get("grid_mapping", arr.encoding.get("grid_mapping", GRID_MAPPING))
    ref = dict(arr.coords[name].attrs) if name in arr.coords else {}
    meta: dict[str, Any] = {}
    wkt = ref.get("crs_wkt") or ref.get("spatial_ref") or arr.attrs.get("crs")
    if wkt:
        meta["crs"] = CRS.from_user_input(wkt)
    transform = _transform(arr, ref)
    if transform is not None:
        meta["transform"] = transform
    nodata = arr.attrs.get("_FillValue", arr.encoding.get("_FillValue"))
    if nodata is not None:
        meta["nodata"] = nodata.item() if hasattr(nodata, "item") else nodata
    if BAND in arr.coords and arr.coords[BAND].dtype.kind in "UO":
        meta["band_names"] = tuple(str(b) for b in arr.coords[BAND].values)
    return meta


def _transform(arr: Any, ref: dict[str, Any]) -> Any:
    """The affine transform: GDAL's `GeoTransform`, moved to where the `x`/`y` coordinates
    start (a slice of an array keeps its attribute); else from the coordinates alone."""
    from affine import Affine

    given = (Affine.from_gdal(*(float(v) for v in str(ref["GeoTransform"]).split()))
             if ref.get("GeoTransform") else None)
    centres = _regular_centres(arr)
    if centres is None:
        return given
    (x0, dx), (y0, dy) = centres
    if given is not None and given.b == given.d == 0 and np.isclose(dx, given.a) \
            and np.isclose(dy, given.e):
        col, row = (x0 - given.c) / given.a - 0.5, (y0 - given.f) / given.e - 0.5
        if np.isclose(col, round(col)) and np.isclose(row, round(row)):
            return given @ Affine.translation(round(col), round(row)) if round(col) or \
                round(row) else given
    return Affine(dx, 0.0, x0 - dx / 2, 0.0, dy, y0 - dy / 2)


def _regular_centres(arr: Any) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The first pixel centre and the spacing of regular 1-D `x` and `y` coordinates."""
    if not all(d in arr.dims and d in arr.coords for d in ("x", "y")):
        return None
    out = []
    for d in ("x", "y"):
        values = np.asarray(arr.coords[d].values, float)
        if values.ndim != 1 or len(values) < 2:
            return None
        steps = np.diff(values)
        if not np.allclose(steps, steps[0]):
            return None
        out.append((float(values[0]), float(steps[0])))
    return out[0], out[1]


def grid_mapping(meta: dict[str, Any]) -> dict[str, Any]:
    """The attributes of the `spatial_ref` coordinate for an image's CRS and transform."""
    from rasterio.crs import CRS

    attrs: dict[str, Any] = {}
    if meta.get("crs") is not None:
        wkt = CRS.from_user_input(meta["crs"]).to_wkt()
        attrs.update(crs_wkt=wkt, spatial_ref=wkt)
    if meta.get("transform") is not None:
        attrs["GeoTransform"] = " ".join(repr(float(v)) for v in meta["transform"].to_gdal())
    return attrs
