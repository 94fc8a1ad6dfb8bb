"""The output pass: decide from the journals what is left, compute it, make it final.

Each output's journal is locked first, then read: an output is started afresh, resumed,
only committed (every tile written before a crash) or left alone (complete). The tiles any
active output still lacks are computed once for all of them; workers write what they can,
the driver writes the rest, and the recorder makes every written tile durable before
journaling it. When no tile is left, each output is finished (a GeoTIFF copied out of its
staging file) and moved into place. On failure, staged outputs that can be resumed are kept;
the others are removed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import journal
from ..errors import RunFailure, TileError
from ..io import Sink
from ..io.base import Finisher
from ..io.retry import retrying
from ..pipeline import Pipeline
from ..plan import Job, Plan
from ..recording import Recorder
from .loop import drive
from .options import Options
from .results import Report
from .tilejob import Failed, TileWork


def write(pipeline: Pipeline, sinks: Sequence[Sink], plan: Plan, options: Options,
          described: Pipeline | None = None,
          prints: list[dict[str, Any]] | None = None) -> Report:
    """Run the tiles no earlier run finished, journal each, then move outputs into place.

    `described` is the pipeline as the user built it, lazy values unresolved, whose
    fingerprints the journals keep (default: `pipeline`); `prints`, those fingerprints if the
    caller computed them already.
    """
    started = time.perf_counter()
    journals: dict[int, journal.Journal | journal.StoreJournal] = {}
    try:
        for i, sink in enumerate(sinks):
            if sink.resumable:  # locked before anything is decided or touched
                journals[i] = journal.held(sink)
        prints = prints or journal.fingerprints(described or pipeline, sinks, plan.grid.tile)
        tiles = OutputPass(pipeline, tuple(sinks), plan, options, journals, prints).run()
    finally:
        for log in journals.values():
            log.close()
    grid = plan.grid
    return Report(tiles, dict(zip(pipeline.axes, grid.tile, strict=True)), options.runner.name,
                  options.runner.workers, options.budget, time.perf_counter() - started,
                  resumed=len(grid) - tiles)


class OutputPass:
    """One pass over the tiles for the outputs that need it."""

    def __init__(self, pipeline: Pipeline, sinks: tuple[Sink, ...], plan: Plan,
                 options: Options,
                 journals: dict[int, journal.Journal | journal.StoreJournal],
                 prints: list[dict[str, Any]]) -> None:
        self.pipeline, self.sinks, self.plan, self.options = pipeline, sinks, plan, options
        self.journals = journals
        tiles = len(plan.grid)
        self.prints = prints
        self.states = [journal.state(sink, fp, tiles, options.overwrite) if sink.resumable
                       else journal.State("fresh", np.zeros(tiles, bool))
                       for sink, fp in zip(sinks, self.prints, strict=True)]
        self.active = [i for i, st in enumerate(self.states) if st.action != "done"]
        self.writing = {i for i in self.active if self.states[i].action in ("fresh", "resume")}
        self.todo = np.zeros(tiles, bool)
        for i in self.active:
            self.todo |= ~self.states[i].done
        self.finishers: dict[int, Finisher] = {}
        self.failures: list[str] = []
        #: Tiles made durable and journaled by this run.
        self.recorded = 0

    def run(self) -> int:
        """Compute and commit; the number of tiles computed."""
        self._mark_complete()
        try:
            self._start()
            if self.todo.any():
                self._compute()
            if self.failures:
                raise TileError(
                    f"{len(self.failures)} of {int(self.todo.sum())} tiles failed, the first: "
                    f"{self.failures[0]}" + ("" if len(self.failures) == 1
                                              else f"; the last: {self.failures[-1]}"))
            for i in self.active:
                self.sinks[i].commit(self.options.overwrite,
                                     self.finishers[i].result() if i in self.finishers else None)
                if i in self.journals:
                    self.journals[i].complete()
        except BaseException as exc:
            for finisher in self.finishers.values():
                finisher.cancel()
            for i in self.active:
                if not self.sinks[i].resumable:
                    self.sinks[i].abort()
            if isinstance(exc, RunFailure) and any(s.resumable for s in self.sinks):
                exc.kept = len(self.todo) - int(self.todo.sum()) + self.recorded
            raise
        return int(self.todo.sum())

    def _mark_complete(self) -> None:
        """Journal outputs that were moved into place just before a crash as complete."""
        for i, st in enumerate(self.states):
            if st.action == "done" and not st.complete:
                self.journals[i].start(self.prints[i], self.plan.grid.tile, len(self.plan.grid),
                                       False, st.runs)
                self.journals[i].complete()

    def _start(self) -> None:
        grid = self.plan.grid
        for i in self.active:
            sink, st = self.sinks[i], self.states[i]
            if st.action == "fresh":
                sink.abort()
                sink.create()
            if sink.resumable:
                self.journals[i].start(self.prints[i], grid.tile, len(grid),
                                       st.action == "fresh", st.runs)
            finisher = sink.finisher()
            if finisher is not None:
                self.finishers[i] = finisher
                for flat in np.flatnonzero(st.done):
                    box = self.plan.job(int(flat)).boxes[i]
                    if box.size:
                        finisher.tile_done(box)

    def _compute(self) -> None:
        writing, states = self.writing, self.states
        n = len(self.sinks)
        # Outputs whose journals agree need no mask (the usual case: no copies to workers).
        agree = all((states[i].done == states[j].done).all() for i in writing for j in writing)
        remote = self.options.runner.capabilities.remote_workers
        work = functools.partial(
            TileWork, sinks=tuple(self.sinks[i] if i in writing else None for i in range(n)),
            read_cache=self.plan.read_cache, block=self.plan.block,
            keep_going=self.options.keep_going,
            done=() if agree else tuple(states[i].done if i in writing else None
                                        for i in range(n)), remote=remote)
        # Remote workers report a tile once their writes are durable: no fsync here for them.
        durable = {i for i in writing if remote and self.sinks[i].written_by_workers(True)}
        self.recorder = Recorder({i: self.sinks[i] for i in writing}, self.journals,
                                 self.finishers, {i: states[i].done for i in writing},
                                 self.options.runner.workers, durable)
        jobs = (job for job in self.plan.jobs() if self.todo[job.flat])
        try:
            drive(self.pipeline, self.plan, self.options.runner, work, self._written,
                  self.options.progress, "tiles", jobs=jobs, total=int(self.todo.sum()))
        except BaseException:
            self.recorder.close(raising=False)  # what is written and queued is kept
            raise
        finally:
            self.recorded = self.recorder.recorded
        self.recorder.close()

    def _written(self, job: Job, result: tuple[np.ndarray | None, ...] | Failed) -> None:
        """A tile is back from a worker: write what the driver writes, then record it."""
        if isinstance(result, Failed):
            self.failures.append(result.message)
            return
        for i, array in enumerate(result):
            if array is not None and i in self.writing:
                retrying(self.sinks[i].write, job.boxes[i], array)
        self.recorder.put(job)
