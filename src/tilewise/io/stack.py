"""Many files read as one array: a frame per FITS file, a TIFF per plane.

A stack is a list of paths, a glob pattern (`"frames/*.fits"`) or a folder (its files, hidden
ones left out), in name order for a pattern or a folder. Each file is a member, opened through
the registry in its own format (options other than `axis` go to every member); the members are
joined along `axis`: a new first axis when the members lack it (`"t"` by default), else their
own axis of that name, end to end. Every member must have the first one's axes, dtype and
shape (but for its length along an existing `axis`); the first that does not is refused by
name, saying what differs.

Opening reads every member's header (to check it); pixels are read lazily, a window touching
only the files it spans, each through its format's bounded cache of open handles (`handles`),
so a stack of thousands of files keeps a bounded number open. A block is one file deep along
the stacking axis. The metadata is the first member's, less any grid-bound field (WCS,
transform, `physical`) or band names that the members do not all share.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import meta as metadata
from ..errors import GridMismatchError, InputError, ParameterError
from ..regions import Box
from .base import Source
from .location import is_local, resolve
from .physical import renamed_axes

#: The stacking axis when none is named.
AXIS = "t"
#: What marks a folder as something other than a folder of files (a Zarr array or group).
NOT_A_STACK = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def holds_files(path: str, head: bytes) -> bool:
    """Whether `path` is a folder of files to stack: not a Zarr store, some visible file in it."""
    if not os.path.isdir(path) or any(os.path.exists(os.path.join(path, m)) for m in NOT_A_STACK):
        return False
    return bool(_members_of_folder(path))


def is_pattern(location: str) -> bool:
    """Whether a location is a local glob pattern rather than an existing path."""
    return is_local(location) and glob.has_magic(location) and not os.path.exists(location)


def _members_of_folder(path: str) -> list[str]:
    return sorted(e.path for e in os.scandir(path) if e.is_file() and not e.name.startswith("."))


@dataclass(frozen=True, eq=False)
class FileStack(Source):
    """Member sources joined along one axis (`axis` of the stack's axes)."""

    format: ClassVar[str] = "stack"
    members: tuple[Source, ...] = ()
    axis: int = 0
    #: Whether the stacking axis is new (each member one position along it).
    new: bool = True
    #: Where each member starts along the stacking axis, and the end of the last.
    starts: tuple[int, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for m in self.members for p in m.paths)

    @property
    def cache_bytes(self) -> int:  # type: ignore[override]
        return max(m.cache_bytes for m in self.members)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "axis": self.axes[self.axis],
                "members": self.members[0].format}

    def read(self, box: Box) -> np.ndarray:
        if box.size == 0:
            return np.empty(box.shape, self.dtype)
        lo, hi = box.start[self.axis], box.stop[self.axis]
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        parts = []
        for i in range(first, len(self.members)):
            start, stop = self.starts[i], self.starts[i + 1]
            if start >= hi:
                break
            part = _member_box(box, self.axis, max(lo, start) - start, min(hi, stop) - start,
                               self.new)
            parts.append(_read_member(self.members[i], part))
        data = np.stack(parts, self.axis) if self.new else np.concatenate(parts, self.axis)
        data.flags.writeable = False
        return data


def _member_box(box: Box, axis: int, lo: int, hi: int, new: bool) -> Box:
    """The box of one member that a stack's `box` covers from `lo` to `hi` along `axis`."""
    if new:
        return Box((*box.start[:axis], *box.start[axis + 1:]),
                   (*box.stop[:axis], *box.stop[axis + 1:]))
    return Box(_along(box.start, axis, lo, False), _along(box.stop, axis, hi, False))


def _along(values: tuple[Any, ...], axis: int, value: Any, new: bool) -> tuple[Any, ...]:
    """`values` with `value` inserted at `axis` (a new axis) or in place of the one there."""
    return (*values[:axis], value, *values[axis if new else axis + 1:])


def _read_member(member: Source, box: Box) -> np.ndarray:
    try:
        return member.read(box)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"file {member.path} of a stack cannot be read at {box} "
                         f"({type(exc).__name__}: {exc})") from exc


def member_paths(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
                 ) -> tuple[str, tuple[str, ...]]:
    """What a stack is called (its folder, pattern or the files' common folder) and its files."""
    if isinstance(spec, (str, os.PathLike)):
        location = resolve(spec)
        if os.path.isdir(location):
            paths = _members_of_folder(location)
        else:
            paths = sorted(p for p in glob.glob(location) if os.path.isfile(p))
        if not paths:
            raise InputError(f"no file matches {location}")
        return location, tuple(paths)
    paths = tuple(resolve(p) for p in spec)
    if not paths:
        raise ParameterError("a stack needs at least one file; the list is empty")
    return os.path.commonpath(paths), paths


def open_files(spec: Any, axes: Any, format: str | None, options: dict[str, Any],
               open_member: Callable[[str, Any, str | None, dict[str, Any]], Source]
               ) -> FileStack:
    """The stack of a folder, a pattern or a list of files, each opened by `open_member`
    (the registry's `open_location`) in `format` (else its own) with `options` less `axis`
    (see the module's docstring)."""
    options = dict(options)
    axis = options.pop("axis", AXIS)
    if not isinstance(axis, str) or not axis:
        raise ParameterError(f"axis={axis!r} must name the axis the files are stacked along")
    location, paths = member_paths(spec)
    members = [open_member(p, None, format, options) for p in paths]
    first = members[0]
    new = axis not in first.axes
    position = 0 if new else first.axes.index(axis)
    for member in members[1:]:
        why = _differs(first, member, None if new else position)
        if why:
            raise GridMismatchError(f"{member.path} does not match {first.path}, the first "
                                    f"file of the stack {location}: {why}")
    lengths = [1 if new else m.shape[position] for m in members]
    starts = tuple(int(s) for s in np.cumsum([0, *lengths]))
    # One file per block: as deep as a member along the axis, if every member is as deep.
    block = lengths[0] if len(set(lengths)) == 1 else 1
    names = _along(first.axes, position, axis, new)
    shape = _along(first.shape, position, starts[-1], new)
    blocks = _along(first.blocks, position, block, new)
    meta = _shared_meta(members)
    if axes is not None:
        names, meta = renamed_axes(names, meta, axes, location)
    return FileStack(shape, first.dtype, names, blocks, meta, location, tuple(members),
                     position, new, starts)


def _differs(first: Source, other: Source, along: int | None) -> str | None:
    """How `other` differs from `first` (shape but for axis `along`, axes, dtype), or None."""
    if other.axes != first.axes:
        return f"its axes are {other.axes}, not {first.axes}"
    if other.dtype != first.dtype:
        return f"its dtype is {other.dtype}, not {first.dtype}"
    shape = list(other.shape)
    if along is not None:
        shape[along] = first.shape[along]
    if tuple(shape) != first.shape:
        return f"its shape is {other.shape}, not {first.shape}"
    return None


def _shared_meta(members: Sequence[Source]) -> dict[str, Any]:
    """The first member's metadata, less the grid-bound fields and band names that differ."""
    meta = dict(members[0].meta)
    for key in [*metadata.FIELDS, "band_names"]:
        value = meta.get(key)
        if value is None:
            continue
        field = metadata.FIELDS.get(key)
        same = field.same if field is not None else (lambda a, b: a == b)
        if not all(m.meta.get(key) is not None and same(value, m.meta[key])
                   for m in members[1:]):
            del meta[key]
    return meta

