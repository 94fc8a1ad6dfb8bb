"""Images and the nodes that produce them, and region propagation through them.

An `Image` is a lazy handle: one output of one node. Nodes are sources (a file or an array),
ops (N inputs to M outputs with a margin per axis) and slices. Asking a node for a region of its
output tells it which region of each input it needs (`input_regions`); walking that backwards
through the graph is how halos add up along a chain without anybody computing them by hand.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import meta as metadata
from .errors import InputError, ParameterError, TileError
from .io import Source
from .io.retry import retrying
from .regions import Box


@dataclass(frozen=True)
class TileInfo:
    """Where an op is being run: passed to op functions that take a `tile` keyword.

    Before a run, tilewise measures the pipeline's memory on one probe tile: its results are
    thrown away, `probe` is True and `index` is all zeros.
    """

    index: tuple[int, ...]
    region: Box
    window: Box
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    probe: bool = False

    @property
    def at_border(self) -> dict[str, tuple[bool, bool]]:
        """Per axis, whether the window touches the image's start and end."""
        return {a: (s == 0, e == n) for a, s, e, n in
                zip(self.axes, self.window.start, self.window.stop, self.shape)}


@dataclass(frozen=True, eq=False)
class Node:
    inputs: tuple[Image, ...]

    @property
    def n_outputs(self) -> int:
        return 1

    def grid(self, index: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Shape and axes of output `index`."""
        raise NotImplementedError

    def dtype(self, index: int) -> np.dtype:
        raise NotImplementedError

    def blocks(self, index: int) -> tuple[int, ...]:
        raise NotImplementedError

    def meta(self, index: int) -> Mapping[str, Any]:
        raise NotImplementedError

    def input_regions(self, region: Box) -> tuple[Box, ...]:
        """The region of each input needed to compute `region` of the outputs exactly."""
        raise NotImplementedError

    def evaluate(self, region: Box, arrays: Sequence[np.ndarray],
                 index: tuple[int, ...] | None) -> tuple[np.ndarray, ...]:
        """The outputs on `region`, from the inputs cut to `input_regions(region)`."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, eq=False)
class SourceNode(Node):
    source: Source = field(default=None)  # type: ignore[assignment]

    def grid(self, index: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
        return self.source.shape, self.source.axes

    def dtype(self, index: int) -> np.dtype:
        return self.source.dtype

    def blocks(self, index: int) -> tuple[int, ...]:
        return self.source.blocks

    def meta(self, index: int) -> Mapping[str, Any]:
        return self.source.meta

    def input_regions(self, region: Box) -> tuple[Box, ...]:
        return ()

    def evaluate(self, region: Box, arrays: Sequence[np.ndarray],
                 index: tuple[int, ...] | None) -> tuple[np.ndarray, ...]:
        return (self.read(region),)

    def read(self, region: Box) -> np.ndarray:
        """The source's pixels, retrying transient I/O errors, naming the file on failure."""
        try:
            return retrying(self.source.read, region)
        except (OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"input {self.source.path or 'array'} cannot be read at {region} "
                             f"({type(exc).__name__}: {exc}); is it truncated or "
                             "damaged?") from exc

    @property
    def label(self) -> str:
        return self.source.path or "array"


@dataclass(frozen=True, eq=False)
class OpNode(Node):
    """A local op: output region R needs each input on R grown by `margin`, clipped.

    `op` is the user's `tilewise.Op`, kept whole so that it pickles by reference to where it
    was defined; its `func` is what runs on the arrays.
    """

    op: Any = None
    name: str = ""
    margin: tuple[int, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    dtypes: tuple[np.dtype, ...] = ()
    metas: tuple[Mapping[str, Any], ...] = ()
    wants_tile: bool = False

    @property
    def n_outputs(self) -> int:
        return len(self.dtypes)

    def grid(self, index: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
        return self.inputs[0].shape, self.inputs[0].axes

    def dtype(self, index: int) -> np.dtype:
        return self.dtypes[index]

    def blocks(self, index: int) -> tuple[int, ...]:
        return self.inputs[0].blocks

    def meta(self, index: int) -> Mapping[str, Any]:
        return self.metas[index]

    def window(self, region: Box) -> Box:
        return region.grow(self.margin).intersect(Box.of_shape(self.inputs[0].shape))

    def input_regions(self, region: Box) -> tuple[Box, ...]:
        window = self.window(region)
        return tuple(window for _ in self.inputs)

    def evaluate(self, region: Box, arrays: Sequence[np.ndarray],
                 index: tuple[int, ...] | None) -> tuple[np.ndarray, ...]:
        window = self.window(region)
        kwargs = dict(self.params)
        if self.wants_tile:
            zeros = tuple(0 for _ in region.start)
            kwargs["tile"] = TileInfo(zeros if index is None else index, region, window,
                                      self.inputs[0].axes, self.inputs[0].shape, index is None)
        which = "the probe tile" if index is None else f"tile {index}"
        where = f"op {self.name!r} on {which} (region {region}, input window {window})"
        try:
            with np.errstate(all="ignore"):
                result = self.op.func(*arrays, **kwargs)
        except Exception as exc:
            raise TileError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        results = result if self.n_outputs > 1 else (result,)
        if self.n_outputs > 1 and (not isinstance(result, (tuple, list))
                                   or len(result) != self.n_outputs):
            raise TileError(f"{where} must return {self.n_outputs} arrays, "
                            f"got {type(result).__name__}")
        inner = region.within(window)
        outs = []
        for i, (out, dtype) in enumerate(zip(results, self.dtypes)):
            out = np.asarray(out)
            which = f" output {i}" if self.n_outputs > 1 else ""
            if out.shape != window.shape:
                raise TileError(f"{where} returned{which} shape {out.shape}; "
                                f"an op must return the shape of its input {window.shape}")
            kept = out[inner]
            if dtype.kind in "iub" and kept.dtype.kind in "fc" and not np.isfinite(kept).all():
                raise TileError(f"{where} returned{which} NaN or infinite values, which the "
                                f"declared dtype {dtype} cannot hold; fill them or declare a "
                                "float dtype")
            outs.append(kept.astype(dtype, copy=False))
        return tuple(outs)

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class SliceNode(Node):
    """A lazy window of its input: `starts` per input axis; integer-indexed axes dropped."""

    starts: tuple[int, ...] = ()
    shape: tuple[int, ...] = ()
    dropped: tuple[bool, ...] = ()
    band_index: int | slice | None = None

    def grid(self, index: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
        src = self.inputs[0]
        keep = [not d for d in self.dropped]
        return (tuple(n for n, k in zip(self.shape, keep) if k),
                tuple(a for a, k in zip(src.axes, keep) if k))

    def dtype(self, index: int) -> np.dtype:
        return self.inputs[0].dtype

    def blocks(self, index: int) -> tuple[int, ...]:
        return tuple(b for b, d in zip(self.inputs[0].blocks, self.dropped) if not d)

    def meta(self, index: int) -> Mapping[str, Any]:
        src = self.inputs[0]
        return metadata.sliced(src.meta, src.axes, self.starts, self.band_index)

    def input_regions(self, region: Box) -> tuple[Box, ...]:
        it = iter(zip(region.start, region.stop))
        start, stop = [], []
        for s0, dropped in zip(self.starts, self.dropped):
            a, b = (0, 1) if dropped else next(it)
            start.append(s0 + a)
            stop.append(s0 + b)
        return (Box(tuple(start), tuple(stop)),)

    def evaluate(self, region: Box, arrays: Sequence[np.ndarray],
                 index: tuple[int, ...] | None) -> tuple[np.ndarray, ...]:
        return (arrays[0][tuple(0 if d else slice(None) for d in self.dropped)],)


@dataclass(frozen=True, eq=False)
class Image:
    """A lazy n-d image: one output of a node. Nothing is read until a run."""

    node: Node
    index: int = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.grid(self.index)[0]

    @property
    def axes(self) -> tuple[str, ...]:
        return self.node.grid(self.index)[1]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.node.dtype(self.index)

    @property
    def blocks(self) -> tuple[int, ...]:
        """The block shape of the source this image is read from (a tiling hint)."""
        return self.node.blocks(self.index)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.node.meta(self.index))

    @property
    def nbytes(self) -> int:
        return Box.of_shape(self.shape).size * self.dtype.itemsize

    def __repr__(self) -> str:
        return (f"<tilewise.Image {self.node.label} shape={self.shape} axes={self.axes} "
                f"dtype={self.dtype}>")

    def __getitem__(self, key: Any) -> Image:
        starts, shape, dropped, band = _parse_key(key, self.shape, self.axes)
        if all(s == 0 for s in starts) and shape == self.shape and not any(dropped):
            return self
        return Image(SliceNode((self,), starts, shape, dropped, band))

    def compute(self, *, executor: str | None = None, workers: int | None = None,
                memory: int | str | None = None, tile: Any = None) -> np.ndarray:
        """The whole image as a NumPy array; refused when it would not fit the memory budget."""
        from .run import compute

        return compute(self, executor=executor, workers=workers, memory=memory, tile=tile)


def _parse_key(key: Any, shape: tuple[int, ...], axes: tuple[str, ...]
               ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[bool, ...], int | slice | None]:
    items = list(key) if isinstance(key, tuple) else [key]
    if items.count(Ellipsis) > 1:
        raise ParameterError(f"index {key!r} has more than one '...'")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (len(shape) - len(items) + 1)
    if len(items) > len(shape):
        raise ParameterError(f"index {key!r} has {len(items)} entries for {len(shape)} axes")
    items += [slice(None)] * (len(shape) - len(items))
    starts, sizes, dropped = [], [], []
    band: int | slice | None = None
    for item, n, axis in zip(items, shape, axes):
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            if step != 1:
                raise ParameterError(
                    f"index {key!r}: axis {axis!r} has step {step}; only step 1 slices are lazy")
            if stop <= start:
                raise ParameterError(f"index {key!r} selects nothing along axis {axis!r}")
            starts.append(start)
            sizes.append(stop - start)
            dropped.append(False)
            picked: int | slice = slice(start, stop)
        else:
            try:
                i = operator.index(item)
            except TypeError:
                raise ParameterError(
                    f"index {key!r}: {item!r} is neither an integer nor a slice") from None
            if not -n <= i < n:
                raise ParameterError(f"index {i} is out of range for axis {axis!r} of size {n}")
            i %= n
            starts.append(i)
            sizes.append(1)
            dropped.append(True)
            picked = i
        if axis == "c":
            band = picked
    return tuple(starts), tuple(sizes), tuple(dropped), band
