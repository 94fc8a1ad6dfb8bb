"""Physical pixel sizes as readers find them, in the form of the `physical` metadata field.

Microscopy formats state pixel sizes in their own units: OME-XML in symbols (`µm`, `nm`, `s`),
ImageJ in words (`micron`), CZI in metres. The `physical` field (see `meta`) holds per axis
`{"size", "unit", "origin"}` with OME-NGFF's unit names, which an OME-Zarr writer copies as they
are; this module names the units and builds the field's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..axes import parse_axes

#: SI prefixes by symbol, each of which OME-NGFF names for metres and seconds.
_PREFIXES = {"y": "yocto", "z": "zepto", "a": "atto", "f": "femto", "p": "pico", "n": "nano",
             "µ": "micro", "u": "micro", "m": "milli", "c": "centi", "d": "deci", "": "",
             "h": "hecto", "k": "kilo", "M": "mega", "G": "giga", "T": "tera", "P": "peta",
             "E": "exa", "Z": "zetta", "Y": "yotta"}

#: Unit symbols and words of OME-XML, ImageJ and FITS, by their OME-NGFF names.
UNITS: dict[str, str] = {
    **{f"{p}m": f"{name}meter" for p, name in _PREFIXES.items()},
    **{f"{p}s": f"{name}second" for p, name in _PREFIXES.items()},
    "\u03bcm": "micrometer", "micron": "micrometer", "microns": "micrometer",
    "\u00c5": "angstrom", "\u212b": "angstrom", "angstrom": "angstrom",
    "in": "inch", "ft": "foot", "yd": "yard", "mi": "mile", "pc": "parsec",
    "min": "minute", "h": "hour", "d": "day",
}


def unit_name(symbol: str | None) -> str | None:
    """The OME-NGFF name of a unit symbol or word (`"µm"` -> `"micrometer"`); a name NGFF
    knows is kept, an unknown unit is kept as written (a writer that validates refuses it)."""
    if symbol is None:
        return None
    text = symbol.strip()
    if text in UNITS.values():
        return text
    if text in UNITS:
        return UNITS[text]
    # Words may come capitalised ("Micron"); symbols may not ("Mm" is not "mm").
    return UNITS.get(text.lower(), text) if len(text) > 2 else text


def axis(size: Any, unit: str | None, origin: float = 0.0) -> dict[str, Any] | None:
    """One axis's entry, or None when `size` is absent, not a number or not positive."""
    try:
        value = float(size)
    except (TypeError, ValueError):
        return None
    if not value > 0:
        return None
    return {"size": value, "unit": unit_name(unit), "origin": float(origin)}


def metres_to_micrometres(value: str | float) -> float:
    """A length in metres (as a file writes it, `"9.0576674152210312E-08"`) in micrometres,
    rounded once: scaling the float by 1e6 would add a rounding of its own."""
    try:
        return float(Decimal(str(value)).scaleb(6))
    except InvalidOperation:
        return float("nan")




def renamed_axes(names: tuple[str, ...], meta: Mapping[str, Any], axes: Any, path: str
                 ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The user's axis names (`axes=`) for an image whose file names its axes `names`, and its
    metadata with the `physical` entries following them."""
    new = parse_axes(axes, len(names), path)
    names_of = dict(zip(names, new, strict=True))
    out = dict(meta)
    if out.get("physical"):
        out["physical"] = {names_of[a]: p for a, p in out["physical"].items() if a in names_of}
    return new, out
