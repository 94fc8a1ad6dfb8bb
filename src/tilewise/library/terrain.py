"""Terrain derivatives of a DEM: slope, aspect, hillshade.

Gradients are central differences (`numpy.gradient`) over pixel sizes in metres, taken from the
georeference: for a geographic CRS, degrees become metres at the image's central latitude (an
approximation that is good for tiles of a few degrees). Nodata pixels become NaN (nodata 0 for
the 8-bit hillshade), and so do their neighbours.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from ..errors import ParameterError
from ..graph import Image
from ..ops import Op
from .kernels import as_float, nodata_of, number
from .registry import builtin

#: Metres per degree of latitude (and of longitude at the equator), WGS 84 mean.
METRES_PER_DEGREE = 111_320.0


def pixel_size(image: Image) -> tuple[float, float]:
    """(dy, dx) in metres, signed as the transform: dy is negative for north-up images."""
    transform = image.meta.get("transform")
    if transform is None:
        return -1.0, 1.0
    dy, dx = transform.e, transform.a
    crs = image.meta.get("crs")
    if crs is not None and crs.is_geographic:
        lat = transform.f + dy * image.shape[0] / 2
        return dy * METRES_PER_DEGREE, dx * METRES_PER_DEGREE * math.cos(math.radians(lat))
    return dy, dx


def _gradients(a, nodata, res, z_factor):
    z = as_float(a, nodata, "float64") * z_factor
    gy, gx = np.gradient(z, *res)
    # With a negative dy, gy is the rise towards north; gx towards east.
    return gy, gx


def _slope(a, *, nodata, res, z_factor, units):
    gy, gx = _gradients(a, nodata, res, z_factor)
    rise = np.hypot(gx, gy)
    return 100 * rise if units == "percent" else np.degrees(np.arctan(rise))


def _aspect(a, *, nodata, res, z_factor):
    gy, gx = _gradients(a, nodata, res, z_factor)
    # In float32, as declared: an angle a hair below 360 in float64 would round to 360.0.
    out = (np.degrees(np.arctan2(-gx, -gy)) % 360).astype(np.float32)
    out[out == 360] = 0
    return np.where((gx == 0) & (gy == 0), np.float32(-1), out)


def _hillshade(a, *, nodata, res, z_factor, azimuth, altitude):
    gy, gx = _gradients(a, nodata, res, z_factor)
    steep = np.arctan(np.hypot(gx, gy))
    facing = np.arctan2(-gx, -gy)
    sun, alt = math.radians(azimuth), math.radians(altitude)
    light = math.sin(alt) * np.cos(steep) + math.cos(alt) * np.sin(steep) * np.cos(sun - facing)
    shade = 1 + np.rint(254 * np.clip(light, 0, 1))
    return np.where(np.isnan(shade), 0, shade)


def _terrain(func, dem: Image, name: str, z_factor: float, dtype: str, nodata: float,
             **params) -> Image:
    if dem.axes != ("y", "x"):
        raise ParameterError(f"op {name!r} needs a DEM with axes ('y', 'x'), not {dem.axes}")
    if min(dem.shape) < 2:
        raise ParameterError(f"op {name!r} needs a DEM at least 2 x 2 pixels, not {dem.shape}")
    return Op(func, margin=1, dtype=dtype, meta={"nodata": nodata}, name=name)(
        dem, nodata=nodata_of(dem), res=pixel_size(dem),
        z_factor=number(z_factor, "z_factor", name), **params)


@builtin(halo="1")
def slope(dem: Image, *, z_factor: float = 1.0,
          units: Literal["degrees", "percent"] = "degrees") -> Image:
    """Steepest slope, in degrees or percent; float32, NaN at nodata."""
    if units not in ("degrees", "percent"):
        raise ParameterError(f"units of op 'slope' must be 'degrees' or 'percent', not {units!r}")
    return _terrain(_slope, dem, "slope", z_factor, "float32", float("nan"), units=units)


@builtin(halo="1")
def aspect(dem: Image, *, z_factor: float = 1.0) -> Image:
    """Direction the slope faces, degrees clockwise from north; -1 where flat; float32."""
    return _terrain(_aspect, dem, "aspect", z_factor, "float32", float("nan"))


@builtin(halo="1")
def hillshade(dem: Image, *, azimuth: float = 315.0, altitude: float = 45.0,
              z_factor: float = 1.0) -> Image:
    """Shaded relief lit from azimuth/altitude degrees; uint8 1-255, 0 at nodata."""
    return _terrain(_hillshade, dem, "hillshade", z_factor, "uint8", 0.0,
                    azimuth=number(azimuth, "azimuth", "hillshade"),
                    altitude=number(altitude, "altitude", "hillshade"))
