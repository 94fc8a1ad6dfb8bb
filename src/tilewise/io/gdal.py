"""GDAL settings: a small block cache per process (GDAL's default is 5% of RAM)."""

from __future__ import annotations

import os

#: GDAL's block cache, per process, taken out of the budget. Halo blocks are cached by
#: `io.blocks`, so GDAL's cache need only serve the writer.
GDAL_CACHE = 16 * 1024 * 1024


def configure_gdal() -> None:
    """Cap GDAL's block cache before the first block is read, here and in worker processes
    (which inherit the environment); a user's own GDAL_CACHEMAX wins."""
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE // 2**20))
