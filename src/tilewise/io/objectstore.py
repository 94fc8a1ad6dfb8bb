"""Object stores (S3 and whatever else fsspec reaches): options, whole-object reads and writes.

Credentials and the endpoint come from the usual environment variables, for both ways in:
fsspec/s3fs (botocore reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`,
...) and GDAL's `/vsis3/` (`AWS_S3_ENDPOINT`, `AWS_HTTPS`, `AWS_VIRTUAL_HOSTING`). Either
spelling of the endpoint serves both: `storage_options` derives s3fs's `endpoint_url` from
GDAL's variables, and `configure_gdal_endpoint` GDAL's from `AWS_ENDPOINT_URL`. Options given
as `storage_options=` win over the environment, and travel with sources and sinks to worker
processes (a cluster's workers need no environment of their own).

There is no rename in an object store and no append: objects are written whole, a PUT is
durable once it returns, and a conditional PUT (`If-Match` the ETag last written, or
`If-None-Match: *` to create) lets only one writer at a time keep an object.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .location import scheme

#: Schemes whose objects take conditional writes (S3 and its compatible servers).
CONDITIONAL = ("s3",)


def _endpoint_from_gdal() -> str | None:
    host = os.environ.get("AWS_S3_ENDPOINT")
    if not host:
        return None
    if "://" in host:
        return host
    secure = os.environ.get("AWS_HTTPS", "YES").upper() not in ("NO", "FALSE", "OFF", "0")
    return f"{'https' if secure else 'http'}://{host}"


def storage_options(url: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """fsspec's options for `url`: those given, with the endpoint from the environment when
    only GDAL's variables name it."""
    options = dict(given or {})
    if scheme(url) == "s3" and "endpoint_url" not in options \
            and "endpoint_url" not in options.get("client_kwargs", {}) \
            and not (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")):
        endpoint = _endpoint_from_gdal()
        if endpoint:
            options["endpoint_url"] = endpoint
    return options


def configure_gdal_endpoint() -> None:
    """Let GDAL's `/vsis3/` reach the endpoint botocore's `AWS_ENDPOINT_URL(_S3)` names, when
    GDAL's own `AWS_S3_ENDPOINT` is not set (a loopback or on-premises server)."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url or os.environ.get("AWS_S3_ENDPOINT"):
        return
    parts = urlsplit(url)
    os.environ["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
    os.environ.setdefault("AWS_HTTPS", "NO" if parts.scheme == "http" else "YES")
    os.environ.setdefault("AWS_VIRTUAL_HOSTING", "FALSE")


def filesystem(url: str, given: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem for `url` (cached by fsspec per options) and the path in it."""
    from fsspec.core import url_to_fs

    return url_to_fs(url, **storage_options(url, given))


def exists(url: str, given: Mapping[str, Any] | None = None) -> bool:
    fs, path = filesystem(url, given)
    return bool(fs.exists(path))


def read(url: str, given: Mapping[str, Any] | None = None) -> tuple[bytes, str | None] | None:
    """The object at `url` and its ETag, or None if there is none."""
    fs, path = filesystem(url, given)
    try:
        data = fs.cat_file(path)
        info = fs.info(path)
    except FileNotFoundError:
        return None
    return data, info.get("ETag")


def write(url: str, data: bytes, given: Mapping[str, Any] | None = None,
          replacing: str | bool | None = False) -> str | None:
    """Write the object at `url` whole; its new ETag. `replacing` an ETag: only if the object
    still has it; None: only if there is no object; False: unconditionally. A failed
    condition is an `OSError` (`FileExistsError` for an object that appeared)."""
    fs, path = filesystem(url, given)
    condition: dict[str, str] = {}
    if replacing is not False and scheme(url) in CONDITIONAL:
        condition = {"IfMatch": replacing} if replacing else {"IfNoneMatch": "*"}
    out = fs.pipe_file(path, data, **condition)
    return out.get("ETag") if isinstance(out, dict) else None


def remove(url: str, given: Mapping[str, Any] | None = None) -> None:
    """Remove the object at `url`, or every object under the prefix `url`."""
    fs, path = filesystem(url, given)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def identity(url: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What identifies the content at `url` without reading it: an object's size and ETag, or
    for a prefix (a Zarr array) the names, sizes and ETags of every object under it."""
    fs, path = filesystem(url, given)
    info = fs.info(path)
    if info.get("type") != "directory":
        return {"size": info.get("size"), "check": str(info.get("ETag") or info.get("mtime")
                                                           or info.get("LastModified"))}
    found = fs.find(path, detail=True)
    digest = hashlib.sha256()
    for name in sorted(found):
        item = found[name]
        tag = item.get("ETag") or item.get("mtime") or item.get("LastModified")
        digest.update(f"{name[len(path):]}:{item.get('size')}:{tag}".encode())
    return {"size": sum(item.get("size") or 0 for item in found.values()),
            "files": len(found), "check": digest.hexdigest()}
