"""The pass that resolves reductions: lazy values among op parameters become numbers first.

Reductions over images on one grid share every sweep over its tiles. When planning only,
`sampled` stands in for each reduction with its value on a small central crop, which is
enough to measure memory without computing the real thing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

from ..axes import UNSPLIT
from ..executors import get_executor
from ..graph import Image, OpNode
from ..pipeline import Pipeline
from ..plan import Job, resolve_tile
from ..reductions import ACCUMULATORS, RESULTS, Reduction, Value
from . import sizing
from .loop import check_sendable, drive
from .options import Options
from .outputs import values
from .resident import tree
from .tilejob import ReduceWork

#: Pixels per axis of the crop whose reductions stand in for the real ones when planning.
SAMPLE = 256

Resolver = Callable[[Sequence[Reduction]], dict[Reduction, Any]]


def bind(images: Sequence[Image], resolve: Resolver) -> list[Image]:
    """The images with every lazy value among their ops' parameters computed and put in."""
    pipeline = Pipeline.of(images)
    found = values(pipeline)
    if not found:
        return list(images)
    results = resolve([v.reduction for v in found])

    def bound(node: Any) -> Any:
        if not isinstance(node, OpNode) or not any(isinstance(v, Value)
                                                   for v in node.params.values()):
            return node
        params = {k: v.select(results[v.reduction]) if isinstance(v, Value) else v
                  for k, v in node.params.items()}
        return dataclasses.replace(node, params=params)

    return list(pipeline.rebuild(bound).outputs)


def resolver(options: Options) -> Resolver:
    return functools.partial(resolve, options=options)


def resolve(reductions: Sequence[Reduction], options: Options) -> dict[Reduction, Any]:
    """Compute reductions; those over images on one grid share every sweep over its tiles."""
    todo = list({id(r): r for r in reductions if r not in RESULTS}.values())
    images = bind([r.image for r in todo], resolver(options))
    groups: dict[tuple[Any, ...], list[tuple[Reduction, Image]]] = {}
    for red, image in zip(todo, images, strict=True):
        groups.setdefault((image.shape, image.axes), []).append((red, image))
    for members in groups.values():
        _sweep(members, options)
    return {r: RESULTS[r] for r in reductions}


def _sweep(members: list[tuple[Reduction, Image]], options: Options) -> None:
    """Every sweep of the reductions over images on one grid, until all are done."""
    accumulators = [ACCUMULATORS[red.kind](red) for red, _ in members]
    unique = {(id(image.node), image.index): image for _, image in members}
    outputs = list(unique.values())
    position = {key: i for i, key in enumerate(unique)}
    which = [position[(id(image.node), image.index)] for _, image in members]
    pipeline = Pipeline.of(outputs)
    check_sendable(pipeline, options.runner)
    plan = None
    sweep = 0
    while active := [k for k, acc in enumerate(accumulators) if not acc.done]:
        sweep += 1
        kernels = tuple((which[k], accumulators[k].kernel()) for k in active)
        if plan is None:
            # The first sweep's kernels are the heaviest; the probe measures them too.
            plan = sizing.fit(pipeline, (), options.budget, options.runner,
                              resolve_tile(options.tile, pipeline.shape, pipeline.axes),
                              lambda arrays, box, kernels=kernels: [
                                  kernel(arrays[i], box) for i, kernel in kernels])

        def absorb(job: Job, parts: tuple[Any, ...], active: list[int] = active) -> None:
            for k, part in zip(active, parts, strict=True):
                accumulators[k].absorb(part)

        drive(pipeline, plan, options.runner,
              lambda p, kernels=kernels, plan=plan: ReduceWork(p, kernels, plan.read_cache,
                                                           plan.block),
              absorb, options.progress, f"reduce {sweep}")
        for k in active:
            accumulators[k].end_sweep()
    for (red, _), acc in zip(members, accumulators, strict=True):
        RESULTS[red] = acc.result


def sampled(reductions: Sequence[Reduction]) -> dict[Reduction, Any]:
    """Stand-ins for reduction results: each computed on a small central crop of its image."""
    out = {}
    # A small crop: a gigabyte above what this process holds is plenty.
    serial = Options(get_executor("serial", 1), tree() + 2**30, progress=False)
    for red in reductions:
        shape, axes = red.image.shape, red.image.axes
        crop = tuple(slice(None) if a in UNSPLIT else
                     slice((n - min(n, SAMPLE)) // 2, (n - min(n, SAMPLE)) // 2 + min(n, SAMPLE))
                     for n, a in zip(shape, axes, strict=True))
        small = dataclasses.replace(red, image=red.image[crop])
        out[red] = resolve([small], serial)[small]
    return out
