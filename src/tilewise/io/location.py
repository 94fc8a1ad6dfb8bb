"""Where an input lives: a local path, a URL (`s3://bucket/key`) or a GDAL virtual path.

Only local paths are made absolute, checked for existence and looked into: `os.path.abspath`
would turn `s3://b/k` into `/cwd/s3:/b/k` and collapse the `//` of `/vsizip//data/a.zip`.
"""

from __future__ import annotations

import os
import re

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: GDAL's virtual file systems (`/vsis3/`, `/vsicurl/`, `/vsizip/`, ...) count as one scheme.
VSI = "vsi"


def scheme(location: str) -> str | None:
    """The URL scheme of `location` (lower case), `VSI` for a GDAL virtual path, else None."""
    match = _URL.match(location)
    if match:
        return match.group(1).lower()
    if re.match(r"^/vsi[a-z0-9_]+/", location):
        return VSI
    return None


def is_local(location: str) -> bool:
    return scheme(location) is None


def resolve(location: str | os.PathLike[str]) -> str:
    """A local path made absolute; a URL or virtual path kept as it is."""
    text = os.fspath(location)
    return os.path.abspath(text) if is_local(text) else text


def suffix(location: str) -> str:
    """The lower-case suffix of the last part of a path or URL (`.tif`), or ''; a URL's query
    (`?token=...`) is not part of it."""
    if not is_local(location):
        location = re.split(r"[?#]", location, maxsplit=1)[0]
    return os.path.splitext(location.rstrip("/"))[1].lower()
