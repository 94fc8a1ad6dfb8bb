"""Makes written tiles durable and journals them, in a thread of the driver, off the workers.

A worker writes its tile's chunks and goes on to the next tile; here the files the tile touched
are fsynced, and only then is the tile journaled and handed to the output's finisher (the
GeoTIFF copy). Workers so never wait for the disk. At most `depth` tiles wait here (the driver
blocks beyond), so a crash loses at most the tiles being computed and these.

Outputs written by workers on other machines (a cluster) are `durable` when reported: those
workers synced their own writes (an object store's PUT is durable once done), which an fsync
here could not reach.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Set

import numpy as np

from .io import Sink
from .io.base import Finisher
from .journal import Journal
from .plan import Job

#: Seconds between checks, while waiting, that the recording thread has not failed.
POLL = 0.1


class Recorder:
    def __init__(self, sinks: Mapping[int, Sink], journals: Mapping[int, Journal],
                 finishers: Mapping[int, Finisher], done: Mapping[int, np.ndarray],
                 depth: int, durable: Set[int] = frozenset()) -> None:
        self.sinks, self.journals, self.finishers, self.done = sinks, journals, finishers, done
        self.durable = durable
        self.waiting: queue.Queue[Job | None] = queue.Queue(maxsize=max(1, depth))
        self.error: BaseException | None = None
        #: Tiles recorded so far.
        self.recorded = 0
        self.thread = threading.Thread(target=self._run, daemon=True, name="tilewise-record")
        self.thread.start()

    def put(self, job: Job) -> None:
        """Queue a written tile; blocks while `depth` tiles wait."""
        self._put(job)

    def close(self, *, raising: bool = True) -> None:
        """Record every queued tile, stop, and raise what went wrong in the thread."""
        if self.thread.is_alive():
            self._put(None)
            self.thread.join()
        if raising and self.error is not None:
            raise self.error

    def _put(self, item: Job | None) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.waiting.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        while (job := self.waiting.get()) is not None:
            try:
                outputs = [i for i in self.sinks if not self.done[i][job.flat]]
                for i in outputs:
                    if job.boxes[i].size and i not in self.durable:
                        self.sinks[i].sync(job.boxes[i])
                for i in outputs:
                    if i in self.journals:
                        self.journals[i].record(job.flat)
                    if i in self.finishers and job.boxes[i].size:
                        self.finishers[i].tile_done(job.boxes[i])
                self.recorded += 1
            except BaseException as exc:
                self.error = exc
                return
