"""The driver: plans a run, drives an executor over its tiles, writes and journals outputs.

    save(images, paths)   prepare -> resolve reductions -> plan tiles -> output pass
    plan(images, paths)   the same, stopping before any tile is computed
    compute(image)        the output pass into an array in memory
    evaluate(values)      the reduction pass alone

Modules, one concept each: `options` (run options as one checked value), `outputs` (output
checks and sinks), `resolve` (the pass that turns lazy values into numbers), `sizing` (fixed
costs and the tile shape within the budget), `tilejob` (what a worker does for one tile),
`loop` (one sweep on an executor), `writing` (the output pass: journals, recorder, commit),
`progress` and `results` (what the caller sees). The core (`graph`, `reductions`) never
imports the driver: importing this package installs `compute` and `evaluate` behind
`Image.compute` and `Value.compute`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import graph, journal
from ..axes import count
from ..errors import BudgetError, ParameterError
from ..executors import Executor, get_executor
from ..graph import Image
from ..io import ArraySink, Sink
from ..io.gdal import configure_gdal
from ..io.location import resolve as resolve_location
from ..pipeline import Pipeline
from ..plan import Plan, Probe, probe, resolve_tile
from ..reductions import Reduction, Value
from ..regions import TileGrid
from . import executor_choice, outputs, sizing
from .loop import check_sendable
from .options import Options, budget_bytes
from .progress import ProgressSpec
from .resolve import bind, resolve, resolver, sampled
from .results import Progress, Report
from .writing import write

#: RuntimeWarnings that all-NaN or empty tiles raise in NumPy's nan-functions.
QUIET = ("All-NaN (slice|axis) encountered", "Mean of empty slice",
         "Degrees of freedom <= 0", "invalid value encountered", "divide by zero encountered")


@dataclass(frozen=True)
class Planned:
    """A run planned but not started: what `tilewise plan` describes."""

    pipeline: Pipeline
    sinks: tuple[Sink, ...]
    plan: Plan
    runner: Executor
    budget: int
    #: The reductions that run first, in sweeps of their own, because op parameters need them.
    reductions: tuple[Reduction, ...]
    #: Where the tile shape came from: "planned", "tile=" or "the journal" (of a resume).
    tile_from: str = "planned"
    #: Why the executor was chosen, when the caller named none.
    executor_reason: str = ""


def save(images: Image | Sequence[Image], paths: str | os.PathLike | Sequence[Any], *,
         executor: str | Executor | None = None, workers: int | None = None,
         memory: int | str | None = None, tile: Any = None, overwrite: bool = False,
         progress: ProgressSpec = None, on_error: str = "stop",
         scheduler: Any = None, storage_options: dict[str, Any] | None = None,
         block: int | None = None) -> Report:
    """Compute `images` tile by tile and write each to its path, in one pass over the tiles.

    The format follows each path's suffix: `.tif` (GeoTIFF), `.zarr` (Zarr v3), `.npy`.
    Outputs may be on different grids when they rescale one another (a DEM and its 4x
    rebinning). A run that fails or is killed keeps its finished tiles; the same call again
    resumes it. `on_error="continue"` computes every other tile before reporting the tiles
    that failed. `executor="dask"` runs the tiles on a dask cluster: a LocalCluster started for
    the run, or the one `scheduler=` names (an address, a cluster or a `distributed.Client`).
    A Zarr output may be in an object store (`s3://bucket/out.zarr`), reached with the
    credentials and endpoint of the environment or `storage_options=` (fsspec's).

    With no `executor` (nor `scheduler`), threads or processes are chosen by measurement
    (`plan` says which and why). Each tile's op chain runs in sub-blocks of `block` pixels a
    side (0: the tile whole; by default the side measured fastest).
    """
    options = Options.of(executor, workers, memory, tile, overwrite, progress, on_error,
                         scheduler, storage_options)
    with options.running(), quiet_nan_warnings():
        checked = _check(images, paths, options)
        prints = _prints(checked, options)
        finished = _finished(checked, options, prints)
        if finished is not None:
            return finished
        planned = _plan(checked, options, auto=executor is None and scheduler is None,
                        block=block)
        return write(planned.pipeline, planned.sinks, planned.plan,
                     dataclasses.replace(options, runner=planned.runner),
                     described=checked.pipeline, prints=prints)


def plan(images: Image | Sequence[Image], paths: str | os.PathLike | Sequence[Any], *,
         executor: str | Executor | None = None, workers: int | None = None,
         memory: int | str | None = None, tile: Any = None,
         overwrite: bool = False, scheduler: Any = None,
         storage_options: dict[str, Any] | None = None, block: int | None = None) -> Planned:
    """Plan `save(images, paths)` without running it.

    The tile shape comes from the usual probe tile; reductions feeding op parameters are
    stood in for by their value on a small central crop, which is enough to measure memory.
    """
    options = Options.of(executor, workers, memory, tile, overwrite, progress=False,
                         scheduler=scheduler, storage_options=storage_options)
    with options.running(), quiet_nan_warnings():
        return _plan(_check(images, paths, options, planning=True), options, sample=True,
                     auto=executor is None and scheduler is None, block=block)


@dataclass(frozen=True)
class _Checked:
    """A run's outputs, checked: the pipeline with its lazy values unresolved (which is what
    identifies it in the journals), the output paths, and the tile shape if already known."""

    pipeline: Pipeline
    paths: list[str]
    tile: tuple[int, ...] | None
    tile_from: str


def _check(images: Image | Sequence[Image], paths: str | os.PathLike | Sequence[Any],
           options: Options, planning: bool = False) -> _Checked:
    imgs = [images] if isinstance(images, Image) else list(images)
    outs = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if len(imgs) != len(outs) or not imgs:
        raise ParameterError(f"save got {len(imgs)} images but {len(outs)} paths")
    for i, img in enumerate(imgs):
        if not isinstance(img, Image):
            raise ParameterError(f"save: item {i} is a {type(img).__name__}, not a tilewise image")
    outs = [resolve_location(os.fspath(p)) for p in outs]
    unbound = Pipeline.of(imgs)
    grids = unbound.grids  # outputs on unrelated grids are refused before anything else
    outputs.check(unbound, outs, options.overwrite, planning, options.storage_options)
    check_sendable(unbound, options.runner)
    configure_gdal()
    tiles, tile_from = resolve_tile(options.tile, grids.shape, grids.axes), "tile="
    if tiles is None and not options.overwrite:
        tiles, tile_from = (outputs.journaled_tile(outs, grids.shape, options.storage_options),
                            "the journal")
    return _Checked(unbound, outs, tiles, tile_from if tiles is not None else "planned")


def _prints(checked: _Checked, options: Options) -> list[dict[str, Any]] | None:
    """The outputs' fingerprints, when a journal already fixes the tile grid: computed once
    (hashing input files), for the finished-already check and then for the output pass."""
    if options.overwrite or checked.tile is None:
        return None
    sinks = outputs.sinks(checked.pipeline, checked.paths, checked.tile,
                          options.storage_options)
    return journal.fingerprints(checked.pipeline, sinks, checked.tile)


def _finished(checked: _Checked, options: Options, prints: list[dict[str, Any]] | None
              ) -> Report | None:
    """A report of nothing to do when every output is complete by this very pipeline (a
    changed one is refused here), found before any reduction sweep or probe runs."""
    if prints is None or not all(prints):  # an output that is not resumable has no print
        return None
    sinks = outputs.sinks(checked.pipeline, checked.paths, checked.tile,
                          options.storage_options)
    tiles = TileGrid(checked.pipeline.shape, checked.tile)
    states = [journal.state(s, fp, len(tiles), False) for s, fp in zip(sinks, prints,
                                                                       strict=True)]
    if not all(st.action == "done" and st.complete for st in states):
        return None
    return Report(0, dict(zip(checked.pipeline.axes, checked.tile, strict=True)),
                  options.runner.name, options.runner.workers, options.budget, 0.0,
                  resumed=len(tiles))


def _plan(checked: _Checked, options: Options, sample: bool = False, auto: bool = False,
          block: int | None = None) -> Planned:
    """Choose the executor (when `auto`), resolve the lazy values (or stand in for them when
    only planning), then fit tiles."""
    unbound = checked.pipeline
    reductions = tuple({id(v.reduction): v.reduction for v in outputs.values(unbound)}.values())
    choice, measured = None, None
    if auto:
        # Lazy values are not computed yet: their stand-ins serve to measure the ops.
        stand_in = Pipeline.of(bind(list(unbound.outputs), sampled)) if reductions else unbound
        measured = probe(stand_in)
        stand_sinks = outputs.sinks(stand_in, checked.paths, checked.tile,
                                    options.storage_options)

        def tile_pixels(runner: Executor) -> int:
            frugal = sizing.Sizing.of(stand_in, stand_sinks, options.budget, runner,
                                      checked.tile, measured=measured).frugal()
            return math.prod(frugal.grid.tile)

        choice = executor_choice.choose(stand_in, options.runner.workers, measured,
                                        tile_pixels)
        options = dataclasses.replace(options, runner=choice.runner)
        measured = None if reductions else measured
    reducing = dataclasses.replace(options, tile=None)
    pipeline = Pipeline.of(bind(list(unbound.outputs),
                                sampled if sample else resolver(reducing)))
    sinks = outputs.sinks(pipeline, checked.paths, checked.tile, options.storage_options)
    reason = choice.reason if choice is not None else ""
    try:
        planned = _fit(pipeline, sinks, options, checked, block, measured)
    except BudgetError:
        if choice is None or choice.runner.name == "threads":
            raise
        options = dataclasses.replace(
            options, runner=get_executor("threads", options.runner.workers))
        reason += "; but worker processes do not fit the memory budget: threads"
        planned = _fit(pipeline, sinks, options, checked, block, measured)
    return Planned(pipeline, sinks, planned, options.runner, options.budget, reductions,
                   checked.tile_from, reason)


def _fit(pipeline: Pipeline, sinks: Sequence[Sink], options: Options, checked: _Checked,
         block: int | None, measured: Probe | None) -> Plan:
    return sizing.fit(pipeline, sinks, options.budget, options.runner, checked.tile,
                      tile_from=checked.tile_from, block=sub_block(block), measured=measured)


def sub_block(block: int | None) -> int | str | None:
    """The user's `block=` as `sizing.fit` takes it: measured, a side, or None (whole)."""
    if block is None:
        return sizing.MEASURE
    side = count(block, "block", ParameterError, least=0)
    return side or None


def compute(image: Image, *, executor: str | Executor | None = None, workers: int | None = None,
            memory: int | str | None = None, tile: Any = None,
            scheduler: Any = None, block: int | None = None) -> np.ndarray:
    """The whole image as a NumPy array, computed tile by tile."""
    options = Options.of(executor, workers, memory, tile, progress=False, scheduler=scheduler)
    with options.running():
        return _compute(image, options, executor is None and scheduler is None, block)


def _compute(image: Image, options: Options, auto: bool, block: int | None) -> np.ndarray:
    budget, tile = options.budget, options.tile
    if image.nbytes > budget // 2:
        raise BudgetError(
            f"the result is {image.nbytes / 2**20:.1f} MiB, more than half the memory budget "
            f"of {budget / 2**20:.1f} MiB; save it to a file with tilewise.save instead")
    array = np.empty(image.shape, image.dtype)
    sink = ArraySink("<memory>", image.shape, image.dtype, image.axes,
                     ArraySink.default_chunks(image.shape, image.axes), image.meta, array)
    with quiet_nan_warnings():
        check_sendable(Pipeline.of([image]), options.runner)
        configure_gdal()
        pipeline = Pipeline.of(bind([image], resolver(dataclasses.replace(options, tile=None))))
        measured = None
        if auto:
            measured = probe(pipeline)

            def tile_pixels(runner: Executor) -> int:
                frugal = sizing.Sizing.of(pipeline, (sink,), budget - image.nbytes, runner,
                                          resolve_tile(tile, image.shape, image.axes),
                                          measured=measured).frugal()
                return math.prod(frugal.grid.tile)

            runner = executor_choice.choose(pipeline, options.runner.workers, measured,
                                            tile_pixels).runner
            options = dataclasses.replace(options, runner=runner)
        planned = sizing.fit(pipeline, (sink,), budget - image.nbytes, options.runner,
                             resolve_tile(tile, image.shape, image.axes),
                             block=sub_block(block), measured=measured)
        write(pipeline, (sink,), planned, options)
    return array


def evaluate(values: Sequence[Value], *, executor: str | Executor | None = None,
             workers: int | None = None, memory: int | str | None = None, tile: Any = None,
             progress: ProgressSpec = False, scheduler: Any = None) -> list[Any]:
    """The results of lazy values, computing every reduction they need in shared sweeps."""
    options = Options.of(executor, workers, memory, tile, progress=progress,
                         scheduler=scheduler)
    configure_gdal()
    with options.running(), quiet_nan_warnings():
        results = resolve([v.reduction for v in values], options)
    return [v.select(results[v.reduction]) for v in values]


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """Silence the RuntimeWarnings NumPy raises on all-NaN or empty tiles, for every thread.

    Worker processes copy these filters when they start.
    """
    with warnings.catch_warnings():
        for pattern in QUIET:
            warnings.filterwarnings("ignore", message=pattern, category=RuntimeWarning)
        yield


graph.DRIVER.update(compute=compute, evaluate=evaluate)

__all__ = ["Planned", "Progress", "Report", "budget_bytes", "compute", "evaluate", "plan",
           "save"]
