"""What `tilewise plan` prints: a planned run explained, line by line, before any work."""

from __future__ import annotations

import math
import os

from dask.utils import format_bytes

from . import journal, subblocks
from .plan import central, read_pixels
from .reductions import Reduction
from .run import Planned


def describe(planned: Planned) -> list[str]:
    pipeline, plan, sinks = planned.pipeline, planned.plan, planned.sinks
    shape = pipeline.shape
    grid = plan.grid
    tile = " x ".join(map(str, grid.tile))
    counts = " x ".join(map(str, grid.counts))
    written = math.prod(shape)
    read = read_pixels(pipeline, grid)
    halo = _halo(planned)
    chosen = ", kept from the journal of an earlier run" if planned.tile_from == "the journal" \
        else ""
    speed = plan.speed.seconds_per_pixel if plan.speed is not None else 0.0
    batching = planned.runner.batching(speed * math.prod(grid.tile) or None)
    lines = [
        f"image      {' x '.join(map(str, shape))}  axes {''.join(pipeline.axes)}",
        *(f"{'':<10} output {os.path.basename(s.path)}: {' x '.join(map(str, s.shape))}  "
          f"axes {''.join(s.axes)}" for s in sinks if pipeline.grids.mixed),
        f"tiles      {tile}  ({counts} = {len(grid)} tiles{chosen})",
        f"halo       {halo}; read / written = {read / written:.3f} "
        f"({read:,} / {written:,} pixels)" if pipeline.sources else "halo       no sources",
        f"memory     {format_bytes(plan.worker_bytes)} per worker x {plan.workers}, "
        f"{format_bytes(plan.tile_bytes + plan.fixed)} in total of the "
        f"{format_bytes(planned.budget)} budget ({plan.costs})",
        f"compute    {_blocks(planned)}",
        f"executor   {planned.runner.name} x {planned.runner.workers}, "
        f"at most {planned.runner.in_flight(plan.in_flight)} "
        + (f"tasks in flight, {batching}" if batching else "tiles in flight")
        + (f" (chosen: {planned.executor_reason})" if planned.executor_reason else ""),
    ]
    step = 0
    for red in planned.reductions:
        step += 1
        lines.append(f"{'passes' if step == 1 else '':<10} {step}. {_reduction(red)}")
    names = ", ".join(os.path.basename(s.path) for s in sinks)
    lines.append(f"{'passes' if step == 0 else '':<10} {step + 1}. compute and write {names}, "
                 f"one pass over the {len(grid)} tiles")
    label = "alignment"
    for node in pipeline.sources:
        if node.source.path:
            window = pipeline.regions(central(shape, grid.tile), halo=False)[id(node)]
            lines.append(f"{label:<10} input {os.path.basename(node.source.path)}: "
                         + _fit(window.shape, node.source.blocks, node.source.shape, "blocks"))
            label = ""
    for sink, part in zip(sinks, plan.job(0).boxes, strict=True):
        lines.append(f"{label:<10} output {os.path.basename(sink.path)}: "
                     + _fit(part.shape, sink.chunks, sink.shape, "chunks"))
        label = ""
    label = "journal"
    for sink in sinks:
        record = journal.read(journal.path_of(sink.path))
        if record is not None:
            status = "complete" if record.complete else \
                f"{record.count} of {record.tiles} tiles done; run resumes them unless --overwrite"
            lines.append(f"{label:<10} {os.path.basename(sink.path)}: {status} "
                         f"(tiles of {' x '.join(map(str, record.tile))})")
            label = ""
    return lines


def _halo(planned: Planned) -> str:
    """The widest margin, in source pixels, that a central tile reads around its core; ops
    that map regions by a footprint function (reprojection) read what it says instead."""
    pipeline = planned.pipeline
    mapped = [n.label for n in pipeline.nodes if n.inputs and n.maps(0) is None]
    if mapped:
        return f"by footprint ({', '.join(mapped)}: what each tile maps onto, plus its margin)"
    box = central(pipeline.shape, planned.plan.grid.tile)
    full, core = pipeline.regions(box), pipeline.regions(box, halo=False)
    widest = max((max(max(c0 - r0, r1 - c1) for r0, r1, c0, c1 in
                      zip(full[id(n)].start, full[id(n)].stop, core[id(n)].start,
                          core[id(n)].stop, strict=True))
                  for n in pipeline.sources), default=0)
    return f"up to {widest} pixels"


def _blocks(planned: Planned) -> str:
    """The sub-blocks a tile's op chain runs on, and the times per pixel they were chosen by."""
    plan, speed = planned.plan, planned.plan.speed
    blocks = subblocks.split(planned.pipeline, central(planned.pipeline.shape, plan.grid.tile),
                             plan.block)
    chosen = (f"in sub-blocks of {' x '.join(map(str, blocks[0].shape))}" if len(blocks) > 1
              else "each tile whole")
    if speed is None or not speed.per_pixel or speed.note:
        return chosen + (f" ({speed.note})" if speed is not None and speed.note else "")
    times = ", ".join(f"{'whole' if side is None else side}: {t * 1e9:.1f}"
                      for side, t in speed.per_pixel.items())
    box = " x ".join(map(str, speed.box))
    return f"{chosen} (ns per pixel on a {box} box by sub-block side: {times})"


def _reduction(red: Reduction) -> str:
    label = os.path.basename(red.image.node.label)
    if red.kind in ("percentile", "quantile"):
        most = max(1, red.image.dtype.itemsize * 8 // 16)
        sweeps = f"up to {most} sweeps (radix selection)" if most > 1 else "1 sweep"
    elif red.kind in ("var", "std"):
        sweeps = "2 sweeps"
    else:
        sweeps = "1 sweep"
    return f"{red.kind} of {label}: {sweeps}, before the tiles that need it"


def _fit(tile: tuple[int, ...], unit: tuple[int, ...], shape: tuple[int, ...],
         what: str) -> str:
    aligned = all(t % u == 0 or t == n for t, u, n in zip(tile, unit, shape, strict=True))
    covers = " x ".join(f"{t / u:g}" for t, u in zip(tile, unit, strict=True))
    return (f"{what} {' x '.join(map(str, unit))}, a tile covers {covers} "
            f"({'aligned' if aligned else 'NOT aligned: tiles share ' + what})")
