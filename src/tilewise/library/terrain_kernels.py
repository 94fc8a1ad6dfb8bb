"""Compiled kernels of the terrain ops (numba, without the GIL, so that threads scale).

They follow RVT's arithmetic (`rvt.vis`) in float64: the 3 x 3 ops take RVT's central
differences, in which a neighbour beyond the image edge or NaN counts as the centre pixel
(RVT's edge padding and `roll_fill_nans`); the relief models take RVT's window means and
deviations over exact-under-tiling box sums (`box_sums`), rounded to float32 where RVT
rounds, so that values agree with RVT's to its last bit in nearly every pixel. Division
follows NumPy (`error_model="numpy"`): a box of nothing but NaN has mean 0 / 0 = NaN, as in RVT.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .box_sums import box_sum

#: What `gradient_kernel` writes: the slope's tangent, aspect in two units, hillshades.
TANGENT, ASPECT_DEGREE, ASPECT_RADIAN, SHADE = range(4)


@njit(nogil=True, cache=True, error_model="numpy")
def _neighbour(z, i, j, centre):
    value = z[i, j]
    return centre if math.isnan(value) else value


@njit(nogil=True, cache=True, error_model="numpy")
def _gradients(z, i, j, res_y, res_x):
    """RVT's dz/dx (rising towards west) and dz/dy (rising towards south) at pixel (i, j)."""
    h, w = z.shape
    centre = np.float64(z[i, j])
    north = _neighbour(z, i - 1, j, centre) if i > 0 else centre
    south = _neighbour(z, i + 1, j, centre) if i < h - 1 else centre
    west = _neighbour(z, i, j - 1, centre) if j > 0 else centre
    east = _neighbour(z, i, j + 1, centre) if j < w - 1 else centre
    return ((west - east) / 2) / res_x, ((south - north) / 2) / res_y


@njit(nogil=True, cache=True, error_model="numpy")
def gradient_kernel(z, res_y, res_x, kind, azimuths, elevation, out):
    """Per pixel of z (NaN at nodata), with per-row pixel sizes res_y (positive towards
    south for a north-up grid) and res_x: the `kind` of output into out[0], or for SHADE one
    hillshade per azimuth (radians) lit from `elevation` (radians) into out[k].

    The slope's tangent is t = |gradient| (its angle is taken by the caller, as RVT takes it,
    with NumPy's float32 arctangent), aspect atan2(dz/dx, dz/dy) with RVT's 1e-8 (10e-9) for
    a zero dz/dy; a hillshade takes their sines and cosines from the gradient itself (no
    trigonometry per pixel and direction): cos(slope) = 1 / sqrt(1 + t^2), sin(slope) =
    t / sqrt(1 + t^2), and cos(aspect - azimuth) = (dz/dy cos(azimuth) + dz/dx sin(azimuth))
    / |(dz/dx, dz/dy)|.
    """
    h, w = z.shape
    zenith = math.pi / 2 - elevation
    cos_zenith, sin_zenith = math.cos(zenith), math.sin(zenith)
    cos_sun, sin_sun = np.cos(azimuths), np.sin(azimuths)
    for i in range(h):
        for j in range(w):
            if math.isnan(z[i, j]):
                for k in range(out.shape[0]):
                    out[k, i, j] = np.nan
                continue
            dzdx, dzdy = _gradients(z, i, j, res_y[i], res_x[i])
            tangent = math.sqrt(dzdx * dzdx + dzdy * dzdy)
            if dzdy == 0:
                dzdy = 10e-9
            if kind == TANGENT:
                out[0, i, j] = tangent
            elif kind == ASPECT_DEGREE:
                out[0, i, j] = math.degrees(math.atan2(dzdx, dzdy))
            elif kind == ASPECT_RADIAN:
                out[0, i, j] = math.atan2(dzdx, dzdy)
            else:
                secant = math.sqrt(1 + tangent * tangent)
                flat = cos_zenith / secant
                steep = sin_zenith * tangent / secant / math.sqrt(dzdx * dzdx + dzdy * dzdy)
                for k in range(azimuths.size):
                    facing = dzdy * cos_sun[k] + dzdx * sin_sun[k]
                    out[k, i, j] = max(flat + steep * facing, 0.0)


@njit(nogil=True, cache=True, error_model="numpy")
def _counts(valid, cols, origin_y, origin_x, margin, r, count, scratch):
    """Valid pixels per box into `count`: box sums of `valid`, or the box's area if it is
    empty."""
    if valid.size == 0:
        count[:] = (2 * r + 1) ** 2
    else:
        box_sum(valid, cols, origin_y, origin_x, margin, r, count, scratch)


@njit(nogil=True, cache=True, error_model="numpy")
def box_mean(values, valid, cols, origin_y, origin_x, margin, r, out):
    """RVT's `mean_filter`: the mean of the valid pixels of each (2r + 1)^2 box, in float64
    and rounded to float32 as RVT rounds it; NaN where the centre is NaN. `values` has 0 at
    invalid pixels, `valid` is 1 or 0 (empty: all valid); `cols`, origin and margin as for
    `box_sums.box_sum`."""
    scratch = np.empty((out.shape[0], values.shape[1]))
    box_sum(values, cols, origin_y, origin_x, margin, r, out, scratch)
    count = np.empty(out.shape)
    _counts(valid, cols, origin_y, origin_x, margin, r, count, scratch)
    for y in range(out.shape[0]):
        for c in range(out.shape[1]):
            centre_valid = valid.size == 0 or valid[margin + y, cols[margin + c]] > 0
            mean = out[y, c] / count[y, c] if centre_valid else np.nan
            out[y, c] = np.float32(mean)


@njit(nogil=True, cache=True, error_model="numpy")
def max_deviation(values, valid, cols, origin_y, origin_x, margin, radii, out):
    """RVT's `max_elevation_deviation`: per pixel, of the deviations from the mean over boxes
    of each radius, (z - mean) / (std + 1e-6), the one of largest magnitude (the first radius
    wins ties; a NaN deviation replaces the maximum, as RVT's `numpy.where` does)."""
    total = np.empty(out.shape)
    squares = np.empty(out.shape)
    count = np.empty(out.shape)
    scratch = np.empty((out.shape[0], values.shape[1]))
    square_values = values * values
    for n, r in enumerate(radii):
        box_sum(values, cols, origin_y, origin_x, margin, r, total, scratch)
        box_sum(square_values, cols, origin_y, origin_x, margin, r, squares, scratch)
        _counts(valid, cols, origin_y, origin_x, margin, r, count, scratch)
        for y in range(out.shape[0]):
            for c in range(out.shape[1]):
                mean = total[y, c] / count[y, c]
                std = math.sqrt(abs(squares[y, c] / count[y, c] - mean * mean))
                dev = (values[margin + y, cols[margin + c]] - mean) / (std + 1e-6)
                if n == 0 or not abs(out[y, c]) >= abs(dev):
                    out[y, c] = dev
