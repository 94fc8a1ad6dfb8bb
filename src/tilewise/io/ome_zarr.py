"""OME-Zarr images (OME-NGFF 0.5 on Zarr v3, 0.4 on Zarr v2): microscopy's chunked format.

A path ending in `.ome.zarr` is written as an OME-Zarr image: a Zarr group whose `multiscales`
metadata names the axes (type `time`, `channel` or `space`, and a unit where the image's
`physical` metadata gives one), the arrays of its resolution levels (`0`, `1`, ...) and each
level's scale and translation (NGFF's pixel-centre convention), and whose `omero` metadata
names the channels (`band_names`). Options come in the image's metadata under `ome_zarr`
(`OPTIONS`): the NGFF version, and a pyramid of `levels` levels, halving `scaled_axes` (y and
x by default) by "mean" (default) or "nearest" (labels).

Every level is written by the workers like any Zarr output: a tile's level-0 pixels, then its
part of each level, reduced from the tile in memory (`pyramid`), never by reading the output
back. That needs tiles that start at multiples of 2**levels and cover whole chunks of every
level, so a pyramid coarsens the tiling unit (`planned_chunks`): along a scaled axis, level k
is chunked max(C / 2**k, 64) pixels (C: level 0's chunk), and tiles are multiples of the
largest of these times 2**k. Everything else is the Zarr sink's: chunk files fsynced before
the journal records a tile, the staged group moved into place by one rename, a killed run
resumed from its journal. The group's attributes also keep tilewise's own metadata (`tilewise`),
which `tw.open` reads back with the NGFF axes, scales and channel names.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import zarr

from .. import meta as metadata
from ..axes import SPATIAL, parse_axes
from ..errors import InputError, ParameterError, UnsupportedFormatError
from ..regions import Box
from . import handles
from .base import Sink, fsync
from .location import is_local
from .physical import UNITS
from .pyramid import METHODS, SLAB, Pyramid
from .zarr_array import MARK, ZarrSource, sync_chunks, write_chunks

#: The metadata key holding the output options.
OPTIONS = "ome_zarr"
#: NGFF versions written, and the Zarr format each is stored in.
VERSIONS = {"0.5": 3, "0.4": 2}
#: The axis names NGFF knows, in the order it requires, and their types.
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
#: Chunk side along y and x (level 0), and along z when the image has one.
SIDE_2D, SIDE_3D, Z_CHUNK = 512, 256, 4
#: The smallest chunk side a pyramid level is cut into (where level 0's is larger).
MIN_SIDE = 64
#: The units OME-NGFF names for time axes; every other unit `physical` knows is a length.
TIME_UNITS = frozenset(u for u in UNITS.values() if u.endswith("second")
                       or u in ("minute", "hour", "day"))
SPACE_UNITS = frozenset(UNITS.values()) - TIME_UNITS
#: Channel colours for viewers (`omero`), in turn.
COLOURS = ("FFFFFF", "00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")


@dataclass(frozen=True)
class Options:
    """How an OME-Zarr output is written (see the module docstring)."""

    version: str = "0.5"
    levels: int = 0
    method: str = "mean"
    scaled_axes: tuple[str, ...] = ("y", "x")

    @classmethod
    def of(cls, meta: Mapping[str, Any], axes: tuple[str, ...], where: str) -> Options:
        given = meta.get(OPTIONS) or {}
        if not isinstance(given, Mapping):
            raise ParameterError(f"{where}: metadata {OPTIONS!r} must be a dict of options, "
                                 f"not {given!r}")
        unknown = sorted(set(given) - set(cls.__dataclass_fields__))
        if unknown:
            raise ParameterError(f"{where}: {OPTIONS} has no option {unknown[0]!r} (its "
                                 f"options: {', '.join(cls.__dataclass_fields__)})")
        version = str(given.get("version", cls.version))
        levels = given.get("levels", cls.levels)
        method = given.get("method", cls.method)
        scaled = tuple(given.get("scaled_axes", "".join(a for a in "yx" if a in axes)))
        if version not in VERSIONS:
            raise ParameterError(f"{where}: {OPTIONS} version must be one of "
                                 f"{', '.join(VERSIONS)}, not {version!r}")
        if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) \
                or not 0 <= levels <= 16:
            raise ParameterError(f"{where}: {OPTIONS} levels must be an integer from 0 to 16, "
                                 f"not {levels!r}")
        if method not in METHODS:
            raise ParameterError(f"{where}: {OPTIONS} method must be one of "
                                 f"{', '.join(METHODS)}, not {method!r}")
        bad = [a for a in scaled if a not in SPATIAL or a not in axes]
        if bad or not scaled or len(set(scaled)) != len(scaled):
            raise ParameterError(f"{where}: {OPTIONS} scaled_axes must name spatial axes of "
                                 f"the image {axes}, not {''.join(scaled)!r}")
        return cls(version, int(levels), method, scaled)


def _side(axes: tuple[str, ...]) -> int:
    return SIDE_3D if "z" in axes else SIDE_2D


def _largest_divisor(n: int, most: int) -> int:
    """The largest divisor of `n` that is at most `most`."""
    return next(d for d in range(min(n, most), 0, -1) if n % d == 0)


@dataclass(frozen=True, eq=False)
class OMEZarrSink(Sink):
    parallel_writes: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._check_units()
        levels = self.options.levels
        for i in self.pyramid.axes:
            if self.chunks[i] < self.shape[i] and self.chunks[i] % 2**levels:
                raise ParameterError(
                    f"{self.path}: a pyramid of {levels} levels needs tiles along "
                    f"{self.axes[i]!r} that are multiples of {2**levels} pixels, not "
                    f"{self.chunks[i]}")

    def _check_units(self) -> None:
        """Refuse a unit NGFF does not name (readers give NGFF's names; a user may not)."""
        physical = self.meta.get("physical") or {}
        for a in self.axes:
            unit = physical.get(a, {}).get("unit")
            known = {"space": SPACE_UNITS, "time": TIME_UNITS}.get(AXIS_TYPES.get(a, ""), ())
            if unit is not None and unit not in known:
                raise UnsupportedFormatError(
                    f"{self.path}: the unit {unit!r} of axis {a!r} is none that OME-NGFF "
                    f"names for a {AXIS_TYPES.get(a)} axis (such as "
                    f"{'second' if a == 't' else 'micrometer'}); correct the image's "
                    "'physical' metadata")

    @classmethod
    def check(cls, shape: tuple[int, ...], dtype: np.dtype, axes: tuple[str, ...],
              path: str) -> None:
        names = [a for a in AXIS_TYPES if a in axes]
        if tuple(names) != axes or "y" not in axes or "x" not in axes:
            raise UnsupportedFormatError(
                f"{path}: OME-Zarr holds images whose axes are y and x with any of t, c, z "
                f"before them, in the order t, c, z, y, x, not {axes}; name or reorder them "
                "(axes=), or write .zarr")
        if dtype.kind not in "biuf":
            raise UnsupportedFormatError(f"{path}: OME-Zarr cannot store data type {dtype}")

    @classmethod
    def default_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
        side = _side(axes)
        sizes = {"c": None, "z": Z_CHUNK, "y": side, "x": side}
        return tuple(n if a in sizes and sizes[a] is None else min(n, sizes.get(a, 1))
                     for n, a in zip(shape, axes, strict=True))

    @classmethod
    def planned_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...],
                       meta: Mapping[str, Any]) -> tuple[int, ...]:
        """Level 0's chunks, coarsened along the scaled axes so that a tile of whole units
        covers whole chunks of every level (see the module docstring)."""
        chunks = cls.default_chunks(shape, axes)
        try:
            options = Options.of(meta, axes, "")
        except ParameterError:  # the sink names the output when it refuses them
            return chunks
        return tuple(min(n, max(c, min(c, MIN_SIDE) * 2**options.levels))
                     if a in options.scaled_axes else c
                     for n, c, a in zip(shape, chunks, axes, strict=True))

    @classmethod
    def owns(cls, path: str) -> bool:
        """An OME-Zarr group that tilewise wrote: its attributes carry the `tilewise` mark."""
        return MARK in _group_attrs(path)

    @functools.cached_property
    def options(self) -> Options:
        return Options.of(self.meta, self.axes, self.path)

    @functools.cached_property
    def pyramid(self) -> Pyramid:
        nodata = self.meta.get("nodata")
        nodata = None if nodata is None else float(nodata)
        return Pyramid(self.options.levels,
                       tuple(self.axes.index(a) for a in self.options.scaled_axes),
                       self.options.method, nodata)

    @property
    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.options.version}
        if self.options.levels:
            out.update(levels=self.options.levels, method=self.options.method,
                       scaled_axes="".join(self.options.scaled_axes))
        return out

    @property
    def cache_bytes(self) -> int:  # type: ignore[override]
        """The float64 sums and counts of one slab, while a tile's levels are reduced."""
        reduced = self.options.levels and self.options.method == "mean"
        return 3 * SLAB * 8 if reduced else 0

    def level_chunks(self, k: int) -> tuple[int, ...]:
        """The chunks of level k: whole divisions of each tile's part of the level."""
        base = self.default_chunks(self.shape, self.axes)
        shape = self.pyramid.shape(self.shape, k)
        out = []
        for i, (declared, c, n) in enumerate(zip(self.chunks, base, shape, strict=True)):
            if i not in self.pyramid.axes:
                out.append(min(declared, n))
                continue
            target = max(c >> k, min(c, MIN_SIDE))
            whole = declared >= self.shape[i]
            out.append(min(target, n) if whole else _largest_divisor(declared >> k, target))
        return tuple(out)

    def array_path(self, k: int) -> str:
        return os.path.join(self.staging, str(k))

    def create(self) -> None:
        zarr_format = VERSIONS[self.options.version]
        zarr.create_group(self.staging, zarr_format=zarr_format, attributes=self.attributes(),
                          overwrite=True)
        fill = self.meta.get("nodata")
        if fill is not None and not np.can_cast(np.min_scalar_type(fill), self.dtype):
            fill = None
        kwargs: dict[str, Any] = {} if fill is None else {"fill_value": fill}
        if zarr_format == 3:
            kwargs["dimension_names"] = list(self.axes)
        else:  # NGFF 0.4 wants nested chunk files
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        for k in range(self.options.levels + 1):
            zarr.create_array(self.array_path(k), shape=self.pyramid.shape(self.shape, k),
                              chunks=self.level_chunks(k), dtype=self.dtype,
                              zarr_format=zarr_format, overwrite=True, **kwargs)
        for root, folders, files in os.walk(self.staging, topdown=False):
            for name in files + folders:
                fsync(os.path.join(root, name))
            fsync(root)
        fsync(os.path.dirname(self.staging))

    def write(self, box: Box, data: np.ndarray) -> None:
        write_chunks(self.array_path(0), box, data)
        for k, level in enumerate(self.pyramid.reduce(data), start=1):
            write_chunks(self.array_path(k), self.pyramid.box(box, k), level)

    def sync(self, box: Box) -> None:
        for k in range(self.options.levels + 1):
            sync_chunks(self.array_path(k), self.pyramid.box(box, k))

    def close(self) -> None:
        for k in range(self.options.levels + 1):
            handles.forget(self.array_path(k))

    def attributes(self) -> dict[str, Any]:
        """The group's attributes: NGFF's `multiscales` and `omero`, and tilewise's own."""
        ngff: dict[str, Any] = {"multiscales": [self.multiscale()]}
        omero = self.omero()
        if omero is not None:
            ngff["omero"] = omero
        ours = {MARK: {"version": 1, "meta": metadata.to_attrs(
            {k: v for k, v in self.meta.items() if k != OPTIONS})}}
        if self.options.version == "0.4":
            ngff["multiscales"][0] = {"version": "0.4", **ngff["multiscales"][0]}
            return {**ngff, **ours}
        return {"ome": {"version": self.options.version, **ngff}, **ours}

    def multiscale(self) -> dict[str, Any]:
        physical = self.meta.get("physical") or {}
        axes = []
        for a in self.axes:
            unit = physical.get(a, {}).get("unit")
            axes.append({"name": a, "type": AXIS_TYPES[a], **({"unit": unit} if unit else {})})
        transforms = [self.transform(k) for k in range(self.options.levels + 1)]
        shifted = any(any(t) for _, t in transforms)
        datasets = [{"path": str(k), "coordinateTransformations": [
            {"type": "scale", "scale": scale},
            *([{"type": "translation", "translation": shift}] if shifted else [])]}
            for k, (scale, shift) in enumerate(transforms)]
        name = os.path.basename(self.path.rstrip("/"))
        out: dict[str, Any] = {"name": name.removesuffix(".zarr").removesuffix(".ome"),
                               "axes": axes, "datasets": datasets}
        if self.options.levels:
            out["type"] = self.options.method
            out["metadata"] = {"method": "tilewise.io.pyramid", "description":
                               "block " + ("means" if self.options.method == "mean" else
                                           "first pixels") + " of level 0, 2**k per axis"}
        return out

    def transform(self, k: int) -> tuple[list[float], list[float]]:
        """Level k's scale and translation: pixel size and the centre of its pixel 0."""
        given = self.meta.get("physical") or {}
        full = {a: {"size": 1.0, "unit": None, "origin": 0.0, **given.get(a, {})}
                for a in self.axes}
        factors = {a: 2**k for a in self.options.scaled_axes}
        if self.options.method == "mean":  # a block's centre: its first pixel's moves
            full = metadata.rescaled({"physical": full}, self.axes, factors)["physical"]
        else:  # a block's first pixel: same centre, coarser spacing
            full = {a: {**p, "size": p["size"] * factors.get(a, 1)} for a, p in full.items()}
        return ([float(full[a]["size"]) for a in self.axes],
                [float(full[a]["origin"]) for a in self.axes])

    def omero(self) -> dict[str, Any] | None:
        """Channel names and display hints, when the channels are named."""
        names = self.meta.get("band_names")
        if "c" not in self.axes or names is None \
                or len(names) != self.shape[self.axes.index("c")]:
            return None
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            low, high = float(info.min), float(info.max)
        else:
            low, high = 0.0, 1.0
        window = {"min": low, "max": high, "start": low, "end": high}
        return {"channels": [{"label": str(name), "color": COLOURS[i % len(COLOURS)],
                              "window": window, "active": True}
                             for i, name in enumerate(names)],
                "rdefs": {"model": "color"}}


def _group_attrs(path: str) -> dict[str, Any]:
    """The attributes of the Zarr group at `path` (v3 or v2), or {} if there is none."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            with open(os.path.join(path, name), encoding="utf-8") as f:
                found = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(found, dict):
            attrs = found.get(key, {}) if key else found
            return attrs if isinstance(attrs, dict) else {}
    return {}


def _ngff(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The NGFF part of a group's attributes: 0.5's `ome`, or the attributes (0.4)."""
    ome = attrs.get("ome")
    return ome if isinstance(ome, Mapping) else attrs


def is_ome_zarr(path: str, head: bytes) -> bool:
    """Whether `path` is a folder holding an OME-Zarr image (a group with `multiscales`)."""
    return os.path.isdir(path) and "multiscales" in _ngff(_group_attrs(path))


@dataclass(frozen=True, eq=False)
class OMEZarrSource(ZarrSource):
    """One resolution level of an OME-Zarr image: a Zarr array inside the image's group."""

    format: ClassVar[str] = "ome-zarr"
    group: str = ""

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.group,)

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None,  # type: ignore[override]
             level: int = 0) -> OMEZarrSource:
        if is_local(path) and not os.path.isdir(path):
            raise InputError(f"input {path} does not exist or is not a folder")
        try:
            attrs = zarr.open_group(path, mode="r").attrs.asdict()
            multiscale = _ngff(attrs)["multiscales"][0]
            datasets = multiscale["datasets"]
        except Exception as exc:
            raise InputError(f"cannot read {path} as an OME-Zarr image: {exc}") from None
        if isinstance(level, bool) or not isinstance(level, int) \
                or not 0 <= level < len(datasets):
            raise ParameterError(f"level={level!r} for {path}, which has levels 0 to "
                                 f"{len(datasets) - 1}")
        array = os.path.join(path, datasets[level]["path"])
        level_source = ZarrSource.open(array, None)
        names = [a["name"] if isinstance(a, Mapping) else a for a in multiscale["axes"]]
        meta = _meta(attrs, multiscale, datasets[level], names, level)
        return cls(level_source.shape, level_source.dtype,
                   parse_axes(axes or names, len(level_source.shape), path),
                   level_source.blocks, meta, array, group=path)


def _meta(attrs: Mapping[str, Any], multiscale: Mapping[str, Any],
          dataset: Mapping[str, Any], names: list[str], level: int) -> dict[str, Any]:
    """Metadata of one level: tilewise's own (level 0), physical spacing from the NGFF
    transforms, channel names from `omero`."""
    ours = attrs.get(MARK, {}).get("meta", {}) if level == 0 else {}
    meta = metadata.from_attrs({k: v for k, v in ours.items() if k in metadata.known_keys()})
    scale, shift = _affine(dataset.get("coordinateTransformations", []), len(names))
    outer, outer_shift = _affine(multiscale.get("coordinateTransformations", []), len(names))
    kinds = [a.get("type") if isinstance(a, Mapping) else None for a in multiscale["axes"]]
    units = [a.get("unit") if isinstance(a, Mapping) else None for a in multiscale["axes"]]
    # An axis of unknown spacing is written with scale 1 and no unit: it is left out again.
    physical = {name: {"size": s * o, "unit": unit, "origin": t * o + u}
                for name, kind, unit, s, t, o, u
                in zip(names, kinds, units, scale, shift, outer, outer_shift, strict=True)
                if kind in ("space", "time") and (unit or (s * o, t * o + u) != (1, 0))}
    if physical:
        meta["physical"] = physical
    channels = _ngff(attrs).get("omero", {}).get("channels")
    if "c" in names and isinstance(channels, list):
        meta["band_names"] = tuple(str(ch.get("label", i)) for i, ch in enumerate(channels))
    return meta


def _affine(transforms: list[Mapping[str, Any]], ndim: int) -> tuple[list[float], list[float]]:
    """The scale and translation that a list of NGFF transformations applies, in order."""
    scale, shift = [1.0] * ndim, [0.0] * ndim
    for t in transforms:
        if t.get("type") == "scale" and "scale" in t:
            scale = [s * f for s, f in zip(scale, t["scale"], strict=True)]
            shift = [u * f for u, f in zip(shift, t["scale"], strict=True)]
        elif t.get("type") == "translation" and "translation" in t:
            shift = [u + v for u, v in zip(shift, t["translation"], strict=True)]
    return scale, shift


__all__ = ["OPTIONS", "OMEZarrSink", "OMEZarrSource", "Options", "is_ome_zarr"]
