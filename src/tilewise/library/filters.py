"""Neighbourhood filters on the spatial axes (channels are filtered one by one).

Each output pixel is computed from its own neighbourhood by the same arithmetic wherever the
tile boundaries fall, so results are bit for bit those of the whole image. That is why `mean`
is a correlation with uniform weights and not SciPy's `uniform_filter`, a running sum whose
rounding depends on where the line starts. Float results are float32 (float64 for float64
input) with the input's nodata pixels turned into NaN, which then spreads to every pixel whose
neighbourhood holds one. `gaussian`'s sigma and the rank filters' size may be given per axis
(`{"z": 1, "y": 3, "x": 3}`, for anisotropic voxels): the filter then spans the axes named.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from ..axes import count
from ..errors import ParameterError
from ..graph import Image
from ..ops import Op
from .kernels import (
    Mode,
    as_float,
    check_mode,
    float_dtype,
    nodata_of,
    number,
    spatial_axes,
)
from .registry import builtin


def _mean(a, *, size, axes, mode, nodata, dtype):
    out = as_float(a, nodata, dtype)
    weights = np.full(size, 1.0 / size)
    for axis in axes:
        out = ndimage.correlate1d(out, weights, axis=axis, mode=mode)
    return out


def _gaussian(a, *, sigma, truncate, axes, mode, nodata, dtype):
    return ndimage.gaussian_filter(as_float(a, nodata, dtype), sigma, mode=mode,
                                   truncate=truncate, axes=axes)


def _rank(a, *, which, size, axes, mode):
    rank = getattr(ndimage, f"{which}_filter")
    holes = np.isnan(a) if a.dtype.kind in "fc" else None
    if holes is None or not holes.any():
        return rank(a, size=size, mode=mode, axes=axes)
    # SciPy's comparisons give NaN or not depending on where in the window it lies; as with
    # numpy.max, any NaN in the neighbourhood makes the result NaN.
    out = rank(np.where(holes, 0, a), size=size, mode=mode, axes=axes)
    out[ndimage.maximum_filter(holes, size=size, mode=mode, axes=axes)] = np.nan
    return out


def _gradient_magnitude(a, *, axes, mode, nodata, dtype):
    x = as_float(a, nodata, dtype)
    total = np.zeros_like(x)
    for axis in axes:
        d = ndimage.correlate1d(x, [-1.0, 0.0, 1.0], axis=axis, mode=mode)
        for other in axes:
            if other != axis:
                d = ndimage.correlate1d(d, [1.0, 2.0, 1.0], axis=other, mode=mode)
        total += d * d
    return np.sqrt(total)


def _float_op(func, image: Image, name: str, margin: int | dict[str, int], mode: str,
              axes: tuple[int, ...] | None = None, **params) -> Image:
    axes = spatial_axes(image) if axes is None else axes
    check_mode(mode, max(_margins(margin)), image, axes, name)
    dtype = float_dtype(image.dtype)
    nodata = nodata_of(image)
    meta = {"nodata": float("nan")} if nodata is not None else None
    return Op(func, margin=margin, dtype=dtype, meta=meta, name=name)(
        image, axes=axes, mode=mode, nodata=nodata, dtype=dtype, **params)


def _size(size: int, name: str) -> int:
    if count(size, f"size of op {name!r}", ParameterError) < 1:
        raise ParameterError(f"size of op {name!r} must be at least 1, not {size}")
    return size


def _margins(margin: int | dict[str, int]) -> list[int]:
    return list(margin.values()) if isinstance(margin, dict) else [margin]


def _named(value: Mapping[str, object], image: Image, key: str, name: str) -> tuple[int, ...]:
    """The positions of the axes a per-axis `key` names, in the image's order."""
    unknown = [a for a in value if a not in image.axes]
    if unknown or not value:
        raise ParameterError(f"{key} of op {name!r} must name axes of the image {image.axes}, "
                             f"not {dict(value)!r}")
    return tuple(i for i, a in enumerate(image.axes) if a in value)


@builtin(halo="size // 2")
def mean(image: Image, *, size: int, mode: Mode = "nearest") -> Image:
    """Mean over a size^n box (n spatial axes), exact under tiling; float output."""
    return _float_op(_mean, image, "mean", _size(size, "mean") // 2, mode, size=size)


@builtin(halo="int(truncate * sigma + 0.5), per axis")
def gaussian(image: Image, *, sigma: float | dict[str, float], truncate: float = 4.0,
             mode: Mode = "nearest") -> Image:
    """Gaussian blur (scipy.ndimage.gaussian_filter) with standard deviation sigma pixels,
    one for the spatial axes or one per axis named."""
    truncate = number(truncate, "truncate", "gaussian", positive=True)
    if not isinstance(sigma, Mapping):
        sigma = number(sigma, "sigma", "gaussian", positive=True)
        return _float_op(_gaussian, image, "gaussian", int(truncate * sigma + 0.5), mode,
                         sigma=sigma, truncate=truncate)
    axes = _named(sigma, image, "sigma", "gaussian")
    sigmas = {a: number(s, f"sigma[{a!r}]", "gaussian", positive=True) for a, s in sigma.items()}
    return _float_op(_gaussian, image, "gaussian",
                     {a: int(truncate * s + 0.5) for a, s in sigmas.items()}, mode, axes,
                     sigma=tuple(sigmas[image.axes[i]] for i in axes), truncate=truncate)


def _rank_op(which: str, image: Image, size: int | dict[str, int], mode: str) -> Image:
    if isinstance(size, Mapping):
        axes = _named(size, image, "size", which)
        sizes = {a: _size(n, which) for a, n in size.items()}
        margin: int | dict[str, int] = {a: n // 2 for a, n in sizes.items()}
        size = tuple(sizes[image.axes[i]] for i in axes)  # type: ignore[assignment]
    else:
        margin = _size(size, which) // 2
        axes = spatial_axes(image)
    check_mode(mode, max(_margins(margin)), image, axes, which)
    return Op(_rank, margin=margin, name=which)(image, which=which, size=size, axes=axes,
                                                mode=mode)


@builtin(halo="size // 2, per axis")
def median(image: Image, *, size: int | dict[str, int], mode: Mode = "nearest") -> Image:
    """Median over a size^n box (or sizes per axis named); same dtype; NaN if the box holds
    one; nodata takes part."""
    return _rank_op("median", image, size, mode)


@builtin(halo="size // 2")
def minimum(image: Image, *, size: int, mode: Mode = "nearest") -> Image:
    """Minimum over a size^n box (grey erosion); same dtype."""
    return _rank_op("minimum", image, size, mode)


@builtin(halo="size // 2")
def maximum(image: Image, *, size: int, mode: Mode = "nearest") -> Image:
    """Maximum over a size^n box (grey dilation); same dtype."""
    return _rank_op("maximum", image, size, mode)


@builtin(halo="1")
def gradient_magnitude(image: Image, *, mode: Mode = "nearest") -> Image:
    """Length of the Sobel gradient over the spatial axes; float output."""
    return _float_op(_gradient_magnitude, image, "gradient_magnitude", 1, mode)
