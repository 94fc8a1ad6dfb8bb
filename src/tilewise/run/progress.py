"""Progress of a sweep over tiles: a bar on a terminal, log lines in a batch job, a callback."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import psutil
from dask.utils import format_bytes

from .results import Progress

#: Seconds between progress lines when progress is logged rather than drawn.
LOG_EVERY = 10.0

ProgressSpec = bool | str | Callable[[Progress], None] | None


class Reporter:
    """`progress` is True (bar), "log" (lines on stderr), False (nothing), a callable, or
    None: a bar when stderr is a terminal, else nothing."""

    def __init__(self, progress: ProgressSpec, total: int, what: str = "tiles") -> None:
        self.callback = progress if callable(progress) else None
        self.log = progress == "log"
        self.bar = None
        if progress is True or (progress is None and sys.stderr.isatty()):
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="tile", desc=f"tilewise {what}",
                            dynamic_ncols=True)
        self.what = what
        self.total = total
        self.done = 0
        self.pixels = 0
        self.start = self.logged = time.perf_counter()

    def tile(self, pixels: int) -> None:
        self.done += 1
        self.pixels += pixels
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self._rate(now):.1f} Mpx/s, {_resident()} resident",
                                     refresh=False)
        if self.log and (now - self.logged >= LOG_EVERY or self.done == self.total):
            self.logged = now
            left = (self.total - self.done) * (now - self.start) / self.done
            print(f"tilewise {self.what}: {self.done}/{self.total} tiles "
                  f"({100 * self.done / self.total:.0f}%), {self._rate(now):.1f} Mpx/s, "
                  f"ETA {duration(left)}, {_resident()} resident", file=sys.stderr,
                  flush=True)
        if self.callback is not None:
            self.callback(Progress(self.done, self.total, self.pixels, now - self.start))

    def _rate(self, now: float) -> float:
        return self.pixels / 1e6 / max(now - self.start, 1e-9)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _resident() -> str:
    return format_bytes(psutil.Process().memory_info().rss)


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
