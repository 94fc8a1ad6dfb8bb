"""Exact sums of floats, so that a sum does not depend on how the image was cut into tiles.

Every float64 is `m * 2**(e - 53)` with an integer mantissa `|m| < 2**53`. Split `m` into a high
and a low half (`m = h * 2**26 + l`, both below 2**27 in magnitude) and add the halves per
exponent with `np.bincount`: each bucket holds at most 2**26 values of a tile, so every partial
sum stays below 2**53 and float64 adds it without rounding. The buckets of all tiles are then
added as Python integers and divided once, which Python rounds correctly. The result is the
exactly rounded sum (what `math.fsum` returns), whatever the tiling and the order of the tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: A tile may hold at most this many values for its bucket sums to stay exact.
MAX_VALUES = 2**26


@dataclass
class ExactSum:
    """Exact running sums, one per output element (`size` of them), fed tile by tile."""

    size: int = 1
    #: exponent -> (sum of high halves, sum of low halves) per element, as Python ints.
    buckets: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, part: TileSum) -> None:
        for e, high, low in zip(part.exponents, part.high.T, part.low.T, strict=True):
            if e in self.buckets:
                h, lo = self.buckets[e]
                self.buckets[e] = (h + high.astype(object), lo + low.astype(object))
            else:
                self.buckets[e] = (high.astype(object), low.astype(object))

    def totals(self) -> np.ndarray:
        """The exactly rounded sum of each element, as float64."""
        out = np.zeros(self.size)
        if not self.buckets:
            return out
        base = min(self.buckets)
        for k in range(self.size):
            total = 0
            for e, (h, lo) in self.buckets.items():
                total += ((int(h[k]) << 26) + int(lo[k])) << (e - base)
            out[k] = _ldexp_exact(total, base - 53)
        return out


@dataclass(frozen=True)
class TileSum:
    """One tile's exact bucket sums: `high[k, j]`, `low[k, j]` for element k, exponent j."""

    exponents: tuple[int, ...]
    high: np.ndarray
    low: np.ndarray


def tile_sum(values: np.ndarray, element: np.ndarray | None = None, size: int = 1) -> TileSum:
    """Exact bucket sums of finite `values`, grouped by `element` (an index below `size`)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size > MAX_VALUES:
        raise ValueError(f"a tile of {x.size} values is too large for exact sums")
    if element is None:
        element = np.zeros(x.size, dtype=np.intp)
    mant, exp = np.frexp(x)
    m = np.ldexp(mant, 53)
    high = np.floor(np.ldexp(m, -26))
    low = m - np.ldexp(high, 26)
    if x.size == 0:
        return TileSum((), np.zeros((size, 0)), np.zeros((size, 0)))
    lo_e, hi_e = int(exp.min()), int(exp.max())
    n_exp = hi_e - lo_e + 1
    index = element.ravel() * n_exp + (exp - lo_e)
    h = np.bincount(index, weights=high, minlength=size * n_exp).reshape(size, n_exp)
    lo = np.bincount(index, weights=low, minlength=size * n_exp).reshape(size, n_exp)
    used = np.flatnonzero((h != 0).any(0) | (lo != 0).any(0))
    return TileSum(tuple(int(lo_e + j) for j in used), h[:, used].astype(np.int64),
                   lo[:, used].astype(np.int64))


def _ldexp_exact(total: int, shift: int) -> float:
    """`total * 2**shift`, correctly rounded to float64."""
    if shift >= 0:
        return float(total << shift)
    return total / (1 << -shift)
