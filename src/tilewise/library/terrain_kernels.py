"""The compiled kernel of the 3 x 3 terrain ops (numba, without the GIL, so that threads scale).

One pass over the DEM, row by row, computes RVT's central differences (`rvt.vis.slope_aspect`:
a neighbour beyond the image edge or NaN counts as the centre pixel, RVT's edge padding and
`roll_fill_nans`) into two rows of float64 and from them, per pixel, the output asked for: the
slope's tangent, the aspect, or one hillshade per sun azimuth. Inner loops run along a row
with no branch but selects, so they vectorise; nothing the size of the tile is allocated. The
module is compiled for explicit signatures, so importing it compiles it or loads it from
numba's on-disk cache at once: the ops import it when they are built, before the planner's
memory probe (a probe that ran the compiler would charge its allocations to the op).
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32, float64, int64, njit, void

from .compiled import COMPILE, DEM

#: What `gradient_kernel` writes: the slope's tangent, the aspect's differences, hillshades.
TANGENT, ASPECT, SHADE = range(3)
ROW = float64[::1]


@njit(**COMPILE)
def _differences(z, i, res_y, res_x, dzdx, dzdy):
    """RVT's dz/dx (rising towards west) and dz/dy (rising towards south) along row i."""
    h, w = z.shape
    row = z[i]
    north = z[i - 1] if i > 0 else row
    south = z[i + 1] if i < h - 1 else row
    for j in range(w):
        c = np.float64(row[j])
        n = np.float64(north[j])
        s = np.float64(south[j])
        dzdy[j] = ((((c if s != s else s) - (c if n != n else n))) / 2) / res_y
    for j in range(1, w - 1):
        c = np.float64(row[j])
        west = np.float64(row[j - 1])
        east = np.float64(row[j + 1])
        dzdx[j] = ((((c if west != west else west) - (c if east != east else east))) / 2) / res_x
    if w == 1:
        dzdx[0] = 0.0 / res_x
        return
    c, east = np.float64(row[0]), np.float64(row[1])
    dzdx[0] = ((c - (c if east != east else east)) / 2) / res_x
    c, west = np.float64(row[w - 1]), np.float64(row[w - 2])
    dzdx[w - 1] = (((c if west != west else west) - c) / 2) / res_x


@njit(void(DEM, ROW, ROW, int64, ROW, float64, float32[:, :, ::1], float64[:, ::1]),
      **COMPILE)
def gradient_kernel(z, res_y, res_x, kind, azimuths, elevation, out, rows):
    """Per pixel of z (NaN at nodata), with per-row pixel sizes res_y (positive towards
    south for a north-up grid) and res_x, NaN where z is NaN: for TANGENT the slope's tangent
    t = |gradient| into out[0] (its angle is taken by the caller, as RVT takes it, with
    NumPy's float32 arctangent, in place); for ASPECT dz/dx and dz/dy into out[0] and out[1]
    in float32, with RVT's 1e-8 (10e-9) for a zero dz/dy (the caller takes NumPy's float32
    arctan2 of them, as RVT does); for SHADE one hillshade per azimuth (radians) lit from
    `elevation` (radians) into out[k]. `rows` is scratch: four rows.

    A hillshade takes its sines and cosines from the gradient itself (no trigonometry per
    pixel and direction): cos(slope) = 1 / sqrt(1 + t^2), sin(slope) = t / sqrt(1 + t^2),
    and cos(aspect - azimuth) = (dz/dy cos(azimuth) + dz/dx sin(azimuth)) / |(dz/dx, dz/dy)|;
    what does not depend on the azimuth is computed once per pixel.
    """
    h, w = z.shape
    dzdx, dzdy, flat, steep = rows[0], rows[1], rows[2], rows[3]
    zenith = math.pi / 2 - elevation
    cos_zenith, sin_zenith = math.cos(zenith), math.sin(zenith)
    for i in range(h):
        _differences(z, i, res_y[i], res_x[i], dzdx, dzdy)
        row = z[i]
        if kind == TANGENT:
            o = out[0, i]
            for j in range(w):
                t = math.sqrt(dzdx[j] * dzdx[j] + dzdy[j] * dzdy[j])
                o[j] = t if row[j] == row[j] else np.nan
        elif kind == ASPECT:
            ox, oy = out[0, i], out[1, i]
            for j in range(w):
                ox[j] = dzdx[j] if row[j] == row[j] else np.nan
                y = np.float32(dzdy[j])
                oy[j] = np.float32(10e-9) if y == 0 else y
        else:
            for j in range(w):
                x, y = dzdx[j], dzdy[j]
                t = math.sqrt(x * x + y * y)
                y = 10e-9 if y == 0 else y
                secant = math.sqrt(1 + t * t)
                flat[j] = cos_zenith / secant
                steep[j] = sin_zenith * t / secant / math.sqrt(x * x + y * y)
                dzdy[j] = y
            for k in range(azimuths.size):
                cos_sun, sin_sun = math.cos(azimuths[k]), math.sin(azimuths[k])
                o = out[k, i]
                for j in range(w):
                    shade = flat[j] + steep[j] * (dzdy[j] * cos_sun + dzdx[j] * sin_sun)
                    o[j] = max(shade, 0.0) if row[j] == row[j] else np.nan
