"""Outputs of a run: checked before any work, then made into sinks on their own grids."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .. import journal
from ..errors import OutputError, OutputExistsError, ParameterError
from ..graph import OpNode
from ..io import Sink, objectstore, sink_class
from ..io.location import is_local
from ..pipeline import Pipeline
from ..reductions import Value
from ..regions import Box


def check(pipeline: Pipeline, paths: Sequence[str], overwrite: bool,
          planning: bool = False, storage: Mapping[str, Any] | None = None) -> None:
    """Refuse outputs that would replace an input, repeat, exist (without `overwrite` or a
    journal to resume), sit in a folder that is missing or not writable, or go to an object
    store (`storage`: its fsspec options) in a format that cannot be written there."""
    inputs = input_paths(pipeline)
    seen: set[str] = set()
    for path, img in zip(paths, pipeline.outputs, strict=True):
        local = is_local(path)
        real = os.path.realpath(path) if local else path
        if real in inputs:
            raise OutputExistsError(f"output {path} is also an input of this pipeline")
        if real in seen:
            raise ParameterError(f"output {path} is named twice")
        seen.add(real)
        cls = sink_class(path)
        if not local and not cls.writes_urls:
            raise OutputError(f"output {path}: tilewise writes only Zarr (.zarr) to object "
                              "stores; write the Zarr there, or write this format to a local "
                              "path and upload it")
        if os.path.lexists(path) if local else objectstore.exists(path, storage):
            _replaceable(path, cls, overwrite, storage)
        cls.check(img.shape, img.dtype, img.axes, path)
        folder = os.path.dirname(path)
        if planning or not local:
            continue
        if not os.path.isdir(folder):
            raise OutputError(f"the folder of output {path} does not exist")
        if not os.access(folder, os.W_OK):
            raise OutputError(f"the folder of output {path} is not writable")


def _replaceable(path: str, cls: type[Sink], overwrite: bool,
                 storage: Mapping[str, Any] | None) -> None:
    """Refuse to replace what tilewise did not write: only an output with a journal (one of
    ours, to resume or replace), a store marked as ours, or a plain file of the format."""
    ours = journal.header(journal.path_of(path), storage) is not None
    if not overwrite and not ours:
        raise OutputExistsError(f"output {path} exists; pass overwrite=True to replace it")
    if overwrite and not ours and not cls.owns(path):
        kind = ("an object store prefix" if not is_local(path) else
                "a folder" if os.path.isdir(path) else "a file")
        raise OutputError(f"output {path} is {kind} that tilewise did not write (no journal "
                          "beside it, not a file of the output's format it could have "
                          "written), so overwrite will not replace it; move it away or choose "
                          "another path")


def values(pipeline: Pipeline) -> list[Value]:
    """The lazy values among the parameters of the pipeline's ops."""
    return [v for n in pipeline.nodes if isinstance(n, OpNode)
            for v in n.params.values() if isinstance(v, Value)]


def input_paths(pipeline: Pipeline) -> set[str]:
    """Every file the run reads, including those read only by reductions feeding op params."""
    paths = {os.path.realpath(p) if is_local(p) else p
             for n in pipeline.sources for p in n.source.paths}
    found = values(pipeline)
    if found:
        paths |= input_paths(Pipeline.of([v.reduction.image for v in found]))
    return paths


def journaled_tile(paths: Sequence[str], shape: tuple[int, ...],
                   storage: Mapping[str, Any] | None = None) -> tuple[int, ...] | None:
    """The tile shape of an earlier run of these outputs, so that a resumed run keeps its grid.

    (The planner's choice could differ by a unit between runs, as the probe's measurement may.)
    """
    for path in paths:
        head = journal.header(journal.path_of(path), storage)
        if head is not None and len(head.get("tile", ())) == len(shape):
            return tuple(head["tile"])
    return None


def sinks(pipeline: Pipeline, paths: Sequence[str], tile: tuple[int, ...] | None,
          storage: Mapping[str, Any] | None = None) -> tuple[Sink, ...]:
    """A sink per output, on the output's own grid, its chunks inside one tile's part; those
    in an object store with the fsspec options `storage`."""
    grids = pipeline.grids
    out = []
    for img, path, grid in zip(pipeline.outputs, paths, grids.outputs, strict=True):
        cls = sink_class(path)
        chunks = cls.planned_chunks(img.shape, img.axes, img.meta)
        if tile is not None and cls.parallel_writes:
            # Parallel writers need chunks inside one tile: follow the tile where it disagrees.
            part = grid.box(Box.of_shape(tile), grids.shape).shape
            chunks = tuple(c if t % c == 0 or t == n else t
                           for c, t, n in zip(chunks, part, img.shape, strict=True))
        extra = {} if is_local(path) else {"storage_options": storage}
        out.append(cls(path, img.shape, img.dtype, img.axes, chunks, img.meta, **extra))
    return tuple(out)
