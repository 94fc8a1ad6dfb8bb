"""The tile job: what one worker does for one tile, start to finish.

A job computes every output of the pipeline on its part of one driving tile, then writes the
outputs whose sinks take parallel writes itself and sends the others back to the driver. The
work object is sent to each worker once; jobs carry only the tile's position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import TileError
from ..io import Sink
from ..io import blocks as block_reads
from ..io.retry import retrying
from ..pipeline import Pipeline
from ..plan import Job


@dataclass(frozen=True)
class Failed:
    """A tile whose op failed, when the run goes on (`on_error="continue"`)."""

    message: str


def compute_tile(pipeline: Pipeline, read_cache: int, job: Job) -> tuple[np.ndarray, ...]:
    # Each process sizes its cache of decoded halo blocks the same way, from the plan.
    block_reads.cache.capacity = read_cache
    return pipeline.compute(job.box, job.index)


@dataclass(frozen=True, eq=False)
class TileWork:
    """One tile job of the output pass: compute every output, write those written in workers.

    A sink's `write` returns once the data is handed to the file system, not once it is
    durable: the driver's recorder makes it durable before journaling the tile.
    """

    pipeline: Pipeline
    #: One per output; None for an output that needs no more writing.
    sinks: tuple[Sink | None, ...]
    read_cache: int
    keep_going: bool = False
    #: Per output, the tiles it has already (when outputs' journals differ after a crash).
    done: tuple[np.ndarray | None, ...] = ()
    #: Workers may be on other machines: write only what they may, and make it durable here.
    remote: bool = False

    def __call__(self, job: Job) -> tuple[np.ndarray | None, ...] | Failed:
        try:
            arrays = compute_tile(self.pipeline, self.read_cache, job)
        except TileError as exc:
            if self.keep_going:
                return Failed(str(exc))
            raise
        out: list[np.ndarray | None] = []
        for i, (sink, array, box) in enumerate(zip(self.sinks, arrays, job.boxes,
                                                   strict=True)):
            if sink is None or box.size == 0 or (self.done and self.done[i] is not None
                                                 and self.done[i][job.flat]):
                out.append(None)
            elif sink.written_by_workers(self.remote):
                retrying(sink.write, box, array)
                if self.remote:
                    sink.sync(box)
                out.append(None)
            else:
                out.append(array)
        return tuple(out)


@dataclass(frozen=True, eq=False)
class ReduceWork:
    """One tile of a reduction sweep: compute the images, run each reduction's kernel."""

    pipeline: Pipeline
    kernels: tuple[tuple[int, Callable[[np.ndarray, Any], Any]], ...]
    read_cache: int

    def __call__(self, job: Job) -> tuple[Any, ...]:
        arrays = compute_tile(self.pipeline, self.read_cache, job)
        return tuple(kernel(arrays[i], job.boxes[i]) for i, kernel in self.kernels)
