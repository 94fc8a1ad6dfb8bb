"""Formats, found by path suffix: one module per format, one registry here."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..axes import parse_axes
from ..errors import InputError, ParameterError, UnsupportedFormatError
from .base import Sink, Source
from .geotiff import GeoTIFFSink, GeoTIFFSource
from .memory import ArraySink, ArraySource
from .npy import NpySink, NpySource
from .zarr_array import ZarrSink, ZarrSource

SINKS: tuple[type[Sink], ...] = (GeoTIFFSink, ZarrSink, NpySink)

__all__ = ["SINKS", "ArraySink", "Sink", "Source", "open_source", "sink_class"]


def _suffix(path: str) -> str:
    return os.path.splitext(path.rstrip("/"))[1].lower()


def open_source(obj: object, axes: str | Sequence[str] | None = None) -> Source:
    """A source for a path (GeoTIFF, Zarr, .npy) or an in-memory NumPy array."""
    if isinstance(obj, np.ndarray):
        names = parse_axes(axes, obj.ndim, "the array")
        return ArraySource(obj.shape, obj.dtype, names, obj.shape, {}, None, obj)
    if not isinstance(obj, (str, os.PathLike)):
        raise ParameterError(
            f"cannot open {type(obj).__name__!r}: give a file path or a NumPy array")
    path = os.path.abspath(os.fspath(obj))
    suffix = _suffix(path)
    if suffix == ".zarr" or (os.path.isdir(path) and (
            os.path.exists(os.path.join(path, "zarr.json"))
            or os.path.exists(os.path.join(path, ".zarray")))):
        return ZarrSource.open(path, axes)
    if not os.path.exists(path):
        raise InputError(f"input {path} does not exist")
    if suffix == ".npy":
        return NpySource.open(path, axes)
    if suffix in (".tif", ".tiff", ".vrt", ".img", ".jp2", ".png", ".nc", ".hdf", ".h5") \
            or suffix == "":
        source = GeoTIFFSource.open(path)
        if axes is not None:
            names = parse_axes(axes, len(source.shape), path)
            return GeoTIFFSource(source.shape, source.dtype, names, source.blocks,
                                 source.meta, path)
        return source
    raise UnsupportedFormatError(
        f"cannot read {path}: unknown suffix {suffix!r} (GeoTIFF, .zarr and .npy are supported)")


def sink_class(path: str) -> type[Sink]:
    suffix = _suffix(path)
    for cls in SINKS:
        if suffix in cls.suffixes:
            return cls
    known = ", ".join(s for cls in SINKS for s in cls.suffixes)
    raise UnsupportedFormatError(f"cannot write {path}: unknown suffix {suffix!r} ({known})")
