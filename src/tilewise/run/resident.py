"""Resident memory of the run's process tree: the driver and every process it started.

This is what `memory=` bounds and what the fixed part of a run is measured as: the sum of the
resident set sizes of this process and its descendants (worker processes, multiprocessing's
resource tracker), read from the operating system (psutil) rather than assumed.
"""

from __future__ import annotations

import psutil

#: A worker process, once started, holds about this many times what this process held when
#: tilewise was imported (the same interpreter and libraries, plus the ops' modules).
WORKER_RATIO = 1.1
#: multiprocessing's resource tracker: one more, small, interpreter.
TRACKER = 16 * 1024 * 1024


def _rss() -> int:
    return psutil.Process().memory_info().rss


#: Bytes resident in this process right after tilewise and its libraries were imported.
AT_IMPORT = _rss()


def tree() -> int:
    """Bytes resident now in this process and all its descendants."""
    me = psutil.Process()
    total = _rss()
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # it ended between the listing and the reading
            continue
    return total


def workers_estimate(workers: int) -> int:
    """Bytes that `workers` worker processes will hold once started, before any is: to refuse a
    budget that cannot hold them without starting them (they are measured once started)."""
    return round(workers * WORKER_RATIO * AT_IMPORT) + TRACKER
