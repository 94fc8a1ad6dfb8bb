"""Axis names, and margins and tile sizes given per axis.

Images carry named axes (`("y", "x")`, `("c", "y", "x")`, `("t", "c", "z", "y", "x")` or the
user's own names). Names decide two things: an integer margin applies to the spatial axes
(`z`, `y`, `x`), and channel axes (`c`) are never split into tiles unless the user asks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import MarginError, ParameterError, TilewiseError

SPATIAL = ("z", "y", "x")
UNSPLIT = ("c",)
DEFAULT_AXES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x"), 4: ("c", "z", "y", "x"),
                5: ("t", "c", "z", "y", "x")}

Axes = tuple[str, ...]


def parse_axes(axes: str | Sequence[str] | None, ndim: int, what: str) -> Axes:
    """Axis names from a string of letters (`"cyx"`) or a sequence of names."""
    if axes is None:
        if ndim not in DEFAULT_AXES:
            raise ParameterError(f"{what} has {ndim} dimensions; pass axes= to name them")
        return DEFAULT_AXES[ndim]
    names = tuple(axes) if isinstance(axes, str) else tuple(str(a) for a in axes)
    if len(names) != ndim:
        raise ParameterError(
            f"axes={axes!r} names {len(names)} axes but {what} has {ndim} dimensions")
    if len(set(names)) != len(names):
        raise ParameterError(f"axes={axes!r} for {what} repeats an axis name")
    return names


def filtered(axes: Axes) -> list[str]:
    """The axes a neighbourhood spans by default: the spatial ones, else all but channels."""
    return [a for a in axes if a in SPATIAL] or [a for a in axes if a not in UNSPLIT]


def per_axis(
    value: int | Mapping[str, int] | None,
    axes: Axes,
    *,
    name: str,
    default_axes: Sequence[str],
) -> tuple[int, ...]:
    """Expand an int (for `default_axes`) or a per-axis dict into one integer per axis."""
    if value is None:
        return tuple(0 for _ in axes)
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in axes]
        if unknown:
            raise MarginError(
                f"{name} names axis {unknown[0]!r}, which is not one of the image axes {axes}")
        items = {k: count(v, f"{name}[{k!r}]", MarginError) for k, v in value.items()}
        return tuple(items.get(a, 0) for a in axes)
    n = count(value, name, MarginError)
    return tuple(n if a in default_axes else 0 for a in axes)


def count(v: object, name: str, error: type[TilewiseError], least: int = 0) -> int:
    """`v` as an int of at least `least` (0 or 1), or `error` naming the parameter `name`."""
    kind = "a non-negative integer" if least == 0 else "a positive integer"
    if isinstance(v, bool) or not hasattr(v, "__index__"):
        raise error(f"{name} must be {kind}, not {v!r}")
    n = v.__index__()  # type: ignore[attr-defined]
    if n < least:
        raise error(f"{name} must be {kind}, not {n}")
    return n
