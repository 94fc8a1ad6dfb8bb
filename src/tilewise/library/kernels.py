"""What the built-in ops share: the axes a filter spans, float conversion with nodata as NaN."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..axes import filtered
from ..errors import ParameterError
from ..graph import Image

#: How a filter sees beyond the image edge (SciPy's `mode`); "wrap" would need the opposite
#: edge of the image, which a tile does not hold.
Mode = Literal["nearest", "mirror", "reflect", "constant"]


def spatial_axes(image: Image) -> tuple[int, ...]:
    """Array positions of the axes a neighbourhood spans: spatial ones, else all but channels."""
    names = filtered(image.axes)
    return tuple(i for i, a in enumerate(image.axes) if a in names)


def float_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; everything else is filtered in float32."""
    return np.dtype("float64") if np.dtype(dtype) == np.float64 else np.dtype("float32")


def nodata_of(image: Image) -> float | None:
    nodata = image.meta.get("nodata")
    return None if nodata is None else float(nodata)


def as_float(a: np.ndarray, nodata: float | None, dtype: Any) -> np.ndarray:
    """`a` in a float dtype, with its nodata value (if any) turned into NaN."""
    out = a.astype(dtype, copy=True)
    if nodata is not None and not np.isnan(nodata):
        out[a == nodata] = np.nan
    return out


def number(value: Any, key: str, name: str, positive: bool = False) -> float:
    """`value` as a float, or a ParameterError naming parameter `key` of op `name`."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (positive and not value > 0):
        kind = "a positive number" if positive else "a number"
        raise ParameterError(f"{key} of op {name!r} must be {kind}, not {value!r}")
    return float(value)


def check_mode(mode: str, margin: int, image: Image, axes: tuple[int, ...], name: str) -> None:
    if mode not in Mode.__args__:
        raise ParameterError(f"mode={mode!r} of op {name!r} must be one of {Mode.__args__}")
    short = [image.shape[i] for i in axes if 2 * image.shape[i] < 2 * margin + 1]
    if mode == "reflect" and short:
        # SciPy reads outside the array in this case, on the whole image as well as on tiles.
        raise ParameterError(
            f"mode='reflect' of op {name!r} needs every filtered axis at least half as long as "
            f"the filter ({2 * margin + 1} pixels), but one is {short[0]}; use mode='mirror'")


#: RVT's bound on the vertical exaggeration (`ve_factor`) of its terrain visualisations.
MAX_EXAGGERATION = 10_000.0


def check_dem(dem: Image, name: str) -> None:
    """Refuse anything but a 2-D (y, x) image as the DEM of op `name`."""
    if not isinstance(dem, Image):
        raise ParameterError(f"op {name!r} needs a tilewise image, not {type(dem).__name__}")
    if dem.axes != ("y", "x"):
        raise ParameterError(f"op {name!r} needs a DEM with axes ('y', 'x'), not {dem.axes}")


def exaggeration(value: Any, name: str) -> float:
    """The `ve_factor` of op `name`, checked against RVT's bound."""
    ve = number(value, "ve_factor", name)
    if not -MAX_EXAGGERATION <= ve <= MAX_EXAGGERATION:
        raise ParameterError(f"ve_factor of op {name!r} must be between -10000 and 10000 "
                             f"(RVT's bound), not {value!r}")
    return ve
