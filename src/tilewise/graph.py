"""Images and the nodes that produce them, and region propagation through them.

An `Image` is a lazy handle: one output of one node. Nodes are sources (a file or an array),
ops (N inputs to M outputs) and slices. Asking a node for a region of its output tells it which
region of each input it needs (`input_regions`); walking that backwards through the graph is
how halos add up along a chain without anybody computing them by hand. Most nodes say this per
axis with `AxisMap`s (`maps`), which planning uses to reason about whole grids at once; a node
may instead compute input regions any way it likes (reprojection), with `maps` None.

Each node describes itself for the resume journal (`fingerprint`): a new node type cannot
exist without saying what makes two of its instances compute different pixels.

The core never imports the driver: `Image.compute` calls the function the driver installs in
`DRIVER` when `tilewise` is imported.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import fingerprints
from . import meta as metadata
from .errors import InputError, ParameterError, TileError
from .io import Source
from .io.retry import retrying
from .regions import AxisMap, Box

#: The driver's entry points (`compute`, `evaluate`), installed by `tilewise.run`.
DRIVER: dict[str, Callable[..., Any]] = {}

@dataclass(frozen=True)
class TileInfo:
    """Where an op is being run: passed to op functions that take a `tile` keyword.

    `region` is the part of the output this tile keeps, `window` the input window the function
    receives (the region grown by the op's halo and mapped to the input grid), and
    `output_window` the output the function must return (the region itself for ops that
    resample; the input window's extent for local ops, of which tilewise keeps `region`).
    Before a run, tilewise measures the pipeline's memory on one probe tile: its results are
    thrown away, `probe` is True and `index` is all zeros.
    """

    index: tuple[int, ...]
    region: Box
    window: Box
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    probe: bool = False
    output_window: Box | None = None

    @property
    def at_border(self) -> dict[str, tuple[bool, bool]]:
        """Per input axis, whether the window touches the image's start and end."""
        return {a: (s == 0, e == n) for a, s, e, n in
                zip(self.axes, self.window.start, self.window.stop, self.shape, strict=True)}

    def on(self, positions: Sequence[int]) -> TileInfo:
        """The same tile seen along the axes at `positions` only (an op run `over` them)."""
        def cut(box: Box) -> Box:
            return Box(tuple(box.start[p] for p in positions),
                       tuple(box.stop[p] for p in positions))

        return TileInfo(self.index, cut(self.region), cut(self.window),
                        tuple(self.axes[p] for p in positions),
                        tuple(self.shape[p] for p in positions), self.probe,
                        None if self.output_window is None else cut(self.output_window))


@dataclass(frozen=True, eq=False)
class Node(ABC):
    inputs: tuple[Image, ...]

    @property
    def n_outputs(self) -> int:
        return 1

    @abstractmethod
    def grid(self, index: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """Shape and axes of output `index`."""

    @abstractmethod
    def dtype(self, index: int) -> np.dtype: ...

    @abstractmethod
    def blocks(self, index: int) -> tuple[int, ...]: ...

    @abstractmethod
    def meta(self, index: int) -> Mapping[str, Any]: ...

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What makes this node compute the pixels it computes, as JSON-able data with
        `kind` and `label` (see `fingerprints`); the journal compares it across runs."""

    def maps(self, index: int) -> tuple[AxisMap, ...] | None:
        """How each axis of input `index` follows the outputs; None if not per axis."""
        return ()

    def input_regions(self, region: Box, halo: bool = True) -> tuple[Box, ...]:
        """The region of each input needed to compute `region` of the outputs exactly
        (`halo=False`: the part of it that maps onto `region` itself, without margins)."""
        boxes = []
        for i, inp in enumerate(self.inputs):
            maps = self.maps(i)
            assert maps is not None, f"{type(self).__name__} must override input_regions"
            start, stop = [], []
            for m, n in zip(maps, inp.shape, strict=True):
                m = m if halo or not m.margin else AxisMap(m.axis, m.num, m.den, 0, m.offset,
                                                           m.span)
                a, b = (m.needs(0, 0, n) if m.axis is None
                        else m.needs(region.start[m.axis], region.stop[m.axis], n))
                start.append(a)
                stop.append(b)
            boxes.append(Box(tuple(start), tuple(stop)))
        return tuple(boxes)

    @abstractmethod
    def evaluate(self, region: Box, arrays: Sequence[np.ndarray],
                 index: tuple[int, ...] | None) -> tuple[np.ndarray, ...]:
        """The outputs on `region`, from the inputs cut to `input_regions(region)`."""

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

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "input", "label": self.label, **self.source.fingerprint()}

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
    """An op: output region R needs each input where `links` say (R grown by the margin,
    scaled by a rebinning factor, ...), or where `footprint(R)` says for an op that maps
    regions by a function of its own.

    `op` is the user's `tilewise.Op`, kept whole so that it pickles by reference to where it
    was defined; its `func` is what runs on the arrays. All inputs share one grid, so one set
    of `links` (one per input axis) serves them all; all outputs share the grid `shape`/`axes`.
    """

    op: Any = None
    name: str = ""
    links: tuple[AxisMap, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    dtypes: tuple[np.dtype, ...] = ()
    metas: tuple[Mapping[str, Any], ...] = ()
    wants_tile: bool = False
    shape: tuple[int, ...] = ()
    axes: tuple[str, ...] = ()
    block_hint: tuple[int, ...] = ()
    footprint: Callable[[Box], Box | Sequence[Box]] | None = None
    #: Values outside an integer output dtype: "check" (a `TileError`), "clip", "unsafe" (wrap).
    cast: str = "check"

    @property
    def n_outputs(self) -> int:
        return len(self.dtypes)

    def grid(self, index: int) -> tuple[tuple[int, ...], tuple[str, ...]]:
        return self.shape, self.axes

    def dtype(self, index: int) -> np.dtype:
        return self.dtypes[index]

    def blocks(self, index: int) -> tuple[int, ...]:
        return self.block_hint

    def meta(self, index: int) -> Mapping[str, Any]:
        return self.metas[index]

    @property
    def margin(self) -> tuple[int, ...]:
        """The halo per input axis."""
        return tuple(m.margin for m in self.links)

    def maps(self, index: int) -> tuple[AxisMap, ...] | None:
        return None if self.footprint is not None else self.links

    def input_regions(self, region: Box, halo: bool = True) -> tuple[Box, ...]:
        if self.footprint is None:
            return super().input_regions(region, halo)
        found = self.footprint(region)
        boxes = (found,) * len(self.inputs) if isinstance(found, Box) else tuple(found)
        return tuple(b.intersect(Box.of_shape(i.shape))
                     for b, i in zip(boxes, self.inputs, strict=True))

    def output_window(self, region: Box, window: Box) -> Box:
        """What the function returns when it receives input `window` (see `TileInfo`)."""
        if self.footprint is not None:
            return region
        start, stop = [0] * len(self.shape), list(self.shape)
        inputs = self.inputs[0].shape
        for d, m in enumerate(self.links):
            if m.axis is not None:
                start[m.axis], stop[m.axis] = m.produces(
                    window.start[d], window.stop[d], inputs[d], self.shape[m.axis])
        return Box(tuple(start), tuple(stop))

    def fingerprint(self) -> dict[str, Any]:
        func = self.op.func
        out: dict[str, Any] = {
            "kind": "op", "label": self.name, "function": fingerprints.identity(func),
            "code": fingerprints.code_hash(func),
            "params": {k: fingerprints.jsonable(v) for k, v in sorted(self.params.items())},
            "margin": list(self.margin), "dtypes": [str(d) for d in self.dtypes],
        }
        if any(m.num != 1 or m.den != 1 or m.axis is None for m in self.links):
            out["maps"] = [[m.axis, m.num, m.den] for m in self.links]
        if self.shape != self.inputs[0].shape or self.axes != self.inputs[0].axes:
            out["grid"] = {"shape": list(self.shape), "axes": list(self.axes)}
        if self.footprint is not None:
            out["footprint"] = fingerprints.jsonable(self.footprint)
        if self.cast != "check":
            out["cast"] = self.cast
        if getattr(self.op, "over", None) is not None:
            out["over"] = list(self.op.over)
        return out

    def evaluate(self, region: Box, arrays: Sequence[np.ndarray],
                 index: tuple[int, ...] | None) -> tuple[np.ndarray, ...]:
        window = self.input_regions(region)[0]
        returned = self.output_window(region, window)
        which = "the probe tile" if index is None else f"tile {index}"
        where = f"op {self.name!r} on {which} (region {region}, input window {window})"
        results = self._call(arrays, region, window, returned, index, where)
        inner = region.within(returned)
        outs = []
        for i, (out, dtype) in enumerate(zip(results, self.dtypes, strict=True)):
            out = np.asarray(out)
            which = f" output {i}" if self.n_outputs > 1 else ""
            if out.shape != returned.shape:
                what = ("the shape of its input" if returned == window
                        else "the shape of its output window")
                raise TileError(f"{where} returned{which} shape {out.shape}; "
                                f"an op must return {what} {returned.shape}")
            outs.append(self._cast(out[inner], dtype, f"{where} returned{which}"))
        return tuple(outs)

    def _cast(self, kept: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
        """`kept` in the declared dtype; values an integer dtype cannot hold are refused
        (never wrapped silently) unless the op asked to clip them or to cast unsafely."""
        if dtype.kind not in "iu" or kept.dtype.kind not in "iufcb" or self.cast == "unsafe" \
                or np.can_cast(kept.dtype, dtype, "safe") or not kept.size:
            return kept.astype(dtype, copy=False)
        if kept.dtype.kind in "fc" and not np.isfinite(kept).all() and (
                self.cast != "clip" or np.isnan(kept).any()):
            raise TileError(f"{what} NaN or infinite values, which the declared dtype "
                            f"{dtype} cannot hold; fill them or declare a float dtype")
        info = np.iinfo(dtype)
        if self.cast == "clip":
            return np.clip(kept, info.min, info.max).astype(dtype)
        low, high = kept.min(), kept.max()
        if low < info.min or high > info.max:
            raise TileError(f"{what} values from {low} to {high}, outside the range of the "
                            f"declared dtype {dtype} ({info.min} to {info.max}); rescale them, "
                            "declare a wider dtype, or pass cast='clip' (or cast='unsafe' to "
                            "wrap around) to the op")
        return kept.astype(dtype)

    def _call(self, arrays: Sequence[np.ndarray], region: Box, window: Box, returned: Box,
              index: tuple[int, ...] | None, where: str) -> Sequence[Any]:
        kwargs = dict(self.params)
        if self.wants_tile:
            zeros = tuple(0 for _ in region.start)
            kwargs["tile"] = TileInfo(zeros if index is None else index, region, window,
                                      self.inputs[0].axes, self.inputs[0].shape, index is None,
                                      returned)
        try:
            with np.errstate(all="ignore"):
                result = self._apply(arrays, kwargs)
        except Exception as exc:
            raise TileError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        if self.n_outputs == 1:
            return (result,)
        if not isinstance(result, (tuple, list)) or len(result) != self.n_outputs:
            raise TileError(f"{where} must return {self.n_outputs} arrays, "
                            f"got {type(result).__name__}")
        return result

    def _apply(self, arrays: Sequence[np.ndarray], kwargs: dict[str, Any]) -> Any:
        """The function on the arrays; for an op run `over` some axes, once per index of
        the others (which keep their grid), the results stacked back along them."""
        over = getattr(self.op, "over", None)
        if over is None:
            return self.op.func(*arrays, **kwargs)
        axes = self.inputs[0].axes
        seen = [d for d, a in enumerate(axes) if a in over]
        loop = [d for d in range(len(axes)) if d not in seen]
        if "tile" in kwargs:
            kwargs = {**kwargs, "tile": kwargs["tile"].on(seen)}
        outs: list[np.ndarray] = []
        for index in np.ndindex(*(arrays[0].shape[d] for d in loop)):
            at = dict(zip(loop, index, strict=True))
            key = tuple(at.get(d, slice(None)) for d in range(len(axes)))
            result = self.op.func(*(a[key] for a in arrays), **kwargs)
            parts = (result,) if self.n_outputs == 1 else tuple(result)
            if not outs:
                outs = [_stacked(np.asarray(p), arrays[0].shape, loop) for p in parts]
            for out, part in zip(outs, parts, strict=True):
                out[key] = part
        return outs[0] if self.n_outputs == 1 else tuple(outs)

    @property
    def label(self) -> str:
        return self.name


def _stacked(part: np.ndarray, shape: tuple[int, ...], loop: list[int]) -> np.ndarray:
    """An array for results like `part`, one per index of the `loop` axes of `shape`."""
    sizes = iter(part.shape)
    return np.empty(tuple(shape[d] if d in loop else next(sizes) for d in range(len(shape))),
                    part.dtype)


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
        return (tuple(n for n, k in zip(self.shape, keep, strict=True) if k),
                tuple(a for a, k in zip(src.axes, keep, strict=True) if k))

    def dtype(self, index: int) -> np.dtype:
        return self.inputs[0].dtype

    def blocks(self, index: int) -> tuple[int, ...]:
        return tuple(b for b, d in zip(self.inputs[0].blocks, self.dropped, strict=True)
                     if not d)

    def meta(self, index: int) -> Mapping[str, Any]:
        src = self.inputs[0]
        gone = tuple(a for a, d in zip(src.axes, self.dropped, strict=True) if d)
        return metadata.sliced(src.meta, src.axes, self.starts, self.band_index, gone)

    def maps(self, index: int) -> tuple[AxisMap, ...]:
        out, links = 0, []
        for start, dropped in zip(self.starts, self.dropped, strict=True):
            if dropped:
                links.append(AxisMap(None, offset=start, span=1))
            else:
                links.append(AxisMap(out, offset=start))
                out += 1
        return tuple(links)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "slice", "label": "[" + ", ".join(
                    str(s) if d else f"{s}:{s + n}"
                    for s, n, d in zip(self.starts, self.shape, self.dropped, strict=True)) + "]"}

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

    def compute(self, *, executor: Any = None, workers: int | None = None,
                memory: int | str | None = None, tile: Any = None,
                scheduler: Any = None) -> np.ndarray:
        """The whole image as a NumPy array; refused when it would not fit the memory budget."""
        return DRIVER["compute"](self, executor=executor, workers=workers, memory=memory,
                                 tile=tile, scheduler=scheduler)

    def to_dask(self, *, tile: Any = None, memory: int | str | None = None) -> Any:
        """A dask array whose blocks are this image's tiles (see `tilewise.interop`)."""
        return DRIVER["to_dask"](self, tile=tile, memory=memory)

    def to_xarray(self, *, tile: Any = None, memory: int | str | None = None) -> Any:
        """A lazy xarray DataArray of this image, with coordinates and georeference (see
        `tilewise.interop`)."""
        return DRIVER["to_xarray"](self, tile=tile, memory=memory)


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
    for item, n, axis in zip(items, shape, axes, strict=True):
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
