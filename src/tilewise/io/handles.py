"""Open file handles, cached per process or per thread, never pickled, and bounded.

GDAL datasets must not be shared between threads, so GeoTIFF readers keep one per thread;
Zarr arrays and memory maps are safe to share, so one per process is enough. Readers key a
handle by path and modification time (`version`), then whatever else tells handles of one
file apart (a TIFF's series and level), so a file rewritten between runs is opened afresh.

Each cache is a least-recently-used one of at most `CAPACITY` handles: the process's cache, and
each thread's. A source that spans many files (a stack of thousands) would otherwise keep all of
them open and run out of file descriptors. An evicted handle with a `close` method that belongs
to one thread (a GDAL dataset) is closed; a process-wide handle (a Zarr array, a memory map,
shared memory) is only dropped, since another thread may still be reading through it, and the
garbage collector frees it once nobody does.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .location import is_local

#: Most handles kept open by the process's cache, and by each thread's.
CAPACITY = 64


class _LRU:
    """Handles by key, the least recently used evicted past `CAPACITY`."""

    def __init__(self, close_evicted: bool) -> None:
        self.handles: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.close_evicted = close_evicted

    def get(self, key: tuple[Any, ...], opener: Callable[[str], Any]) -> Any:
        if key in self.handles:
            self.handles.move_to_end(key)
            return self.handles[key]
        handle = self.handles[key] = opener(key[0])
        while len(self.handles) > CAPACITY:
            _, old = self.handles.popitem(last=False)
            if self.close_evicted and hasattr(old, "close"):
                old.close()
        return handle

    def pop(self, path: str) -> list[Any]:
        return [self.handles.pop(k) for k in [k for k in self.handles if k[0] == path]]


_per_thread = threading.local()
_per_process = _LRU(close_evicted=False)
_lock = threading.Lock()


def _thread_cache() -> _LRU:
    cache = getattr(_per_thread, "handles", None)
    if cache is None:
        cache = _per_thread.handles = _LRU(close_evicted=True)
    return cache


def version(path: str) -> tuple[str, int]:
    """A cache key that changes when the file at `path` is replaced (a URL's never does)."""
    return (path, os.stat(path).st_mtime_ns if is_local(path) else 0)


def thread_handle(key: tuple[Any, ...], opener: Callable[[str], Any]) -> Any:
    """This thread's handle for `key`, opened by `opener(path)` if it has none."""
    return _thread_cache().get(key, opener)


def process_handle(key: tuple[Any, ...], opener: Callable[[str], Any]) -> Any:
    """This process's handle for `key`, opened by `opener(path)` if it has none."""
    with _lock:
        return _per_process.get(key, opener)


def forget(path: str) -> list[Any]:
    """Drop this process's and this thread's handles of `path`; return them to be closed."""
    with _lock:
        handles = _per_process.pop(path)
    return handles + _thread_cache().pop(path)


def clear() -> None:
    """Drop every handle of this process and this thread (a reused worker process, before a
    run whose outputs may replace files that the handles of an earlier run still name)."""
    with _lock:
        _per_process.handles.clear()
    for old in _thread_cache().handles.values():
        if hasattr(old, "close"):
            old.close()
    _thread_cache().handles.clear()
