"""Zarr arrays (v3, and v2 for reading) through zarr-python.

Zarr is the format for parallel output: each tile covers whole chunks, so workers write their
tiles directly, from any thread or process, without a lock. Metadata lives in the attributes
and axis names in `dimension_names`.
"""

from __future__ import annotations

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
from .base import Sink
from .blocks import BlockedSource

META_KEYS = ("crs", "transform", "nodata", "band_names")
#: Pixels per written chunk: 512 x 512 in 2-D, 64 x 64 x 64 in 3-D.
CHUNK_PIXELS = 512 * 512


def _open_read(path: str) -> zarr.Array:
    return zarr.open_array(path, mode="r")


@dataclass(frozen=True, eq=False)
class ZarrSource(BlockedSource):
    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None) -> ZarrSource:
        if not os.path.exists(path):
            raise InputError(f"input {path} does not exist")
        try:
            arr = _open_read(path)
        except Exception as exc:
            raise InputError(f"cannot read {path} as a Zarr array: {exc}") from None
        if axes is None:
            names = getattr(arr.metadata, "dimension_names", None)
            names = names or arr.attrs.get("_ARRAY_DIMENSIONS")
            axes = tuple(names) if names and all(names) else None
        attrs = {k: v for k, v in arr.attrs.asdict().items() if k in META_KEYS}
        return cls(tuple(arr.shape), np.dtype(arr.dtype), parse_axes(axes, arr.ndim, path),
                   tuple(arr.chunks), metadata.from_attrs(attrs), path)

    def read_window(self, box: Box) -> np.ndarray:
        arr = handles.process_handle(handles.version(self.path), _open_read)
        return np.asarray(arr[box.slices])


@dataclass(frozen=True, eq=False)
class ZarrSink(Sink):
    parallel_writes: ClassVar[bool] = True
    suffixes: ClassVar[tuple[str, ...]] = (".zarr",)

    @classmethod
    def default_chunks(cls, shape: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
        spatial = [a for a in axes if a in SPATIAL] or list(axes[-1:])
        side = 2 ** round(math.log2(CHUNK_PIXELS) / len(spatial))
        return tuple(
            n if a in UNSPLIT else min(n, side) if a in spatial else 1
            for n, a in zip(shape, axes)
        )

    def create(self) -> None:
        kwargs: dict[str, Any] = {}
        nodata = self.meta.get("nodata")
        if nodata is not None and np.can_cast(np.min_scalar_type(nodata), self.dtype):
            kwargs["fill_value"] = nodata
        zarr.create_array(
            self.staging, shape=self.shape, chunks=self.chunks, dtype=self.dtype,
            dimension_names=list(self.axes), attributes=metadata.to_attrs(self.meta),
            overwrite=True, **kwargs,
        )

    def write(self, box: Box, data: np.ndarray) -> None:
        arr = handles.process_handle((self.staging, 0),
                                     lambda p: zarr.open_array(p, mode="r+"))
        arr[box.slices] = data

    def close(self) -> None:
        handles.forget(self.staging)
