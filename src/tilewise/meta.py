"""Image metadata: georeference, nodata and band names, kept right through slicing and ops.

Metadata is a plain dict with well-known keys (`crs`, `transform`, `nodata`, `band_names`) and
whatever else a reader found. Functions here derive new dicts; nothing mutates one in place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from affine import Affine
from rasterio.crs import CRS


def sliced(meta: Mapping[str, Any], axes: tuple[str, ...], starts: tuple[int, ...],
           band_index: int | slice | None) -> dict[str, Any]:
    """Metadata of a window starting at `starts`: the transform shifted, band names cut."""
    out = dict(meta)
    offsets = dict(zip(axes, starts))
    transform = meta.get("transform")
    if transform is not None and (offsets.get("x", 0) or offsets.get("y", 0)):
        out["transform"] = transform @ Affine.translation(offsets.get("x", 0), offsets.get("y", 0))
    names = meta.get("band_names")
    if names is not None and band_index is not None:
        picked = names[band_index]
        out["band_names"] = tuple(picked) if isinstance(band_index, slice) else None
    return out


def rescaled(meta: Mapping[str, Any], axes: tuple[str, ...],
             factors: Mapping[str, Fraction]) -> dict[str, Any]:
    """Metadata of a grid whose pixel covers `factors[axis]` input pixels along each axis."""
    out = dict(meta)
    transform = meta.get("transform")
    if transform is not None:
        out["transform"] = transform * Affine.scale(float(factors.get("x", 1)),
                                                    float(factors.get("y", 1)))
    return out


def to_attrs(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe form of the metadata, for Zarr attributes."""
    attrs: dict[str, Any] = {}
    for key, value in meta.items():
        if key == "crs":
            value = None if value is None else CRS.from_user_input(value).to_wkt()
        elif key == "transform":
            value = None if value is None else list(value)[:6]
        elif key == "nodata" and isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        attrs[key] = value
    return attrs


def from_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `to_attrs`."""
    meta = dict(attrs)
    if meta.get("crs") is not None:
        meta["crs"] = CRS.from_user_input(meta["crs"])
    if meta.get("transform") is not None:
        meta["transform"] = Affine(*meta["transform"])
    if isinstance(meta.get("nodata"), str):
        meta["nodata"] = float(meta["nodata"])
    if meta.get("band_names") is not None:
        meta["band_names"] = tuple(meta["band_names"])
    return meta


def same_grid(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """Why two images' georeferences differ, or None when they agree."""
    for key in ("crs", "transform"):
        if a.get(key) is not None and b.get(key) is not None and a[key] != b[key]:
            return f"their {key} differ ({a[key]} vs {b[key]})"
    return None
