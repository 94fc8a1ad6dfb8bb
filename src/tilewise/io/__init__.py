"""Reading and writing images: one module per format, found through one registry (`registry`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..axes import parse_axes
from ..errors import ParameterError
from .base import Sink, Source
from .dask_array import DaskSource, is_dask_array
from .gdal import GDAL_CACHE, configure_gdal
from .location import resolve
from .memory import ArraySink, ArraySource
from .registry import Format, formats, open_location, open_stack, plugins, register, sink_class
from .stack import is_pattern
from .xarray_array import is_dataarray, open_dataarray

__all__ = ["GDAL_CACHE", "ArraySink", "Format", "Sink", "Source", "configure_gdal", "formats",
           "open_source", "plugins", "register", "sink_class"]


def open_source(obj: object, axes: str | Sequence[str] | None = None, format: str | None = None,
                **options: Any) -> Source:
    """A source for a path or URL in any known format, for many files as one array (a list of
    paths or a glob pattern, see `stack`), or for an in-memory array: NumPy, a dask array
    (computed window by window) or an xarray DataArray (its dimensions naming the axes, its
    georeference becoming metadata).

    `format` names the format (see `formats()`; of each file, for a list or a pattern), else
    it is found from the URL scheme, the file's content or its suffix; `options` go to that
    format's opener.
    """
    if is_dask_array(obj) or is_dataarray(obj):
        if format is not None or options:
            raise ParameterError("an in-memory array takes no format or format options")
        if is_dataarray(obj):
            return open_dataarray(obj, axes)
        return DaskSource.of(obj, parse_axes(axes, obj.ndim, "the dask array"))
    if isinstance(obj, np.ndarray):
        if format is not None or options:
            raise ParameterError("an in-memory array takes no format or format options")
        names = parse_axes(axes, obj.ndim, "the array")
        return ArraySource(obj.shape, obj.dtype, names, obj.shape, {}, None, obj)
    if isinstance(obj, (list, tuple)) or (isinstance(obj, (str, os.PathLike))
                                          and is_pattern(resolve(obj))):
        return open_stack(obj, axes, None if format == "stack" else format, options)
    if not isinstance(obj, (str, os.PathLike)):
        raise ParameterError(
            f"cannot open {type(obj).__name__!r}: give a file path, a URL, or a NumPy, dask "
            "or xarray array")
    return open_location(resolve(obj), axes, format, options)
