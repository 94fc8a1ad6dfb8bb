"""Horizon-based relief visualisations of the Relief Visualization Toolbox (RVT, `rvt-py`):
sky-view factor, anisotropic sky-view factor, openness and local dominance.

Each op gives RVT's numbers for the whole array (`rvt.vis`, see docs/horizon.md): the same
search points, the same treatment of image edges (RVT pads the whole array, mirrored for the
sky-view factor and openness, repeating the edge for local dominance; a tile is padded the same
way where it touches the image edge and reads real pixels elsewhere) and of NaN (a NaN pixel is
no horizon to any other pixel; its own output is NaN). A tile computes only the pixels it keeps,
in compiled loops (`horizon_kernels`) that release the GIL, so threads scale.

Heights are divided by the pixel size, as in RVT, so the DEM needs square pixels in metres: a DEM
in degrees is refused with the fix, `warp` it to a projected CRS first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from rasterio.crs import CRS

from ..errors import ParameterError
from ..graph import Image, TileInfo
from ..ops import Op
from .kernels import as_float, check_dem, exaggeration, nodata_of, number
from .registry import builtin
from .terrain import pixel_size

#: RVT's noise levels: the share of the search radius, in percent, left out nearest the pixel.
NOISE_PERCENT = (0.0, 10.0, 20.0, 40.0)
#: RVT's levels of anisotropy, 1 (low) and 2 (high): polynomial degree and least weight.
ANISOTROPY = {1: (4, 0.4), 2: (8, 0.1)}
#: Most search directions accepted: RVT keys directions by their angle rounded to 0.1 degree.
MAX_DIRECTIONS = 360
#: Bytes of one band of directional values (see `bands`).
BAND_BYTES = 1 << 20


def compiled() -> ModuleType:
    """The compiled kernels, compiled (or loaded from numba's cache) on first use."""
    from . import horizon_kernels

    return horizon_kernels


# ---- parameters ---------------------------------------------------------------------------


def metres_per_pixel(dem: Image, name: str) -> float:
    """The DEM's pixel size, by which RVT divides heights so that slopes are in metres per
    metre: square pixels of a projected CRS (1 without a georeference)."""
    crs = dem.meta.get("crs")
    if crs is not None and CRS.from_user_input(crs).is_geographic:
        raise ParameterError(
            f"op {name!r} needs a DEM whose pixels are in metres, but its CRS ({crs}) is in "
            "degrees; reproject it first, e.g. tilewise.library.warp(dem, crs='EPSG:32611', "
            "resolution=90)")
    dy, dx = pixel_size(dem)
    if not math.isclose(abs(dy), abs(dx), rel_tol=1e-9):
        raise ParameterError(
            f"op {name!r} needs square pixels, not {abs(dx)} x {abs(dy)}; resample the DEM "
            "first, e.g. tilewise.library.warp(dem, crs=<its CRS>, resolution=<one size>)")
    return float(abs(dx))


def integer(value: Any, key: str, name: str, least: int, most: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < least or (most is not None and value > most):
        span = f"from {least} to {most}" if most is not None else f"at least {least}"
        raise ParameterError(f"{key} of op {name!r} must be an integer {span}, not {value!r}")
    return int(value)


def kept(tile: TileInfo) -> tuple[slice, slice]:
    """The pixels of the input window that the tile keeps."""
    return tuple(slice(s - w, e - w) for s, e, w in
                 zip(tile.region.start, tile.region.stop, tile.window.start, strict=True))


def bands(rows: int, cols: int, directions: int
          ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Bands of rows small enough that one value per direction and pixel stays in cache:
    (first row, stop row, an uninitialised (directions, rows, cols) float64 buffer)."""
    size = max(1, BAND_BYTES // (8 * directions * max(cols, 1)))
    buffer = np.empty((directions, size, cols))
    for start in range(0, rows, size):
        stop = min(start + size, rows)
        yield start, stop, (buffer if stop - start == size
                            else np.empty((directions, stop - start, cols)))


def returned(tile: TileInfo, out: np.ndarray, heights: np.ndarray,
             dtype: Any = np.float32) -> np.ndarray:
    """A window-shaped result holding `out` where the tile keeps it, NaN where the DEM is NaN
    (and elsewhere, which tilewise drops)."""
    result = np.full(tile.window.shape, np.nan, dtype)
    inner = kept(tile)
    result[inner] = np.where(np.isnan(heights[inner]), np.nan, out)
    return result


# ---- search geometry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Search:
    """The pixels a horizon search visits, direction after direction: direction k holds the
    points `starts[k]:starts[k + 1]`, each `dy` rows and `dx` columns back (RVT's roll), at
    1 / `inv_distance` pixels. `angles`: RVT's keys of the directions, degrees counterclockwise
    from north rounded to 0.1."""

    dy: np.ndarray
    dx: np.ndarray
    inv_distance: np.ndarray
    starts: np.ndarray
    angles: np.ndarray

    @property
    def directions(self) -> int:
        return len(self.starts) - 1

    def direction(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        part = slice(self.starts[k], self.starts[k + 1])
        return self.dy[part], self.dx[part], self.inv_distance[part]


@functools.lru_cache(maxsize=64)
def search(directions: int, radius: float, min_radius: float) -> Search:
    """RVT's horizon search (`horizon_shift_vector`): along each direction, radii from
    `min_radius` to `radius` in steps of a third of a pixel, rounded to pixels, each pixel once."""
    turns = 2 * np.pi / directions * np.arange(directions)
    radii = np.arange((radius - min_radius) * 3 + 1) / 3 + min_radius
    rows = np.round(np.outer(np.cos(turns), radii))
    cols = np.round(np.outer(np.sin(turns), radii))
    points = [np.unique(np.stack([r, c], axis=1), axis=0).astype(np.int64)
              for r, c in zip(rows, cols, strict=True)]
    counts = [len(p) for p in points]
    both = np.concatenate(points)
    return Search(np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1]),
                  1.0 / np.sqrt(np.sum(both.astype(np.float64) ** 2, axis=1)),
                  np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                  np.round(np.degrees(turns), 1))


def least_radius(radius: int, noise: int) -> int:
    """RVT's first search radius for a noise level: a share of the radius, at least 1."""
    return int(max(np.round(radius * NOISE_PERCENT[noise] * 0.01, decimals=0), 1))


def anisotropy_weights(directions: int, azimuth: float, level: int) -> np.ndarray:
    """RVT's weight of each direction for the anisotropic sky-view factor (its directions and
    `azimuth` both counterclockwise from north)."""
    degree, least = ANISOTROPY[level]
    turns = np.arange(directions) * (2 * np.pi / directions)
    return (1 - least) * np.cos((turns - np.deg2rad(azimuth)) / 2) ** degree + least


# ---- sky-view factor, anisotropic sky-view factor, openness -------------------------------


def _horizon_tile(a, *, tile, nodata, ve_factor, resolution, negative, measure, directions,
                  radius, noise, azimuth, level):
    k = compiled()
    heights = as_float(a, nodata, "float32")
    if negative:
        heights = -heights
    heights = heights * ve_factor / resolution
    padded = np.pad(heights, radius, mode="reflect")
    rows, cols = kept(tile)
    top, left = radius + rows.start, radius + cols.start
    s = search(directions, radius, least_radius(radius, noise))
    out = np.empty((rows.stop - rows.start, cols.stop - cols.start))
    if measure == "openness":
        for start, stop, best in bands(*out.shape, directions):
            best[:] = -1000.0
            k.horizons(padded, top + start, left, s.dy, s.dx, s.inv_distance, s.starts, best)
            k.sum_directions(np.arctan(best, out=best), out[start:stop])
        out = np.rad2deg(0.5 * np.pi - out / directions)
    else:
        weights = (np.ones(directions) if measure == "svf"
                   else anisotropy_weights(directions, azimuth, level))
        k.sky_view(padded, top, left, s.dy, s.dx, s.inv_distance, s.starts, weights,
                   np.empty(out.shape[1]), out)
        out /= directions if measure == "svf" else np.sum(weights)
    return returned(tile, out, heights)


def _horizon(dem: Image, name: str, measure: str, directions: int, radius: int, noise: int,
             ve_factor: float, azimuth: float = 315.0, level: int = 1,
             negative: bool = False) -> Image:
    check_dem(dem, name)
    params = {
        "directions": integer(directions, "directions", name, 1, MAX_DIRECTIONS),
        "radius": integer(radius, "radius", name, 1),
        "noise": integer(noise, "noise", name, 0, len(NOISE_PERCENT) - 1),
        "ve_factor": exaggeration(ve_factor, name),
        "azimuth": number(azimuth, "azimuth", name),
        "level": integer(level, "level", name, 1, len(ANISOTROPY)),
    }
    if not isinstance(negative, bool):
        raise ParameterError(f"negative of op {name!r} must be true or false, not {negative!r}")
    resolution = metres_per_pixel(dem, name)
    compiled()
    return Op(_horizon_tile, margin=params["radius"], dtype="float32",
              meta={"nodata": float("nan")}, name=name)(
        dem, nodata=nodata_of(dem), resolution=resolution, negative=negative, measure=measure,
        **params)


@builtin(halo="radius")
def sky_view_factor(dem: Image, *, directions: int = 16, radius: int = 10, noise: int = 0,
                    ve_factor: float = 1.0) -> Image:
    """Sky-view factor: the share of the sky a pixel sees, 0 to 1, from the horizon in
    `directions` directions up to `radius` pixels (RVT's `sky_view_factor`); float32, NaN at
    nodata.

    RVT's names: directions `svf_n_dir`, radius `svf_r_max`, noise `svf_noise` (0 to 3: leave
    out the nearest 0, 10, 20 or 40 % of the radius), ve_factor `ve_factor`.
    """
    return _horizon(dem, "sky_view_factor", "svf", directions, radius, noise, ve_factor)


@builtin(halo="radius")
def anisotropic_sky_view_factor(dem: Image, *, directions: int = 16, radius: int = 10,
                                noise: int = 0, azimuth: float = 315.0, level: int = 1,
                                ve_factor: float = 1.0) -> Image:
    """Anisotropic sky-view factor: the sky-view factor with directions weighted towards
    `azimuth` (RVT's, counterclockwise from north), more so at `level` 2 than 1; float32, NaN
    at nodata.

    RVT's names: as `sky_view_factor`, azimuth `asvf_dir`, level `asvf_level`.
    """
    return _horizon(dem, "anisotropic_sky_view_factor", "asvf", directions, radius, noise,
                    ve_factor, azimuth=azimuth, level=level)


@builtin(halo="radius")
def openness(dem: Image, *, directions: int = 16, radius: int = 10, noise: int = 0,
             negative: bool = False, ve_factor: float = 1.0) -> Image:
    """Openness: 90 degrees less the mean elevation angle of the horizon (RVT's
    `sky_view_factor(compute_opns=True)`); `negative` gives the openness of the DEM upside down
    (RVT's negative openness); degrees, float32, NaN at nodata.

    RVT's names: as `sky_view_factor`; negative is RVT's `neg_opns` (`pos_opns` otherwise).
    """
    return _horizon(dem, "openness", "openness", directions, radius, noise, ve_factor,
                    negative=negative)


# ---- local dominance ----------------------------------------------------------------------


@dataclass(frozen=True)
class Shifts:
    """RVT's local-dominance shifts, angle after angle, distance after distance: the pixel
    `dy` rows and `dx` columns back, weighted by `factor / distance`; `norma` the weight of
    the observer height alone; `reach` the farthest shift in rows or columns."""

    dy: np.ndarray
    dx: np.ndarray
    distance: np.ndarray
    factor: np.ndarray
    norma: float
    reach: int


@functools.lru_cache(maxsize=64)
def shifts(min_radius: int, max_radius: int, step: int, angular_resolution: float,
           observer_height: float) -> Shifts:
    """RVT's rings of local dominance: radii from `min_radius` by `step` up to `max_radius`,
    at angles every `angular_resolution` degrees, each ring weighted by its area."""
    n_rings = int((max_radius - min_radius) / step + 1)
    radii = np.arange(n_rings * step, step=step) + min_radius
    n_angles = int(359 / angular_resolution + 1)
    angles = np.deg2rad(np.arange(n_angles * angular_resolution, step=angular_resolution))
    norma = float(np.sum((observer_height / radii) * (2 * radii + step)) * n_angles)
    distance = np.outer(np.ones(n_angles), radii).ravel()
    dy = np.round(np.outer(np.sin(angles), radii).ravel()).astype(np.int64)
    dx = np.round(np.outer(np.cos(angles), radii).ravel()).astype(np.int64)
    reach = int(max(np.abs(dy).max(), np.abs(dx).max()))
    return Shifts(dy, dx, distance, 2 * distance + step, norma, reach)


def _dominance_tile(a, *, tile, nodata, ve_factor, min_radius, max_radius, step,
                    angular_resolution, observer_height):
    s = shifts(min_radius, max_radius, step, angular_resolution, observer_height)
    heights = as_float(a, nodata, "float32")
    padded = np.pad(heights * ve_factor, s.reach, mode="edge")
    rows, cols = kept(tile)
    out = np.empty((rows.stop - rows.start, cols.stop - cols.start), np.float32)
    compiled().dominance(padded, s.reach + rows.start, s.reach + cols.start, s.dy, s.dx,
                         s.distance, s.factor, np.float32(observer_height),
                         np.empty(out.shape[1], np.float32), out)
    return returned(tile, out.astype(np.float64) / s.norma, heights)


@builtin(halo="the farthest shift, max_radius at most")
def local_dominance(dem: Image, *, min_radius: int = 10, max_radius: int = 20, step: int = 1,
                    angular_resolution: float = 15.0, observer_height: float = 1.7,
                    ve_factor: float = 1.0) -> Image:
    """Local dominance: how far an observer `observer_height` metres above a pixel looks down
    on the rings from `min_radius` to `max_radius` pixels around it (RVT's
    `local_dominance`); float32, NaN at nodata.

    RVT's names: min_radius `min_rad`, max_radius `max_rad`, step `rad_inc`,
    angular_resolution `angular_res` (degrees), observer_height `observer_height`,
    ve_factor `ve_factor`. The pixel size does not enter: radii are in pixels, and the result
    is a ratio of heights.
    """
    name = "local_dominance"
    check_dem(dem, name)
    low = integer(min_radius, "min_radius", name, 1)
    high = integer(max_radius, "max_radius", name, low)
    params = {
        "min_radius": low, "max_radius": high, "step": integer(step, "step", name, 1),
        "angular_resolution": number(angular_resolution, "angular_resolution", name, True),
        "observer_height": number(observer_height, "observer_height", name, True),
        "ve_factor": exaggeration(ve_factor, name),
    }
    if params["angular_resolution"] > 360:
        raise ParameterError(f"angular_resolution of op {name!r} must be at most 360 degrees, "
                             f"not {angular_resolution!r}")
    reach = shifts(*(params[k] for k in ("min_radius", "max_radius", "step",
                                          "angular_resolution", "observer_height"))).reach
    compiled()
    return Op(_dominance_tile, margin=reach, dtype="float32", meta={"nodata": float("nan")},
              name=name)(dem, nodata=nodata_of(dem), **params)
