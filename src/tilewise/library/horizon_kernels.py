"""Compiled loops of the horizon ops (`horizon`, `illumination`), in numba without the GIL.

Every function is compiled for explicit signatures, so importing this module compiles it, or
loads it from numba's on-disk cache, at once. The ops import it when they are built, before the
planner measures their memory on a probe tile: a probe that ran the compiler would charge its
allocations to the op. The loops allocate nothing (numba's allocations are invisible to the
planner's `tracemalloc`): callers pass every array, row buffers included.

The loops visit pixels row by row and, within a row, run the same arithmetic on every pixel, so
a pixel's value never depends on where a tile starts. Inner loops run along rows, on buffers of
one row, so that they vectorise and stay in cache.
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32, float64, int64, njit, void

from .compiled import COMPILE

F4 = float32[:, ::1]
F8 = float64[:, ::1]
INDEX = int64[::1]
ROW = float64[::1]
F8_3D = float64[:, :, ::1]


@njit([void(F4, int64, int64, INDEX, INDEX, ROW, int64, int64, ROW),
       void(F8, int64, int64, INDEX, INDEX, ROW, int64, int64, ROW)],
      **COMPILE)
def _raise_row(h, y, left, dy, dx, inv_distance, first, stop, best):
    """best[j] = the largest of itself and the slopes from h[y, left + j] to the points
    `first:stop` of the search, h[y - dy, left + j - dx]; NaN slopes are passed over."""
    centre = h[y, left:left + best.size]
    for p in range(first, stop):
        target = h[y - dy[p], left - dx[p]:left - dx[p] + best.size]
        w = inv_distance[p]
        for j in range(best.size):
            s = (target[j] - centre[j]) * w
            b = best[j]
            best[j] = s if s > b else b


@njit(void(F8, int64, int64, INDEX, INDEX, ROW, F8), **COMPILE)
def raise_to_horizon(h, top, left, dy, dx, inv_distance, best):
    """`best` (one value per output pixel, the pixel i, j being h[top + i, left + j]) raised to
    the steepest slope towards the search points of one direction."""
    for i in range(best.shape[0]):
        _raise_row(h, top + i, left, dy, dx, inv_distance, 0, dy.size, best[i])


@njit(void(F4, int64, int64, INDEX, INDEX, ROW, INDEX, F8_3D), **COMPILE)
def horizons(h, top, left, dy, dx, inv_distance, starts, best):
    """`raise_to_horizon` for every direction k (the points `starts[k]:starts[k + 1]`) into
    best[k], over a band of rows."""
    for k in range(best.shape[0]):
        for i in range(best.shape[1]):
            _raise_row(h, top + i, left, dy, dx, inv_distance, starts[k], starts[k + 1], best[k, i])


@njit(void(F8_3D, F8), **COMPILE)
def sum_directions(values, out):
    """out = values[0] + values[1] + ..., added in that order."""
    out[:] = 0.0
    for k in range(values.shape[0]):
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] += values[k, i, j]


@njit(void(F4, int64, int64, INDEX, INDEX, ROW, INDEX, ROW, ROW, F8), **COMPILE)
def sky_view(h, top, left, dy, dx, inv_distance, starts, weights, best, out):
    """out = the sum over directions k of weights[k] * (1 - sin(horizon angle)), the horizon
    angle being that of the steepest slope, 0 when below the horizontal; `best` is a row."""
    for i in range(out.shape[0]):
        acc = out[i]
        acc[:] = 0.0
        for k in range(starts.size - 1):
            best[:] = -1000.0
            _raise_row(h, top + i, left, dy, dx, inv_distance, starts[k], starts[k + 1], best)
            w = weights[k]
            for j in range(acc.size):
                m = best[j] if best[j] > 0.0 else 0.0
                # sin(arctan(m)), without the trigonometry
                acc[j] += (1.0 - m / math.sqrt(1.0 + m * m)) * w


@njit(void(F4, int64, int64, INDEX, INDEX, ROW, ROW, float32, float32[::1], float32[:, ::1]),
      **COMPILE)
def dominance(h, top, left, dy, dx, distance, factor, observer, acc, out):
    """out = the sum over shifts s of (h + observer - h[shifted]) / distance[s] * factor[s],
    where the observer sees the shifted pixel below, accumulated in float32 shift by shift in
    the order given; `acc` is a row."""
    for i in range(out.shape[0]):
        y = top + i
        centre = h[y, left:left + acc.size]
        acc[:] = 0.0
        for s in range(dy.size):
            target = h[y - dy[s], left - dx[s]:left - dx[s] + acc.size]
            d, f = distance[s], factor[s]
            for j in range(acc.size):
                eye = centre[j] + observer
                below = eye > target[j]
                step = np.float32(np.float64(acc[j]) + np.float64(eye - target[j]) / d * f)
                acc[j] = step if below else acc[j]
        out[i] = acc


@njit(void(float32[:, ::1], int64, int64, int64, int64, int64, int64, int64, int64, int64, F8),
      **COMPILE)
def pooled_heights(h, row0, col0, rows, cols, scale, coarse_rows, coarse_cols, top, left, out):
    """The coarse heights of a pyramid level, `scale` image pixels to one, aligned to the image
    origin: coarse pixel (I, J) is the largest of 0 and of the image pixels rows
    [scale * I - scale + 1, scale * I], columns alike, that exist and are not NaN, divided by
    `scale`; -inf beyond the level's `coarse_rows` x `coarse_cols`. `h` holds the image from
    (row0, col0), `rows` x `cols` pixels in all; out[i, j] is coarse pixel (top + i, left + j)."""
    inv = 1.0 / scale
    for i in range(out.shape[0]):
        ci = top + i
        y0, y1 = max(scale * ci - scale + 1, 0), min(scale * ci, rows - 1)
        for j in range(out.shape[1]):
            cj = left + j
            if ci < 0 or ci >= coarse_rows or cj < 0 or cj >= coarse_cols:
                out[i, j] = -np.inf
                continue
            x0, x1 = max(scale * cj - scale + 1, 0), min(scale * cj, cols - 1)
            m = 0.0
            for y in range(y0 - row0, y1 - row0 + 1):
                for x in range(x0 - col0, x1 - col0 + 1):
                    v = np.float64(h[y, x])
                    m = v if v > m else m
            out[i, j] = m * inv


@njit(void(F8, int64, int64, int64, int64, F8), **COMPILE)
def upsample(coarse, top, left, fine_top, fine_left, out):
    """out = `coarse` interpolated bilinearly at half steps: fine pixel y lies at coarse y / 2.
    coarse[i, j] is pixel (top + i, left + j) of its level, out[i, j] pixel (fine_top + i,
    fine_left + j) of the finer one. Sums run as FITPACK's degree-1 spline evaluation does."""
    for i in range(out.shape[0]):
        y = fine_top + i
        a, odd_y = (y >> 1) - top, y & 1
        for j in range(out.shape[1]):
            x = fine_left + j
            b, odd_x = (x >> 1) - left, x & 1
            if odd_y and odd_x:
                v = (((coarse[a, b] + coarse[a, b + 1]) + coarse[a + 1, b])
                     + coarse[a + 1, b + 1]) * 0.25
            elif odd_y:
                v = (coarse[a, b] + coarse[a + 1, b]) * 0.5
            elif odd_x:
                v = (coarse[a, b] + coarse[a, b + 1]) * 0.5
            else:
                v = coarse[a, b]
            out[i, j] = v


@njit(void(F4, int64, int64, INDEX, INDEX, ROW, INDEX, F8_3D, int64, int64, int64, int64, F8_3D),
      **COMPILE)
def sky_horizons(h, top, left, dy, dx, inv_distance, starts, coarse, coarse_top, coarse_left,
                 fine_top, fine_left, best):
    """For every direction k: best[k] = coarse[k] upsampled (as `upsample`), then raised to the
    horizon on `h` (as `horizons`)."""
    for k in range(best.shape[0]):
        upsample(coarse[k], coarse_top, coarse_left, fine_top, fine_left, best[k])
    horizons(h, top, left, dy, dx, inv_distance, starts, best)


@njit(void(F8_3D, F8_3D, F8, F8, ROW, ROW, float64, F8, F8, F8, F8), **COMPILE)
def sky_terms(best, angle, cos_aspect, sin_aspect, cos_dir, sin_dir, spread,
              uniform_a, uniform_b, overcast_c, overcast_d):
    """Add each direction's share of diffuse light under a uniform and an overcast sky, from
    the horizon's slope best[k] and angle[k], direction after direction, to the four sums of
    RVT's sky illumination. `spread` is -2 sin(half the angle between directions)."""
    for k in range(best.shape[0]):
        for i in range(best.shape[1]):
            for j in range(best.shape[2]):
                m, t = best[k, i, j], angle[k, i, j]
                cos2 = 1.0 / (1.0 + m * m)                  # cos(t) ** 2
                cos1 = math.sqrt(cos2)
                cos3 = cos1 * cos2
                sin2t = 2.0 * m * cos2                     # sin(2 t)
                facing = spread * (cos_dir[k] * cos_aspect[i, j] + sin_dir[k] * sin_aspect[i, j])
                b = facing * (math.pi / 4.0 - t / 2.0 - sin2t / 4.0)
                d = facing * (2.0 / 3.0 - cos1 + cos3 / 3.0)
                uniform_a[i, j] += cos2
                uniform_b[i, j] += b if b > 0.0 else 0.0
                overcast_c[i, j] += cos3 if cos3 > 0.0 else 0.0
                overcast_d[i, j] += d if d > 0.0 else 0.0
