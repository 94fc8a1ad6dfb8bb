"""User ops: `@tilewise.op(...)` and `tilewise.map(...)` turn a NumPy function into a lazy op.

An op declares up front everything the planner needs: its margin (halo) per axis, its output
dtypes and metadata. It is never called on dummy data to find these out. The function receives
read-only input windows grown by the margin (clipped at the image border, exactly what it would
see of the whole array there) and must return arrays of the same shape; tilewise keeps the part
that is exact.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import meta as metadata
from .axes import filtered, per_axis
from .errors import GridMismatchError, ParameterError
from .graph import Image, OpNode, SourceNode
from .io import open_source

Margin = int | Mapping[str, int] | Callable[..., int | Mapping[str, int]]
MetaSpec = Mapping[str, Any] | Callable[[list[dict[str, Any]]], Mapping[str, Any]] | None


class Op:
    """A NumPy function made lazy; calling it on images builds a graph node."""

    def __init__(self, func: Callable[..., Any], *, margin: Margin = 0,
                 dtype: Any = None, outputs: int = 1, meta: MetaSpec | Sequence[MetaSpec] = None,
                 name: str | None = None) -> None:
        if not callable(func):
            raise ParameterError(f"op function {func!r} is not callable")
        if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
            raise ParameterError(f"outputs= must be a positive integer, not {outputs!r}")
        self.func = func
        self.margin = margin
        self.dtype = dtype
        self.outputs = outputs
        self.meta = meta
        self.name = name or getattr(func, "__name__", type(func).__name__)
        functools.update_wrapper(self, func)
        self.wants_tile = _takes(func, "tile")

    def __reduce__(self) -> str | tuple[Any, ...]:
        # A decorated op replaces its function in its module, so it must be pickled by
        # reference to that module attribute, as the plain function would have been.
        module = sys.modules.get(getattr(self, "__module__", ""), None)
        if getattr(module, getattr(self, "__qualname__", "<"), None) is self:
            return self.__qualname__
        return (Op, (self.func,), {k: v for k, v in self.__dict__.items() if k != "func"})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<tilewise.op {self.name} margin={self.margin!r}>"

    def __call__(self, *images: Any, **params: Any) -> Image | tuple[Image, ...]:
        if not images:
            raise ParameterError(f"op {self.name!r} needs at least one input image")
        inputs = tuple(_as_image(img, self.name, i) for i, img in enumerate(images))
        _check_grids(inputs, self.name)
        first = inputs[0]
        margin = self.margin(**params) if callable(self.margin) else self.margin
        margins = per_axis(margin, first.axes, name=f"margin of op {self.name!r}",
                           default_axes=filtered(first.axes))
        dtypes = tuple(_dtypes(self.dtype, self.outputs, first.dtype, self.name))
        metas = _metas(self.meta, self.outputs, [i.meta for i in inputs], self.name)
        node = OpNode(inputs, self, self.name, margins, dict(params), dtypes, metas,
                      self.wants_tile)
        out = tuple(Image(node, i) for i in range(self.outputs))
        return out if self.outputs > 1 else out[0]


def op(func: Callable[..., Any] | None = None, *, margin: Margin = 0, dtype: Any = None,
       outputs: int = 1, meta: MetaSpec | Sequence[MetaSpec] = None,
       name: str | None = None) -> Any:
    """Decorator: `@op(margin=4)` makes `func(array, **params)` a lazy op on images.

    `margin` is an int (every spatial axis), a per-axis dict, or a function of the op's
    parameters returning either. `dtype` and `meta` may be lists, one per output.
    """
    def wrap(f: Callable[..., Any]) -> Op:
        return Op(f, margin=margin, dtype=dtype, outputs=outputs, meta=meta, name=name)

    return wrap(func) if func is not None else wrap


def map(func: Callable[..., Any], *images: Any, margin: Margin = 0, dtype: Any = None,
        outputs: int = 1, meta: MetaSpec | Sequence[MetaSpec] = None,
        name: str | None = None, **params: Any) -> Image | tuple[Image, ...]:
    """Apply `func` tile by tile to `images`; the functional form of `op`."""
    return Op(func, margin=margin, dtype=dtype, outputs=outputs, meta=meta,
              name=name)(*images, **params)


def open(path: Any, *, axes: str | Sequence[str] | None = None) -> Image:
    """A lazy image of a GeoTIFF, a Zarr array, a `.npy` file or an in-memory NumPy array."""
    return Image(SourceNode((), open_source(path, axes)))


def _takes(func: Callable[..., Any], keyword: str) -> bool:
    try:
        return keyword in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _as_image(obj: Any, name: str, position: int) -> Image:
    if isinstance(obj, Image):
        return obj
    if isinstance(obj, np.ndarray):
        return open(obj)
    raise ParameterError(
        f"input {position} of op {name!r} is a {type(obj).__name__}, not an image; "
        "pass parameters by keyword")


def _check_grids(inputs: Sequence[Image], name: str) -> None:
    first = inputs[0]
    for i, other in enumerate(inputs[1:], start=1):
        if other.shape != first.shape or other.axes != first.axes:
            raise GridMismatchError(
                f"inputs of op {name!r} must share one grid: input 0 has shape {first.shape} "
                f"axes {first.axes}, input {i} has shape {other.shape} axes {other.axes}")
        why = metadata.same_grid(first.meta, other.meta)
        if why:
            raise GridMismatchError(f"inputs 0 and {i} of op {name!r} are on different grids: "
                                    f"{why}")


def _dtypes(spec: Any, n: int, default: np.dtype, name: str) -> list[np.dtype]:
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec] * n
    if len(specs) != n:
        raise ParameterError(f"op {name!r} gives {len(specs)} dtypes for {n} outputs")
    try:
        return [default if s is None else np.dtype(s) for s in specs]
    except TypeError as exc:
        raise ParameterError(f"dtype of op {name!r}: {exc}") from None


def _metas(spec: Any, n: int, inputs: list[dict[str, Any]], name: str
           ) -> tuple[dict[str, Any], ...]:
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec] * n
    if len(specs) != n:
        raise ParameterError(f"op {name!r} gives {len(specs)} metas for {n} outputs")
    out = []
    for s in specs:
        if s is None:
            out.append(dict(inputs[0]))
        elif callable(s):
            out.append(dict(s(inputs)))
        elif isinstance(s, Mapping):
            out.append({**inputs[0], **s})
        else:
            raise ParameterError(f"meta of op {name!r} must be a dict or a function, not {s!r}")
    return tuple(out)
