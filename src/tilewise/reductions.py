"""Reductions: exact global statistics computed tile by tile, usable as parameters of ops.

A reduction turns an image into a small result (a scalar, a spectrum, a histogram) in one or
more sweeps over its tiles. Each sweep sends a small picklable *kernel* to the workers, which
returns a partial result per tile; the driver *absorbs* partials with exact or order-free
arithmetic (integer counts, exact float sums, min/max with ties broken by position), so the
result does not depend on the tile shape, the executor, the worker count or the completion
order. Float sums are exactly rounded (see `exact`); percentiles are exact order statistics
found by radix selection on sort keys (a histogram sweep of the top 16 bits, then only the
candidates that share the wanted ranks' bits), then interpolated as `numpy.nanpercentile`.

A `Value` is the lazy handle of a result. Passed as a keyword parameter of an op, it is computed
before the op runs; every reduction waiting on the same grid shares each sweep.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import fingerprints
from .errors import ParameterError
from .exact import ExactSum, TileSum, tile_sum
from .graph import DRIVER, Image
from .pipeline import Pipeline

MOMENTS = ("sum", "mean", "var", "std", "count")
EXTREMES = ("min", "max")
WHOLE_ONLY = ("argmin", "argmax", "histogram", "percentile", "quantile")
KINDS = MOMENTS + EXTREMES + WHOLE_ONLY
#: A key prefix shared by more values than this is narrowed again instead of collected.
CANDIDATES = 1 << 23

#: Results already computed, kept as long as their reduction is alive.
RESULTS: weakref.WeakKeyDictionary[Reduction, Any] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class Reduction:
    kind: str
    image: Image
    axis: tuple[int, ...] | None
    nodata: float | None
    q: Any = None
    bins: Any = None
    ddof: int = 0

    @property
    def kept(self) -> tuple[int, ...]:
        """Shape of the result over the axes not reduced (empty for the whole image)."""
        if self.axis is None:
            return ()
        return tuple(n for i, n in enumerate(self.image.shape) if i not in self.axis)


class Value:
    """A lazy result of a reduction; `compute()` it, or pass it as an op parameter."""

    def __init__(self, reduction: Reduction, key: int | None = None) -> None:
        self.reduction = reduction
        self.key = key

    def __repr__(self) -> str:
        r = self.reduction
        which = "" if self.key is None else f"[{self.key}]"
        return f"<tilewise.Value {r.kind}{which} of {r.image!r}>"

    def __len__(self) -> int:
        q = self.reduction.q
        if self.key is not None or q is None or np.ndim(q) == 0:
            raise TypeError(f"{self!r} is a scalar")
        return len(q)

    def __getitem__(self, key: int) -> Value:
        if not 0 <= key < len(self):
            raise IndexError(f"{self!r} has {len(self)} entries")
        return Value(self.reduction, key)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def select(self, result: Any) -> Any:
        return result if self.key is None else result[self.key]

    def fingerprint(self) -> dict[str, Any]:
        """What the value is, not what it computes to: a reduction is an exact function of
        its image, so its definition identifies it, and a finished output is recognised (or
        a changed one refused) before any reduction sweep runs."""
        red = self.reduction
        return {"reduction": red.kind, "key": self.key, "axis": red.axis,
                "nodata": fingerprints.jsonable(red.nodata), "q": fingerprints.jsonable(red.q),
                "bins": fingerprints.jsonable(red.bins), "ddof": red.ddof,
                "image": [n.fingerprint() for n in Pipeline.of([red.image]).nodes]}

    def compute(self, *, executor: Any = None, workers: int | None = None,
                memory: int | str | None = None, tile: Any = None,
                scheduler: Any = None) -> Any:
        return DRIVER["evaluate"]([self], executor=executor, workers=workers, memory=memory,
                                  tile=tile, scheduler=scheduler)[0]


def reduce(image: Image, how: str, axis: str | Sequence[str] | None = None, *,
           nodata: Any = "meta", bins: Any = None, ddof: int = 0) -> Value:
    """A lazy reduction of `image`: over all pixels, or over the named `axis` (axes).

    NaN and the image's nodata value (or `nodata=`; None to count every value) are skipped.
    """
    if not isinstance(image, Image):
        raise ParameterError(f"reduce needs a tilewise image, not {type(image).__name__}")
    if how not in KINDS:
        raise ParameterError(f"reduction {how!r} is unknown; choose one of {', '.join(KINDS)}")
    axes = _axes(image, axis)
    if axes is not None and how in WHOLE_ONLY:
        raise ParameterError(f"reduction {how!r} works on the whole image, not over axis=")
    if how == "histogram":
        edges = np.asarray(bins, dtype=np.float64) if bins is not None else None
        if edges is None or edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ParameterError("histogram needs bins= as increasing bin edges (at least 2)")
        bins = edges
    value = image.meta.get("nodata") if isinstance(nodata, str) and nodata == "meta" else nodata
    return Value(Reduction(how, image, axes, value, bins=bins, ddof=ddof))


def percentile(image: Image, q: Any, *, nodata: Any = "meta") -> Value:
    """Exact percentiles, equal to `numpy.nanpercentile(image, q)` on the whole array."""
    return _quantiles(image, q, 100, "percentile", nodata)


def quantile(image: Image, q: Any, *, nodata: Any = "meta") -> Value:
    """Exact quantiles, equal to `numpy.nanquantile(image, q)` on the whole array."""
    return _quantiles(image, q, 1, "quantile", nodata)


def _quantiles(image: Image, q: Any, scale: int, kind: str, nodata: Any) -> Value:
    values = np.asanyarray(q, dtype=np.float64)
    if values.ndim > 1 or np.any(~((values >= 0) & (values <= scale))):
        raise ParameterError(f"{kind} q={q!r} must be a number or a list of numbers in "
                             f"[0, {scale}]")
    base = reduce(image, "count", nodata=nodata).reduction
    stored = q if isinstance(q, (int, float)) else tuple(np.ravel(values).tolist())
    return Value(Reduction(kind, image, None, base.nodata, q=stored))


def _axes(image: Image, axis: str | Sequence[str] | None) -> tuple[int, ...] | None:
    if axis is None:
        return None
    names = (axis,) if isinstance(axis, str) else tuple(axis)
    unknown = [a for a in names if a not in image.axes]
    if unknown:
        raise ParameterError(f"axis {unknown[0]!r} is not one of the image axes {image.axes}")
    return tuple(sorted(image.axes.index(a) for a in names))


# ---- kernels: run in the workers, one per reduction and sweep ---------------------------


def valid_mask(a: np.ndarray, nodata: float | None) -> np.ndarray:
    mask = ~np.isnan(a) if a.dtype.kind in "fc" else np.ones(a.shape, bool)
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        mask &= a != nodata
    return mask


def _elements(red: Reduction, box: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """Per pixel of the tile, the flat index of the result element it reduces into."""
    if red.axis is None:
        return None
    kept = [i for i in range(len(shape)) if i not in red.axis]
    grids = np.ix_(*(np.arange(box.start[i], box.stop[i]) for i in range(len(shape))))
    index = np.zeros((1,) * len(shape), dtype=np.intp)
    stride = 1
    for i in reversed(kept):
        index = index + grids[i] * stride
        stride *= red.image.shape[i]
    return np.broadcast_to(index, box.shape)


@dataclass(frozen=True)
class Moments:
    """Exact sums (of values, or of squared deviations from `center`) and counts."""

    red: Reduction
    center: np.ndarray | None = None

    def __call__(self, a: np.ndarray, box: Any) -> tuple[TileSum, np.ndarray, np.ndarray]:
        size = max(1, math.prod(self.red.kept))
        mask = valid_mask(a, self.red.nodata)
        element = _elements(self.red, box, a.shape)
        element = np.zeros(int(mask.sum()), np.intp) if element is None else element[mask]
        values = a[mask].astype(np.float64)
        if self.center is not None:
            values = (values - self.center.ravel()[element]) ** 2
        finite = np.isfinite(values)
        counts = np.bincount(element, minlength=size)
        inf = np.zeros((2, size), bool)
        if not finite.all():
            inf[0, element[values == np.inf]] = True
            inf[1, element[values == -np.inf]] = True
            values, element = values[finite], element[finite]
        return tile_sum(values, element, size), counts, inf


@dataclass(frozen=True)
class Extremes:
    """Minimum, maximum and count per result element over the tile's part of it."""

    red: Reduction

    def __call__(self, a: np.ndarray, box: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        mask = valid_mask(a, self.red.nodata)
        axis = self.red.axis if self.red.axis is not None else tuple(range(a.ndim))
        low, high = _limits(a.dtype)
        mins = np.where(mask, a, high).min(axis=axis) if a.size else np.array(high)
        maxs = np.where(mask, a, low).max(axis=axis) if a.size else np.array(low)
        kept = tuple((box.start[i], box.stop[i]) for i in range(a.ndim) if i not in axis)
        return kept, mins, maxs, mask.sum(axis=axis)


@dataclass(frozen=True)
class ArgExtreme:
    red: Reduction
    largest: bool

    def __call__(self, a: np.ndarray, box: Any) -> tuple[Any, int] | None:
        mask = valid_mask(a, self.red.nodata)
        if not mask.any():
            return None
        best = a[mask].max() if self.largest else a[mask].min()
        local = np.flatnonzero(mask & (a == best))
        coords = np.unravel_index(local, a.shape)
        flat = np.ravel_multi_index(tuple(c + s for c, s in zip(coords, box.start, strict=True)),
                                    self.red.image.shape)
        return best, int(flat.min())


@dataclass(frozen=True)
class Histogram:
    red: Reduction

    def __call__(self, a: np.ndarray, box: Any) -> np.ndarray:
        values = a[valid_mask(a, self.red.nodata)]
        return np.histogram(values, bins=self.red.bins)[0].astype(np.int64)


def sort_keys(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Unsigned integer keys that sort like the values (NaN excluded), and their bit width.

    Floats: flip all bits of negatives, set the sign bit of the rest (IEEE 754 then orders as
    unsigned integers). Signed integers: flip the sign bit.
    """
    dtype = values.dtype
    bits = dtype.itemsize * 8
    unsigned = np.dtype(f"u{dtype.itemsize}")
    raw = values.view(unsigned)
    top = unsigned.type(1 << (bits - 1))
    if dtype.kind == "f":
        return np.where(raw & top, ~raw, raw | top), bits
    if dtype.kind == "i":
        return raw ^ top, bits
    return raw, bits


def from_key(key: int, dtype: np.dtype) -> Any:
    """The value whose sort key is `key` (the inverse of `sort_keys`)."""
    bits = dtype.itemsize * 8
    unsigned = np.dtype(f"u{dtype.itemsize}")
    top = 1 << (bits - 1)
    if dtype.kind == "f":
        raw = key ^ top if key & top else ~key & ((1 << bits) - 1)
    elif dtype.kind == "i":
        raw = key ^ top
    else:
        raw = key
    return np.array(raw, dtype=unsigned).view(dtype)[()]


#: Bits of the sort key resolved by each histogram sweep.
DIGIT = 16


@dataclass(frozen=True)
class Select:
    """Radix selection: per group of wanted ranks, a histogram of the next 16 key bits, or
    the keys themselves, of the valid values whose key starts with the group's prefix."""

    red: Reduction
    groups: tuple[tuple[int, int, str], ...]  # (prefix, bits of it, "hist" or "collect")

    def __call__(self, a: np.ndarray, box: Any) -> tuple[Any, ...]:
        values = a[valid_mask(a, self.red.nodata)]
        keys, bits = sort_keys(values)
        out = []
        for prefix, known, mode in self.groups:
            k = keys
            if known:
                k = k[(k >> (bits - known)) == prefix]
            if mode == "collect":
                out.append(k)
                continue
            width = min(DIGIT, bits - known)
            digits = (k >> (bits - known - width)) & ((1 << width) - 1)
            out.append(np.bincount(digits.astype(np.intp), minlength=1 << width))
        return tuple(out)


def _limits(dtype: np.dtype) -> tuple[Any, Any]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return dtype.type(info.min), dtype.type(info.max)
    if dtype.kind == "b":
        return np.False_, np.True_
    return dtype.type(-np.inf), dtype.type(np.inf)


# ---- accumulators: in the driver, one per reduction --------------------------------------


@dataclass(eq=False)
class Accumulator:
    """Drives one reduction through its sweeps: `kernel()` for the next sweep or None."""

    red: Reduction
    result: Any = None
    done: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    def kernel(self) -> Any:
        raise NotImplementedError

    def absorb(self, part: Any) -> None:
        raise NotImplementedError

    def end_sweep(self) -> None:
        raise NotImplementedError


class MomentsAcc(Accumulator):
    def kernel(self) -> Any:
        if "mean" in self.state:
            return Moments(self.red, self.state["mean"])
        return Moments(self.red)

    def absorb(self, part: Any) -> None:
        sums, counts, inf = part
        size = max(1, math.prod(self.red.kept))
        if "acc" not in self.state:
            self.state.update(acc=ExactSum(size), n=np.zeros(size, np.int64),
                              inf=np.zeros((2, size), bool))
        self.state["acc"].add(sums)
        self.state["n"] += counts
        self.state["inf"] |= inf

    def end_sweep(self) -> None:
        acc, n, inf = self.state.pop("acc", None), self.state.pop("n"), self.state.pop("inf")
        total = acc.totals() if acc is not None else np.zeros(n.shape)
        total = np.where(inf[0] & inf[1], np.nan, np.where(inf[0], np.inf,
                                                           np.where(inf[1], -np.inf, total)))
        kind = self.red.kind
        with np.errstate(invalid="ignore", divide="ignore"):
            if kind == "count":
                out: Any = n
            elif kind == "sum":
                out = total
            elif "mean" not in self.state:
                mean = total / n
                if kind == "mean":
                    out = mean
                else:
                    self.state["mean"] = np.where(n > 0, mean, 0.0)
                    return
            else:
                dof = n - self.red.ddof
                var = np.where(dof > 0, total / np.maximum(dof, 1), np.nan)
                out = np.sqrt(var) if kind == "std" else var
        self.result = _shaped(out, self.red)
        self.done = True


class ExtremesAcc(Accumulator):
    def kernel(self) -> Any:
        return Extremes(self.red)

    def absorb(self, part: Any) -> None:
        kept, mins, maxs, counts = part
        if "min" not in self.state:
            low, high = _limits(self.red.image.dtype)
            shape = self.red.kept
            self.state.update(min=np.full(shape, high), max=np.full(shape, low),
                              n=np.zeros(shape, np.int64))
        where = tuple(slice(a, b) for a, b in kept)
        self.state["min"][where] = np.minimum(self.state["min"][where], mins)
        self.state["max"][where] = np.maximum(self.state["max"][where], maxs)
        self.state["n"][where] += counts

    def end_sweep(self) -> None:
        values, n = self.state[self.red.kind], self.state["n"]
        if (n == 0).any():
            values = np.where(n > 0, values, np.nan)
        self.result = values[()] if values.ndim == 0 else values
        self.done = True


class ArgAcc(Accumulator):
    def kernel(self) -> Any:
        return ArgExtreme(self.red, self.red.kind == "argmax")

    def absorb(self, part: Any) -> None:
        if part is None:
            return
        best = self.state.get("best")
        value, index = part
        largest = self.red.kind == "argmax"
        if best is None or (value > best[0] if largest else value < best[0]) or \
                (value == best[0] and index < best[1]):
            self.state["best"] = (value, index)

    def end_sweep(self) -> None:
        best = self.state.get("best")
        if best is None:
            raise ParameterError(f"{self.red.kind} of {self.red.image!r}: no valid pixel")
        self.result = np.intp(best[1])
        self.done = True


class HistogramAcc(Accumulator):
    def kernel(self) -> Any:
        return Histogram(self.red)

    def absorb(self, part: Any) -> None:
        self.state["counts"] = self.state.get("counts", 0) + part

    def end_sweep(self) -> None:
        counts = self.state.get("counts")
        self.result = np.zeros(len(self.red.bins) - 1, np.int64) if counts is None else counts
        self.done = True


class QuantileAcc(Accumulator):
    """Exact order statistics by radix selection over sort keys (see `sort_keys`).

    A group is the set of valid values whose key starts with a prefix, with the rank each
    wanted order statistic has inside it. A histogram sweep of the next 16 key bits splits a
    group by digit; a group small enough has its keys collected and sorted; a group whose key
    is fully known holds one value. Float32 and 16-bit data need two sweeps at most.
    """

    def kernel(self) -> Any:
        if "groups" not in self.state:
            self.state.update(groups=[{"prefix": 0, "known": 0, "mode": "hist", "ranks": None}],
                              found={})
        return Select(self.red, tuple((g["prefix"], g["known"], g["mode"])
                                      for g in self.state["groups"]))

    def absorb(self, part: Any) -> None:
        for group, result in zip(self.state["groups"], part, strict=True):
            if group["mode"] == "hist":
                group["partial"] = group.get("partial", 0) + result
            else:
                group.setdefault("partial", []).append(result)

    def end_sweep(self) -> None:
        bits = self.red.image.dtype.itemsize * 8
        groups = []
        for group in self.state["groups"]:
            if group["mode"] == "hist":
                groups.extend(self._split(group, bits))
            else:
                keys = np.sort(np.concatenate(group.pop("partial")))
                self._found({r: int(keys[k]) for r, k in group["ranks"].items()})
        self.state["groups"] = groups
        if not groups and not self.done:
            self._finish()

    def _split(self, group: dict, bits: int) -> list[dict]:
        hist = group.pop("partial", np.zeros(1, np.int64))
        if group["ranks"] is None and not self._targets(int(np.sum(hist))):
            return []
        ranks = group["ranks"] or {r: r for r in self.state["ranks"]}
        cumulative = np.cumsum(hist)
        width = min(DIGIT, bits - group["known"])
        split: dict[int, dict[int, int]] = {}
        for r, rank in ranks.items():
            digit = int(np.searchsorted(cumulative, rank, side="right"))
            split.setdefault(digit, {})[r] = rank - (int(cumulative[digit - 1]) if digit else 0)
        out = []
        for digit, inside in split.items():
            prefix, known = (group["prefix"] << width) | digit, group["known"] + width
            if known == bits:
                self._found({r: prefix for r in inside})
            else:
                mode = "collect" if hist[digit] <= CANDIDATES else "hist"
                out.append({"prefix": prefix, "known": known, "mode": mode, "ranks": inside})
        return out

    def _found(self, keys: dict[int, int]) -> None:
        dtype = self.red.image.dtype
        self.state["found"].update({r: from_key(k, dtype) for r, k in keys.items()})

    def _targets(self, n: int) -> bool:
        """Set the ranks to find; False (and the result set) when there is no valid value."""
        q = np.true_divide(np.asanyarray(self.red.q, dtype=np.float64),
                           100 if self.red.kind == "percentile" else 1)
        self.state["n"] = n
        if n == 0:
            dtype = self.red.image.dtype if self.red.image.dtype.kind == "f" else np.float64
            self.result = np.full(q.shape, np.nan, dtype=dtype)[()]
            self.done = True
            return False
        virtual = (n - 1) * q
        previous = np.floor(virtual).astype(np.int64)
        ranks = {int(r) for r in np.ravel(previous)}
        ranks |= {min(r + 1, n - 1) for r in ranks}
        self.state.update(q=q, virtual=virtual, previous=previous, ranks=sorted(ranks))
        return True

    def _finish(self) -> None:
        dtype, found, n = self.red.image.dtype, self.state["found"], self.state["n"]
        previous = self.state["previous"]
        shape = np.shape(self.state["q"])
        below = np.asarray([found[int(r)] for r in np.ravel(previous)], dtype=dtype)
        above = np.asarray([found[min(int(r) + 1, n - 1)] for r in np.ravel(previous)],
                           dtype=dtype)
        gamma = np.asanyarray(self.state["virtual"] - previous, dtype=np.float64)
        if isinstance(self.red.q, (int, float)):
            gamma = float(gamma)
        self.result = lerp(below.reshape(shape), above.reshape(shape), gamma)
        self.done = True


def lerp(a: np.ndarray, b: np.ndarray, t: Any) -> Any:
    """NumPy's quantile interpolation, step for step, so that results match it bit for bit."""
    diff = b - a
    out = np.asanyarray(np.add(a, diff * t))
    np.subtract(b, diff * (1 - t), out=out, where=np.asanyarray(t) >= 0.5, casting="unsafe",
                dtype=type(out.dtype))
    return out[()] if out.ndim == 0 else out


def _shaped(out: np.ndarray, red: Reduction) -> Any:
    if red.axis is None:
        return out[0]
    return out.reshape(red.kept)


ACCUMULATORS: dict[str, type[Accumulator]] = {
    **{k: MomentsAcc for k in MOMENTS}, **{k: ExtremesAcc for k in EXTREMES},
    "argmin": ArgAcc, "argmax": ArgAcc, "histogram": HistogramAcc,
    "percentile": QuantileAcc, "quantile": QuantileAcc,
}
