"""Microscopy ops: denoising, background subtraction, per-channel normalisation of TCZYX stacks.

Each runs scikit-image's own function tile by tile over the axes `over` names (by default the
image's spatial ones: z, y, x where present), once per time point and channel, with the halo
its neighbourhood needs along those axes:

- `denoise_nl_means`: a pixel is a weighted mean of the pixels within `patch_distance`, each
  weighted by how alike the patches of `patch_size` around the two are: it reads
  `patch_distance + patch_size // 2` pixels around it. Computed in float64; the fast mode sums
  patch distances through running sums, whose rounding depends on where the window starts,
  so tiles equal the whole image to about 1e-12 relative, not bit for bit.
- `denoise_tv`: Chambolle's total-variation iteration moves information one pixel per
  iteration along each axis, so after `iterations` iterations a pixel has seen exactly the
  pixels within `iterations` of it: that is its halo, and tiles equal the whole image bit for
  bit. scikit-image stops by default when a global energy stops falling, which no tile can
  know; here the number of iterations is fixed (`eps=0`).
- `subtract_background`: the image minus its rolling-ball background (a ball of `radius`
  pixels rolled under the intensity landscape), whose halo is `ceil(radius)`; bit for bit.
- `normalize_channels`: `(x - low) / (high - low)` per channel, low and high the channel's exact
  percentiles over the whole image (`tilewise.percentile`), computed in a sweep first.

3-D Gaussian and median filters are `gaussian` and `median` (`filters`), which filter every
spatial axis and take a sigma or size per axis for anisotropic voxels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from skimage import restoration

from ..axes import count, filtered
from ..errors import ParameterError
from ..graph import Image, TileInfo
from ..ops import Op
from ..reductions import percentile
from .kernels import as_float, float_dtype, nodata_of, number
from .registry import builtin


def _over(image: Image, over: str | None, name: str, dims: tuple[int, int]) -> tuple[str, ...]:
    """The axes an op runs over: `over`, else the image's spatial axes; `dims` bounds how many
    the scikit-image function takes."""
    axes = tuple(filtered(image.axes)) if over is None else tuple(over)
    if not all(a in image.axes for a in axes) or len(set(axes)) != len(axes):
        raise ParameterError(f"over={over!r} of op {name!r} must name distinct axes of the "
                             f"image {image.axes}")
    if not dims[0] <= len(axes) <= dims[1]:
        raise ParameterError(f"op {name!r} runs over {dims[0]} to {dims[1]} axes, not "
                             f"{len(axes)} ({''.join(axes)}); name them with over=")
    return axes


def _float_op(func, image: Image, name: str, axes: tuple[str, ...], halo: int,
              **params: Any) -> Image:
    dtype = float_dtype(image.dtype)
    nodata = nodata_of(image)
    meta = {"nodata": float("nan")} if nodata is not None else None
    return Op(func, margin=dict.fromkeys(axes, halo), dtype=dtype, meta=meta, name=name,
              over=axes)(image, nodata=nodata, dtype=dtype, **params)


def _nl_means(a, *, patch_size, patch_distance, h, sigma, fast_mode, nodata, dtype):
    x = as_float(a, nodata, np.float64)
    return restoration.denoise_nl_means(x, patch_size=patch_size, patch_distance=patch_distance,
                                        h=h, sigma=sigma, fast_mode=fast_mode).astype(dtype)


@builtin(halo="patch_distance + patch_size // 2, along each axis of over")
def denoise_nl_means(image: Image, *, h: float, patch_size: int = 5, patch_distance: int = 6,
                     sigma: float = 0.0, fast_mode: bool = True,
                     over: str | None = None) -> Image:
    """Non-local means denoising (skimage.restoration.denoise_nl_means) over 2 to 4 axes; h
    and sigma in the image's units; float output."""
    name = "denoise_nl_means"
    h = number(h, "h", name, positive=True)
    sigma = number(sigma, "sigma", name)
    size = count(patch_size, f"patch_size of op {name!r}", ParameterError, least=1)
    distance = count(patch_distance, f"patch_distance of op {name!r}", ParameterError, least=1)
    axes = _over(image, over, name, (2, 4 if fast_mode else 3))
    return _float_op(_nl_means, image, name, axes, distance + size // 2, patch_size=size,
                     patch_distance=distance, h=h, sigma=sigma, fast_mode=bool(fast_mode))


def _tv(a, *, weight, iterations, nodata, dtype):
    x = as_float(a, nodata, dtype)
    return restoration.denoise_tv_chambolle(x, weight=weight, eps=0.0,
                                            max_num_iter=iterations)


@builtin(halo="iterations, along each axis of over (a fixed number of iterations)")
def denoise_tv(image: Image, *, weight: float, iterations: int = 50,
               over: str | None = None) -> Image:
    """Total-variation denoising (skimage.restoration.denoise_tv_chambolle) with a fixed
    number of iterations, bit for bit under tiling; weight in the image's units."""
    name = "denoise_tv"
    weight = number(weight, "weight", name, positive=True)
    iterations = count(iterations, f"iterations of op {name!r}", ParameterError, least=1)
    axes = _over(image, over, name, (1, 8))
    return _float_op(_tv, image, name, axes, iterations, weight=weight, iterations=iterations)


def _background(a, *, radius, nodata, dtype):
    x = as_float(a, nodata, dtype)
    return x - restoration.rolling_ball(x, radius=radius, nansafe=bool(np.isnan(x).any()))


@builtin(halo="ceil(radius), along each axis of over")
def subtract_background(image: Image, *, radius: float, over: str | None = None) -> Image:
    """The image minus its rolling-ball background (skimage.restoration.rolling_ball), a
    ball of radius pixels; float output."""
    name = "subtract_background"
    radius = number(radius, "radius", name, positive=True)
    axes = _over(image, over, name, (1, 8))
    return _float_op(_background, image, name, axes, math.ceil(radius), radius=radius)


def _normalize_channels(a, *, clip, channel, nodata, tile: TileInfo, **limits):
    out = as_float(a, nodata, np.float64)
    first = 0 if channel is None else tile.window.start[channel]
    for i in range(1 if channel is None else a.shape[channel]):
        key = tuple(i if d == channel else slice(None) for d in range(a.ndim))
        low, high = limits["all"] if channel is None else limits[f"c{first + i}"]
        part = (out[key] - low) / (high - low if high > low else 1.0)
        out[key] = np.clip(part, 0.0, 1.0) if clip else part
    return out


@builtin(halo="0 (the percentiles are exact, computed over the whole image first)")
def normalize_channels(image: Image, *, percentiles: tuple[float, float] = (1.0, 99.8),
              clip: bool = False) -> Image:
    """Each channel mapped linearly from its [low, high] percentiles to [0, 1] (float32),
    the percentiles exact over the channel's whole image; clip=True clips to [0, 1]."""
    ok = (isinstance(percentiles, (list, tuple)) and len(percentiles) == 2
          and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in percentiles)
          and 0 <= percentiles[0] < percentiles[1] <= 100)
    if not ok:
        raise ParameterError(f"percentiles of op 'normalize_channels' must be two numbers "
                             f"0 <= low < high <= 100, not {percentiles!r}")
    q = [float(p) for p in percentiles]
    if "c" in image.axes:
        channel = image.axes.index("c")
        limits = {f"c{i}": percentile(image[(slice(None),) * channel + (i,)], q)
                  for i in range(image.shape[channel])}
    else:
        channel, limits = None, {"all": percentile(image, q)}
    nodata = nodata_of(image)
    meta = {"nodata": float("nan")} if nodata is not None else None
    return Op(_normalize_channels, dtype="float32", meta=meta, name="normalize_channels")(
        image, clip=bool(clip), channel=channel, nodata=nodata, **limits)
