"""A graph compiled for running: its nodes in order, and how to compute one tile of it.

A tile is a box of the driving grid (see `grids`); each output computes its own box of it.
Computing a tile walks the graph twice. Backwards, each node is asked which input regions its
requested region needs; a node wanted by several consumers computes the bounding box of their
requests, once, so a source window is read once per tile. Forwards, each node runs on exactly
that region and its result is released as soon as its last consumer has taken its part.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import grids
from .graph import Image, Node, SourceNode
from .io import Source
from .regions import Box


def _order(outputs: Sequence[Image]) -> tuple[Node, ...]:
    """Nodes reachable from `outputs`, every node after its inputs."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(img.node, False) for img in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in seen:
            continue
        if expanded:
            seen.add(id(node))
            order.append(node)
        else:
            stack.append((node, True))
            stack.extend((i.node, False) for i in reversed(node.inputs) if id(i.node) not in seen)
    return tuple(order)


@dataclass(frozen=True, eq=False)
class Pipeline:
    """The outputs of one run and every node they depend on, in evaluation order."""

    outputs: tuple[Image, ...]
    nodes: tuple[Node, ...]

    @classmethod
    def of(cls, outputs: Sequence[Image]) -> Pipeline:
        return cls(tuple(outputs), _order(outputs))

    @functools.cached_property
    def grids(self) -> grids.Grids:
        """The driving grid and each output's place on it."""
        return grids.of(self.outputs)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the driving grid, the one cut into tiles."""
        return self.grids.shape

    @property
    def axes(self) -> tuple[str, ...]:
        return self.grids.axes

    @property
    def driver(self) -> Image:
        return self.outputs[self.grids.driver]

    @property
    def sources(self) -> tuple[SourceNode, ...]:
        return tuple(n for n in self.nodes if isinstance(n, SourceNode))

    def with_sources(self, swap: Callable[[Source], Source]) -> Pipeline:
        """The same pipeline with each source replaced by `swap(source)`."""
        def node(n: Node) -> Node:
            if not isinstance(n, SourceNode):
                return n
            source = swap(n.source)
            return n if source is n.source else SourceNode((), source)

        return self.rebuild(node)

    def rebuild(self, change: Callable[[Node], Node]) -> Pipeline:
        """The same pipeline with each node replaced by `change(node)`, inputs rewired."""
        new: dict[int, Node] = {}
        for old in self.nodes:
            inputs = tuple(Image(new[id(i.node)], i.index) for i in old.inputs)
            same = all(a.node is b.node for a, b in zip(inputs, old.inputs, strict=True))
            new[id(old)] = change(old if same else dataclasses.replace(old, inputs=inputs))
        return Pipeline(tuple(Image(new[id(i.node)], i.index) for i in self.outputs),
                        tuple(new[id(n)] for n in self.nodes))

    def regions(self, box: Box, halo: bool = True) -> dict[int, Box]:
        """The region each node must compute so that every output is exact on the driving
        tile `box` (`halo=False`: without the ops' margins)."""
        needed: dict[int, Box] = {}
        for img, own in zip(self.outputs, self.grids.boxes(box), strict=True):
            needed[id(img.node)] = _union(needed.get(id(img.node)), own)
        for node in reversed(self.nodes):
            region = needed.get(id(node))
            if region is None:
                continue
            for inp, sub in zip(node.inputs, node.input_regions(region, halo), strict=True):
                needed[id(inp.node)] = _union(needed.get(id(inp.node)), sub)
        return needed

    def compute(self, box: Box, index: tuple[int, ...] | None,
                reads: Mapping[int, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
        """Every output on its part of the driving tile `box` (`index` None: a probe).

        Sources are read here, unless `reads` already holds a source node's window by its id.
        """
        boxes = self.grids.boxes(box)
        needed = self.regions(box)
        uses: dict[int, int] = {}
        for node in self.nodes:
            for inp in node.inputs:
                uses[id(inp.node)] = uses.get(id(inp.node), 0) + 1
        for img in self.outputs:
            uses[id(img.node)] = uses.get(id(img.node), 0) + 1
        done: dict[int, tuple[Box, tuple[np.ndarray, ...]]] = {}

        def take(img: Image, region: Box) -> np.ndarray:
            have, arrays = done[id(img.node)]
            part = arrays[img.index][region.within(have)]
            uses[id(img.node)] -= 1
            if uses[id(img.node)] == 0:
                del done[id(img.node)]
            return part

        for node in self.nodes:
            region = needed[id(node)]
            arrays = [take(inp, sub) for inp, sub in
                      zip(node.inputs, node.input_regions(region), strict=True)]
            if reads is not None and id(node) in reads:
                done[id(node)] = (region, (reads[id(node)],))
            else:
                done[id(node)] = (region, node.evaluate(region, arrays, index))
            del arrays
        return tuple(take(img, own) for img, own in zip(self.outputs, boxes, strict=True))


def _union(a: Box | None, b: Box) -> Box:
    return b if a is None else a.union(b)
