"""The tile job: what one worker does for one tile, start to finish.

A job computes every output of the pipeline on its part of one driving tile, then writes the
outputs whose sinks take parallel writes itself and sends the others back to the driver. The
work object is sent to each worker once; jobs carry only the tile's position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import subblocks
from ..errors import TileError
from ..graph import OpNode
from ..io import Sink, Source
from ..io import blocks as block_reads
from ..io.retry import retrying
from ..pipeline import Pipeline
from ..plan import Job
from ..regions import Box


@dataclass(frozen=True)
class Failed:
    """A tile whose op failed, when the run goes on (`on_error="continue"`)."""

    message: str


def compute_tile(pipeline: Pipeline, read_cache: int, job: Job, block: int | None = None
                 ) -> tuple[np.ndarray, ...]:
    """Every output on the job's tile, the op chain run in sub-blocks of side `block`."""
    # Each process sizes its cache of decoded halo blocks the same way, from the plan.
    block_reads.cache.capacity = read_cache
    return subblocks.compute(pipeline, job.box, job.index, block)


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
    #: The side of the sub-blocks the op chain runs on (None: the tile whole).
    block: int | None = None
    keep_going: bool = False
    #: Per output, the tiles it has already (when outputs' journals differ after a crash).
    done: tuple[np.ndarray | None, ...] = ()
    #: Workers may be on other machines: write only what they may, and make it durable here.
    remote: bool = False

    def __call__(self, job: Job) -> tuple[np.ndarray | None, ...] | Failed:
        try:
            arrays = compute_tile(self.pipeline, self.read_cache, job, self.block)
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
    block: int | None = None

    def __call__(self, job: Job) -> tuple[Any, ...]:
        arrays = compute_tile(self.pipeline, self.read_cache, job, self.block)
        return tuple(kernel(arrays[i], job.boxes[i]) for i, kernel in self.kernels)



@dataclass(frozen=True, eq=False)
class WarmUp:
    """What a worker process does once started, before its memory is measured: import the
    ops' and the outputs' modules (by unpickling them: a format's module, and its library, is
    imported by its first file) and read one pixel of each file, which initialises the format
    libraries (GDAL registers its drivers and opens the file)."""

    ops: tuple[Any, ...]
    sources: tuple[Source, ...]
    sinks: tuple[Sink, ...] = ()

    @classmethod
    def of(cls, pipeline: Pipeline, sinks: Sequence[Sink] = ()) -> WarmUp:
        return cls(tuple(n.op for n in pipeline.nodes if isinstance(n, OpNode)),
                   tuple(n.source for n in pipeline.sources if n.source.paths), tuple(sinks))

    def __call__(self) -> None:
        for source in self.sources:
            source.read(Box.of_shape(tuple(1 for _ in source.shape)))
