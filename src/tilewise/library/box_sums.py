"""Box sums of any radius that round the same way on every tile: the window means of the
relief models (`slrm`, `msrm`, `mstp`).

RVT sums boxes with integral images (running sums from the array's corner), whose rounding
depends on where the array starts: a tile would not give the whole image's bits. Here a box
of radius r is the suffix of one block of 2r pixels plus the prefix of the next, the blocks
aligned to absolute pixel 0 of the padded image (van Herk's scheme, used for sums): each
pixel's sum is the same additions in the same order wherever the tile boundaries fall, and
costs three additions per pixel and axis whatever the radius.

Beyond the image edge the DEM is padded as RVT pads it ("edge" for the mean filter,
"symmetric" for MSTP's deviations): `padded_index` maps padded coordinates to image ones, so a
tile at the border builds exactly the padding the whole image gets.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Columns (rows) handled at once by the pass down the rows: bounds its scratch memory.
STRIP = 256


def padded_index(start: int, stop: int, size: int, mode: str) -> np.ndarray:
    """Image indices of padded coordinates [start, stop) of an axis of `size` pixels, padded
    as `numpy.pad` pads: "edge" repeats the end pixel, "symmetric" mirrors (repeatedly)."""
    i = np.arange(start, stop)
    if mode == "edge":
        return np.clip(i, 0, size - 1)
    period = i % (2 * size)
    return np.where(period < size, period, 2 * size - 1 - period)


def extended(a: np.ndarray, tile, radius: int, mode: str
             ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The rows of the tile's region grown by `radius`, padded beyond the image as the whole
    image is, from the op's input window `a` (all of its columns); the window columns of the
    region's columns grown by `radius`, padded likewise (a padded column is a copy of an image
    column, so its sums down the rows are that column's); and the absolute padded coordinates
    of the first grown row and column (the block alignment needs them). The region's last two
    axes are its rows and columns."""
    (y0, x0), (y1, x1) = tile.region.start[-2:], tile.region.stop[-2:]
    (wy, wx), (h, w) = tile.window.start, tile.shape
    rows = padded_index(y0 - radius, y1 + radius, h, mode) - wy
    cols = padded_index(x0 - radius, x1 + radius, w, mode) - wx
    return a[rows], cols, (y0 - radius, x0 - radius)


@njit(nogil=True, cache=True, error_model="numpy")
def _starts_block(absolute, block):
    return absolute % block == 0  # Python's modulo in numba: non-negative for block > 0


@njit(nogil=True, cache=True, error_model="numpy")
def _sums_down(x, first, r, col0, out):
    """out[y, c] = x[y : y + 2r + 1, col0 + c].sum() (x's row 0 is absolute row `first`):
    the suffixes are stored, the prefixes summed on the fly as each output row completes."""
    rows, cols = out.shape
    n, block = rows + 2 * r, 2 * r
    suffix = np.empty((n, min(cols, STRIP)))
    prefix = np.empty(min(cols, STRIP))
    for c0 in range(0, cols, STRIP):
        width = min(STRIP, cols - c0)
        start = col0 + c0
        for k in range(n - 1, -1, -1):
            if k == n - 1 or _starts_block(first + k + 1, block):
                for c in range(width):
                    suffix[k, c] = x[k, start + c]
            else:
                for c in range(width):
                    suffix[k, c] = x[k, start + c] + suffix[k + 1, c]
        for k in range(n):
            if k == 0 or _starts_block(first + k, block):
                for c in range(width):
                    prefix[c] = x[k, start + c]
            else:
                for c in range(width):
                    prefix[c] += x[k, start + c]
            if k >= block:
                for c in range(width):
                    out[k - block, c0 + c] = suffix[k - block, c] + prefix[c]


@njit(nogil=True, cache=True, error_model="numpy")
def _sums_across(x, cols, first, r, out):
    """out[y, c] = x[y, cols[c : c + 2r + 1]].sum() (cols[0] is absolute column `first`)."""
    rows, n_out = out.shape
    n, block = n_out + 2 * r, 2 * r
    prefix = np.empty(n)
    suffix = np.empty(n)
    for y in range(rows):
        for k in range(n):
            value = x[y, cols[k]]
            fresh = k == 0 or _starts_block(first + k, block)
            prefix[k] = value if fresh else prefix[k - 1] + value
        for k in range(n - 1, -1, -1):
            value = x[y, cols[k]]
            fresh = k == n - 1 or _starts_block(first + k + 1, block)
            suffix[k] = value if fresh else value + suffix[k + 1]
        for c in range(n_out):
            out[y, c] = suffix[c] + prefix[c + block]


@njit(nogil=True, cache=True, error_model="numpy")
def box_sum(x, cols, origin_y, origin_x, margin, r, out, scratch):
    """Sums over (2r + 1)^2 boxes into `out`, centred on rows x[margin:-margin] and columns
    cols[margin:-margin] of `x` (float64; see `extended`: its row 0 and cols[0] are at
    absolute padded coordinates origin). `scratch` holds the sums down the rows: at least
    out's rows by x's columns, reused from call to call (a new one per call was measured
    costing more in page faults than the sums)."""
    rows, n_out = out.shape
    used = cols[margin - r:margin + n_out + r]
    if r == 0:
        for y in range(rows):
            for c in range(n_out):
                out[y, c] = x[margin + y, used[c]]
        return
    low, high = used.min(), used.max() + 1
    down = scratch[:rows, :high - low]
    _sums_down(x[margin - r:], origin_y + margin - r, r, low, down)
    _sums_across(down, used - low, origin_x + margin - r, r, out)
