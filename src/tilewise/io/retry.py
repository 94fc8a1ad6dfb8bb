"""Bounded retries with back-off for I/O errors that may pass (a network share, a busy disk)."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: errno values worth another try; a missing file or a full disk is not among them.
TRANSIENT = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT,
                       errno.ECONNRESET, errno.ECONNABORTED, errno.ESTALE})
ATTEMPTS = 4
#: Seconds before the first retry; each next wait is four times longer (0.2, 0.8, 3.2 s).
FIRST_WAIT = 0.2


def retrying(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, tried again after a transient `OSError`, up to `ATTEMPTS` times in all."""
    for attempt in range(ATTEMPTS):
        try:
            return call(*args)
        except OSError as exc:
            if exc.errno not in TRANSIENT or attempt == ATTEMPTS - 1:
                raise
            time.sleep(FIRST_WAIT * 4**attempt)
    raise AssertionError("unreachable")
