"""Pages of shared mappings (shared memory, memory-mapped files), dropped once read.

A process's resident set counts every page of a mapping it has touched (`RssShmem` for shared
memory, `RssFile` for a file, in /proc/PID/status) until the mapping is closed: worker processes
reading an in-memory input from shared memory tile by tile would each show as much of it as
they had touched, counted again per worker. Once a tile's window is copied out, its pages are
dropped from this process with `madvise(MADV_DONTNEED)`: the data stays in the shared memory
block (or the page cache), and a later access maps it again.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np

#: madvise's advice number (sys/mman.h).
MADV_DONTNEED = 4


def _madvise():
    try:
        call = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # not a POSIX libc: pages stay until the map is closed
        return None
    call.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return call


_advise = _madvise()


def drop_mapped(view: np.ndarray) -> None:
    """Drop from this process the pages that `view` spans, which must lie in a shared mapping
    of a file or of shared memory (dropped pages of private memory would read back as zeros)."""
    if _advise is None or view.size == 0:
        return
    low, high = np.lib.array_utils.byte_bounds(view)
    start = low // mmap.PAGESIZE * mmap.PAGESIZE
    _advise(start, high - start, MADV_DONTNEED)
