"""Zarr arrays (v3, and v2 for reading) through zarr-python.

Zarr is the format for parallel output: each tile covers whole chunks, so workers write their
tiles directly, from any thread or process, without a lock. Metadata lives in the attributes
and axis names in `dimension_names`. A tile's chunk files are fsynced (`sync`) before the
journal records it, so that it never records a tile that a crash could still lose.

In an object store (`s3://bucket/out.zarr`, through fsspec and zarr's `FsspecStore`) there is
no rename to make an output final in one step. There, chunks are written in place by the
workers, each from the array's metadata held in the sink (no worker reads it), while the
array's `zarr.json` waits beside them as `tilewise.pending.json`: until the commit writes
`zarr.json` (one whole-object PUT, the last step) the prefix holds no Zarr array at all, so
nothing that looks complete is there before it is. A PUT is durable when it returns, so
`sync` has nothing to do.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import zarr

from .. import meta as metadata
from ..axes import SPATIAL, UNSPLIT, parse_axes
from ..errors import InputError, OutputError, OutputExistsError
from ..regions import Box
from . import fingerprint as fingerprints
from . import handles, objectstore
from .base import Sink, fsync
from .blocks import BlockedSource
from .location import is_local

#: Pixels per written chunk: 512 x 512 in 2-D, 64 x 64 x 64 in 3-D.
CHUNK_PIXELS = 512 * 512
#: The attribute that marks a Zarr array as written by tilewise (so `overwrite` may replace it).
MARK = "tilewise"


def is_zarr(path: str, head: bytes) -> bool:
    """Whether `path` is a folder holding a Zarr array (v3 or v2), whatever its suffix; a
    group (an OME-Zarr image) is not one."""
    if os.path.isfile(os.path.join(path, ".zarray")):
        return True
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as f:
            return json.load(f).get("node_type") == "array"
    except (OSError, ValueError, AttributeError):
        return False


#: Where the metadata of an object-store output waits until the commit writes `zarr.json`.
PENDING = "tilewise.pending.json"


def _open_read(path: str, storage: Mapping[str, Any] | None = None) -> zarr.Array:
    if is_local(path):
        return zarr.open_array(path, mode="r")
    return zarr.open_array(path, mode="r",
                           storage_options=objectstore.storage_options(path, storage))


@dataclass(frozen=True, eq=False)
class ZarrSource(BlockedSource):
    format: ClassVar[str] = "zarr"
    #: fsspec options of an array in an object store (credentials, endpoint), if given.
    storage_options: Mapping[str, Any] | None = None

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None,
             storage_options: Mapping[str, Any] | None = None) -> ZarrSource:
        if is_local(path) and not os.path.exists(path):
            raise InputError(f"input {path} does not exist")
        try:
            arr = _open_read(path, storage_options)
        except Exception as exc:
            raise InputError(f"cannot read {path} as a Zarr array: {exc}") from None
        if axes is None:
            names = getattr(arr.metadata, "dimension_names", None)
            names = names or arr.attrs.get("_ARRAY_DIMENSIONS")
            axes = tuple(names) if names and all(names) else None
        attrs = {k: v for k, v in arr.attrs.asdict().items() if k in metadata.known_keys()}
        return cls(tuple(arr.shape), np.dtype(arr.dtype), parse_axes(axes, arr.ndim, path),
                   tuple(arr.chunks), metadata.from_attrs(attrs), path, storage_options)

    def fingerprint(self) -> dict[str, Any]:
        return {"source": self.path, "format": self.format,
                **fingerprints.of_file(self.path, self.storage_options)}

    def read_window(self, box: Box) -> np.ndarray:
        arr = handles.process_handle(handles.version(self.path),
                                     lambda p: _open_read(p, self.storage_options))
        return np.asarray(arr[box.slices])


@dataclass(frozen=True, eq=False)
class ZarrSink(Sink):
    parallel_writes: ClassVar[bool] = True
    remote_writes: ClassVar[bool] = True
    writes_urls: ClassVar[bool] = True
    #: fsspec options of an output in an object store (credentials, endpoint), if given.
    storage_options: Mapping[str, Any] | None = None

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
            if is_local(path):
                with open(os.path.join(path, "zarr.json"), encoding="utf-8") as f:
                    return MARK in json.load(f).get("attributes", {})
            found = objectstore.read(f"{path.rstrip('/')}/zarr.json")
            return found is not None and MARK in json.loads(found[0]).get("attributes", {})
        except (OSError, ValueError, AttributeError):
            return False

    @property
    def in_store(self) -> bool:
        """Whether the output is in an object store (a URL), not on a file system."""
        return not is_local(self.path)

    @property
    def staging(self) -> str:
        return f"{self.path.rstrip('/')}/{PENDING}" if self.in_store else super().staging

    @property
    def target(self) -> str:
        """Where the chunks are written: the staging folder, or in place in a store."""
        return self.path if self.in_store else self.staging

    def _fill(self) -> Any:
        fill = self.meta.get("nodata")
        if fill is not None and not np.can_cast(np.min_scalar_type(fill), self.dtype):
            fill = None
        return fill

    def _attributes(self) -> dict[str, Any]:
        return {**metadata.to_attrs(self.meta), MARK: {"version": 1}}

    def create(self) -> None:
        if not self.in_store:
            create_store(self.staging, self.shape, self.chunks, self.dtype, self.axes,
                         self._attributes(), self._fill())
            return
        documents: dict[str, Any] = {}
        create_store(zarr.storage.MemoryStore(documents), self.shape, self.chunks, self.dtype,
                     self.axes, self._attributes(), self._fill())
        document = documents["zarr.json"].to_bytes()
        objectstore.write(self.staging, document, self.storage_options)

    def _writer(self, _: str) -> zarr.Array:
        """The output array in a store, from the pending metadata (read once per process)."""
        from zarr.core.metadata import ArrayV3Metadata
        from zarr.storage import FsspecStore, StorePath

        found = objectstore.read(self.staging, self.storage_options)
        if found is None:
            raise OSError(f"{self.staging} is missing: the output was not created")
        store = FsspecStore.from_url(
            self.path, storage_options=objectstore.storage_options(self.path,
                                                                   self.storage_options),
            read_only=False)
        meta = ArrayV3Metadata.from_dict(json.loads(found[0]))
        return zarr.Array(zarr.AsyncArray(metadata=meta, store_path=StorePath(store)))

    def write(self, box: Box, data: np.ndarray) -> None:
        if not self.in_store:
            write_chunks(self.staging, box, data)
            return
        arr = handles.process_handle((self.path, -1), self._writer)
        arr[box.slices] = data

    def sync(self, box: Box) -> None:
        if not self.in_store:  # a PUT is durable when it returns
            sync_chunks(self.staging, box)

    def exists(self) -> tuple[bool, bool]:
        if not self.in_store:
            return super().exists()
        return (objectstore.exists(self.staging, self.storage_options),
                objectstore.exists(f"{self.path.rstrip('/')}/zarr.json", self.storage_options))

    def commit(self, overwrite: bool, final: str | None = None) -> None:
        """In a store: write `zarr.json` last (the array exists from then on), then drop the
        pending copy of it."""
        if not self.in_store:
            super().commit(overwrite, final)
            return
        self.close()
        found = objectstore.read(self.staging, self.storage_options)
        if found is None:
            raise OutputError(f"output {self.path}: its pending metadata {self.staging} is gone")
        document = f"{self.path.rstrip('/')}/zarr.json"
        there = objectstore.read(document, self.storage_options)
        if there is not None and there[0] != found[0] and not overwrite:
            raise OutputExistsError(f"output {self.path} appeared during the run")
        if there is None or there[0] != found[0]:  # else a crash came between these two steps
            objectstore.write(document, found[0], self.storage_options)
        objectstore.remove(self.staging, self.storage_options)

    def abort(self) -> None:
        if not self.in_store:
            super().abort()
            return
        self.close()
        objectstore.remove(self.path, self.storage_options)

    def close(self) -> None:
        handles.forget(self.target)


def create_store(path: str | zarr.abc.store.Store, shape: tuple[int, ...],
                 chunks: tuple[int, ...], dtype: np.dtype, axes: tuple[str, ...],
                 attributes: dict[str, Any], fill: Any = None) -> None:
    """A new, empty Zarr v3 array at `path` (or in a store), its metadata already on disk."""
    kwargs: dict[str, Any] = {} if fill is None else {"fill_value": fill}
    zarr.create_array(path, shape=shape, chunks=chunks, dtype=dtype,
                      dimension_names=list(axes), attributes=attributes,
                      overwrite=True, **kwargs)
    if isinstance(path, str):
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
