"""Cheap identities of an input's content, so that a resumed run notices a changed input.

Hashing a whole multi-gigabyte input before every run would cost as much as reading it. A file
is identified by its size, its modification time and a hash of its first and last MiB (where
headers, tile indexes and most edits land); a folder (a Zarr array) by the name, size and
modification time of each file inside, since its chunks are thousands of files. An object in
an object store (`s3://...`) is identified by its size and ETag, a prefix (a Zarr array) by
those of every object under it; a location fsspec cannot look into (a GDAL virtual path, a
server that answers no HEAD) by its location alone.

An in-memory array has no modification time, so its bytes are hashed (see `array_digest`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import objectstore
from .location import VSI, is_local, scheme

#: Bytes hashed at each end of a file.
CHECK_BYTES = 1 << 20
#: Bytes of a non-contiguous array copied at a time to be hashed.
DIGEST_CHUNK = 1 << 22


def of_files(paths: Sequence[str]) -> dict[str, Any]:
    """The identity of the content of the files or folders at `paths` (JSON-able)."""
    if len(paths) == 1:
        return of_file(paths[0])
    parts = [of_file(p) for p in paths]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    return {"size": sum(p.get("size", 0) for p in parts), "files": len(parts),
            "check": digest.hexdigest()}


def of_file(path: str, storage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Size, modification time and a hash of the ends: for a folder (Zarr), of its files; for
    a URL, what the store says (`storage`: its fsspec options)."""
    if not is_local(path):
        if scheme(path) == VSI:
            return {}
        try:
            return objectstore.identity(path, storage)
        except (ImportError, OSError, ValueError):
            return {}
    if os.path.isdir(path):
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names)
        stats = [os.stat(f) for f in files]
        digest = hashlib.sha256()
        for f, st in zip(files, stats, strict=True):
            digest.update(f"{os.path.relpath(f, path)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return {"size": sum(s.st_size for s in stats), "files": len(files),
                "check": digest.hexdigest()}
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(CHECK_BYTES))
        if st.st_size > 2 * CHECK_BYTES:
            f.seek(-CHECK_BYTES, os.SEEK_END)
        digest.update(f.read(CHECK_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "check": digest.hexdigest()}


def array_digest(array: np.ndarray) -> str:
    """A SHA-256 digest of an array's values in C order, made without copying the array.

    Linear in the array's size, at 1.8 GB/s on one core of a CPU with SHA instructions (most
    x86 since 2017-2019 and ARMv8; BLAKE2b ran at 0.9 GB/s on the same machine): a contiguous
    array is hashed in place through its buffer; any other (a strided view, Fortran order) is
    hashed in C order through chunks of `DIGEST_CHUNK` bytes, so equal values give the same
    digest whatever the layout. Shape and dtype are not part of it; an object array's digest
    is that of its objects' identities, not their values.
    """
    digest = hashlib.sha256()
    if array.flags.c_contiguous:
        digest.update(_raw(array))
        return digest.hexdigest()
    flags = ["external_loop", "buffered", "zerosize_ok", "refs_ok"]
    size = max(1, DIGEST_CHUNK // max(1, array.itemsize))
    for chunk in np.nditer(array, flags=flags, buffersize=size, order="C"):
        digest.update(_raw(np.ascontiguousarray(chunk)))
    return digest.hexdigest()


def _raw(array: np.ndarray) -> memoryview | np.ndarray:
    """The bytes of a C-contiguous array, uncopied (an object array's are its pointers)."""
    if array.dtype.hasobject:
        return memoryview(array)
    return array.reshape(-1).view(np.uint8)
