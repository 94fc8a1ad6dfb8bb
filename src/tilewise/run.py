"""Runs a plan: creates the outputs, drives an executor over the tile jobs, reports progress.

`save` is the whole life of a run: check the outputs, plan the tiles, create staged outputs,
compute every requested output in one pass over the tiles, write each tile (in the worker for
sinks that take parallel writes, here for single-writer sinks), and move the finished outputs
into place. On any failure the staged outputs are removed, so nothing is left behind that looks
complete but is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pickle
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil
from dask.utils import format_bytes, parse_bytes

from . import journal
from .axes import UNSPLIT
from .errors import (
    BudgetError,
    GridMismatchError,
    OutputError,
    OutputExistsError,
    ParameterError,
    TileError,
    UnpicklableFunctionError,
)
from .executors import Executor, get_executor
from .graph import Image, OpNode
from .io import ArraySink, Sink, sink_class
from .io import blocks as block_reads
from .io.base import Finisher
from .io.retry import retrying
from .pipeline import Pipeline
from .plan import Job, Plan, choose, lcm, resolve_tile
from .recording import Recorder
from .reductions import ACCUMULATORS, RESULTS, Reduction, Value

#: GDAL's block cache, per process, taken out of the budget (GDAL's own default is 5% of RAM).
#: Halo blocks are cached by `io.blocks`, so GDAL's cache need only serve the writer.
GDAL_CACHE = 16 * 1024 * 1024
#: Resident memory of a worker process before its first tile (interpreter, NumPy, SciPy, GDAL).
WORKER_BASELINE = 128 * 1024 * 1024
#: Source blocks join the tile alignment unless that makes the unit this many times larger.
BLOCK_ALIGN_LIMIT = 4
ON_ERROR = ("stop", "continue")
#: Pixels per axis of the crop whose reductions stand in for the real ones when planning.
SAMPLE = 256
#: Seconds between progress lines when progress is logged rather than drawn.
LOG_EVERY = 10.0
#: RuntimeWarnings that all-NaN or empty tiles raise in NumPy's nan-functions.
QUIET = ("All-NaN (slice|axis) encountered", "Mean of empty slice",
         "Degrees of freedom <= 0", "invalid value encountered", "divide by zero encountered")


@dataclass(frozen=True)
class Progress:
    """What a run has done so far; passed to a `progress=` callable after every tile."""

    done: int
    total: int
    pixels: int
    elapsed: float


@dataclass(frozen=True)
class Report:
    """What a finished run did: `tiles` computed now, `resumed` found done by earlier runs."""

    tiles: int
    tile: dict[str, int]
    executor: str
    workers: int
    memory: int
    seconds: float
    resumed: int = 0


@dataclass(frozen=True)
class Failed:
    """A tile whose op failed, when the run goes on (`on_error="continue"`)."""

    message: str


@dataclass(frozen=True, eq=False)
class TileWork:
    """One tile job, start to finish: compute every output, write those written in workers."""

    pipeline: Pipeline
    #: One per output; None for an output that needs no more writing.
    sinks: tuple[Sink | None, ...]
    read_cache: int
    keep_going: bool = False
    #: Per output, the tiles it has already (when outputs' journals differ after a crash).
    done: tuple[np.ndarray | None, ...] = ()

    def __call__(self, job: Job) -> tuple[np.ndarray | None, ...] | Failed:
        try:
            arrays = _compute_tile(self.pipeline, self.read_cache, job)
        except TileError as exc:
            if self.keep_going:
                return Failed(str(exc))
            raise
        out: list[np.ndarray | None] = []
        for i, (sink, array) in enumerate(zip(self.sinks, arrays)):
            if sink is None or (self.done and self.done[i] is not None
                                and self.done[i][job.flat]):
                out.append(None)
            elif sink.parallel_writes:
                retrying(sink.write, job.box, array)
                out.append(None)
            else:
                out.append(array)
        return tuple(out)


def _compute_tile(pipeline: Pipeline, read_cache: int, job: Job) -> tuple[np.ndarray, ...]:
    # Each process sizes its cache of decoded halo blocks the same way, from the plan.
    block_reads.cache.capacity = read_cache
    return pipeline.compute(job.box, job.index)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def budget_bytes(memory: int | str | None) -> int:
    """The memory budget in bytes; by default half of the memory available now."""
    if memory is None:
        return psutil.virtual_memory().available // 2
    try:
        value = parse_bytes(memory) if isinstance(memory, str) else int(memory)
    except (ValueError, TypeError):
        raise ParameterError(f"memory={memory!r} is not a size such as '2GiB'") from None
    if value <= 0:
        raise ParameterError(f"memory={memory!r} must be positive")
    return value


def save(images: Image | Sequence[Image], paths: str | os.PathLike | Sequence[Any], *,
         executor: str | None = None, workers: int | None = None,
         memory: int | str | None = None, tile: Any = None, overwrite: bool = False,
         progress: bool | str | Callable[[Progress], None] | None = None,
         on_error: str = "stop") -> Report:
    """Compute `images` tile by tile and write each to its path, in one pass over the tiles.

    The format follows each path's suffix: `.tif` (GeoTIFF), `.zarr` (Zarr v3), `.npy`.
    A run that fails or is killed keeps its finished tiles; the same call again resumes it.
    `on_error="continue"` computes every other tile before reporting the tiles that failed.
    """
    if on_error not in ON_ERROR:
        raise ParameterError(f"on_error={on_error!r} must be one of {', '.join(ON_ERROR)}")
    with quiet_nan_warnings():
        run = _prepare(images, paths, executor, workers, memory, tile, overwrite, progress)
        return _execute(run.pipeline, run.sinks, run.plan, run.runner, run.budget, overwrite,
                        progress, on_error)


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


def plan(images: Image | Sequence[Image], paths: str | os.PathLike | Sequence[Any], *,
         executor: str | None = None, workers: int | None = None,
         memory: int | str | None = None, tile: Any = None,
         overwrite: bool = False) -> Planned:
    """Plan `save(images, paths)` without running it.

    The tile shape comes from the usual probe tile; reductions feeding op parameters are
    stood in for by their value on a small central crop, which is enough to measure memory.
    """
    with quiet_nan_warnings():
        return _prepare(images, paths, executor, workers, memory, tile, overwrite, None,
                        sample=True)


def _prepare(images: Image | Sequence[Image], paths: str | os.PathLike | Sequence[Any],
             executor: str | None, workers: int | None, memory: int | str | None, tile: Any,
             overwrite: bool, progress: bool | str | Callable[[Progress], None] | None,
             sample: bool = False) -> Planned:
    imgs = [images] if isinstance(images, Image) else list(images)
    outs = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if len(imgs) != len(outs) or not imgs:
        raise ParameterError(f"save got {len(imgs)} images but {len(outs)} paths")
    for i, img in enumerate(imgs):
        if not isinstance(img, Image):
            raise ParameterError(f"save: item {i} is a {type(img).__name__}, not a tilewise image")
    outs = [os.path.abspath(os.fspath(p)) for p in outs]
    _check_outputs(Pipeline.of(imgs), outs, overwrite, planning=sample)
    shape, axes = imgs[0].shape, imgs[0].axes
    for path, img in zip(outs, imgs):
        sink_class(path).check(img.shape, img.dtype, img.axes, path)
    workers, budget, runner = _resources(executor, workers, memory)
    if runner.separate_processes:
        _check_picklable(Pipeline.of(imgs))
    tiles = resolve_tile(tile, shape, axes)
    if tiles is None and not overwrite:
        tiles = _journaled_tile(outs, shape)
    reductions = tuple({id(v.reduction): v.reduction
                        for v in _values(Pipeline.of(imgs))}.values())
    resolve = _sampled if sample else functools.partial(_resolve, runner=runner, budget=budget,
                                                        progress=progress)
    pipeline = Pipeline.of(_bind(imgs, resolve))
    sinks = _sinks(pipeline, outs, tiles)
    return Planned(pipeline, sinks, _plan(pipeline, sinks, budget, runner, tiles), runner,
                   budget, reductions)


def compute(image: Image, *, executor: str | None = None, workers: int | None = None,
            memory: int | str | None = None, tile: Any = None) -> np.ndarray:
    """The whole image as a NumPy array, computed tile by tile."""
    workers, budget, runner = _resources(executor, workers, memory)
    if image.nbytes > budget // 2:
        raise BudgetError(
            f"the result is {image.nbytes / 2**20:.1f} MiB, more than half the memory budget "
            f"of {budget / 2**20:.1f} MiB; save it to a file with tilewise.save instead")
    array = np.empty(image.shape, image.dtype)
    sink = ArraySink("<memory>", image.shape, image.dtype, image.axes,
                     ArraySink.default_chunks(image.shape, image.axes), image.meta, array)
    with quiet_nan_warnings():
        pipeline = Pipeline.of(_bind([image], functools.partial(
            _resolve, runner=runner, budget=budget, progress=False)))
        plan = _plan(pipeline, (sink,), budget - image.nbytes, runner,
                     resolve_tile(tile, image.shape, image.axes))
        _execute(pipeline, (sink,), plan, runner, budget, False, False)
    return array


@contextlib.contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """Silence the RuntimeWarnings NumPy raises on all-NaN or empty tiles, for every thread.

    Worker processes copy these filters when they start.
    """
    with warnings.catch_warnings():
        for pattern in QUIET:
            warnings.filterwarnings("ignore", message=pattern, category=RuntimeWarning)
        yield


def _resources(executor: str | None, workers: int | None, memory: int | str | None
               ) -> tuple[int, int, Executor]:
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers={workers!r} must be a positive integer")
    runner = get_executor(executor, workers)
    # GDAL sizes its block cache from this when it first reads a block (the probe may be
    # first), here or in a worker process, which inherits the environment; a user's value wins.
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE // 2**20))
    return runner.workers, budget_bytes(memory), runner


def _check_outputs(pipeline: Pipeline, outs: list[str], overwrite: bool,
                   planning: bool = False) -> None:
    first = pipeline.outputs[0]
    for img, path in zip(pipeline.outputs, outs):
        if img.shape != first.shape or img.axes != first.axes:
            raise GridMismatchError(
                f"outputs saved together must share one grid: {outs[0]} has shape {first.shape} "
                f"axes {first.axes} but {path} has shape {img.shape} axes {img.axes}")
    inputs = _input_paths(pipeline)
    seen: set[str] = set()
    for path in outs:
        real = os.path.realpath(path)
        if real in inputs:
            raise OutputExistsError(f"output {path} is also an input of this pipeline")
        if real in seen:
            raise ParameterError(f"output {path} is named twice")
        seen.add(real)
        if os.path.lexists(path) and not overwrite and \
                journal.header(journal.path_of(path)) is None:
            raise OutputExistsError(f"output {path} exists; pass overwrite=True to replace it")
        folder = os.path.dirname(path)
        if planning:
            continue
        if not os.path.isdir(folder):
            raise OutputError(f"the folder of output {path} does not exist")
        if not os.access(folder, os.W_OK):
            raise OutputError(f"the folder of output {path} is not writable")


def _journaled_tile(outs: Sequence[str], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The tile shape of an earlier run of these outputs, so that a resumed run keeps its grid.

    (The planner's choice could differ by a unit between runs, as the probe's measurement may.)
    """
    for path in outs:
        head = journal.header(journal.path_of(path))
        if head is not None and len(head.get("tile", ())) == len(shape):
            return tuple(head["tile"])
    return None


def _values(pipeline: Pipeline) -> list[Value]:
    """The lazy values among the parameters of the pipeline's ops."""
    return [v for n in pipeline.nodes if isinstance(n, OpNode)
            for v in n.params.values() if isinstance(v, Value)]


def _input_paths(pipeline: Pipeline) -> set[str]:
    """Every file the run reads, including those read only by reductions feeding op params."""
    paths = {os.path.realpath(n.source.path) for n in pipeline.sources if n.source.path}
    values = _values(pipeline)
    if values:
        paths |= _input_paths(Pipeline.of([v.reduction.image for v in values]))
    return paths


def _sinks(pipeline: Pipeline, outs: list[str], tile: tuple[int, ...] | None
           ) -> tuple[Sink, ...]:
    sinks = []
    for img, path in zip(pipeline.outputs, outs):
        cls = sink_class(path)
        chunks = cls.default_chunks(img.shape, img.axes)
        if tile is not None and cls.parallel_writes:
            # Parallel writers need chunks inside one tile: follow the tile where it disagrees.
            chunks = tuple(c if t % c == 0 or t == n else t
                           for c, t, n in zip(chunks, tile, img.shape))
        sinks.append(cls(path, img.shape, img.dtype, img.axes, chunks, img.meta))
    return tuple(sinks)


def _plan(pipeline: Pipeline, sinks: Sequence[Sink], budget: int, runner: Executor,
          tile: tuple[int, ...] | None,
          finish: Callable[[tuple[np.ndarray, ...], Any], Any] | None = None) -> Plan:
    shape = pipeline.outputs[0].shape
    blocks = pipeline.outputs[0].blocks
    if sinks:
        sink_unit = tuple(lcm([s.chunks[i] for s in sinks]) for i in range(len(shape)))
        unit = tuple(lcm([u, b]) if lcm([u, b]) <= BLOCK_ALIGN_LIMIT * u else u
                     for u, b in zip(sink_unit, blocks))
    else:
        unit = tuple(min(b, n) for b, n in zip(blocks, shape))
    workers = runner.workers
    # Fixed costs come off the budget first: in every process that reads files, GDAL's cache
    # and the cache of decoded halo blocks; and the baseline of every worker process.
    extra = workers if runner.separate_processes else 0
    readers = (extra or 1) if any(n.source.path for n in pipeline.sources) else 0
    gdal_readers = readers if any(n.source.uses_gdal for n in pipeline.sources) else 0
    gdal_writer = 1 if any(s.uses_gdal for s in sinks) else 0
    read_cache = min(block_reads.CAPACITY, budget // (8 * max(readers, 1)))
    fixed = (GDAL_CACHE * (gdal_readers + gdal_writer) + read_cache * readers
             + WORKER_BASELINE * extra)
    if budget <= fixed:
        raise BudgetError(
            f"the memory budget of {budget / 2**20:.0f} MiB does not cover the fixed cost of "
            f"{runner.name} with {workers} workers ({fixed / 2**20:.0f} MiB); raise memory, "
            "lower workers, or use executor='threads'")
    queued = workers if any(not s.parallel_writes for s in sinks) else 0
    # A result sent back from a worker process exists twice while it is in transit.
    copies = 2 if runner.separate_processes else 1
    out_bytes = copies * sum(s.dtype.itemsize for s in sinks if not s.parallel_writes)
    plan = choose(pipeline, unit=unit, budget=budget - fixed, workers=workers, queued=queued,
                  out_bytes_per_pixel=out_bytes, tile=tile, finish=finish)
    return dataclasses.replace(plan, read_cache=read_cache, fixed=fixed)


def _check_picklable(pipeline: Pipeline) -> None:
    for node in pipeline.nodes:
        if isinstance(node, OpNode):
            try:
                pickle.dumps(node.op)
            except Exception as exc:
                raise UnpicklableFunctionError(
                    f"the function of op {node.name!r} cannot be sent to worker processes "
                    f"({type(exc).__name__}: {exc}); define it at the top level of a module, "
                    "or use executor='threads'") from None


def _execute(pipeline: Pipeline, sinks: Sequence[Sink], plan: Plan, runner: Executor,
             budget: int, overwrite: bool,
             progress: bool | str | Callable[[Progress], None] | None,
             on_error: str = "stop") -> Report:
    """Run the tiles no earlier run finished, journal each, then move outputs into place."""
    started = time.perf_counter()
    journals: dict[int, journal.Journal] = {}
    try:
        for i, sink in enumerate(sinks):
            if sink.resumable:  # locked before anything is decided or touched
                journals[i] = journal.Journal(journal.path_of(sink.path))
        return _write(pipeline, sinks, plan, runner, budget, overwrite, progress, on_error,
                      journals, started)
    finally:
        for log in journals.values():
            log.close()


def _write(pipeline: Pipeline, sinks: Sequence[Sink], plan: Plan, runner: Executor,
           budget: int, overwrite: bool,
           progress: bool | str | Callable[[Progress], None] | None, on_error: str,
           journals: dict[int, journal.Journal], started: float) -> Report:
    grid = plan.grid
    prints = journal.fingerprints(pipeline, sinks, grid.tile)
    states = [journal.state(sink, fp, len(grid), overwrite) if sink.resumable
              else journal.State("fresh", np.zeros(len(grid), bool))
              for sink, fp in zip(sinks, prints)]
    for i, st in enumerate(states):
        if st.action == "done" and not st.complete:  # moved into place, then killed
            journals[i].start(prints[i], grid.tile, len(grid), False, st.runs)
            journals[i].complete()
    active = [i for i, st in enumerate(states) if st.action != "done"]
    todo = np.zeros(len(grid), bool)
    for i in active:
        todo |= ~states[i].done
    failures: list[str] = []

    def write(job: Job, result: tuple[np.ndarray | None, ...] | Failed) -> None:
        if isinstance(result, Failed):
            failures.append(result.message)
            return
        for i, array in enumerate(result):
            if array is not None and i in writing:
                retrying(sinks[i].write, job.box, array)
        recorder.put(job)

    writing = {i for i in active if states[i].action in ("fresh", "resume")}
    finishers: dict[int, Finisher] = {}
    try:
        for i in active:
            sink, st = sinks[i], states[i]
            if st.action == "fresh":
                sink.abort()
                sink.create()
            if sink.resumable:
                journals[i].start(prints[i], grid.tile, len(grid), st.action == "fresh", st.runs)
            finisher = sink.finisher()
            if finisher is not None:
                finishers[i] = finisher
                for flat in np.flatnonzero(st.done):
                    finisher.tile_done(grid.box(grid.index(int(flat))))
        if todo.any():
            jobs = (job for job in plan.jobs() if todo[job.flat])
            # Outputs whose journals agree need no mask (the usual case: no copies to workers).
            agree = all((states[i].done == states[j].done).all() for i in writing for j in writing)
            work = functools.partial(_tile_work, sinks=tuple(
                sinks[i] if i in writing else None for i in range(len(sinks))),
                read_cache=plan.read_cache, keep_going=on_error == "continue",
                done=() if agree else tuple(states[i].done if i in writing else None
                                            for i in range(len(sinks))))
            recorder = Recorder({i: sinks[i] for i in writing}, journals, finishers,
                                {i: states[i].done for i in writing}, runner.workers)
            try:
                _drive(pipeline, plan, runner, work, write, progress, "tiles",
                       jobs=jobs, total=int(todo.sum()))
            except BaseException:
                recorder.close(raising=False)  # what is written and queued is kept
                raise
            recorder.close()
        if failures:
            raise TileError(
                f"{len(failures)} of {int(todo.sum())} tiles failed, the first: {failures[0]}"
                + ("" if len(failures) == 1 else f"; the last: {failures[-1]}"))
        for i in active:
            sinks[i].commit(overwrite, finishers[i].result() if i in finishers else None)
            if i in journals:
                journals[i].complete()
    except BaseException:
        for finisher in finishers.values():
            finisher.cancel()
        for i in active:
            if not sinks[i].resumable:
                sinks[i].abort()
        raise
    return Report(int(todo.sum()), dict(zip(pipeline.outputs[0].axes, grid.tile)), runner.name,
                  runner.workers, budget, time.perf_counter() - started,
                  resumed=len(grid) - int(todo.sum()))


def _tile_work(pipeline: Pipeline, *, sinks: tuple[Sink | None, ...], read_cache: int,
               keep_going: bool, done: tuple[np.ndarray | None, ...]) -> TileWork:
    return TileWork(pipeline, sinks, read_cache, keep_going, done)


def _drive(pipeline: Pipeline, plan: Plan, runner: Executor,
           make_work: Callable[[Pipeline], Callable[[Job], Any]],
           on_result: Callable[[Job, Any], None],
           progress: bool | str | Callable[[Progress], None] | None, what: str,
           jobs: Iterator[Job] | None = None, total: int | None = None) -> None:
    """One sweep of tile jobs on an executor, with progress, caches and sources cleaned up."""
    if runner.separate_processes:
        _check_picklable(pipeline)
        pipeline = pipeline.with_sources(lambda source: source.for_processes())
    report = _Reporter(progress, len(plan) if total is None else total, what)
    jobs = plan.jobs() if jobs is None else jobs
    try:
        for job, result in runner.run(make_work(pipeline), jobs, plan.in_flight):
            on_result(job, result)
            report.tile(job.box.size)
    finally:
        report.close()
        block_reads.cache.clear()
        for node in pipeline.sources:
            node.source.release()


@dataclass(frozen=True, eq=False)
class ReduceWork:
    """One tile of a reduction sweep: compute the images, run each reduction's kernel."""

    pipeline: Pipeline
    kernels: tuple[tuple[int, Callable[[np.ndarray, Any], Any]], ...]
    read_cache: int

    def __call__(self, job: Job) -> tuple[Any, ...]:
        arrays = _compute_tile(self.pipeline, self.read_cache, job)
        return tuple(kernel(arrays[i], job.box) for i, kernel in self.kernels)


def evaluate(values: Sequence[Value], *, executor: str | None = None,
             workers: int | None = None, memory: int | str | None = None, tile: Any = None,
             progress: bool | str | Callable[[Progress], None] | None = False) -> list[Any]:
    """The results of lazy values, computing every reduction they need in shared sweeps."""
    workers, budget, runner = _resources(executor, workers, memory)
    with quiet_nan_warnings():
        results = _resolve([v.reduction for v in values], runner, budget, progress, tile)
    return [v.select(results[v.reduction]) for v in values]


Resolver = Callable[[Sequence[Reduction]], dict[Reduction, Any]]


def _bind(images: Sequence[Image], resolve: Resolver) -> list[Image]:
    """The images with every lazy value among their ops' parameters computed and put in."""
    pipeline = Pipeline.of(images)
    values = _values(pipeline)
    if not values:
        return list(images)
    results = resolve([v.reduction for v in values])

    def bound(node: Any) -> Any:
        if not isinstance(node, OpNode) or not any(isinstance(v, Value)
                                                   for v in node.params.values()):
            return node
        params = {k: v.select(results[v.reduction]) if isinstance(v, Value) else v
                  for k, v in node.params.items()}
        return dataclasses.replace(node, params=params)

    return list(pipeline.rebuild(bound).outputs)


def _resolve(reductions: Sequence[Reduction], runner: Executor, budget: int,
             progress: bool | str | Callable[[Progress], None] | None,
             tile: Any = None) -> dict[Reduction, Any]:
    """Compute reductions; those over images on one grid share every sweep over its tiles."""
    todo = list({id(r): r for r in reductions if r not in RESULTS}.values())
    images = _bind([r.image for r in todo], functools.partial(
        _resolve, runner=runner, budget=budget, progress=progress))
    groups: dict[tuple[Any, ...], list[tuple[Reduction, Image]]] = {}
    for red, image in zip(todo, images):
        groups.setdefault((image.shape, image.axes), []).append((red, image))
    for members in groups.values():
        accumulators = [ACCUMULATORS[red.kind](red) for red, _ in members]
        unique = {(id(image.node), image.index): image for _, image in members}
        outputs = list(unique.values())
        position = {key: i for i, key in enumerate(unique)}
        which = [position[(id(image.node), image.index)] for _, image in members]
        pipeline = Pipeline.of(outputs)
        plan = None
        sweep = 0
        while active := [k for k, acc in enumerate(accumulators) if not acc.done]:
            sweep += 1
            kernels = tuple((which[k], accumulators[k].kernel()) for k in active)
            if plan is None:
                # The first sweep's kernels are the heaviest; the probe measures them too.
                plan = _plan(pipeline, (), budget, runner,
                             resolve_tile(tile, outputs[0].shape, outputs[0].axes),
                             lambda arrays, box, kernels=kernels: [
                                 kernel(arrays[i], box) for i, kernel in kernels])

            def absorb(job: Job, parts: tuple[Any, ...], active: list[int] = active,
                       accumulators: list[Any] = accumulators) -> None:
                for k, part in zip(active, parts):
                    accumulators[k].absorb(part)

            _drive(pipeline, plan, runner,
                   lambda p, kernels=kernels, cache=plan.read_cache: ReduceWork(p, kernels, cache),
                   absorb, progress, f"reduce {sweep}")
            for k in active:
                accumulators[k].end_sweep()
        for (red, _), acc in zip(members, accumulators):
            RESULTS[red] = acc.result
    return {r: RESULTS[r] for r in reductions}


def _sampled(reductions: Sequence[Reduction]) -> dict[Reduction, Any]:
    """Stand-ins for reduction results: each computed on a small central crop of its image."""
    out = {}
    for red in reductions:
        shape, axes = red.image.shape, red.image.axes
        crop = tuple(slice(None) if a in UNSPLIT else
                     slice((n - min(n, SAMPLE)) // 2, (n - min(n, SAMPLE)) // 2 + min(n, SAMPLE))
                     for n, a in zip(shape, axes))
        small = dataclasses.replace(red, image=red.image[crop])
        out[red] = _resolve([small], get_executor("serial", 1), 2**30, False)[small]
    return out


class _Reporter:
    """Progress: a bar on a terminal, a line every `LOG_EVERY` seconds in a log, or a callback.

    `progress` is True (bar), "log" (lines on stderr), False (nothing), a callable, or None:
    a bar when stderr is a terminal, else nothing.
    """

    def __init__(self, progress: bool | str | Callable[[Progress], None] | None, total: int,
                 what: str = "tiles") -> None:
        self.callback = progress if callable(progress) else None
        self.log = progress == "log"
        self.bar = None
        if progress is True or (progress is None and sys.stderr.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="tile", desc=f"tilewise {what}",
                            dynamic_ncols=True)
        self.what = what
        self.total = total
        self.done = 0
        self.pixels = 0
        self.start = self.logged = time.perf_counter()

    def tile(self, pixels: int) -> None:
        self.done += 1
        self.pixels += pixels
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self._rate(now):.1f} Mpx/s, {self._memory()} resident",
                                     refresh=False)
        if self.log and (now - self.logged >= LOG_EVERY or self.done == self.total):
            self.logged = now
            left = (self.total - self.done) * (now - self.start) / self.done
            print(f"tilewise {self.what}: {self.done}/{self.total} tiles "
                  f"({100 * self.done / self.total:.0f}%), {self._rate(now):.1f} Mpx/s, "
                  f"ETA {_duration(left)}, {self._memory()} resident", file=sys.stderr,
                  flush=True)
        if self.callback is not None:
            self.callback(Progress(self.done, self.total, self.pixels, now - self.start))

    def _rate(self, now: float) -> float:
        return self.pixels / 1e6 / max(now - self.start, 1e-9)

    @staticmethod
    def _memory() -> str:
        return format_bytes(psutil.Process().memory_info().rss)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


__all__ = ["Planned", "Progress", "Report", "budget_bytes", "compute", "plan", "save"]
