"""User ops: `@tilewise.op(...)` and `tilewise.map(...)` turn a NumPy function into a lazy op.

An op declares up front everything the planner needs: its margin (halo) per axis, its output
grid, dtypes and metadata. It is never called on dummy data to find these out. The function
receives read-only input windows grown by the margin (clipped at the image border, exactly what
it would see of the whole array there) and must return arrays of the same shape; tilewise keeps
the part that is exact.

An op may resample: `factor={"y": 4, "x": 4}` (input pixels per output pixel; a `Fraction` or
`(num, den)` such as `(1, 2)` upsamples) makes output pixel `o` read input pixels
`[o * factor - margin, (o + 1) * factor + margin)`; the function then returns the output pixels
whose input lies inside its window (`TileInfo.output_window`), of which tilewise keeps the
tile's. `axes=` renames, drops (the input axis is read whole) or adds (give its length in
`shape=`) axes; `footprint=` replaces the per-axis rule by a function of the output region, for
ops such as reprojection, whose function then returns exactly the region. The output's
georeference is rescaled by the factor.

`over="zyx"` runs the function on blocks of those axes only: on a `tczyx` image it is called
once per t and c of the tile's window, on 3-D arrays, and its results are stacked back. An
integer margin or factor then applies to those axes; the others keep their grid (no margin, no
factor, no renaming), so that a function written for one volume runs over every time point and
channel without knowing of them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from . import meta as metadata
from .axes import Axes, filtered, per_axis
from .errors import GridMismatchError, ParameterError
from .graph import Image, OpNode, SourceNode
from .io import open_source
from .regions import AxisMap, Box

Margin = int | Mapping[str, int] | Callable[..., int | Mapping[str, int]]
MetaSpec = Mapping[str, Any] | Callable[[list[dict[str, Any]]], Mapping[str, Any]] | None
Factor = int | Fraction | tuple[int, int]
FactorSpec = Factor | Mapping[str, Factor] | Callable[..., Factor | Mapping[str, Factor]] | None
ShapeSpec = (Sequence[int] | Mapping[str, int]
             | Callable[..., Sequence[int] | Mapping[str, int]] | None)
AxesSpec = str | Sequence[str] | Mapping[str, str | None] | None
OverSpec = str | Sequence[str] | None
#: What an op does with values its integer output dtype cannot hold (see `OpNode._cast`).
CASTS = ("check", "clip", "unsafe")


class Op:
    """A NumPy function made lazy; calling it on images builds a graph node."""

    def __init__(self, func: Callable[..., Any], *, margin: Margin = 0,
                 dtype: Any = None, outputs: int = 1, meta: MetaSpec | Sequence[MetaSpec] = None,
                 name: str | None = None, factor: FactorSpec = None, shape: ShapeSpec = None,
                 axes: AxesSpec = None, blocks: Sequence[int] | Mapping[str, int] | None = None,
                 footprint: Callable[[Box], Box | Sequence[Box]] | None = None,
                 cast: str = "check", over: OverSpec = None) -> None:
        if not callable(func):
            raise ParameterError(f"op function {func!r} is not callable")
        if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
            raise ParameterError(f"outputs= must be a positive integer, not {outputs!r}")
        if cast not in CASTS:
            raise ParameterError(f"cast={cast!r} must be one of {', '.join(CASTS)}")
        if footprint is not None and not callable(footprint):
            raise ParameterError(f"footprint= must be a function of the output region, "
                                 f"not {footprint!r}")
        self.func = func
        self.margin = margin
        self.dtype = dtype
        self.outputs = outputs
        self.meta = meta
        self.factor = factor
        self.shape = shape
        self.axes = axes
        self.blocks = blocks
        self.footprint = footprint
        self.cast = cast
        #: The axes the function sees (None: all); it is called once per index of the others.
        self.over = None if over is None else tuple(over)
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
        seen = _over(self.over, first.axes, self.name)
        margins = per_axis(margin, first.axes, name=f"margin of op {self.name!r}",
                           default_axes=seen)
        _check_params(self.func, self.name, len(inputs), params, self.wants_tile)
        factors = _factors(self.factor, params, first.axes, self.name, seen)
        out_axes, follows = _out_axes(self.axes, first.axes, self.name)
        if self.over is not None:
            _check_over(first.axes, seen, margins, factors, out_axes, self.name)
        links = tuple(AxisMap(None) if follows.get(d) is None else
                      AxisMap(follows[d], *factors[d], margin=margins[d])
                      for d in range(len(first.axes)))
        shape = _out_shape(self.shape, params, first, out_axes, links, self.name)
        blocks = _out_blocks(self.blocks, first, out_axes, shape, links, self.name)
        dtypes = tuple(_dtypes(self.dtype, self.outputs, first.dtype, self.name))
        base = _resampled_meta(first, out_axes, links)
        metas = _metas(self.meta, self.outputs, [base, *(i.meta for i in inputs[1:])],
                       self.name, [i.meta for i in inputs])
        node = OpNode(inputs, self, self.name, links, dict(params), dtypes, metas,
                      self.wants_tile, shape, out_axes, blocks, self.footprint, self.cast)
        out = tuple(Image(node, i) for i in range(self.outputs))
        return out if self.outputs > 1 else out[0]


def op(func: Callable[..., Any] | None = None, *, margin: Margin = 0, dtype: Any = None,
       outputs: int = 1, meta: MetaSpec | Sequence[MetaSpec] = None,
       name: str | None = None, **grid: Any) -> Any:
    """Decorator: `@op(margin=4)` makes `func(array, **params)` a lazy op on images.

    `margin` is an int (every spatial axis, or every axis of `over`), a per-axis dict, or a
    function of the op's parameters returning either. `dtype` and `meta` may be lists, one per
    output. `factor`, `shape`, `axes`, `blocks` and `footprint` declare an output grid other
    than the input's; `over="zyx"` calls the function on blocks of those axes, once per index
    of the others (see the module docstring). Values outside an integer `dtype` are refused with a
    `TileError`, unless `cast="clip"` (clip them) or `cast="unsafe"` (wrap, as NumPy does).
    """
    def wrap(f: Callable[..., Any]) -> Op:
        return Op(f, margin=margin, dtype=dtype, outputs=outputs, meta=meta, name=name, **grid)

    return wrap(func) if func is not None else wrap


def map(func: Callable[..., Any], *images: Any, margin: Margin = 0, dtype: Any = None,
        outputs: int = 1, meta: MetaSpec | Sequence[MetaSpec] = None,
        name: str | None = None, factor: FactorSpec = None, shape: ShapeSpec = None,
        axes: AxesSpec = None, blocks: Sequence[int] | Mapping[str, int] | None = None,
        footprint: Callable[[Box], Box | Sequence[Box]] | None = None, cast: str = "check",
        over: OverSpec = None, **params: Any) -> Image | tuple[Image, ...]:
    """Apply `func` tile by tile to `images`; the functional form of `op`."""
    return Op(func, margin=margin, dtype=dtype, outputs=outputs, meta=meta, name=name,
              factor=factor, shape=shape, axes=axes, blocks=blocks, footprint=footprint,
              cast=cast, over=over)(*images, **params)


def open(path: Any, *, axes: str | Sequence[str] | None = None, format: str | None = None,
         meta: Mapping[str, Any] | None = None, **options: Any) -> Image:
    """A lazy image of a file (GeoTIFF or any GDAL raster, Zarr, `.npy`, or a format a
    plug-in adds), possibly in an object store (`s3://bucket/dem.tif`), or of an in-memory
    NumPy array, dask array or xarray DataArray (see `io.open_source`).

    The format is `format=` if given, else found from the URL scheme, the file's content and
    its suffix (see `io.registry`); `options` go to the format's opener. `meta` adds to or
    replaces what the source says (an in-memory array's `transform`, `crs` or `wcs`).
    """
    source = open_source(path, axes, format, **options)
    if meta:
        unknown = [k for k in meta if not isinstance(k, str)]
        if unknown:
            raise ParameterError(f"meta= keys must be names, not {unknown[0]!r}")
        source = dataclasses.replace(source, meta={**source.meta, **meta})
    return Image(SourceNode((), source))


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


def _metas(spec: Any, n: int, inputs: list[dict[str, Any]], name: str,
           originals: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Output metadata: `inputs[0]` (already resampled to the output grid) updated by a dict,
    or what a function of the inputs' own metadata (`originals`) returns."""
    specs = list(spec) if isinstance(spec, (list, tuple)) else [spec] * n
    if len(specs) != n:
        raise ParameterError(f"op {name!r} gives {len(specs)} metas for {n} outputs")
    out = []
    for s in specs:
        if s is None:
            out.append(dict(inputs[0]))
        elif callable(s):
            out.append(dict(s(originals)))
        elif isinstance(s, Mapping):
            out.append({**inputs[0], **s})
        else:
            raise ParameterError(f"meta of op {name!r} must be a dict or a function, not {s!r}")
    return tuple(out)


def _check_params(func: Callable[..., Any], name: str, n_inputs: int, params: Mapping[str, Any],
                  wants_tile: bool) -> None:
    """Refuse parameters the function does not take, or lacks, now rather than on a tile."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    keyword = {**params, **({"tile": None} if wants_tile else {})}
    try:
        signature.bind(*([None] * n_inputs), **keyword)
        return
    except TypeError as exc:
        problem = str(exc)
    listed = list(signature.parameters.values())
    taken = [p.name for p in listed[n_inputs:]
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "tile"]
    unknown = [k for k in params if k not in signature.parameters]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in listed):
        raise ParameterError(f"op {name!r} has no parameter {unknown[0]!r}; its parameters are "
                             f"{', '.join(taken) or 'none'}")
    missing = [p.name for p in listed[n_inputs:] if p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in keyword]
    if missing:
        raise ParameterError(f"op {name!r} needs the parameter {missing[0]!r}")
    raise ParameterError(f"op {name!r} cannot take {n_inputs} image(s) with parameters "
                         f"{sorted(params)}: {problem}")


def _fraction(value: Any, what: str) -> tuple[int, int]:
    """A resampling factor as (num, den) in lowest terms."""
    if isinstance(value, tuple) and len(value) == 2:
        value = Fraction(*value) if all(isinstance(v, int) for v in value) else None
    ok = isinstance(value, (int, Fraction)) and not isinstance(value, bool) and value > 0
    if not ok:
        raise ParameterError(f"{what} must be a positive integer, Fraction or (num, den), "
                             f"not {value!r}")
    f = Fraction(value)
    return f.numerator, f.denominator


def _factors(spec: FactorSpec, params: Mapping[str, Any], axes: Axes, name: str,
             spatial: Sequence[str]) -> list[tuple[int, int]]:
    value = spec(**params) if callable(spec) else spec
    if value is None:
        return [(1, 1)] * len(axes)
    what = f"factor of op {name!r}"
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in axes]
        if unknown:
            raise ParameterError(f"{what} names axis {unknown[0]!r}, not one of {axes}")
        return [_fraction(value[a], f"{what}[{a!r}]") if a in value else (1, 1) for a in axes]
    one = _fraction(value, what)
    return [one if a in spatial else (1, 1) for a in axes]


def _over(spec: tuple[str, ...] | None, axes: Axes, name: str) -> list[str]:
    """The axes an op's function sees (and an integer margin or factor spans): `over`, else
    the spatial axes (else all but channels)."""
    if spec is None:
        return filtered(axes)
    unknown = [a for a in spec if a not in axes]
    if unknown or not spec or len(set(spec)) != len(spec):
        raise ParameterError(f"over={''.join(spec)!r} of op {name!r} must name distinct axes of "
                             f"its input {axes}")
    return list(spec)


def _check_over(axes: Axes, seen: Sequence[str], margins: Sequence[int],
                factors: Sequence[tuple[int, int]], out_axes: Axes, name: str) -> None:
    """The axes an `over` op loops along keep their grid: no margin, no factor, no renaming."""
    if out_axes != axes:
        raise ParameterError(f"op {name!r} with over= keeps its input axes {axes}; it cannot "
                             f"also change them to {out_axes}")
    for a, m, f in zip(axes, margins, factors, strict=True):
        if a not in seen and (m or f != (1, 1)):
            what = f"a margin of {m}" if m else f"a factor of {Fraction(*f)}"
            raise ParameterError(f"op {name!r} runs over {''.join(seen)!r} once per {a!r}, "
                                 f"so it cannot have {what} along {a!r}")


def _out_axes(spec: AxesSpec, axes: Axes, name: str) -> tuple[Axes, dict[int, int | None]]:
    """Output axis names, and for each input axis the output axis it follows (or None)."""
    if spec is None:
        return axes, {d: d for d in range(len(axes))}
    pairs = (list(spec.items()) if isinstance(spec, Mapping)
             else [(a, a if a in axes else None) for a in spec])
    names = tuple(str(k) for k, _ in pairs)
    if len(set(names)) != len(names):
        raise ParameterError(f"axes= of op {name!r} repeats an axis: {names}")
    follows: dict[int, int | None] = {d: None for d in range(len(axes))}
    for j, (out, source) in enumerate(pairs):
        if source is None:
            continue
        if source not in axes:
            raise ParameterError(f"axes= of op {name!r}: output axis {out!r} follows "
                                 f"{source!r}, which is not an input axis {axes}")
        follows[axes.index(source)] = j
    return names, follows


def _out_shape(spec: ShapeSpec, params: Mapping[str, Any], first: Image, axes: Axes,
               links: Sequence[AxisMap], name: str) -> tuple[int, ...]:
    derived: dict[int, int] = {}
    for d, m in enumerate(links):
        if m.axis is not None:
            derived[m.axis] = -(-first.shape[d] * m.den // m.num)
    value = spec(dict(zip(first.axes, first.shape, strict=True)), **params) if callable(spec) \
        else spec
    if value is None:
        given: dict[int, Any] = {}
    elif isinstance(value, Mapping):
        unknown = [k for k in value if k not in axes]
        if unknown:
            raise ParameterError(f"shape of op {name!r} names axis {unknown[0]!r}, not one of "
                                 f"its output axes {axes}")
        given = {axes.index(k): v for k, v in value.items()}
    else:
        if len(value) != len(axes):
            raise ParameterError(f"shape of op {name!r} gives {len(value)} sizes for the "
                                 f"output axes {axes}")
        given = dict(enumerate(value))
    shape = []
    for j, axis in enumerate(axes):
        n = given.get(j, derived.get(j))
        if n is None:
            raise ParameterError(f"op {name!r} adds axis {axis!r}; give its length in shape=")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ParameterError(f"shape of op {name!r} along {axis!r} must be a positive "
                                 f"integer, not {n!r}")
        shape.append(int(n))
    return tuple(shape)


def _out_blocks(spec: Sequence[int] | Mapping[str, int] | None, first: Image, axes: Axes,
                shape: tuple[int, ...], links: Sequence[AxisMap], name: str
                ) -> tuple[int, ...]:
    if spec is not None:
        given = [spec.get(a, n) for a, n in zip(axes, shape, strict=True)] \
            if isinstance(spec, Mapping) else list(spec)
        if len(given) != len(axes) or not all(isinstance(b, int) and b > 0 for b in given):
            raise ParameterError(f"blocks of op {name!r} must give a positive size for each "
                                 f"output axis {axes}, not {spec!r}")
        return tuple(min(b, n) for b, n in zip(given, shape, strict=True))
    blocks = list(shape)
    for d, m in enumerate(links):
        if m.axis is not None:
            blocks[m.axis] = min(shape[m.axis], max(1, first.blocks[d] * m.den // m.num))
    return tuple(blocks)


def _resampled_meta(first: Image, axes: Axes, links: Sequence[AxisMap]) -> dict[str, Any]:
    """The first input's metadata on the output grid: rescaled, band names kept with `c`."""
    meta = first.meta
    factors = {a: m.scale for a, m in zip(first.axes, links, strict=True)
               if m.axis is not None and m.scale != 1}
    if factors:
        meta = metadata.rescaled(meta, first.axes, factors)
    if "c" not in axes:
        meta = {k: v for k, v in meta.items() if k != "band_names"}
    return dict(meta)
