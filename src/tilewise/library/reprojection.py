"""Reprojection: celestial images through `reproject`, georeferenced rasters through GDAL.

`reproject` (the package) hands every output block the whole input, because any input pixel
might feed any output pixel. Here each output tile reads only what it needs: its footprint maps
points on the tile's boundary (and, as insurance against a map whose extremes lie inside, on
lines every `GRID_STEP` pixels across it) to input pixels, takes their bounding box and grows
it by the method's support. Where a point does not map at all (outside a projection's domain)
the tile reads the whole input. The tile then runs the library's own function on that window,
with both grids shifted to it.

Celestial grids are shifted with astropy's `SlicedLowLevelWCS`, which adds the window's start
to pixel coordinates (exact for integers) instead of moving CRPIX (rounded), so every output
pixel sees the same world coordinates, the same input pixels and the same arithmetic as on the
whole array: the result is bit for bit `reproject`'s. GDAL's warper, as rasterio calls it,
approximates the transformation along each scanline of the chunk it warps (error up to 1/8
input pixel), and that approximation depends on where a chunk starts and ends, so tiles agree
with a whole-array warp only to within the values' change over 1/8 pixel (see
`docs/reproject.md`).

Thread safety: astropy's WCS objects convert their C struct in place on every call, so one WCS
shared by threads races (why `reproject` uses processes). Each call here builds its own WCS
objects from FITS headers, so the op runs under any executor; GDAL warps in-memory datasets
made per call, which is thread-safe.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import ParameterError
from ..graph import Image
from ..ops import Op
from ..regions import Box
from .kernels import as_float, nodata_of
from .registry import builtin

#: Interior sample lines every this many output pixels (the boundary is sampled at every one).
GRID_STEP = 64
#: Interpolation orders of `reproject_interp`, and the input pixels each reads beyond the
#: sample's cell: splines of order 2 and 3 are prefiltered (an IIR filter whose influence falls
#: by 0.268 per pixel for cubic), so they read 32 more pixels, past which the prefilter's
#: dependence on where the window ends is below float64 rounding.
ORDERS = {"nearest-neighbor": 0, "bilinear": 1, "biquadratic": 2, "bicubic": 3}
SPLINE_MARGIN = 32
#: GDAL kernels' radius in input pixels at scale 1 (GDAL widens them by 1 / scale when the
#: output pixels are larger than the input's).
RADII = {"nearest": 1, "bilinear": 1, "cubic": 2, "cubic_spline": 2, "lanczos": 3,
         "average": 1, "mode": 1, "max": 1, "min": 1, "med": 1, "q1": 1, "q3": 1, "sum": 1,
         "rms": 1}
Resampling = Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average",
                     "mode", "max", "min", "med", "q1", "q3", "sum", "rms"]


def _samples(region: Box, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Output pixel (x, y) coordinates on the region's boundary, `edge` beyond the outer pixel
    centres (0: centres, 0.5: pixel edges), and on interior lines every GRID_STEP pixels."""
    y0, x0 = region.start[-2:]
    y1, x1 = region.stop[-2:]
    xs = np.arange(x0, x1, dtype=float)
    ys = np.arange(y0, y1, dtype=float)
    xs = np.concatenate([[x0 - edge], xs, [x1 - 1 + edge]])
    ys = np.concatenate([[y0 - edge], ys, [y1 - 1 + edge]])
    rows = np.concatenate([ys[[0, -1]], ys[1:-1:GRID_STEP]])
    cols = np.concatenate([xs[[0, -1]], xs[1:-1:GRID_STEP]])
    px = np.concatenate([np.tile(xs, len(rows)), np.repeat(cols, len(ys))])
    py = np.concatenate([np.repeat(rows, len(xs)), np.tile(ys, len(cols))])
    return px, py


def _bounds(region: Box, shape: tuple[int, ...], u: np.ndarray, v: np.ndarray,
            margin: int) -> Box:
    """The input box holding every mapped point (u, v) grown by `margin`, all of any leading
    axes; the whole input when a point did not map."""
    lead = len(shape) - 2
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        return Box.of_shape(shape)
    start = (*([0] * lead), math.floor(v.min()) - margin, math.floor(u.min()) - margin)
    stop = (*shape[:lead], math.floor(v.max()) + 1 + margin, math.floor(u.max()) + 1 + margin)
    # Clipped here rather than by tilewise so that a box beside the input stays a valid Box.
    start = tuple(min(max(a, 0), n) for a, n in zip(start, shape, strict=True))
    stop = tuple(max(min(b, n), a) for a, b, n in zip(start, stop, shape, strict=True))
    return Box(start, stop)


# --- celestial: reproject ---------------------------------------------------------------

def _header(wcs: Any) -> str:
    """A FITS header of `wcs` with 17 significant digits, which rebuilds it exactly (astropy's
    own pickling rounds a turned CD matrix, moving pixels by up to 1e-9)."""
    from astropy import wcs as awcs

    if any(getattr(wcs, k, None) is not None for k in ("cpdis1", "cpdis2", "det2im1",
                                                       "det2im2")):
        raise ParameterError("op 'reproject' cannot carry a WCS with lookup-table "
                             "distortions (CPDIS, D2IM)")
    return wcs.to_header_string(relax=awcs.WCSHDO_P17 | awcs.WCSHDO_all)


def _wcs(header: str) -> Any:
    from astropy.io import fits
    from astropy.wcs import WCS

    # The header is wcslib's own output: nothing to fix (and no warning per tile about it).
    return WCS(fits.Header.fromstring(header), fix=False)


@dataclass(frozen=True, eq=False)
class Celestial:
    """One reprojection between two celestial grids: the footprint of an output region, and
    new WCS objects for every call, built from FITS headers, so never shared by threads."""

    header_in: str
    header_out: str
    in_shape: tuple[int, ...]
    method: str
    order: int

    def input_wcs(self) -> Any:
        return _wcs(self.header_in)

    def output_wcs(self) -> Any:
        return _wcs(self.header_out)

    def fingerprint(self) -> dict[str, Any]:
        text = f"{self.header_in}\n{self.header_out}"
        return {"wcs": hashlib.sha256(text.encode()).hexdigest()[:16], "method": self.method,
                "order": self.order}

    def to_input(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output pixel (x, y) to input pixel coordinates, as `reproject` maps them (through
        sky coordinates, so that different celestial frames are converted)."""
        from astropy.wcs.utils import pixel_to_pixel

        u, v = pixel_to_pixel(self.output_wcs(), self.input_wcs(), xs, ys)
        return np.asarray(u, float), np.asarray(v, float)

    def __call__(self, region: Box) -> Box:
        edge = 0.0 if self.method == "interp" else 0.5
        u, v = self.to_input(*_samples(region, edge))
        return _bounds(region, self.in_shape, u, v, self._margin(region))

    def _margin(self, region: Box) -> int:
        if self.method == "interp":
            return 2 if self.order <= 1 else 2 + SPLINE_MARGIN
        if self.method == "exact":
            return 1
        # adaptive: its Gaussian kernel samples an output region 4 pixels wide mapped through
        # the local Jacobian (singular values padded to at least 1), each sample bilinear.
        # The Jacobian's Frobenius norm at the region's corners and centre, with 10% to spare
        # for its change in between, bounds its largest singular value.
        return 2 + math.ceil(4 * max(1.0, 1.1 * self._scale(region)))

    def _scale(self, region: Box) -> float:
        (y0, x0), (y1, x1) = region.start[-2:], region.stop[-2:]
        px = np.array([x0, x1 - 1, x0, x1 - 1, (x0 + x1 - 1) / 2], float)
        py = np.array([y0, y0, y1 - 1, y1 - 1, (y0 + y1 - 1) / 2], float)
        u, v = self.to_input(np.r_[px, px + 1, px], np.r_[py, py, py + 1])
        n = len(px)
        du = np.hypot(u[n:2 * n] - u[:n], v[n:2 * n] - v[:n])
        dv = np.hypot(u[2 * n:] - u[:n], v[2 * n:] - v[:n])
        frobenius = np.hypot(du, dv)
        # A corner that does not map reads the whole input anyway (see `_bounds`).
        return float(frobenius.max()) if np.isfinite(frobenius).all() else 1.0


def _reproject_tile(a: np.ndarray, *, mapping: Celestial, nodata: float | None,
                    tile: Any) -> np.ndarray:
    from astropy.wcs.wcsapi import HighLevelWCSWrapper, SlicedLowLevelWCS

    region, window = tile.output_window, tile.window
    if a.size == 0:
        return np.full(region.shape, np.nan)
    if nodata is not None or a.dtype.kind != "f":
        a = as_float(a, nodata, a.dtype if a.dtype.kind == "f" else "float64")
    wcs_in = HighLevelWCSWrapper(SlicedLowLevelWCS(mapping.input_wcs(), window.slices[-2:]))
    wcs_out = HighLevelWCSWrapper(SlicedLowLevelWCS(mapping.output_wcs(), region.slices[-2:]))
    func, params = _function(mapping.method, mapping.order)
    return func((a, wcs_in), wcs_out, shape_out=region.shape, return_footprint=False, **params)


def _function(method: str, order: int) -> tuple[Any, dict[str, Any]]:
    import reproject as rp

    if method == "interp":
        return rp.reproject_interp, {"order": order}
    return (rp.reproject_adaptive if method == "adaptive" else rp.reproject_exact), {}


def _float_dtype(image: Image) -> str:
    return "float64" if image.dtype == np.float64 else "float32"


@builtin(halo="the input footprint of each tile (sampled on its edges) plus the kernel: "
              "interp 2 (biquadratic, bicubic 34), exact 1, adaptive 2 + 4 x the local scale")
def reproject(image: Image, *, wcs: str, shape: tuple[int, int],
              method: Literal["interp", "adaptive", "exact"] = "interp",
              order: Literal["nearest-neighbor", "bilinear", "biquadratic",
                             "bicubic"] = "bilinear") -> Image:
    """Reproject a celestial image (WCS in its metadata) onto `wcs` (an astropy WCS, or a FITS
    header as text) of `shape` pixels, with `reproject`'s interp, adaptive or exact method;
    float32 (float64 for float64 input), NaN where no input pixel maps."""
    from astropy.wcs import WCS

    source = image.meta.get("wcs")
    if source is None:
        raise ParameterError("op 'reproject' needs an image with an astropy WCS in its "
                             "metadata (meta['wcs'])")
    if image.axes[-2:] != ("y", "x") or len(image.shape) > 3:
        raise ParameterError(f"op 'reproject' needs axes ('y', 'x') or ('c', 'y', 'x'), not "
                             f"{image.axes}")
    if method not in ("interp", "adaptive", "exact"):
        raise ParameterError(f"method of op 'reproject' must be 'interp', 'adaptive' or "
                             f"'exact', not {method!r}")
    if order not in ORDERS:
        raise ParameterError(f"order of op 'reproject' must be one of {', '.join(ORDERS)}, "
                             f"not {order!r}")
    target = wcs if isinstance(wcs, WCS) else WCS(wcs)
    out_shape = (*image.shape[:-2], *(int(n) for n in shape))
    mapping = Celestial(_header(source), _header(target), image.shape, method,
                        ORDERS[order])
    grid_keys = ("transform", "crs", "wcs", "nodata")

    def meta(metas: list[dict[str, Any]]) -> dict[str, Any]:
        kept = {k: v for k, v in metas[0].items() if k not in grid_keys}
        out = mapping.output_wcs()
        out.pixel_shape = out_shape[-1], out_shape[-2]
        return {**kept, "wcs": out, "nodata": float("nan")}

    return Op(_reproject_tile, footprint=mapping, shape=out_shape, dtype=_float_dtype(image),
              meta=meta, name="reproject")(image, mapping=mapping, nodata=nodata_of(image))


# --- geospatial: GDAL's warper ----------------------------------------------------------

@dataclass(frozen=True)
class WarpGrid:
    """A warp from one georeferenced grid to another, and GDAL's kernel scale for it.

    `xscale`/`yscale` (output pixels per input pixel) are given to GDAL as its XSCALE/YSCALE
    warp options: GDAL otherwise estimates them per warped chunk, so its kernels would widen
    differently in different tiles (and in different chunkings of a whole-array warp).
    """

    src_crs: str
    dst_crs: str
    src_transform: tuple[float, ...]
    dst_transform: tuple[float, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    resampling: str
    xscale: float
    yscale: float

    @property
    def options(self) -> dict[str, Any]:
        """Keyword arguments for `rasterio.warp.reproject` that fix the kernel scale."""
        return {"XSCALE": repr(self.xscale), "YSCALE": repr(self.yscale)}

    def to_input(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Output pixel-corner coordinates (GDAL's convention) to input ones."""
        from affine import Affine
        from rasterio.warp import transform

        gx, gy = Affine(*self.dst_transform) @ (xs, ys)
        lx, ly = transform(self.dst_crs, self.src_crs, gx, gy)
        u, v = ~Affine(*self.src_transform) @ (np.asarray(lx), np.asarray(ly))
        return np.asarray(u, float), np.asarray(v, float)

    def margin(self) -> int:
        return math.ceil(RADII[self.resampling] / min(1.0, self.xscale, self.yscale)) + 2

    def fingerprint(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    def __call__(self, region: Box) -> Box:
        xs, ys = _samples(region, 0.5)
        u, v = self.to_input(xs + 0.5, ys + 0.5)
        return _bounds(region, self.in_shape, u, v, self.margin())


def warp_grid(image: Image, crs: str, resolution: float | None = None,
              transform: tuple[float, ...] | None = None, shape: tuple[int, int] | None = None,
              resampling: str = "bilinear") -> WarpGrid:
    """The output grid of `warp(image, crs, ...)`: from `transform` and `shape` when given,
    else GDAL's default for the CRS and resolution (`calculate_default_transform`)."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.transform import array_bounds
    from rasterio.warp import calculate_default_transform

    src_crs, src_transform = image.meta.get("crs"), image.meta.get("transform")
    if src_crs is None or src_transform is None:
        raise ParameterError("op 'warp' needs an image with a CRS and a transform")
    if (transform is None) != (shape is None):
        raise ParameterError("op 'warp' needs both transform and shape, or neither")
    if resampling not in RADII:
        raise ParameterError(f"resampling of op 'warp' must be one of {', '.join(RADII)}, "
                             f"not {resampling!r}")
    height, width = image.shape[-2:]
    if transform is None:
        left, bottom, right, top = array_bounds(height, width, src_transform)
        found, w, h = calculate_default_transform(src_crs, crs, width, height, left, bottom,
                                                  right, top, resolution=resolution)
        transform, shape = tuple(found)[:6], (h, w)
    out_shape = (*image.shape[:-2], int(shape[0]), int(shape[1]))
    grid = WarpGrid(CRS.from_user_input(src_crs).to_wkt(), CRS.from_user_input(crs).to_wkt(),
                    tuple(src_transform)[:6], tuple(Affine(*transform[:6]))[:6],
                    tuple(image.shape), out_shape, resampling, 1.0, 1.0)
    whole = grid(Box.of_shape(out_shape))
    span_y, span_x = (max(n, 1) for n in whole.shape[-2:])
    return WarpGrid(**{**grid.__dict__, "xscale": out_shape[-1] / span_x,
                       "yscale": out_shape[-2] / span_y})


def _warp_tile(a: np.ndarray, *, grid: WarpGrid, nodata: float | None, dtype: str,
               tile: Any) -> np.ndarray:
    from affine import Affine
    from rasterio.enums import Resampling as GdalResampling
    from rasterio.warp import reproject as gdal_reproject

    region, window = tile.output_window, tile.window
    out = np.full(region.shape, np.nan, dtype)
    if a.size == 0:
        return out
    (y0, x0), (wy, wx) = region.start[-2:], window.start[-2:]
    gdal_reproject(np.ascontiguousarray(a), out,
                   src_transform=Affine(*grid.src_transform) @ Affine.translation(wx, wy),
                   src_crs=grid.src_crs, src_nodata=nodata,
                   dst_transform=Affine(*grid.dst_transform) @ Affine.translation(x0, y0),
                   dst_crs=grid.dst_crs, dst_nodata=np.nan,
                   resampling=GdalResampling[grid.resampling], **grid.options)
    return out


@builtin(halo="the input footprint of each tile (sampled on its edges) plus the kernel's "
              "radius (bilinear 1, cubic 2, lanczos 3) over the scale, plus 2")
def warp(image: Image, *, crs: str, resolution: float | None = None,
         transform: tuple[float, float, float, float, float, float] | None = None,
         shape: tuple[int, int] | None = None, resampling: Resampling = "bilinear") -> Image:
    """Warp a georeferenced image to `crs` with GDAL; the grid from `transform` and `shape`,
    else GDAL's default for the CRS and `resolution`; float32 (float64 for float64 input),
    NaN where no input pixel maps and at nodata."""
    if image.axes[-2:] != ("y", "x") or len(image.shape) > 3:
        raise ParameterError(f"op 'warp' needs axes ('y', 'x') or ('c', 'y', 'x'), not "
                             f"{image.axes}")
    grid = warp_grid(image, crs, resolution, transform, shape, resampling)
    from affine import Affine
    from rasterio.crs import CRS

    meta = {"crs": CRS.from_wkt(grid.dst_crs), "transform": Affine(*grid.dst_transform),
            "nodata": float("nan")}
    dtype = _float_dtype(image)
    return Op(_warp_tile, footprint=grid, shape=grid.out_shape, dtype=dtype, meta=meta,
              name="warp")(image, grid=grid, nodata=nodata_of(image), dtype=dtype)
