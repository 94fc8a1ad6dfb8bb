"""Rendering visualisations as RVT's blender does (`rvt.blend_func`): normalisation to [0, 1],
colour maps, blending of layers with an opacity, and 8-bit RGB(A) for a GeoTIFF.

Every step is per pixel, so tiles render exactly as the whole image; the one whole-image step,
percent cut-offs, is exact percentiles computed over the whole image first (a reduction:
`tilewise.percentile`), not per tile as RVT's dask port did. Two of RVT's whole-image steps are
left out: the blender's `scale_0_to_1`, which silently rescales a layer outside [0, 1] by its
own minimum and maximum (normalise the layer instead), and the in-place writes of its overlay
and soft-light blends, which make their opacity have no effect (docs/relief.md).

A layer is a single band (y, x) or RGB (c, y, x with 3 bands); blending a single band with RGB
blends it into each band, as RVT does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ParameterError
from ..graph import Image
from ..ops import Op
from ..reductions import percentile, reduce
from .kernels import as_float, nodata_of, number
from .registry import builtin

if TYPE_CHECKING:
    import matplotlib.colors

BlendMode = Literal["normal", "multiply", "screen", "overlay", "soft_light", "luminosity"]
#: RVT's luminance weights of red, green and blue (`blend_func.lum`).
LUMINANCE = (0.3, 0.59, 0.11)


def _layer(image: Image, name: str, key: str = "image") -> bool:
    """Whether `image` is RGB (else a single band); anything else is refused."""
    if not isinstance(image, Image):
        raise ParameterError(f"{key} of op {name!r} must be a tilewise image, not "
                             f"{type(image).__name__}")
    if image.axes == ("y", "x"):
        return False
    if image.axes == ("c", "y", "x") and image.shape[0] == 3:
        return True
    raise ParameterError(f"{key} of op {name!r} must be a single band (axes y, x) or RGB "
                         f"(axes c, y, x with 3 bands), not axes {image.axes} shape {image.shape}")


# ---- normalisation ---------------------------------------------------------------------------


def _normalize(a, *, nodata, low, high, fallback_low, fallback_high, invert):
    if low == high:  # RVT: percent cut-offs that meet fall back to the image's extremes
        low, high = fallback_low, fallback_high
    x = as_float(a, nodata, np.float64)
    out = (np.clip(x, low, high) - low) / (high - low)
    out = np.clip(out, 0, 1)
    return 1 - out if invert else out


@builtin(halo="0 (percent cut-offs are exact percentiles of the whole image, computed first)")
def normalize(image: Image, *, minimum: float, maximum: float,
              mode: Literal["value", "percent"] = "value", invert: bool = False) -> Image:
    """Linear stretch to [0, 1] between `minimum` and `maximum` (mode "value"), or between the
    values that cut off `minimum` percent at the bottom and `maximum` percent at the top (mode
    "percent", RVT's "perc"); `invert` gives 1 - x, as RVT's blender does for slope and
    negative openness (RVT `normalize_image`: normalization, min, max); float32, NaN kept."""
    _layer(image, "normalize")
    low = number(minimum, "minimum", "normalize")
    high = number(maximum, "maximum", "normalize")
    if mode not in ("value", "percent"):
        raise ParameterError(f"mode of op 'normalize' must be 'value' or 'percent', not {mode!r}")
    if mode == "value" and not low < high:
        raise ParameterError(f"op 'normalize' needs minimum < maximum, not {minimum!r} and "
                             f"{maximum!r}")
    if mode == "percent" and not (low >= 0 and high >= 0 and low + high < 100):
        raise ParameterError(f"op 'normalize' in percent needs cut-offs minimum, maximum >= 0 "
                             f"with minimum + maximum < 100, not {minimum!r} and {maximum!r}")
    bounds: dict[str, Any] = {"low": low, "high": high, "fallback_low": low,
                              "fallback_high": high}
    if mode == "percent":
        cut = percentile(image, [low, 100 - high])
        bounds = {"low": cut[0], "high": cut[1], "fallback_low": reduce(image, "min"),
                  "fallback_high": reduce(image, "max")}
    return Op(_normalize, dtype="float32", meta={"nodata": float("nan")}, name="normalize")(
        image, nodata=nodata_of(image), invert=bool(invert), **bounds)


# ---- colour maps -----------------------------------------------------------------------------


def colour_map(cmap: str, min_cut: float | None, max_cut: float | None
               ) -> matplotlib.colors.Colormap:
    """RVT's colour map: matplotlib's, cut to [min_cut, max_cut] of its range if asked (as a
    100-colour `LinearSegmentedColormap`, RVT's `truncate_colormap`). matplotlib is imported
    here, by the runs that colour: 0.1 s of every other process's start."""
    import matplotlib
    from matplotlib.colors import LinearSegmentedColormap

    try:
        colours = matplotlib.colormaps[cmap]
    except KeyError:
        raise ParameterError(f"cmap of op 'colormap' must be a matplotlib colour map name, "
                             f"not {cmap!r}") from None
    if min_cut is None and max_cut is None:
        return colours
    low = 0.0 if min_cut is None else number(min_cut, "min_cut", "colormap")
    high = 1.0 if max_cut is None else number(max_cut, "max_cut", "colormap")
    if not 0 <= low < high <= 1:
        raise ParameterError(f"op 'colormap' needs 0 <= min_cut < max_cut <= 1, not "
                             f"{min_cut!r} and {max_cut!r}")
    return LinearSegmentedColormap.from_list(
        f"trunc({colours.name},{low:.2f},{high:.2f})", colours(np.linspace(low, high, 100)))


def _colormap(a, *, cmap, min_cut, max_cut, bands):
    return colour_map(cmap, min_cut, max_cut)(a).transpose(2, 0, 1)[:bands]


@builtin(halo="0")
def colormap(image: Image, *, cmap: str, min_cut: float | None = None,
             max_cut: float | None = None, alpha: bool = False) -> Image:
    """A single band in [0, 1] coloured by a matplotlib colour map, RGB (RGBA with `alpha`)
    floats in [0, 1]; NaN gets the map's "bad" colour, transparent black (RVT
    `gray_scale_to_color_ramp`: colormap, min_colormap_cut, max_colormap_cut)."""
    if _layer(image, "colormap"):
        raise ParameterError("op 'colormap' needs a single band (axes y, x), not RGB")
    colour_map(cmap, min_cut, max_cut)
    bands = 4 if alpha else 3
    names = ("red", "green", "blue", "alpha")[:bands]
    return Op(_colormap, dtype="float32", meta={"band_names": names}, name="colormap",
              axes=("c", "y", "x"), shape={"c": bands})(
        image, cmap=cmap, min_cut=min_cut, max_cut=max_cut, bands=bands)


# ---- blending --------------------------------------------------------------------------------


def _luminance(c):
    return LUMINANCE[0] * c[0] + LUMINANCE[1] * c[1] + LUMINANCE[2] * c[2]


def _clip_colour(c):
    """RVT's `clip_color`: bring an RGB colour into [0, 1] along the line to its luminance,
    first from below, then from above (both with the colour's own luminance and extremes)."""
    lum, low, high = _luminance(c), c.min(axis=0), c.max(axis=0)
    c = np.where(low < 0, lum + (c - lum) * lum / (lum - low), c)
    return np.where(high > 1, lum + (c - lum) * (1 - lum) / (high - lum), c)


def _blended(active, background, mode, gray_active):
    """The blend of two layers of one shape, RVT's formulas (`blend_func.blend_*`)."""
    if mode == "normal":
        return active
    if mode == "multiply":
        return active * background
    if mode == "screen":
        return 1 - (1 - active) * (1 - background)
    if mode == "overlay":
        return np.where(background > 0.5, 1 - (1 - 2 * (background - 0.5)) * (1 - active),
                        2 * background * active)
    if mode == "soft_light":  # RVT keeps the background where the active layer is NaN
        dark = 2 * background * active + background**2 * (1 - 2 * active)
        light = 2 * background * (1 - active) + np.sqrt(background) * (2 * active - 1)
        return np.where(active < 0.5, dark, np.where(active >= 0.5, light, background))
    # luminosity over an RGB background: the background's colour with the active luminance
    lum = active[0] if gray_active else _luminance(active)
    return _clip_colour(background + (lum - _luminance(background)))


def _blend(active, background, *, mode, opacity, gray_active):
    active, background = active.astype(np.float64), background.astype(np.float64)
    with np.errstate(all="ignore"):
        top = _blended(active, background, mode, gray_active)
    return top * opacity + background * (1 - opacity)


def _luminance_op(a):
    return _luminance(a.astype(np.float64))


def _three_bands(a):
    return np.broadcast_to(a, (3, *a.shape))


@builtin(halo="0")
def blend(active: Image, background: Image, *, mode: BlendMode = "normal",
          opacity: float = 100.0) -> Image:
    """`active` blended onto `background` (both in [0, 1]) with RVT's blend modes, then laid
    over the background at `opacity` percent (RVT `blend_images` and `render_images`:
    blend_mode, opacity); float32, RGB if either layer is."""
    rgb_active = _layer(active, "blend", "active")
    rgb_background = _layer(background, "blend", "background")
    if mode not in BlendMode.__args__:
        raise ParameterError(f"mode of op 'blend' must be one of "
                             f"{', '.join(BlendMode.__args__)}, not {mode!r}")
    weight = number(opacity, "opacity", "blend")
    if not 0 <= weight <= 100:
        raise ParameterError(f"opacity of op 'blend' must be a percentage from 0 to 100, "
                             f"not {opacity!r}")
    if mode == "luminosity" and not rgb_background:
        # RVT: over a single band, luminosity is the active layer's luminance.
        if rgb_active:
            active = Op(_luminance_op, dtype="float32", axes=("y", "x"),
                        name="luminance")(active)
        mode, rgb_active = "normal", False
    gray_active = not rgb_active
    if rgb_active != rgb_background:
        expand = Op(_three_bands, axes=("c", "y", "x"), shape={"c": 3}, name="three_bands")
        active, background = ((active, expand(background)) if rgb_active
                              else (expand(active), background))
    meta = {"nodata": float("nan")}
    if rgb_active or rgb_background:
        meta["band_names"] = ("red", "green", "blue")
    return Op(_blend, dtype="float32", meta=meta, name="blend")(
        active, background, mode=mode, opacity=weight / 100, gray_active=gray_active)


# ---- 8 bits ----------------------------------------------------------------------------------


def _byte_scale(a, *, low, high, alpha):
    x = a.astype(np.float64)
    scaled = np.clip((255 + 0.9999) * (x - low) / (high - low), 0, 255)
    out = np.where(np.isnan(scaled), 255, scaled).astype(np.uint8)
    if not alpha:
        return out
    bands = out if out.ndim == 3 else np.broadcast_to(out, (3, *out.shape))
    holes = np.isnan(x) if x.ndim == 2 else np.isnan(x).any(axis=0)
    return np.concatenate([bands, np.where(holes, 0, 255).astype(np.uint8)[None]])


@builtin(halo="0")
def byte_scale(image: Image, *, minimum: float = 0.0, maximum: float = 1.0,
               alpha: bool = False) -> Image:
    """8-bit rendering: [minimum, maximum] to 0-255 as RVT's `byte_scale` does (255.9999 x,
    truncated; NaN becomes 255; RVT: c_min, c_max); a single band stays one band, RGB stays
    RGB; `alpha` gives RGBA, transparent where a band is NaN (a single band made gray RGB)."""
    rgb = _layer(image, "byte_scale")
    low = number(minimum, "minimum", "byte_scale")
    high = number(maximum, "maximum", "byte_scale")
    if not low < high:
        raise ParameterError(f"op 'byte_scale' needs minimum < maximum, not {minimum!r} and "
                             f"{maximum!r}")
    grid: dict[str, Any] = {}
    meta: dict[str, Any] = {"nodata": None}
    if alpha:  # the bands (if any) are read whole; the four are new
        grid = {"axes": {"c": None, "y": "y", "x": "x"}, "shape": {"c": 4}}
        meta["band_names"] = ("red", "green", "blue", "alpha")
    elif rgb:
        meta["band_names"] = ("red", "green", "blue")
    return Op(_byte_scale, dtype="uint8", meta=meta, name="byte_scale", **grid)(
        image, low=low, high=high, alpha=bool(alpha))
