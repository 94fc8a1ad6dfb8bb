"""Image metadata: georeference, nodata and band names, kept right through slicing and ops.

Metadata is a plain dict with well-known keys (`crs`, `transform`, `nodata`, `band_names`) and
whatever else a reader found. Functions here derive new dicts; nothing mutates one in place.

Entries tied to the pixel grid are *fields*: each registered `Field` knows how its value follows
a window (`shift`), a change of pixel size (`scale`), and how it is stored as JSON (in Zarr
attributes). The affine transform, the CRS and an astropy WCS (`wcs`) are the built-in fields;
another kind of georeference registers its own with `register`. This module assumes neither
rasterio nor astropy: a built-in field imports its library only when one of its values is handled.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .errors import ParameterError


def _same(value: Any, _: Mapping[str, Any]) -> Any:
    return value


def _kept(value: Any, dropped: tuple[str, ...], axes: tuple[str, ...]) -> Any:
    return value


@dataclass(frozen=True)
class Field:
    """How one grid-bound metadata entry (never None when these are called) follows the grid.

    `shift(value, offsets)`: the value for a window starting at `offsets` (pixels per axis name).
    `scale(value, factors)`: the value for pixels `factors` times as large per axis name (output
    pixel o covers input pixels [o*f, (o+1)*f)), the origin kept.
    `drop(value, dropped, axes)`: the value once the image's axes `dropped` (of `axes`, read
    at one index, already `shift`ed there) are gone. `to_json` / `from_json`: a JSON-safe form
    and back. `same(a, b)`: whether both are one grid. Every axis of the image is in `offsets`
    and `factors`.
    """

    key: str
    to_json: Callable[[Any], Any]
    from_json: Callable[[Any], Any]
    shift: Callable[[Any, Mapping[str, int]], Any] = _same
    scale: Callable[[Any, Mapping[str, Fraction]], Any] = _same
    #: Whether two values describe the same grid (`==` by default; a WCS compares its
    #: parameters, not its identity).
    same: Callable[[Any, Any], bool] = operator.eq
    drop: Callable[[Any, tuple[str, ...], tuple[str, ...]], Any] = _kept


FIELDS: dict[str, Field] = {}


def register(field: Field) -> None:
    """Make `field.key` a grid-bound entry (a later registration of the same key replaces it)."""
    FIELDS[field.key] = field


def _transform_shift(transform: Any, offsets: Mapping[str, int]) -> Any:
    from affine import Affine

    x, y = offsets.get("x", 0), offsets.get("y", 0)
    return transform @ Affine.translation(x, y) if x or y else transform


def _transform_scale(transform: Any, factors: Mapping[str, Fraction]) -> Any:
    from affine import Affine

    fx, fy = factors.get("x", Fraction(1)), factors.get("y", Fraction(1))
    return transform @ Affine.scale(float(fx), float(fy)) if fx != 1 or fy != 1 else transform


def _transform_from_json(value: Any) -> Any:
    from affine import Affine

    return Affine(*value)


def _crs_to_json(crs: Any) -> str:
    from rasterio.crs import CRS

    return CRS.from_user_input(crs).to_wkt()


def _crs_from_json(value: Any) -> Any:
    from rasterio.crs import CRS

    return CRS.from_user_input(value)


register(Field("crs", _crs_to_json, _crs_from_json))
register(Field("transform", lambda t: list(t)[:6], _transform_from_json,
               _transform_shift, _transform_scale,
               drop=lambda t, dropped, axes: None if {"y", "x"} & set(dropped) else t))


def _wcs_axes(wcs: Any, names: Mapping[str, Any]) -> list[str | None]:
    """The image axis of each WCS pixel axis, in FITS order: the image's last axes reversed,
    as astropy reads a FITS array (NumPy (z, y, x) is FITS (x, y, z)); None past the image's."""
    axes = list(names)
    return [axes[-1 - i] if i < len(axes) else None for i in range(wcs.pixel_n_dim)]


def _wcs_shift(wcs: Any, offsets: Mapping[str, int]) -> Any:
    starts = [offsets.get(a, 0) if a else 0 for a in _wcs_axes(wcs, offsets)]
    if not any(starts):
        return wcs
    # astropy's own slicing also moves SIP and distortion-table reference pixels.
    out = wcs.slice(tuple(slice(s, None) for s in reversed(starts)))
    out.pixel_shape = None  # the window's extent is the image's to know, not the field's
    return out


def _wcs_scale(wcs: Any, factors: Mapping[str, Fraction]) -> Any:
    """New pixel p covers old pixels [p*f, (p+1)*f): its centre, old pixel p*f + (f-1)/2 (0-based),
    is FITS pixel (p+1 - 1/2)*f + 1/2, so crpix' = (crpix - 1/2) / f + 1/2; the pixel scale
    (a column of CD, or of CDELT x PC) grows by f. astropy's `slice` with a step scales CDELT
    only, which is wrong for a CD matrix or a rotated PC."""
    import numpy as np

    scale = [float(factors.get(a, 1)) if a else 1.0 for a in _wcs_axes(wcs, factors)]
    if all(f == 1 for f in scale):
        return wcs
    if wcs.sip is not None or any(getattr(wcs, t) is not None
                                  for t in ("cpdis1", "cpdis2", "det2im1", "det2im2")):
        raise ParameterError("cannot rescale a WCS with SIP or lookup-table distortions; "
                             "drop its 'wcs' metadata or resample it with reproject")
    out = wcs.deepcopy()
    out.pixel_shape = None
    lin = out.wcs
    lin.crpix = [(c - 0.5) / f + 0.5 for c, f in zip(lin.crpix, scale, strict=True)]
    if lin.has_cd():
        lin.cd = lin.cd * scale
    elif np.count_nonzero(lin.pc - np.diag(lin.pc.diagonal())) == 0:
        lin.cdelt = lin.cdelt * scale  # a diagonal PC: scaling CDELT keeps the header plain
    else:
        lin.pc = lin.pc * scale
    return out


def _wcs_drop(wcs: Any, dropped: tuple[str, ...], axes: tuple[str, ...]) -> Any:
    """The WCS without the pixel axes of `dropped` (astropy's `dropaxis`; the window was
    shifted to the kept index first, so the remaining axes keep their world coordinates).
    None when what is left is no FITS WCS: one of a pair of celestial axes alone."""
    from astropy.wcs import InconsistentAxisTypesError

    gone = [i for i, a in enumerate(_wcs_axes(wcs, dict.fromkeys(axes))) if a in dropped]
    try:
        for i in reversed(gone):
            wcs = wcs.dropaxis(i)
    except InconsistentAxisTypesError:
        return None
    return wcs


def _wcs_from_json(value: str) -> Any:
    from astropy.io import fits
    from astropy.wcs import WCS

    return WCS(fits.Header.fromstring(value))


register(Field("wcs", lambda w: w.to_header_string(relax=True), _wcs_from_json,
               _wcs_shift, _wcs_scale,
               lambda a, b: a.to_header_string(relax=True) == b.to_header_string(relax=True),
               _wcs_drop))


def _physical_shift(axes: Mapping[str, Any], offsets: Mapping[str, int]) -> dict[str, Any]:
    return {a: {**p, "origin": p["origin"] + offsets.get(a, 0) * p["size"]}
            for a, p in axes.items()}


def _physical_scale(axes: Mapping[str, Any], factors: Mapping[str, Fraction]) -> dict[str, Any]:
    """A new pixel covering old pixels [p*f, (p+1)*f) has its centre (f-1)/2 old pixels past
    the first one's: the origin, a pixel centre as in OME-NGFF, moves by that much."""
    out = {}
    for a, p in axes.items():
        f = float(factors.get(a, 1))
        out[a] = {**p, "size": p["size"] * f, "origin": p["origin"] + (f - 1) / 2 * p["size"]}
    return out


#: Physical pixel spacing of non-georeferenced images (microscopy, cubes): per axis name,
#: `{"size": float, "unit": str | None, "origin": float}`, where `origin` is the physical
#: coordinate of the centre of pixel 0 (OME-NGFF's scale and translation; units are NGFF's
#: names, e.g. "micrometer", "second"). Axes without a known spacing are absent.
register(Field("physical", lambda v: {a: dict(p) for a, p in v.items()},
               lambda v: {a: dict(p) for a, p in v.items()},
               _physical_shift, _physical_scale,
               drop=lambda v, dropped, axes: {a: p for a, p in v.items() if a not in dropped}))


def known_keys() -> tuple[str, ...]:
    """The metadata keys tilewise knows: the registered fields', nodata and band names."""
    return (*FIELDS, "nodata", "band_names")


def sliced(meta: Mapping[str, Any], axes: tuple[str, ...], starts: tuple[int, ...],
           band_index: int | slice | None, dropped: tuple[str, ...] = ()) -> dict[str, Any]:
    """Metadata of a window starting at `starts` with the axes `dropped` (integer-indexed)
    removed: the transform shifted, a WCS losing those axes, band names cut."""
    offsets = dict(zip(axes, starts, strict=True))
    out = {key: FIELDS[key].shift(value, offsets) if key in FIELDS and value is not None
           else value for key, value in meta.items()}
    if dropped:
        out = {key: FIELDS[key].drop(value, dropped, axes) if key in FIELDS and value is not None
               else value for key, value in out.items()}
    names = meta.get("band_names")
    if names is not None and band_index is not None:
        picked = names[band_index]
        out["band_names"] = tuple(picked) if isinstance(band_index, slice) else None
    return out


def rescaled(meta: Mapping[str, Any], axes: tuple[str, ...],
             factors: Mapping[str, Fraction]) -> dict[str, Any]:
    """Metadata of an image whose pixel o covers pixels [o*f, (o+1)*f) of this one along each
    axis named in `factors` (others keep their scale): the transform's pixels grow by f, its
    origin stays. Band names survive only while the bands do (no factor other than 1 on 'c')."""
    unknown = sorted(set(factors) - set(axes))
    if unknown:
        raise ParameterError(f"scale factors name axes {unknown} that the image {axes} lacks")
    scale = {a: Fraction(factors.get(a, 1)) for a in axes}
    bad = {a: f for a, f in scale.items() if f <= 0}
    if bad:
        raise ParameterError(f"scale factors must be positive, not {bad}")
    out = {key: FIELDS[key].scale(value, scale) if key in FIELDS and value is not None
           else value for key, value in meta.items()}
    if out.get("band_names") is not None and scale.get("c", 1) != 1:
        out["band_names"] = None
    return out


def to_attrs(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe form of the metadata, for Zarr attributes."""
    attrs: dict[str, Any] = {}
    for key, value in meta.items():
        if key in FIELDS and value is not None:
            value = FIELDS[key].to_json(value)
        elif key == "nodata" and isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        attrs[key] = value
    return attrs


def from_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `to_attrs`."""
    meta = {key: FIELDS[key].from_json(value) if key in FIELDS and value is not None else value
            for key, value in attrs.items()}
    if isinstance(meta.get("nodata"), str):
        meta["nodata"] = float(meta["nodata"])
    if meta.get("band_names") is not None:
        meta["band_names"] = tuple(meta["band_names"])
    return meta


def same_grid(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """Why two images' georeferences differ, or None when they agree (or one has none)."""
    for key, field in FIELDS.items():
        if a.get(key) is not None and b.get(key) is not None and not field.same(a[key], b[key]):
            shown = (f" ({a[key]} vs {b[key]})" if len(str(a[key])) + len(str(b[key])) < 200
                     else "")
            return f"their {key} differ{shown}"
    return None
