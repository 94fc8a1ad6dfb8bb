"""Ops for the tests, at module level so worker processes can import them."""

import numpy as np
from scipy import ndimage

import tilewise as tw


def box_weights(ndim: int, radius: int) -> np.ndarray:
    """Weights whose per-pixel sum is exact in any order for small integers."""
    shape = (2 * radius + 1,) * ndim
    return (np.arange(np.prod(shape)) % 5 + 1).reshape(shape).astype("float64")


def correlate(a, *, radius):
    """A position-invariant filter: each output pixel sums its window in a fixed order.

    Not mode="reflect": SciPy 1.17's reflect mode reads outside the array when the footprint
    is more than twice an axis long (garbage results, or a crash on a page-sized buffer).
    """
    return ndimage.correlate(a, box_weights(a.ndim, radius), mode="mirror")


def minimum(a, *, radius):
    return ndimage.minimum_filter(a, size=2 * radius + 1, mode="nearest")


def median(a, *, radius):
    return ndimage.median_filter(a, size=2 * radius + 1, mode="mirror")


def shift_sum(a, b):
    return a.astype("float64") + 2 * b


def sobels(a):
    return ndimage.sobel(a, 0), ndimage.sobel(a, -1)


@tw.op(margin=lambda radius: radius)
def smooth(a, *, radius):
    return correlate(a, radius=radius)


@tw.op(margin={"y": 1, "x": 1}, dtype="float32", outputs=2)
def grad(a):
    return sobels(a)


@tw.op(margin=0)
def where_am_i(a, *, tile):
    out = np.zeros(a.shape, "int64")
    out[...] = tile.index[-1] * 1000 + int(tile.at_border["x"][0])
    return out


@tw.op(margin=1)
def scribble(a):
    a[...] = 0
    return a


@tw.op(margin=0)
def wrong_shape(a):
    return a[1:]


@tw.op(margin=0, dtype="float64")
def all_nan_mean(a):
    return np.nanmean(np.where(a > -1e30, np.nan, a), axis=0, keepdims=True).repeat(a.shape[0], 0)


def block_sum(a):
    """Sum of 3 x 2 blocks; a partial block at the end is dropped (the op's shape says so)."""
    h, w = a.shape[0] // 3 * 3, a.shape[1] // 2 * 2
    return a[:h, :w].reshape(h // 3, 3, w // 2, 2).sum(axis=(1, 3))


def upsample(a):
    """Nearest-neighbour 2x upsampling."""
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


rebin = tw.op(block_sum, factor={"y": 3, "x": 2}, dtype="float64",
              shape=lambda s: (s["y"] // 3, s["x"] // 2))
double = tw.op(upsample, factor=(1, 2))


def flip_rows(a):
    return a[::-1]


def flipped_rows(shape):
    """A footprint that is not per axis in the planner's sense: output row o reads row n-1-o."""
    n = shape[0]

    def footprint(region):
        return tw.regions.Box((n - region.stop[0], region.start[1]),
                              (n - region.start[0], region.stop[1]))

    return footprint


def dies_once(a, *, marker, tile):
    """Kills its worker process on tile (1, 1) the first time it runs there (as a segfault in
    a C extension would), then behaves: a lost worker, then a resume."""
    import os

    if tile.index == (1, 1) and not tile.probe and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(7)
    return a * 2
