"""Real demo rasters by name: from a local folder, a cache, or fetched once from PyPI.

The `localtileserver==1.0.0` wheel on PyPI ships real GeoTIFFs. A dataset is looked up, in
order, in `$TILEWISE_DATA` (a folder laid out like the project's shared data: `dem/srtm90.tif`,
`satellite/landsat.tif`, or flat), then in the cache (`$TILEWISE_CACHE`, default
`~/.cache/tilewise`), and otherwise fetched with `pip download --no-deps` and read from the
wheel. Every file is checked against its SHA-256 before use. A download says so on stderr, in
one line, before it starts: it is a ~34 MB wheel, which takes a while on a slow link.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass

from .errors import InputError, ParameterError

WHEEL = "localtileserver==1.0.0"
#: The wheel's size, for the line that announces a download (33,681,956 bytes).
WHEEL_MB = 34


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: str
    filename: str
    member: str
    sha256: str
    description: str


DATASETS = {d.name: d for d in (
    Dataset("srtm90", "dem", "srtm90.tif", "localtileserver/tiler/data/srtm90.tif",
            "4cfc724096b8d4b3395b9a3fea9c5b251ad816d6395a47aa626bff037e18fcd1",
            "SRTM 90 m elevation, Sierra Nevada: 2465 x 4269 int16, EPSG:4326"),
    Dataset("co_elevation", "dem", "co_elevation_roi.tif",
            "localtileserver/tiler/data/co_elevation_roi.tif",
            "351697f701ff7bb62c294bbf1240d2236116c51405df12f1d1814aab96a06404",
            "~10 m elevation, Colorado: 633 x 1007 float32, EPSG:4269"),
    Dataset("landsat", "satellite", "landsat.tif", "localtileserver/tiler/data/landsat.tif",
            "a975165abd0f643e7865b2ba9f19d02eb8eb57a274cdcd4bdacca30107c81b66",
            "Landsat 7 ETM+ bands 1-7, Great Salt Lake: 7 x 1482 x 1489 uint8, EPSG:4326"),
)}


def path(name: str) -> str:
    """The local path of dataset `name`, fetching it on first use."""
    if name not in DATASETS:
        raise ParameterError(f"dataset {name!r} is unknown; choose one of {', '.join(DATASETS)}")
    ds = DATASETS[name]
    folder = os.environ.get("TILEWISE_DATA")
    if folder:
        for candidate in (os.path.join(folder, ds.folder, ds.filename),
                          os.path.join(folder, ds.filename)):
            if os.path.exists(candidate):
                return _checked(candidate, ds)
    cache = os.environ.get("TILEWISE_CACHE",
                           os.path.join(os.path.expanduser("~"), ".cache", "tilewise"))
    target = os.path.join(cache, ds.filename)
    if not os.path.exists(target):
        os.makedirs(cache, exist_ok=True)
        print(download_message(ds, cache), file=sys.stderr, flush=True)
        data = _fetch(ds)
        with open(target + ".partial", "wb") as out:
            out.write(data)
        os.replace(target + ".partial", target)
    return _checked(target, ds)


def download_message(ds: Dataset, cache: str) -> str:
    """The line printed before a dataset is fetched: what, from where, how big, to where."""
    home = os.path.expanduser("~")
    shown = "~" + cache[len(home):] if cache.startswith(home + os.sep) else cache
    return (f"tilewise: downloading {ds.filename} (part of {WHEEL} from PyPI, ~{WHEEL_MB} MB) "
            f"into {shown} ...")


def _fetch(ds: Dataset) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                               "-d", tmp, WHEEL], capture_output=True, text=True)
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if done.returncode != 0 or not wheels:
            last = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
            raise InputError(f"cannot fetch dataset {ds.name!r}: pip download {WHEEL} failed: "
                             f"{last[0]}")
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as zf:
            data = zf.read(ds.member)
    if hashlib.sha256(data).hexdigest() != ds.sha256:
        raise InputError(f"dataset {ds.name!r} from {WHEEL} does not have the expected SHA-256")
    return data


def _checked(file: str, ds: Dataset) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != ds.sha256:
        raise InputError(f"{file} is not dataset {ds.name!r}: its SHA-256 does not match")
    return file
