"""Terrain visualisations of a DEM with the values of the Relief Visualization Toolbox (RVT,
`rvt.vis`), exact under tiling: slope, aspect, hillshade, multi-direction hillshade, and the
relief models SLRM, MSRM and MSTP. See docs/relief.md.

Each op keeps RVT's parameters and defaults under names of its own (each docstring gives the
RVT name) and RVT's rules: the DEM is converted to float32 and multiplied by the vertical
exaggeration `ve_factor` in float32, nodata becomes NaN and stays NaN in the result, a NaN
neighbour or one beyond the image edge counts as the centre pixel in the 3 x 3 ops, and
windows beyond the edge see the DEM padded as RVT pads it. Inputs are never modified (RVT's
`hillshade` writes NaN into its caller's array). Results are float32.

Pixel sizes come from the transform, in metres: on a geographic CRS (degrees) the 3 x 3 ops
take each row's own metres per degree, from the CRS's ellipsoid; the ops whose parameters are
metres or pixels at one scale (`msrm`, the horizon ops) refuse degrees and name `warp`.
"""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np
import pyproj

from ..errors import ParameterError
from ..graph import Image
from ..ops import Op
from ..regions import Box
from .kernels import as_float, check_dem, exaggeration, nodata_of, number
from .registry import builtin

#: Azimuths (degrees) of the red, green and blue bands of RVT's RGB multi-direction hillshade.
RGB_AZIMUTHS = (315.0, 22.5, 90.0)


@dataclass(frozen=True)
class PixelSizes:
    """Signed pixel height and width of every row, in metres: constant on a projected grid;
    on a geographic one, the row's own geodesic lengths of its pixel (on `ellipsoid`, the
    CRS's semi-major axis and flattening), which shrink with the cosine of the latitude."""

    dy: float
    dx: float
    top: float = 0.0
    ellipsoid: tuple[float, float] | None = None

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """RVT's resolution_y (positive when row numbers grow southwards) and resolution_x
        (positive when columns grow eastwards) of rows [start, stop)."""
        n = stop - start
        if self.ellipsoid is None:
            return np.full(n, -self.dy), np.full(n, self.dx)
        geod = pyproj.Geod(a=self.ellipsoid[0], f=self.ellipsoid[1])
        lat = self.top + (np.arange(start, stop) + 0.5) * self.dy
        zero = np.zeros(n)
        height = geod.inv(zero, lat - self.dy / 2, zero, lat + self.dy / 2)[2]
        width = geod.inv(zero, lat, np.full(n, abs(self.dx)), lat)[2]
        return -math.copysign(1, self.dy) * height, math.copysign(1, self.dx) * width


def _grid(image: Image) -> tuple[float, float, float, pyproj.Geod | None]:
    transform = image.meta.get("transform")
    if transform is None:
        return -1.0, 1.0, 0.0, None
    if transform.b != 0 or transform.d != 0:
        raise ParameterError(
            f"the DEM's transform is rotated or sheared ({tuple(transform)[:6]}); terrain ops "
            "need rows along parallels: warp it first (tilewise.library.warp)")
    crs = image.meta.get("crs")
    # Any form of CRS (rasterio's, pyproj's, "EPSG:4326", WKT) through pyproj.
    crs = None if crs is None else pyproj.CRS.from_user_input(crs)
    geod = crs.get_geod() if crs is not None and crs.is_geographic else None
    return transform.e, transform.a, transform.f, geod


def pixel_sizes(image: Image) -> PixelSizes:
    """The per-row pixel sizes of `image` in metres (1 x 1 without a transform)."""
    dy, dx, top, geod = _grid(image)
    return PixelSizes(dy, dx, top, None if geod is None else (geod.a, geod.f))


def pixel_size(image: Image) -> tuple[float, float]:
    """(dy, dx) in metres, signed as the transform (dy is negative for north-up images); a
    geographic CRS is refused: its metres per degree of longitude change from row to row."""
    dy, dx, _, geod = _grid(image)
    if geod is not None:
        crs = image.meta["crs"]
        raise ParameterError(
            f"the DEM's CRS {crs} is geographic (pixels of {abs(dx):g} x {abs(dy):g} degrees), "
            "but this op needs one pixel size in metres: warp the DEM to a projected CRS "
            "first, e.g. tilewise.library.warp(dem, crs='EPSG:326NN') for UTM zone NN")
    return dy, dx


def gradient_kernels() -> ModuleType:
    """The 3 x 3 ops' compiled kernel, compiled (or loaded from numba's cache) on first use:
    when an op is built, before a run measures its memory on a probe tile (compiling there
    was measured charging several times the pipeline's real memory per pixel)."""
    from . import terrain_kernels

    return terrain_kernels


def box_kernels() -> ModuleType:
    """The relief models' compiled box sums, loaded as `gradient_kernels` is."""
    from . import box_sums

    return box_sums


def _elevations(a: np.ndarray, nodata: float | None, ve_factor: float) -> np.ndarray:
    """RVT's DEM: float32, nodata as NaN, times the exaggeration in float32."""
    z = as_float(a, nodata, "float32")
    z *= np.float32(ve_factor)
    return z


def _read_only_elevations(a: np.ndarray, nodata: float | None, ve_factor: float
                          ) -> np.ndarray:
    """RVT's elevations for a kernel that only reads them: the window itself when it is that
    already (a copy of a tile costs a pass and a page fault every 4 KiB)."""
    if a.dtype == np.float32 and (nodata is None or np.isnan(nodata)) and ve_factor == 1:
        return np.ascontiguousarray(a)
    return _elevations(a, nodata, ve_factor)


def _region(tile) -> Box:
    """The rows and columns of the tile's region (an op adding bands has a 3-d region)."""
    return Box(tile.region.start[-2:], tile.region.stop[-2:])


def _window_result(tile, bands: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """A float32 result of the window's shape (`bands` before its rows and columns), and the
    view of it that the tile keeps, for the relief models, which compute their region only.
    tilewise reads nothing else, so the rest is never touched: it is an anonymous map, whose
    untouched pages are never resident (nor counted by the memory probe), since with a halo
    of thousands of pixels the window can be many times the region."""
    shape = (*bands, *tile.window.shape)
    size = max(1, math.prod(shape)) * 4
    out = np.frombuffer(mmap.mmap(-1, size), np.float32, math.prod(shape)).reshape(shape)
    return out, out[(..., *_region(tile).within(tile.window))]


def _padded(a, tile, nodata, ve_factor, margin: int, mode: str):
    """The DEM window as RVT's float32 elevations (the window itself when it is that
    already: the kernels only read it), how the region grown by `margin` reads it (padded
    beyond the image as RVT pads), and whether it has NaN."""
    z = _read_only_elevations(a, nodata, ve_factor)
    # NaN if any is (a minimum propagates NaN): no mask the size of the window.
    return z, box_kernels().Padded.of(tile, margin, mode), bool(np.isnan(z.min()))


# ---- op functions: run on each tile's window ----------------------------------------------


def _gradient(a, *, tile, nodata, sizes, ve_factor, kind, azimuths, elevation, stacked,
              units=None):
    z = _read_only_elevations(a, nodata, ve_factor)
    res_y, res_x = sizes.rows(tile.window.start[0], tile.window.stop[0])
    kernels = gradient_kernels()
    planes = 2 if kind == kernels.ASPECT else max(len(azimuths), 1)
    out = np.empty((planes, *z.shape), np.float32)
    kernels.gradient_kernel(z, res_y, res_x, kind, np.radians(azimuths),
                            math.radians(elevation), out, np.empty((4, z.shape[1])))
    # The angles as RVT takes them, with NumPy's float32 functions (in place).
    if kind == kernels.ASPECT:
        aspect = np.arctan2(out[0], out[1], out=out[0])
        return np.degrees(aspect, out=aspect) if units == "degree" else aspect
    if units is None:
        return out if stacked else out[0]
    slope = out[0]
    if units == "percent":
        slope *= np.float32(100)
        return slope
    np.arctan(slope, out=slope)
    return np.degrees(slope, out=slope) if units == "degree" else slope


def _slrm(a, *, tile, nodata, ve_factor, radius):
    z, padded, nan = _padded(a, tile, nodata, ve_factor, radius, "edge")
    boxes = box_kernels()
    # The relief straight into the result: the mean as an array of its own, a fresh 16 MiB
    # per 512 x 8192 tile, cost a page fault every 4 KiB and a pass more.
    out, _ = _window_result(tile)
    rows, cols = _region(tile).within(tile.window)
    boxes.box_mean(z, padded.rows, padded.cols, padded.top, radius, radius, nan, True,
                   *boxes.scratch(padded, (radius,), 1 + nan), out[rows], cols.start)
    return out


def _msrm(a, *, tile, nodata, ve_factor, radii):
    margin = radii[-1]
    z, padded, nan = _padded(a, tile, nodata, ve_factor, margin, "edge")
    boxes = box_kernels()
    buffers = boxes.scratch(padded, radii, 1 + nan)
    total = np.zeros(padded.shape)
    previous = None
    for r in radii:
        if r == 0:  # RVT's mean filter of radius 0 is the DEM itself
            surface = z[_region(tile).within(tile.window)]
        else:
            surface = np.empty(padded.shape, np.float32)
            boxes.box_mean(z, padded.rows, padded.cols, padded.top, margin, r, nan, False,
                           *buffers, surface, 0)
        if previous is not None:
            total += previous - surface  # RVT's difference of float32 surfaces
        previous = surface
    out, kept = _window_result(tile)
    np.divide(total, len(radii) - 1, out=kept)  # in float64, rounded to float32 as it is kept
    return out


def _mstp(a, *, tile, nodata, ve_factor, scales, lightness):
    margin = max(radii[-1] for radii in scales)
    z, padded, nan = _padded(a, tile, nodata, ve_factor, margin, "symmetric")
    boxes = box_kernels()
    buffers = boxes.scratch(padded, tuple(r for radii in scales for r in radii), 2 + nan)
    holes = np.isnan(z[_region(tile).within(tile.window)])
    out, bands = _window_result(tile, (3,))
    deviation = np.empty(padded.shape)
    for band, radii in zip(bands, scales, strict=True):
        boxes.max_deviation(z, padded.rows, padded.cols, padded.top, margin,
                            np.array(radii), nan, *buffers, deviation)
        # RVT's float32 deviation, NaN at NaN, then 1 - exp(-lightness |deviation|) in
        # [0, 1], computed in float64 in place (no temporaries the size of the tile).
        band[...] = deviation
        band[holes] = np.nan
        deviation[...] = band
        np.abs(deviation, out=deviation)
        deviation *= -lightness
        np.exp(deviation, out=deviation)
        np.subtract(1, deviation, out=deviation)
        band[...] = np.clip(deviation, 0, 1, out=deviation)
    return out


# ---- parameter checks --------------------------------------------------------------------


def _angle(value: float, key: str, name: str, high: float) -> float:
    angle = number(value, key, name)
    if not 0 <= angle <= high:
        raise ParameterError(f"{key} of op {name!r} must be between 0 and {high:g} degrees, "
                             f"not {value!r}")
    return angle


def _whole(value: int, key: str, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{key} of op {name!r} must be an integer of at least {low}, "
                             f"not {value!r}")
    return int(value)


def _choice(value: str, key: str, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ParameterError(f"{key} of op {name!r} must be one of "
                             f"{', '.join(map(repr, allowed))}, not {value!r}")
    return value


def _terrain_op(func, dem: Image, name: str, ve_factor: float, margin: int,
                bands: tuple[str, ...] | None, **params) -> Image:
    """The op: checked DEM and exaggeration, kernels compiled, float32 with NaN at nodata,
    one band or the named ones."""
    check_dem(dem, name)
    z = exaggeration(ve_factor, name)
    meta = {"nodata": float("nan")}
    grid = {}
    if bands is not None:
        meta["band_names"] = bands
        grid = {"axes": ("c", "y", "x"), "shape": {"c": len(bands)}}
    return Op(func, margin=margin, dtype="float32", meta=meta, name=name, **grid)(
        dem, nodata=nodata_of(dem), ve_factor=z, **params)


def _gradient_op(dem: Image, name: str, ve_factor: float, kind: str,
                 azimuths: tuple[float, ...] = (), elevation: float = 0.0,
                 bands: tuple[str, ...] | None = None, **params) -> Image:
    check_dem(dem, name)
    kind = getattr(gradient_kernels(), kind)
    return _terrain_op(_gradient, dem, name, ve_factor, 1, bands, sizes=pixel_sizes(dem),
                       kind=kind, azimuths=azimuths, elevation=elevation,
                       stacked=bands is not None, **params)


def _relief_op(func, dem: Image, name: str, ve_factor: float, margin: int,
               bands: tuple[str, ...] | None = None, **params) -> Image:
    box_kernels()
    return _terrain_op(func, dem, name, ve_factor, margin, bands, **params)


# ---- the ops ---------------------------------------------------------------------------------


@builtin(halo="1")
def slope(dem: Image, *, units: Literal["degree", "percent", "radian"] = "degree",
          ve_factor: float = 1.0) -> Image:
    """Slope gradient (RVT `slope_aspect`'s slope): 0 for flat ground, in degrees, percent
    (100 x the rise per metre) or radians (RVT: output_units)."""
    units = _choice(units, "units", "slope", ("degree", "percent", "radian"))
    return _gradient_op(dem, "slope", ve_factor, "TANGENT", units=units)


@builtin(halo="1")
def aspect(dem: Image, *, units: Literal["degree", "radian"] = "degree",
           ve_factor: float = 1.0) -> Image:
    """Direction the slope faces (RVT `slope_aspect`'s aspect): clockwise from north, in
    (-180, 180] degrees as RVT's code gives it (west is -90), or radians; 0 on flat ground."""
    units = _choice(units, "units", "aspect", ("degree", "radian"))
    return _gradient_op(dem, "aspect", ve_factor, "ASPECT", units=units)


@builtin(halo="1")
def hillshade(dem: Image, *, azimuth: float = 315.0, elevation: float = 35.0,
              ve_factor: float = 1.0) -> Image:
    """Hillshade (RVT `hillshade`): cosine of the sun's incidence, 0 in shadow, 1 facing the
    sun, lit from azimuth (RVT: sun_azimuth, degrees clockwise from north) and elevation
    (RVT: sun_elevation, degrees above the horizon). For an 8-bit picture see `byte_scale`."""
    return _gradient_op(dem, "hillshade", ve_factor, "SHADE",
                        (_angle(azimuth, "azimuth", "hillshade", 360),),
                        _angle(elevation, "elevation", "hillshade", 90))


@builtin(halo="1")
def multi_hillshade(dem: Image, *, directions: int = 16, elevation: float = 35.0,
                    ve_factor: float = 1.0) -> Image:
    """Hillshades lit from `directions` azimuths 360 / directions apart from north (RVT
    `multi_hillshade`: nr_directions, sun_elevation), one band each; RVT crops one pixel from
    every edge, tilewise does not (docs/relief.md)."""
    n = _whole(directions, "directions", "multi_hillshade")
    azimuths = tuple(360 / n * i for i in range(n))
    return _gradient_op(dem, "multi_hillshade", ve_factor, "SHADE", azimuths,
                        _angle(elevation, "elevation", "multi_hillshade", 90),
                        tuple(f"hillshade {a:g}" for a in azimuths))


@builtin(halo="1")
def multi_hillshade_rgb(dem: Image, *, elevation: float = 35.0, ve_factor: float = 1.0) -> Image:
    """RVT's RGB multi-direction hillshade (its blender's and 8-bit form): red, green and blue
    lit from azimuths 315, 22.5 and 90 at `elevation` (RVT: mhs_sun_el)."""
    return _gradient_op(dem, "multi_hillshade_rgb", ve_factor, "SHADE", RGB_AZIMUTHS,
                        _angle(elevation, "elevation", "multi_hillshade_rgb", 90),
                        ("red", "green", "blue"))


@builtin(halo="radius")
def slrm(dem: Image, *, radius: int = 20, ve_factor: float = 1.0) -> Image:
    """Simple local relief model (RVT `slrm`): the DEM minus its mean over a square of
    2 radius + 1 pixels (RVT: radius_cell; RVT refuses radii outside 10-50, tilewise does
    not), NaN skipped, the DEM edge-padded."""
    r = _whole(radius, "radius", "slrm")
    return _relief_op(_slrm, dem, "slrm", ve_factor, r, radius=r)


def msrm_radii(feature_min: float, feature_max: float, scaling_factor: int,
               resolution: float) -> tuple[int, ...]:
    """RVT's MSRM filter radii in pixels: i^s ... n^s for the feature sizes in metres."""
    feature_min = max(feature_min, resolution)
    first = math.floor(((feature_min - resolution) / (2 * resolution)) ** (1 / scaling_factor))
    last = math.ceil(((feature_max - resolution) / (2 * resolution)) ** (1 / scaling_factor))
    return tuple(k ** scaling_factor for k in range(first, last + 1))


@builtin(halo="n^scaling_factor pixels, n = ceil(((feature_max - res) / (2 res))^(1/scaling_"
              "factor)), res the pixel size in metres (RVT's tiling uses feature_max as pixels)")
def msrm(dem: Image, *, feature_min: float = 0.0, feature_max: float = 20.0,
         scaling_factor: int = 2, ve_factor: float = 1.0) -> Image:
    """Multi-scale relief model (RVT `msrm`): the mean difference of successive mean filters
    whose radii grow as a power (scaling_factor) from feature_min to feature_max (metres)."""
    check_dem(dem, "msrm")
    low = number(feature_min, "feature_min", "msrm")
    high = number(feature_max, "feature_max", "msrm")
    power = _whole(scaling_factor, "scaling_factor", "msrm")
    resolution = abs(pixel_size(dem)[1])
    if low < 0 or high <= max(low, resolution):
        raise ParameterError(f"op 'msrm' needs 0 <= feature_min < feature_max and feature_max "
                             f"larger than the pixel size ({resolution:g} m), not "
                             f"feature_min={feature_min!r}, feature_max={feature_max!r}")
    radii = msrm_radii(low, high, power, resolution)  # at least two: floor(a) < ceil(b)
    return _relief_op(_msrm, dem, "msrm", ve_factor, radii[-1], radii=radii)


def _scale(value: tuple[int, int, int], key: str) -> tuple[int, ...]:
    ok = isinstance(value, (tuple, list)) and len(value) == 3 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    if not ok or not 1 <= value[0] <= value[1] or value[2] < 1:
        raise ParameterError(f"{key} of op 'mstp' must be (minimum radius, maximum radius, "
                             f"step) in pixels with 1 <= minimum <= maximum and step >= 1, "
                             f"not {value!r}")
    return tuple(range(int(value[0]), int(value[1]) + 1, int(value[2])))


@builtin(halo="the largest radius of broad_scale (or of any scale) that the steps reach")
def mstp(dem: Image, *, local_scale: tuple[int, int, int] = (3, 21, 2),
         meso_scale: tuple[int, int, int] = (23, 203, 18),
         broad_scale: tuple[int, int, int] = (223, 2023, 180), lightness: float = 1.2,
         ve_factor: float = 1.0) -> Image:
    """Multi-scale topographic position (RVT `mstp`): red, green and blue are the largest
    deviation from the mean elevation over the broad, meso and local radii (minimum, maximum,
    step, in pixels), shown as 1 - exp(-lightness |deviation|)."""
    scales = (_scale(broad_scale, "broad_scale"), _scale(meso_scale, "meso_scale"),
              _scale(local_scale, "local_scale"))
    light = number(lightness, "lightness", "mstp", positive=True)
    margin = max(radii[-1] for radii in scales)
    return _relief_op(_mstp, dem, "mstp", ve_factor, margin, ("broad", "meso", "local"),
                      scales=scales, lightness=light)
