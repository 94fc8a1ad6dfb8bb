"""Pages of memory-mapped files and shared memory, dropped from this process once read or written.

A process's resident set counts every page of a mapping it has touched (`RssFile` for a file,
`RssShmem` for shared memory in /proc/PID/status), until the mapping is closed: reading a whole
memory-mapped input tile by tile, or writing a memory-mapped output, would make a run as
resident as the file is large. Once a tile's window is copied out (or its data written in), its
pages are dropped from this process with `madvise(MADV_DONTNEED)`: the data stays in the page
cache or the shared memory block (a written page stays dirty there, to be written back), and a
later access maps it again.
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
