"""Rebinning: each block of f pixels per axis reduced to one pixel (ndcube's `rebin`).

A block's value is what one NumPy call (`nansum`, `nanmean`, `nanmin`, `nanmax`, `nanmedian`)
gives on that block's pixels laid out in C order as the last axis. That definition does not
depend on where the block lies, so tiles give the whole image's result bit for bit. Reducing a
reshaped `(H, fy, W, fx)` array over axes `(1, 3)` instead sums in an order that depends on H
and W (NumPy merges axes of length 1), so it is not even the same on an image and its crop.

NaN and the image's nodata value are skipped. Dtypes: `mean` and `median` give float32 for
float16/float32 input, else float64; `min` and `max` keep the input dtype; `sum` gives float64
for floats, int64 for signed integers and booleans, uint64 for unsigned ones. A block without
a valid pixel is NaN in a float output, the nodata value for `min`/`max` of integers, and 0 for
an integer `sum` (whose output then has no nodata value: any sum may be a real one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from ..axes import filtered
from ..errors import ParameterError
from ..graph import Image, TileInfo
from ..ops import Op
from .kernels import nodata_of
from .registry import builtin

How = Literal["sum", "mean", "min", "max", "median"]


def output_dtype(dtype: Any, how: str) -> np.dtype:
    """The dtype `rebin` gives for input `dtype` (see the module docstring)."""
    dtype = np.dtype(dtype)
    if how in ("min", "max"):
        return dtype
    if how == "sum":
        return np.dtype({"f": "float64", "u": "uint64"}.get(dtype.kind, "int64"))
    return np.dtype("float32" if dtype.kind == "f" and dtype.itemsize <= 4 else "float64")


def blocks(a: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """`a` (whole blocks along every axis) as an array of its blocks' pixels in C order along a
    new last axis: shape (n0 // f0, n1 // f1, ..., f0 * f1 * ...), contiguous."""
    counts = [n // f for n, f in zip(a.shape, factors, strict=True)]
    split = a.reshape([x for pair in zip(counts, factors, strict=True) for x in pair])
    order = [*range(0, 2 * a.ndim, 2), *range(1, 2 * a.ndim, 2)]
    return np.ascontiguousarray(split.transpose(order)).reshape(*counts, -1)


def _reduce(b: np.ndarray, how: str, nodata: float | None, dtype: np.dtype) -> np.ndarray:
    """One value per block of `b` (blocks along the last axis), skipping NaN and `nodata`."""
    holes = None if nodata is None or np.isnan(nodata) else b == nodata
    if dtype.kind != "f":  # integer min, max and sum: no NaN to stand for a missing pixel
        if holes is None:
            return (np.sum(b, axis=-1, dtype=dtype) if how == "sum"
                    else getattr(np, how)(b, axis=-1))
        if how == "sum":
            return np.sum(np.where(holes, 0, b), axis=-1, dtype=dtype)
        info = np.iinfo(dtype) if dtype.kind in "iu" else None
        fill = (info.max if how == "min" else info.min) if info else how == "min"
        out = getattr(np, how)(np.where(holes, fill, b), axis=-1)
        out[holes.all(axis=-1)] = nodata
        return out
    x = b.astype(dtype)
    if holes is not None:
        x[holes] = np.nan
    if how == "sum":
        out = np.nansum(x, axis=-1)
        out[np.isnan(x).all(axis=-1)] = np.nan
        return out
    return getattr(np, f"nan{how}")(x, axis=-1)


def _rebin(a: np.ndarray, *, factors: tuple[int, ...], how: str, nodata: float | None,
           tile: TileInfo) -> np.ndarray:
    # The blocks of the output pixels this window must give, from the window's own origin.
    start, stop = tile.output_window.start, tile.output_window.stop
    cut = tuple(slice(o * f - w, p * f - w) for o, p, f, w in
                zip(start, stop, factors, tile.window.start, strict=True))
    return _reduce(blocks(a[cut], factors), how, nodata, output_dtype(a.dtype, how))


def factors_of(image: Image, factors: Mapping[str, int] | int, trim: bool) -> dict[str, int]:
    """Each axis's block length (1 where none is given; -1 is the axis' length), checked: it
    must divide the axis unless `trim`, and fit in it."""
    if isinstance(factors, Mapping):
        unknown = [a for a in factors if a not in image.axes]
        if unknown:
            raise ParameterError(f"factors of op 'rebin' name axis {unknown[0]!r}, not one of "
                                 f"the image's axes {image.axes}")
        given = dict(factors)
    else:
        given = dict.fromkeys(filtered(image.axes), factors)
    out = {}
    for axis, n in zip(image.axes, image.shape, strict=True):
        f = given.get(axis, 1)
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not (f >= 1 or f == -1):
            raise ParameterError(f"factor of op 'rebin' along {axis!r} must be a positive "
                                 f"integer or -1 (the whole axis), not {f!r}")
        f = n if f == -1 else int(f)
        if f > n:
            raise ParameterError(f"factor {f} of op 'rebin' along {axis!r} is longer than the "
                                 f"axis ({n} pixels)")
        if n % f and not trim:
            raise ParameterError(f"factor {f} of op 'rebin' does not divide axis {axis!r} of "
                                 f"length {n} ({n % f} pixel(s) left over); pass trim=True to "
                                 f"drop them")
        out[axis] = f
    return out


@builtin(halo="0 (each output pixel reads its own block)")
def rebin(image: Image, *, factors: dict[str, int] | int, how: How = "mean",
          trim: bool = False) -> Image:
    """Blocks of pixels reduced to one (sum, mean, min, max, median), NaN and nodata skipped.

    `factors` is a block length per axis name, or one for the spatial axes; -1 takes the whole
    axis. A factor must divide its axis unless `trim=True`, which drops the partial block at
    the end. The transform and a WCS are rescaled.
    """
    if how not in How.__args__:
        raise ParameterError(f"how={how!r} of op 'rebin' must be one of {How.__args__}")
    if image.dtype.kind not in "biuf":
        raise ParameterError(f"op 'rebin' takes real numbers, not {image.dtype}")
    sizes = factors_of(image, factors, trim)
    nodata = nodata_of(image)
    dtype = output_dtype(image.dtype, how)
    meta = None
    if nodata is not None and dtype.kind == "f":
        meta = {"nodata": float("nan")}
    elif nodata is not None and how == "sum":
        meta = {"nodata": None}
    return Op(_rebin, factor={a: f for a, f in sizes.items() if f != 1}, dtype=dtype,
              shape=tuple(n // sizes[a] for a, n in zip(image.axes, image.shape, strict=True)),
              meta=meta, name="rebin")(
        image, factors=tuple(sizes.values()), how=how, nodata=nodata)
