"""Open file handles, cached per process or per thread, never pickled.

GDAL datasets must not be shared between threads, so GeoTIFF readers keep one per thread;
Zarr arrays and memory maps are safe to share, so one per process is enough. Readers key a
handle by path and modification time, so a file rewritten between runs is opened afresh.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

_per_thread = threading.local()
_per_process: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()


def version(path: str) -> tuple[str, int]:
    """A cache key that changes when the file at `path` is replaced."""
    return (path, os.stat(path).st_mtime_ns)


def thread_handle(key: tuple[str, int], opener: Callable[[str], Any]) -> Any:
    cache = _per_thread.__dict__.setdefault("handles", {})
    if key not in cache:
        cache[key] = opener(key[0])
    return cache[key]


def process_handle(key: tuple[str, int], opener: Callable[[str], Any]) -> Any:
    with _lock:
        if key not in _per_process:
            _per_process[key] = opener(key[0])
        return _per_process[key]


def forget(path: str) -> list[Any]:
    """Drop this process's and this thread's handles of `path`; return them to be closed."""
    with _lock:
        handles = [_per_process.pop(k) for k in [k for k in _per_process if k[0] == path]]
    cache = _per_thread.__dict__.get("handles", {})
    handles += [cache.pop(k) for k in [k for k in cache if k[0] == path]]
    return handles
