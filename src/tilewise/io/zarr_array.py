"""Zarr arrays (v3, and v2 for reading) through zarr-python.

Zarr is the format for parallel output: each tile covers whole chunks, so workers write their
tiles directly, from any thread or process, without a lock. Metadata lives in the attributes
and axis names in `dimension_names`. A tile's chunk files are fsynced (`sync`) before the
journal records it, so that it never records a tile that a crash could still lose. GeoTIFF
output is staged in a Zarr array too (see `geotiff`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import zarr

from .. import meta as metadata
from ..axes import SPATIAL, UNSPLIT, parse_axes
from ..errors import InputError
from ..regions import Box
from . import handles
from .base import Sink, fsync
from .blocks import BlockedSource
from .location import is_local

#: Pixels per written chunk: 512 x 512 in 2-D, 64 x 64 x 64 in 3-D.
CHUNK_PIXELS = 512 * 512
#: The attribute that marks a Zarr array as written by tilewise (so `overwrite` may replace it).
MARK = "tilewise"


def is_zarr(path: str, head: bytes) -> bool:
    """Whether `path` is a folder holding a Zarr array (v3 or v2), whatever its suffix."""
    return any(os.path.isfile(os.path.join(path, name)) for name in ("zarr.json", ".zarray"))


def _open_read(path: str) -> zarr.Array:
    return zarr.open_array(path, mode="r")


@dataclass(frozen=True, eq=False)
class ZarrSource(BlockedSource):
    format: ClassVar[str] = "zarr"

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None) -> ZarrSource:
        if is_local(path) and not os.path.exists(path):
            raise InputError(f"input {path} does not exist")
        try:
            arr = _open_read(path)
        except Exception as exc:
            raise InputError(f"cannot read {path} as a Zarr array: {exc}") from None
        if axes is None:
            names = getattr(arr.metadata, "dimension_names", None)
            names = names or arr.attrs.get("_ARRAY_DIMENSIONS")
            axes = tuple(names) if names and all(names) else None
        attrs = {k: v for k, v in arr.attrs.asdict().items() if k in metadata.known_keys()}
        return cls(tuple(arr.shape), np.dtype(arr.dtype), parse_axes(axes, arr.ndim, path),
                   tuple(arr.chunks), metadata.from_attrs(attrs), path)

    def read_window(self, box: Box) -> np.ndarray:
        arr = handles.process_handle(handles.version(self.path), _open_read)
        return np.asarray(arr[box.slices])


@dataclass(frozen=True, eq=False)
class ZarrSink(Sink):
    parallel_writes: ClassVar[bool] = True
    remote_writes: ClassVar[bool] = True

    @classmethod
    def default_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
        spatial = [a for a in axes if a in SPATIAL] or list(axes[-1:])
        side = 2 ** round(math.log2(CHUNK_PIXELS) / len(spatial))
        return tuple(
            n if a in UNSPLIT else min(n, side) if a in spatial else 1
            for n, a in zip(shape, axes, strict=True)
        )

    @classmethod
    def owns(cls, path: str) -> bool:
        """A Zarr array that tilewise wrote: its attributes carry the `tilewise` mark."""
        try:
            with open(os.path.join(path, "zarr.json"), encoding="utf-8") as f:
                return MARK in json.load(f).get("attributes", {})
        except (OSError, ValueError, AttributeError):
            return False

    def create(self) -> None:
        fill = self.meta.get("nodata")
        if fill is not None and not np.can_cast(np.min_scalar_type(fill), self.dtype):
            fill = None
        create_store(self.staging, self.shape, self.chunks, self.dtype, self.axes,
                     {**metadata.to_attrs(self.meta), MARK: {"version": 1}}, fill)

    def write(self, box: Box, data: np.ndarray) -> None:
        write_chunks(self.staging, box, data)

    def sync(self, box: Box) -> None:
        sync_chunks(self.staging, box)

    def close(self) -> None:
        handles.forget(self.staging)


def create_store(path: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype,
                 axes: tuple[str, ...], attributes: dict[str, Any], fill: Any = None,
                 compressors: Any = "auto") -> None:
    """A new, empty Zarr v3 array at `path`, its metadata already on disk."""
    kwargs: dict[str, Any] = {} if fill is None else {"fill_value": fill}
    zarr.create_array(path, shape=shape, chunks=chunks, dtype=dtype,
                      dimension_names=list(axes), attributes=attributes,
                      compressors=compressors, overwrite=True, **kwargs)
    fsync(os.path.join(path, "zarr.json"))
    fsync(path)
    fsync(os.path.dirname(path))


def write_chunks(path: str, box: Box, data: np.ndarray) -> None:
    """Write `data` at `box` of the Zarr array at `path` (whole chunks, by the tiling)."""
    arr = handles.process_handle((path, 0), lambda p: zarr.open_array(p, mode="r+"))
    arr[box.slices] = data


def sync_chunks(path: str, box: Box) -> None:
    """fsync the chunk files under `box` of the Zarr array at `path`, and their folders."""
    arr = handles.process_handle((path, 0), lambda p: zarr.open_array(p, mode="r+"))
    folders = set()
    ranges = [range(a // c, -(-b // c))
              for a, b, c in zip(box.start, box.stop, arr.chunks, strict=True)]
    for coords in itertools.product(*ranges):
        chunk = os.path.join(path, *arr.metadata.encode_chunk_key(coords).split("/"))
        fsync(chunk)
        folders.add(os.path.dirname(chunk))
    for folder in folders:
        fsync(folder)
