"""Box sums of any radius that round the same way on every tile, streamed row by row: the
window means and deviations of the relief models (`slrm`, `msrm`, `mstp`).

RVT sums boxes with integral images (running sums from the array's corner), whose rounding
depends on where the array starts: a tile would not give the whole image's bits. Here each
pixel's sum is the same additions in the same order wherever the tile boundaries fall:

- Down the columns, partial sums run within blocks of rows aligned to absolute pixel 0 of the
  padded image: the rows [y - r, y + r] of a box are the suffix of the block of rows holding
  y - r, the whole blocks after it, and the prefix of the block holding y + r. Blocks are
  B = min(2r, `BLOCK`) rows: below radius `BLOCK` / 2 a box spans exactly two blocks (van
  Herk's scheme); for larger radii the whole blocks in between are added left to right from
  block totals that every radius shares. Output rows are visited in order: the prefix grows by
  one row, a block's suffixes are summed once when the box's top enters it, and the sum of the
  whole blocks changes only at block boundaries. So a pixel costs a few additions per radius
  whatever the radius, and nothing is held but one block of rows: memory does not grow with
  the tile's height or the radius (the whole padded window is never copied).
- Across, each output row of those column sums is summed over the box's 2r + 1 columns as a
  sum of windows of 2^k columns, one per bit of 2r + 1, each the sum of two windows of the
  level below: every addition depends on the pixel's own columns only, so tiles cannot change
  it, and each level is one pass along the row that vectorises (some log2(r) passes a row).

Beyond the image edge the DEM is padded as RVT pads it ("edge" for the mean filter,
"symmetric" for MSTP's deviations): `padded_index` maps padded coordinates to image ones, so a
tile at the border sees exactly the padding the whole image gets. Sums are float64 of the
float32 elevations (NaN counted as nothing: a value 0, a count 0), their squares, and counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import boolean, float32, float64, int64, njit, void

from .compiled import COMPILE, DEM

#: Rows of the blocks whole blocks of larger boxes are made of (see above): bounds the rows
#: held at once and the additions of whole blocks (2 r / BLOCK per pixel, once per BLOCK rows).
BLOCK = 128
F4 = float32[:, ::1]
F8 = float64[:, ::1]
F8_3D = float64[:, :, ::1]
INDEX = int64[::1]


def padded_index(start: int, stop: int, size: int, mode: str) -> np.ndarray:
    """Image indices of padded coordinates [start, stop) of an axis of `size` pixels, padded
    as `numpy.pad` pads: "edge" repeats the end pixel, "symmetric" mirrors (repeatedly)."""
    i = np.arange(start, stop)
    if mode == "edge":
        return np.clip(i, 0, size - 1)
    period = i % (2 * size)
    return np.where(period < size, period, 2 * size - 1 - period)


@dataclass(frozen=True)
class Padded:
    """A tile's region grown by `margin`, in padded coordinates: `rows` and `cols` give the
    input window's row and column of each padded row and column (the region's first padded
    row is rows[margin]); `top` is the absolute padded coordinate of rows[0], which the
    block alignment down the columns needs."""

    rows: np.ndarray
    cols: np.ndarray
    top: int
    margin: int

    @classmethod
    def of(cls, tile, margin: int, mode: str) -> Padded:
        (y0, x0), (y1, x1) = tile.region.start[-2:], tile.region.stop[-2:]
        (wy, wx), (h, w) = tile.window.start, tile.shape
        return cls(padded_index(y0 - margin, y1 + margin, h, mode) - wy,
                   padded_index(x0 - margin, x1 + margin, w, mode) - wx, y0 - margin, margin)

    @property
    def shape(self) -> tuple[int, int]:
        """The region's rows and columns."""
        return len(self.rows) - 2 * self.margin, len(self.cols) - 2 * self.margin

    def columns(self, radius: int) -> tuple[int, int]:
        """The first window column and the number of them that boxes of `radius` read."""
        used = self.cols[self.margin - radius:len(self.cols) - self.margin + radius]
        return int(used.min()), int(used.max()) - int(used.min()) + 1


def scratch(padded: Padded, radii: tuple[int, ...], quantities: int) -> tuple[np.ndarray, ...]:
    """The buffers the kernels below need for boxes of `radii` (callers allocate them, so that
    the planner's memory probe sees them), each `quantities` deep: the suffixes of one block of
    rows; the prefix and the whole blocks' sum; the block totals; the column sums of an output
    row; the row's values across and two levels of window sums; the row's box sums."""
    width = padded.columns(max(radii))[1]
    blocks = len(padded.rows) // BLOCK + 1 if max(radii) >= BLOCK // 2 else 0
    across = padded.shape[1] + 2 * max(radii)
    return (np.empty((min(BLOCK, 2 * max(radii)) or 1, quantities, width)),
            np.empty((2, quantities, width)), np.empty((blocks, quantities, width)),
            np.empty((quantities, width)), np.empty((3, across)),
            np.empty((quantities, padded.shape[1])))


# ---- one row of values ----------------------------------------------------------------------
# Quantity 0 is the value (NaN as 0), then its square if asked, then the count (1, or 0 at NaN)
# if the window has NaN. Rows are 1-D and contiguous, so that these loops vectorise.


@njit(**COMPILE)
def _set(zr, lo, width, squares, nan, dst):
    """dst[q, :width] = quantity q of the window row zr from column lo."""
    d = dst[0]
    for x in range(width):
        v = np.float64(zr[lo + x])
        d[x] = v if v == v else 0.0
    if squares:
        d = dst[1]
        for x in range(width):
            v = np.float64(zr[lo + x])
            v = v if v == v else 0.0
            d[x] = v * v
    if nan:
        d = dst[dst.shape[0] - 1]
        for x in range(width):
            d[x] = 1.0 if zr[lo + x] == zr[lo + x] else 0.0


@njit(**COMPILE)
def _plus(zr, lo, width, squares, nan, add, dst):
    """dst[q, :width] = quantity q of the window row zr plus add[q] (add may be dst)."""
    d, a = dst[0], add[0]
    for x in range(width):
        v = np.float64(zr[lo + x])
        d[x] = (v if v == v else 0.0) + a[x]
    if squares:
        d, a = dst[1], add[1]
        for x in range(width):
            v = np.float64(zr[lo + x])
            v = v if v == v else 0.0
            d[x] = v * v + a[x]
    if nan:
        last = dst.shape[0] - 1
        d, a = dst[last], add[last]
        for x in range(width):
            d[x] = (1.0 if zr[lo + x] == zr[lo + x] else 0.0) + a[x]


# ---- down the columns ---------------------------------------------------------------------


@njit(**COMPILE)
def _block(r):
    return min(2 * r, BLOCK)


@njit(**COMPILE)
def _block_totals(z, rows, top, skip, lo, width, squares, nan, totals):
    """totals[k, :, :width] = the sums down the columns from window column lo of the k-th
    whole block of `BLOCK` rows in the padded rows (rows[0] at absolute `top`), from the
    block's top; only blocks clear of the first and last `skip` padded rows (beyond the
    largest box) are summed."""
    first = -(-top // BLOCK)
    for k in range(totals.shape[0]):
        start = (first + k) * BLOCK - top
        if start + BLOCK > rows.size - skip:
            break
        if start < skip:
            continue
        _set(z[rows[start]], lo, width, squares, nan, totals[k])
        for j in range(start + 1, start + BLOCK):
            _plus(z[rows[j]], lo, width, squares, nan, totals[k], totals[k])


@njit(**COMPILE)
def _suffixes(z, rows, top, lo, width, squares, nan, a, block_end, suffix):
    """suffix[j] = the column sums of rows a' .. block_end, for every a' from block_end down
    to a (j = a' - the block's first row), summed from the bottom."""
    base = block_end - suffix.shape[0] + 1
    _set(z[rows[block_end - top]], lo, width, squares, nan, suffix[block_end - base])
    for y in range(block_end - 1, a - 1, -1):
        _plus(z[rows[y - top]], lo, width, squares, nan, suffix[y - base + 1], suffix[y - base])


@njit(**COMPILE)
def _whole_blocks(totals, first, ka, kb, off, width, middle):
    """middle = the totals of blocks ka + 1 .. kb - 1 added in that order (at least one)."""
    for q in range(middle.shape[0]):
        m = middle[q]
        t = totals[ka + 1 - first, q]
        for x in range(width):
            m[x] = t[off + x]
        for k in range(ka + 2, kb):
            t = totals[k - first, q]
            for x in range(width):
                m[x] += t[off + x]


@njit(**COMPILE)
def _restart(z, rows, top, lo, width, squares, nan, n, a, b, totals, off, block, rolling):
    """The running sums for a box from row a to row b, from nothing: the suffixes of a's
    block, the prefix of b's, the whole blocks between."""
    ka, kb = a // n, b // n
    prefix, middle = rolling[0], rolling[1]
    _suffixes(z, rows, top, lo, width, squares, nan, a, (ka + 1) * n - 1, block)
    _set(z[rows[kb * n - top]], lo, width, squares, nan, prefix)
    for j in range(kb * n + 1, b + 1):
        _plus(z[rows[j - top]], lo, width, squares, nan, prefix, prefix)
    if kb - ka > 1:
        _whole_blocks(totals, -(-top // BLOCK), ka, kb, off, width, middle)


@njit(**COMPILE)
def _advance(z, rows, top, lo, width, squares, nan, n, a, b, kb_before, totals, off, block,
             rolling):
    """The running sums moved down one row, to a box from row a to row b: row b joins the
    prefix (or starts it, at a block's top); when a enters a block, that block's suffixes
    are summed and the whole blocks summed again; when only b enters one, the block it left
    joins the whole blocks (added last, as summing them again would add it)."""
    ka, kb = a // n, b // n
    prefix, middle = rolling[0], rolling[1]
    first = -(-top // BLOCK)
    if b % n == 0:
        _set(z[rows[b - top]], lo, width, squares, nan, prefix)
    else:
        _plus(z[rows[b - top]], lo, width, squares, nan, prefix, prefix)
    if a % n == 0:
        _suffixes(z, rows, top, lo, width, squares, nan, a, a + n - 1, block)
        if kb - ka > 1:
            _whole_blocks(totals, first, ka, kb, off, width, middle)
    elif kb != kb_before and kb - ka == 2:
        _whole_blocks(totals, first, ka, kb, off, width, middle)
    elif kb != kb_before and kb - ka > 2:
        for q in range(middle.shape[0]):
            m, t = middle[q], totals[kb - 1 - first, q]
            for x in range(width):
                m[x] += t[off + x]


@njit(**COMPILE)
def _column_sums(z, rows, top, lo, width, squares, nan, r, y, totals, off, suffix, rolling,
                 state, out):
    """out[q, :width] = the sums of rows y - r .. y + r (absolute padded) down each column
    from window column lo. Consecutive calls follow y (state: [previous y, kb]; a previous y
    other than y - 1 starts afresh); rolling[0] holds the prefix of the bottom block,
    rolling[1] the sum of the whole blocks; `off` is the column of lo in `totals`."""
    n = _block(r)
    a, b = y - r, y + r
    ka, kb = a // n, b // n
    block = suffix[:n]
    if state[0] != y - 1:
        _restart(z, rows, top, lo, width, squares, nan, n, a, b, totals, off, block, rolling)
    else:
        _advance(z, rows, top, lo, width, squares, nan, n, a, b, state[1], totals, off, block,
                 rolling)
    state[0], state[1] = y, kb
    top_rows, prefix, middle = block[a - ka * n], rolling[0], rolling[1]
    for q in range(out.shape[0]):
        o, s, p = out[q], top_rows[q], prefix[q]
        if kb - ka > 1:
            m = middle[q]
            for x in range(width):
                o[x] = (s[x] + m[x]) + p[x]
        else:
            for x in range(width):
                o[x] = s[x] + p[x]


# ---- across ---------------------------------------------------------------------------------
# Passes over whole rows, taking views rather than offsets: with an offset only known at run
# time LLVM does not vectorise the loop (measured 0.49 against 0.16 ns a value).


@njit(**COMPILE)
def _add(x, y, dst):
    for c in range(dst.size):
        dst[c] = x[c] + y[c]


@njit(**COMPILE)
def _copy(x, dst):
    for c in range(dst.size):
        dst[c] = x[c]


@njit(**COMPILE)
def _window_sums(values, w, levels, out):
    """out[c] = values[c : c + w].sum(): the windows of 2^j values for the bits j of w,
    added from the lowest bit, each window the sum of two of the level below (levels:
    two rows as long as values, overwritten)."""
    n, m = values.size, out.size
    start = 0
    if w & 1:
        _copy(values[:m], out)
        start = 1
    j = 1
    while w >> j:
        half = 1 << (j - 1)
        count = n - 2 * half + 1
        level = levels[j & 1, :count]
        if j == 1:
            _add(values[:count], values[1:count + 1], level)
        else:
            below = levels[(j - 1) & 1]
            _add(below[:count], below[half:half + count], level)
        if (w >> j) & 1:
            if start == 0:
                _copy(level[:m], out)
            else:
                _add(out, level[start:start + m], out)
            start += 1 << j
        j += 1


@njit(**COMPILE)
def _box_row(z, rows, cols, top, margin, r, y, squares, nan, totals, lo_all, suffix,
             rolling, state, columns, levels, sums):
    """sums[q, c] = the box sums of radius r around output row y (absolute padded) and the
    region's columns c; `levels`: two rows of scratch, then the row's values across."""
    used = cols[margin - r:cols.size - margin + r]
    lo = used.min()
    width = used.max() - lo + 1
    if r == 0:
        _set(z[rows[y - top]], lo, width, squares, nan, columns)
    else:
        _column_sums(z, rows, top, lo, width, squares, nan, r, y, totals, lo - lo_all, suffix,
                     rolling, state, columns)
    values = levels[2, :used.size]
    for q in range(sums.shape[0]):
        if width == used.size and used[0] == lo:  # no padding: the columns in order
            _window_sums(columns[q, :width], 2 * r + 1, levels, sums[q])
        else:
            column = columns[q]
            for k in range(used.size):
                values[k] = column[used[k] - lo]
            _window_sums(values, 2 * r + 1, levels, sums[q])


@njit(**COMPILE)
def _start(z, rows, cols, top, margin, r, squares, nan, totals):
    """The first column the boxes of radius up to `r` use, with the block totals filled when
    `r` spans whole blocks (`totals` unused below radius BLOCK / 2)."""
    used = cols[margin - r:cols.size - margin + r]
    lo_all = used.min()
    if r >= BLOCK // 2:
        _block_totals(z, rows, top, margin - r, lo_all, used.max() - lo_all + 1, squares, nan,
                      totals)
    return lo_all


# ---- the relief models' kernels -------------------------------------------------------------

SIGNATURE = (DEM, INDEX, INDEX, int64, int64)
BUFFERS = (F8_3D, F8_3D, F8_3D, F8, F8, F8)


@njit(void(*SIGNATURE, int64, boolean, boolean, *BUFFERS, F4, int64), **COMPILE)
def box_mean(z, rows, cols, top, margin, r, nan, relief, suffix, rolling, totals, columns, levels,
             sums, out, ox):
    """RVT's `mean_filter`: the mean of the valid pixels of each (2r + 1)^2 box, in float64
    and rounded to float32 as RVT rounds it; NaN where the centre is NaN. Or, if `relief`,
    the elevation minus that mean in float32 (RVT's `slrm`), so that the mean needs no array
    of its own. `z` is the input window; rows, cols, top, margin as in `Padded`; `nan`:
    whether z has NaN. Buffers from `scratch`; `totals` unused below radius BLOCK / 2. `out`:
    the result's rows, the region's columns from column `ox`."""
    lo_all = _start(z, rows, cols, top, margin, r, False, nan, totals)
    state = np.zeros(2, np.int64)
    state[0] = top - 2
    area = np.float64((2 * r + 1) ** 2)
    x0, width = cols[margin], sums.shape[1]  # the region's columns: inside the window
    for i in range(out.shape[0]):
        _box_row(z, rows, cols, top, margin, r, top + margin + i, False, nan, totals, lo_all,
                 suffix, rolling, state, columns, levels, sums)
        total, o = sums[0], out[i, ox:ox + width]
        centre = z[rows[margin + i], x0:x0 + width]
        if nan:
            counts = sums[sums.shape[0] - 1]
            for c in range(width):
                mean = np.float32(total[c] / counts[c])
                o[c] = mean if centre[c] == centre[c] else np.nan
        else:
            for c in range(width):
                o[c] = np.float32(total[c] / area)
        if relief:
            for c in range(width):
                o[c] = centre[c] - o[c]


@njit(**COMPILE)
def _deviation(total, squares, counts, area, centre, first, out):
    """out = (centre - mean) / (std + 1e-6) of the boxes (counts: the valid pixels, or an
    empty row for boxes of `area` pixels), or the larger in magnitude of that and out unless
    `first` (a NaN deviation wins, as in RVT)."""
    if counts.size:
        for c in range(out.size):
            mean = total[c] / counts[c]
            std = math.sqrt(abs(squares[c] / counts[c] - mean * mean))
            centre[c] = (centre[c] - mean) / (std + 1e-6)
    else:
        for c in range(out.size):
            mean = total[c] / area
            std = math.sqrt(abs(squares[c] / area - mean * mean))
            centre[c] = (centre[c] - mean) / (std + 1e-6)
    if first:
        out[:] = centre
        return
    for c in range(out.size):
        out[c] = out[c] if abs(out[c]) >= abs(centre[c]) else centre[c]


@njit(void(*SIGNATURE, INDEX, boolean, *BUFFERS, F8), **COMPILE)
def max_deviation(z, rows, cols, top, margin, radii, nan, suffix, rolling, totals, columns,
                  levels, sums, out):
    """RVT's `max_elevation_deviation`: per pixel, of the deviations from the mean over boxes
    of each radius, (z - mean) / (std + 1e-6), the one of largest magnitude (the first radius
    wins ties; a NaN deviation replaces the maximum, as RVT's `numpy.where` does). Arguments
    as for `box_mean`."""
    lo_all = _start(z, rows, cols, top, margin, radii.max(), True, nan, totals)
    state = np.zeros(2, np.int64)
    x0, width = cols[margin], out.shape[1]  # the region's columns: inside the window
    centre = np.empty(width)
    no_counts = np.empty(0)
    for n in range(radii.size):
        r = radii[n]
        state[0] = top - 2
        area = np.float64((2 * r + 1) ** 2)
        for i in range(out.shape[0]):
            _box_row(z, rows, cols, top, margin, r, top + margin + i, True, nan, totals,
                     lo_all, suffix, rolling, state, columns, levels, sums)
            zr = z[rows[margin + i], x0:x0 + width]
            for c in range(width):
                v = np.float64(zr[c])
                centre[c] = v if v == v else 0.0
            _deviation(sums[0], sums[1], sums[2] if nan else no_counts, area, centre, n == 0,
                       out[i])
