"""Sky illumination (RVT's `sky_illumination`): the diffuse light a pixel gets from a uniform
or an overcast sky, given its slope, aspect and horizon, optionally with a cast shadow.

RVT finds the horizon up to `shadow_distance` pixels away on a pyramid: 20 pixels on the DEM,
then 10 to 20 pixels on coarser levels, each one pixel for 2 x 2 of the level below (their
largest height, halved), the slopes found on a level interpolated bilinearly onto the next
finer one. Here every level is aligned to the image origin, whatever the tile, so a tile sees
exactly the levels of the whole image; the halo covers the coarsest search. The overcast model
is divided by its largest value over the whole image: a reduction (`reduce(..., "max")`) feeds
the tiles, in a first pass of its own.

Where this differs from RVT, on purpose (docs/horizon.md): heights are divided by the pixel
size (RVT's horizon search takes them as if pixels were 1 m, unlike its own sky-view factor);
a coarse pixel at the top or left edge is the largest of its own pixels (RVT's `np.roll` wraps
it around to the bottom or right edge of the image); NaN pixels are no horizon and no part of a
coarse pixel, and only their own output is NaN (in RVT a single NaN makes the whole result NaN).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ParameterError
from ..graph import Image, TileInfo
from ..ops import Op
from ..reductions import reduce
from .horizon import (
    Search,
    bands,
    compiled,
    integer,
    kept,
    metres_per_pixel,
    returned,
    search,
)
from .kernels import as_float, check_dem, exaggeration, nodata_of, number
from .registry import builtin

#: RVT's pyramid: each level halves the one below; searches reach this many of its pixels.
PYRAMID_SCALE = 2
PYRAMID_RADIUS = 20
#: Longest shadow_distance accepted, in pixels (the halo grows with it).
MAX_DISTANCE = 10_000

SkyModel = Literal["overcast", "uniform"]


@dataclass(frozen=True)
class Level:
    """One level of the pyramid: `scale` image pixels to one of its pixels, searched from
    `search` (its radius `radius` in its own pixels)."""

    scale: int
    radius: int
    search: Search


@functools.lru_cache(maxsize=16)
def pyramid(directions: int, shadow_distance: int) -> tuple[Level, ...]:
    """RVT's levels (`horizon_generate_pyramids`): as many as needed for the coarsest to reach
    `shadow_distance` image pixels within PYRAMID_RADIUS of its own."""
    top = 0
    while shadow_distance / PYRAMID_SCALE ** top > PYRAMID_RADIUS:
        top += 1
    last = int(np.round(shadow_distance / PYRAMID_SCALE ** top, decimals=0))
    levels = []
    for level in range(top + 1):
        low = 1 if level == 0 else PYRAMID_RADIUS // PYRAMID_SCALE
        high = last if level == top else PYRAMID_RADIUS
        levels.append(Level(PYRAMID_SCALE ** level, high, search(directions, high, low)))
    return tuple(levels)


def reach(levels: tuple[Level, ...]) -> int:
    """The halo: image pixels between a pixel and the farthest it depends on. A pixel's
    level-L centre lies up to `scale - 1` pixels before it, its search goes `radius` pixels of
    the level further, and the pixel there is the largest of `scale` rows ending on it."""
    coarse = [lv.scale * (lv.radius + 2) - 2 for lv in levels[1:]]
    return max([levels[0].radius, 1, *coarse])


# ---- one tile -----------------------------------------------------------------------------


def slope_aspect(h: np.ndarray, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """RVT's slope and aspect (radians, float32) of the pixels `rows`, `cols` of `h`, from
    central differences: the neighbour beyond the image edge, or a NaN neighbour, is the pixel
    itself. `h` reaches one pixel beyond them wherever the image does."""
    ys = np.clip(np.arange(rows.start - 1, rows.stop + 1), 0, h.shape[0] - 1)
    xs = np.clip(np.arange(cols.start - 1, cols.stop + 1), 0, h.shape[1] - 1)
    g = h[np.ix_(ys, xs)]
    centre = g[1:-1, 1:-1]

    def near(part: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(part) & ~np.isnan(centre), centre, part)

    dzdx = (near(g[1:-1, :-2]) - near(g[1:-1, 2:])) / 2
    dzdy = (near(g[2:, 1:-1]) - near(g[:-2, 1:-1])) / 2
    slope = np.arctan(np.sqrt(dzdx ** 2 + dzdy ** 2))
    dzdy[dzdy == 0] = 10e-9
    return slope, np.arctan2(dzdx, dzdy)


@dataclass(frozen=True)
class Grid:
    """One level's heights around a tile: pixel (i, j) of `heights` is pixel (top + i,
    left + j) of the level; its search centres are the pixels `first` to `last` (inclusive,
    row and column), `margin` pixels in from `heights`' edges."""

    heights: np.ndarray
    first: tuple[int, int]
    last: tuple[int, int]
    margin: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.last[0] - self.first[0] + 1, self.last[1] - self.first[1] + 1)


def grids(h: np.ndarray, tile: TileInfo, levels: tuple[Level, ...]) -> list[Grid]:
    """Each level's heights over the tile's search centres and their reach, -inf beyond the
    image (no horizon there, as RVT's padding with the lowest height)."""
    start, stop = tile.region.start, tile.region.stop
    rows, cols = kept(tile)
    r = levels[0].radius
    out = [Grid(np.pad(h, r, constant_values=-np.inf), (start[0], start[1]),
                (stop[0] - 1, stop[1] - 1), (r + rows.start, r + cols.start))]
    sizes = tile.shape
    for level in levels[1:]:
        sizes = tuple(n // PYRAMID_SCALE + 1 for n in sizes)
        s, r = level.scale, level.radius
        first = (start[0] // s, start[1] // s)
        last = (-(-(stop[0] - 1) // s), -(-(stop[1] - 1) // s))
        heights = np.empty((last[0] - first[0] + 1 + 2 * r, last[1] - first[1] + 1 + 2 * r))
        compiled().pooled_heights(h, *tile.window.start, *tile.shape, s, *sizes,
                                  first[0] - r, first[1] - r, heights)
        out.append(Grid(heights, first, last, (r, r)))
    return out


def coarse_horizons(levels: tuple[Level, ...], found: list[Grid], first: int, last: int
                    ) -> tuple[np.ndarray, int]:
    """The steepest slope (0 at least) to the horizon in each direction on the coarse levels,
    from the coarsest down to level 1, each level's slopes interpolated onto the next, for
    the level-1 rows that image rows `first` to `last` interpolate from: (directions, those
    rows, level-1 columns), and the first of those rows. Each level's rows are those the next
    finer level's interpolate from (a pixel's value does not depend on which rows are done)."""
    kernels = compiled()
    spans = [(first, last)]
    for _ in levels[1:]:
        low, high = spans[-1]
        spans.append((low // PYRAMID_SCALE, -(-high // PYRAMID_SCALE)))
    out = np.empty((levels[0].search.directions, spans[1][1] - spans[1][0] + 1,
                    found[1].shape[1]))
    for k in range(len(out)):
        best = np.zeros((spans[-1][1] - spans[-1][0] + 1, found[-1].shape[1]))
        for level in range(len(levels) - 1, 0, -1):
            grid, (low, _) = found[level], spans[level]
            kernels.raise_to_horizon(grid.heights, grid.margin[0] + low - grid.first[0],
                                     grid.margin[1], *levels[level].search.direction(k), best)
            if level > 1:
                finer, (fine_low, fine_high) = found[level - 1], spans[level - 1]
                fine = np.empty((fine_high - fine_low + 1, finer.shape[1]))
                kernels.upsample(best, low, grid.first[1], fine_low, finer.first[1], fine)
                best = fine
        out[k] = best
    return out, spans[1][0]


#: Image rows whose coarse horizons are found at once: a few rows of each level are shared
#: with the next chunk, and the slopes held stay small whatever the tile.
COARSE_ROWS = 64


def _sky_tile(a, *, tile, nodata, ve_factor, resolution, directions, shadow_distance, model,
              shadow, shadow_azimuth, shadow_elevation):
    kernels = compiled()
    h = np.ascontiguousarray(as_float(a, nodata, "float32") * ve_factor / resolution)
    rows, cols = kept(tile)
    slope, aspect = slope_aspect(h, rows, cols)
    levels = pyramid(directions, shadow_distance)
    found = grids(h, tile, levels)
    fine, s = found[0], levels[0].search
    sums = [np.zeros(slope.shape) for _ in range(4)]
    cos_aspect, sin_aspect = np.cos(aspect.astype(np.float64)), np.sin(aspect.astype(np.float64))
    half = np.pi / directions
    angles = np.radians(s.angles)
    # RVT's directions run counterclockwise from north: the shadow's is the nearest key.
    shadow_at = int(np.argmin(np.abs(s.angles - (360 - shadow_azimuth))))
    cast = np.zeros(slope.shape) if shadow else None
    for chunk in range(0, slope.shape[0], COARSE_ROWS):
        end = min(chunk + COARSE_ROWS, slope.shape[0])
        if len(levels) > 1:
            coarse, coarse_top = coarse_horizons(levels, found, fine.first[0] + chunk,
                                                 fine.first[0] + end - 1)
        for start, stop, best in bands(end - chunk, slope.shape[1], directions):
            start, stop = chunk + start, chunk + stop
            top = fine.margin[0] + start
            if len(levels) == 1:
                best[:] = 0.0
                kernels.horizons(fine.heights, top, fine.margin[1], s.dy, s.dx,
                                 s.inv_distance, s.starts, best)
            else:
                kernels.sky_horizons(fine.heights, top, fine.margin[1], s.dy, s.dx,
                                     s.inv_distance, s.starts, coarse, coarse_top,
                                     found[1].first[1], fine.first[0] + start, fine.first[1],
                                     best)
            angle = np.arctan(best)
            kernels.sky_terms(best, angle, cos_aspect[start:stop], sin_aspect[start:stop],
                              np.cos(angles), np.sin(angles), float(-2 * np.sin(half)),
                              *(a[start:stop] for a in sums))
            if shadow:
                cast[start:stop] = np.degrees(angle[shadow_at]) < shadow_elevation
    uniform_a, uniform_b, overcast_c, overcast_d = sums
    uniform = half * np.cos(slope) * uniform_a + np.sin(slope) * np.minimum(uniform_b, np.pi)
    if model == "uniform":
        out = 0.8 * uniform + 0.2 * cast if shadow else uniform / np.pi
        return returned(tile, out, h)
    overcast = (2.0 * half / 3.0) * np.cos(slope) * overcast_c + np.sin(slope) * overcast_d
    out = returned(tile, 0.33 * uniform + 0.67 * overcast, h, np.float64)
    return (out, returned(tile, cast, h, np.float64)) if shadow else out


def _normalised(raw, cast=None, *, peak):
    out = raw / peak
    return out if cast is None else 0.8 * out + 0.2 * cast


@builtin(halo="from shadow_distance: 110 pixels at 100 (see docs/horizon.md)")
def sky_illumination(dem: Image, *, sky_model: SkyModel = "overcast", directions: int = 32,
                     shadow_distance: int = 100, shadow: bool = False,
                     shadow_azimuth: float = 315.0, shadow_elevation: float = 35.0,
                     ve_factor: float = 1.0) -> Image:
    """Sky illumination: diffuse light from a `sky_model` sky ("overcast", normalised to 1 by
    its largest value over the image, or "uniform", divided by pi), from the horizon in
    `directions` directions up to `shadow_distance` pixels (RVT's `sky_illumination`);
    `shadow` mixes in (0.2) the shadow cast by a sun at `shadow_azimuth` and
    `shadow_elevation` degrees; float32, NaN at nodata.

    RVT's names: sky_model `sky_model` (`sim_sky_mod`), directions `num_directions`
    (`sim_nr_dir`), shadow_distance `max_fine_radius` (`sim_shadow_dist`), shadow
    `compute_shadow` (`sim_compute_shadow`), shadow_azimuth `shadow_az`, shadow_elevation
    `shadow_el`, ve_factor `ve_factor`.
    """
    name = "sky_illumination"
    check_dem(dem, name)
    if sky_model not in SkyModel.__args__:
        raise ParameterError(f"sky_model of op {name!r} must be 'overcast' or 'uniform', "
                             f"not {sky_model!r}")
    if not isinstance(shadow, bool):
        raise ParameterError(f"shadow of op {name!r} must be true or false, not {shadow!r}")
    params = {
        "directions": integer(directions, "directions", name, 1, 360),
        "shadow_distance": integer(shadow_distance, "shadow_distance", name, 1, MAX_DISTANCE),
        "shadow_azimuth": number(shadow_azimuth, "shadow_azimuth", name),
        "shadow_elevation": number(shadow_elevation, "shadow_elevation", name),
        "ve_factor": exaggeration(ve_factor, name),
    }
    if not 0 <= params["shadow_azimuth"] <= 360:
        raise ParameterError(f"shadow_azimuth of op {name!r} must be from 0 to 360 degrees, "
                             f"not {shadow_azimuth!r}")
    if not 0 <= params["shadow_elevation"] <= 90:
        raise ParameterError(f"shadow_elevation of op {name!r} must be from 0 to 90 degrees, "
                             f"not {shadow_elevation!r}")
    resolution = metres_per_pixel(dem, name)
    margin = reach(pyramid(params["directions"], params["shadow_distance"]))
    compiled()
    nan = {"nodata": float("nan")}
    overcast = sky_model == "overcast"
    outputs = 2 if overcast and shadow else 1
    found = Op(_sky_tile, margin=margin, outputs=outputs,
               dtype="float64" if overcast else "float32", meta=nan, name=name)(
        dem, nodata=nodata_of(dem), resolution=resolution, model=sky_model, shadow=shadow,
        **params)
    if not overcast:
        return found
    raw = found[0] if shadow else found
    return Op(_normalised, dtype="float32", meta=nan, name=f"{name} (normalised)")(
        *(found if shadow else (found,)), peak=reduce(raw, "max"))
