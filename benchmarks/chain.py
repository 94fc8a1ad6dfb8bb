"""The 3-op chain of the core benchmark, as tilewise ops and as one function for dask.

uniform_filter(size=5) -> hypot(sobel_y, sobel_x) -> gaussian_filter(sigma=2): halos 2 + 1 + 8.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

import tilewise as tw

HALO = 2 + 1 + 8


@tw.op(margin=2)
def smooth(a):
    return ndimage.uniform_filter(a, size=5)


@tw.op(margin=1)
def gradient(a):
    return np.hypot(ndimage.sobel(a, 0), ndimage.sobel(a, 1))


@tw.op(margin=8)
def blur(a):
    return ndimage.gaussian_filter(a, sigma=2)


def whole(a: np.ndarray) -> np.ndarray:
    """The same chain on a whole array (what dask's map_overlap runs on each block)."""
    s = ndimage.uniform_filter(a, size=5)
    return ndimage.gaussian_filter(np.hypot(ndimage.sobel(s, 0), ndimage.sobel(s, 1)), sigma=2)


def pipeline(image: tw.Image) -> tw.Image:
    return blur(gradient(smooth(image)))
