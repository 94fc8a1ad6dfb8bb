"""dask and xarray interop: an image as a dask array whose blocks are tilewise tiles, and as a
lazy xarray DataArray with coordinates from its transform.

`to_dask` plans the tiles as a run would (the probe, the memory budget, `tile=`), resolves lazy
values among op parameters (computing the reductions they need, now), and builds one task per
tile: computing a block computes that tile, halo included, exactly as `save` would. The
array's name is a token of the pipeline's fingerprint and the tile shape, so the same pipeline
gives the same name, and `tw.open` of it resumes like any other input. `tw.open` of a dask
array or a DataArray is in `io` (`dask_array`, `xarray_array`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from . import graph
from .graph import Image
from .io.xarray_array import GRID_MAPPING, axes_to_dims, grid_mapping
from .pipeline import Pipeline
from .plan import Job, resolve_tile
from .regions import Box
from .run import sizing
from .run.options import Options
from .run.resolve import bind, resolver
from .run.tilejob import compute_tile


def to_dask(image: Image, *, tile: Any = None, memory: int | str | None = None) -> Any:
    """A `dask.array.Array` of `image` whose blocks are its tiles (planned within `memory`,
    or given by `tile=`); computing a block runs that tile."""
    import dask.array as da
    from dask.base import tokenize

    options = Options.of("threads", memory=memory, tile=tile, progress=False)
    with options.running():
        pipeline = Pipeline.of(bind([image], resolver(dataclasses.replace(options, tile=None))))
        plan = sizing.fit(pipeline, (), options.budget, options.runner,
                          resolve_tile(tile, image.shape, image.axes))
    grid = plan.grid
    chunks = tuple(tuple(min(t, n - start) for start in range(0, n, t))
                   for n, t in zip(image.shape, grid.tile, strict=True))
    name = "tilewise-" + tokenize([n.fingerprint() for n in pipeline.nodes], grid.tile)
    return da.map_blocks(_block, dtype=image.dtype, chunks=chunks, name=name,
                         meta=np.empty((0,) * image.ndim, image.dtype), pipeline=pipeline,
                         read_cache=plan.read_cache)


def _block(pipeline: Pipeline, read_cache: int, block_info: dict | None = None) -> np.ndarray:
    where = block_info[None]
    box = Box(*(tuple(side) for side in zip(*where["array-location"], strict=True)))
    return compute_tile(pipeline, read_cache, Job(tuple(where["chunk-location"]), box))[0]


def to_xarray(image: Image, *, tile: Any = None, memory: int | str | None = None) -> Any:
    """A lazy `xarray.DataArray` of `image` (backed by `to_dask`): dimensions named after its
    axes (`c` as `band`), pixel-centre `x`/`y` coordinates from an unrotated transform, the
    CRS and transform in a `spatial_ref` coordinate (as rioxarray writes them), the nodata
    value as `_FillValue`."""
    import xarray as xr

    meta = image.meta
    dims = axes_to_dims(image.axes)
    sizes = dict(zip(image.axes, image.shape, strict=True))
    coords: dict[str, Any] = {}
    transform = meta.get("transform")
    if transform is not None and transform.b == 0 and transform.d == 0 \
            and "x" in sizes and "y" in sizes:
        coords["x"] = transform.c + (np.arange(sizes["x"]) + 0.5) * transform.a
        coords["y"] = transform.f + (np.arange(sizes["y"]) + 0.5) * transform.e
    if "c" in sizes:
        names = meta.get("band_names")
        coords[axes_to_dims("c")[0]] = (list(names) if names and len(names) == sizes["c"]
                                        else np.arange(1, sizes["c"] + 1))
    attrs: dict[str, Any] = {}
    mapping = grid_mapping(meta)
    if mapping:
        coords[GRID_MAPPING] = xr.Variable((), 0, attrs=mapping)
        attrs["grid_mapping"] = GRID_MAPPING
    if meta.get("nodata") is not None:
        attrs["_FillValue"] = meta["nodata"]
    return xr.DataArray(to_dask(image, tile=tile, memory=memory), dims=dims, coords=coords,
                        attrs=attrs, name=image.node.label)


graph.DRIVER.update(to_dask=to_dask, to_xarray=to_xarray)
