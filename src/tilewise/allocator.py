"""The C allocator set to give large arrays back to the operating system as soon as they are freed.

glibc's malloc serves blocks from 128 KiB up from mmap, but raises that threshold to the size of
every such block freed, up to 32 MiB: after a first tile, a tile's arrays come from its heaps,
which keep freed memory and grow when the next arrays do not fit between live ones. A run's
resident memory then creeps above what its tiles hold (30 MiB over 256 MiB, measured). Fixing
the threshold at `MMAP_THRESHOLD` makes every array at least that large a mapping of its own,
unmapped when freed, while smaller ones (sub-blocks' arrays, source blocks of 512 x 512) are
reused from the heap. Not lower: at 1 MiB every 512 x 512 float32 block GDAL decodes or the
GeoTIFF copy reads was mapped, faulted in and unmapped (with every thread's TLB flushed), and
W2 on 2 threads spent 4.0 s of 14 CPU seconds in the kernel (2.8 s at 8 MiB: 7.1-7.5 s ->
6.3 s of wall time). It is set in the driver when a run starts and in every worker process;
elsewhere (not glibc) nothing is changed.
"""

from __future__ import annotations

import ctypes

#: Arrays from this size up are mapped and unmapped on their own.
MMAP_THRESHOLD = 8 * 1024 * 1024
#: mallopt's parameter number for the threshold (malloc.h).
M_MMAP_THRESHOLD = -3
#: Free memory at the top of the heap kept for the next arrays, not trimmed (glibc's own rule:
#: twice the mmap threshold).
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
#: mallopt's parameter number for the trim threshold (malloc.h).
M_TRIM_THRESHOLD = -1


def _mallopt():
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None


_set = _mallopt()


def return_large_arrays() -> None:
    """Fix glibc's mmap threshold at `MMAP_THRESHOLD` (calling it again changes nothing)."""
    if _set is not None:
        _set(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def keep_small_arrays() -> None:
    """Keep `TRIM_THRESHOLD` of freed heap for the next small arrays. A dask nanny starts its
    workers with `MALLOC_TRIM_THRESHOLD_=65536`, which gives the heap back to the system after
    nearly every free: then each sub-block's arrays fault in fresh pages, and a chain run in
    sub-blocks of 256 x 256 takes twice as long (measured on the W2 chain)."""
    if _set is not None:
        _set(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
