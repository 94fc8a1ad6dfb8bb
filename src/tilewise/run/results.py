"""What a run tells its caller: progress while it works, a report when it is done."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """What a run has done so far; passed to a `progress=` callable after every tile."""

    done: int
    total: int
    pixels: int
    elapsed: float


@dataclass(frozen=True)
class Report:
    """What a finished run did: `tiles` computed now, `resumed` found done by earlier runs.

    `tile` is the tile shape on the driving grid (the output with the most axes and the
    finest pixels, when outputs are on different grids).
    """

    tiles: int
    tile: dict[str, int]
    executor: str
    workers: int
    memory: int
    seconds: float
    resumed: int = 0
