"""Dask arrays as sources: `tw.open(dask_array)` reads windows by computing them.

A window is computed with dask's synchronous scheduler in whichever tilewise worker reads it
(tilewise already runs tiles in parallel); regular chunks go through the block cache, so the
chunks a halo reaches into are computed once per process, not once per tile. The source's
identity, for a resumed run, is the graph's name (dask's token of how the array is made):
its values are never computed to identify it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..regions import Box
from .base import Source
from .blocks import read_blocked


def is_dask_array(obj: object) -> bool:
    """Whether `obj` is a dask array (without importing dask.array if nobody has)."""
    import sys

    module = sys.modules.get("dask.array")
    return module is not None and isinstance(obj, module.Array)


@dataclass(frozen=True, eq=False)
class DaskSource(Source):
    """A dask array, read window by window; its graph goes to worker processes as it is
    (holding no data but what it was made from)."""

    format: ClassVar[str] = "dask"
    array: Any = None

    @classmethod
    def of(cls, array: Any, axes: tuple[str, ...], meta: dict[str, Any] | None = None
           ) -> DaskSource:
        return cls(tuple(array.shape), np.dtype(array.dtype), axes, tuple(array.chunksize),
                   meta or {}, None, array)

    def fingerprint(self) -> dict[str, Any]:
        return {"source": "dask", "format": self.format, "name": self.array.name,
                "shape": list(self.shape), "dtype": str(self.dtype)}

    def read(self, box: Box) -> np.ndarray:
        regular = all(len(set(c[:-1])) <= 1 and c[-1] <= c[0]
                      for c in self.array.chunks if c)
        if regular:
            data = read_blocked(("dask", self.array.name), box, self.shape, self.blocks,
                                self.dtype, self._compute)
        else:
            data = self._compute(box)
        data.flags.writeable = False
        return data

    def _compute(self, box: Box) -> np.ndarray:
        return np.array(self.array[box.slices].compute(scheduler="sync"), self.dtype)
