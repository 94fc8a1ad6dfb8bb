"""TIFF stacks, OME-TIFF and ImageJ hyperstacks through tifffile, read window by window.

GDAL reads a TIFF as one image of one page, so a TIFF without GeoTIFF keys that holds several
planes, OME-XML or ImageJ metadata is this format's (`is_stack`, tried before the GeoTIFF
sniffer); a GeoTIFF still opens through GDAL.

tifffile groups pages into series (`series=`: an OME image, or a run of same-shaped pages) and
a series' reduced-resolution copies into levels (`level=`). Axes are the series' (OME's
dimension order, ImageJ's TZCYXS, a guess for other stacks) in tilewise's names: T, C, Z, Y, X
in lower case, samples (RGB) as `c`, an unknown stacking axis as `z` (then `t`). A window is
read through tifffile's Zarr store of the level (`ZarrTiffStore`): only the tiles or strips it
touches are read and decoded, never the whole file, and those tiles or strips are the source's
blocks, to which tiles align.

Metadata: OME's PhysicalSizeX/Y/Z and TimeIncrement, or ImageJ's resolution, `spacing` and
`finterval`, as the `physical` field (scaled for a level); OME channel names as `band_names`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import tifffile

from .. import meta as metadata
from ..errors import InputError, ParameterError
from ..regions import Box
from . import handles, physical
from .blocks import BlockedSource
from .geotiff import count_planes, is_tiff, quiet_tifffile

#: tifffile's axis letters with a tilewise name; others are lower-cased, Q and I (unknown, a
#: sequence of images) named after the first free of `STACKING`.
LETTERS = {"T": "t", "C": "c", "Z": "z", "Y": "y", "X": "x", "S": "c"}
STACKING = ("z", "t")


def is_stack(path: str, head: bytes) -> bool:
    """Whether a file starting with `head` is a TIFF that tifffile should read: no GeoTIFF
    keys, and several planes, OME-XML or ImageJ metadata."""
    if not is_tiff(path, head):
        return False
    with quiet_tifffile():
        try:
            with tifffile.TiffFile(path) as tif:
                if tif.pages.first.is_geotiff:
                    return False
                return tif.is_ome or tif.is_imagej or count_planes(tif) > 1
        except Exception:  # a damaged TIFF: GDAL's reader names the damage
            return False


def axis_names(letters: str) -> tuple[str, ...]:
    """tilewise names for tifffile's axis letters, all different (`"QYX"` -> z, y, x)."""
    names: list[str | None] = []
    for letter in letters:
        name = LETTERS.get(letter)
        names.append(name if name is not None and name not in names else None)
    for i, letter in enumerate(letters):
        if names[i] is None:
            free = [n for n in STACKING if n not in names] if letter in "QI" else []
            name = free[0] if free else letter.lower()
            while name in names:
                name += "_"
            names[i] = name
    return tuple(n for n in names if n is not None)


class _Opened:
    """A TIFF file open in one thread, and the Zarr array of one level of one series."""

    def __init__(self, path: str, series: int, level: int) -> None:
        # Imported here: this module is imported to sniff every TIFF, GeoTIFFs included.
        import zarr

        self.tif = tifffile.TiffFile(path)
        self.store = self.tif.series[series].aszarr(level=level)
        self.array = zarr.open_array(self.store, mode="r")

    def close(self) -> None:
        self.store.close()
        self.tif.close()


@dataclass(frozen=True, eq=False)
class TiffSource(BlockedSource):
    """One level of one series of a TIFF, as tifffile reads it."""

    format: ClassVar[str] = "tiff"
    series: int = 0
    level: int = 0

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None = None, series: int = 0,
             level: int = 0) -> TiffSource:
        with quiet_tifffile():
            try:
                tif = tifffile.TiffFile(path)
            except (OSError, tifffile.TiffFileError) as exc:
                raise InputError(f"cannot read {path} as a TIFF: {exc}") from None
            with tif:
                found = tif.series
                series = _index(series, len(found), "series", path)
                chosen = found[series]
                level = _index(level, len(chosen.levels), "level", path)
                opened = _Opened(path, series, level)
                try:
                    arr = opened.array
                    shape, dtype, chunks = tuple(arr.shape), np.dtype(arr.dtype), arr.chunks
                finally:
                    opened.close()
                names = axis_names(chosen.axes)
                meta = _metadata(tif, chosen, series, names)
        if level:
            factors = {a: Fraction(n, m) for a, n, m in zip(names, chosen.shape, shape,
                                                             strict=True)}
            meta = metadata.rescaled(meta, names, factors)
        if axes is not None:
            names, meta = physical.renamed_axes(names, meta, axes, path)
        return cls(shape, dtype, names, tuple(chunks), meta, path, series, level)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "series": self.series, "level": self.level}

    def version(self) -> tuple[Any, ...]:
        return (*handles.version(self.path), self.series, self.level)

    def read_window(self, box: Box) -> np.ndarray:
        opened = handles.thread_handle(self.version(),
                                       lambda p: _Opened(p, self.series, self.level))
        return np.asarray(opened.array[box.slices])


def _index(value: Any, count: int, name: str, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not -count <= value < count:
        raise ParameterError(f"{name}={value!r} is not one of the {count} {name} of {path} "
                             f"(0 to {count - 1})")
    return int(value) % count


def _metadata(tif: tifffile.TiffFile, series: Any, index: int,
              names: tuple[str, ...]) -> dict[str, Any]:
    """Physical pixel sizes and channel names, from OME-XML or ImageJ metadata."""
    meta: dict[str, Any] = {}
    if tif.is_ome and tif.ome_metadata:
        sizes, channels = _ome(tif.ome_metadata, series.name, index)
    elif tif.is_imagej and tif.imagej_metadata:
        sizes, channels = _imagej(tif.imagej_metadata, series.keyframe), None
    else:
        return meta
    found = {n: sizes[a] for a, n in zip(series.axes, names, strict=True)
             if sizes.get(a) is not None}
    if found:
        meta["physical"] = found
    if channels and "c" in names and len(channels) == series.shape[names.index("c")]:
        meta["band_names"] = tuple(channels)
    return meta


def _ome(xml: str, name: str | None, index: int
         ) -> tuple[dict[str, dict[str, Any] | None], list[str] | None]:
    """Pixel sizes (by tifffile axis letter) and channel names of the OME image of a series:
    the one of its name if only one has it, else the one at its index."""
    images = tifffile.xml2dict(xml).get("OME", {}).get("Image", [])
    images = images if isinstance(images, list) else [images]
    named = [im for im in images if name and im.get("Name") == name]
    image = named[0] if len(named) == 1 else images[index] if index < len(images) else {}
    pixels = image.get("Pixels", {})
    sizes = {a: physical.axis(pixels.get(f"PhysicalSize{a}"),
                              pixels.get(f"PhysicalSize{a}Unit", "µm")) for a in "XYZ"}
    sizes["T"] = physical.axis(pixels.get("TimeIncrement"),
                               pixels.get("TimeIncrementUnit", "s"))
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    names = [str(c.get("Name", "")) for c in channels]
    return sizes, names if names and all(names) else None


def _imagej(info: dict[str, Any], page: Any) -> dict[str, dict[str, Any] | None]:
    """Pixel sizes from an ImageJ file: its resolution tags (pixels per `unit`), `spacing`
    between slices and `finterval` between frames (seconds)."""
    unit = info.get("unit")
    sizes: dict[str, dict[str, Any] | None] = {}
    if unit and unit != "pixel":
        for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
            value = page.tags.get(tag)
            if value is not None and value.value[0]:
                sizes[letter] = physical.axis(value.value[1] / value.value[0], unit)
        sizes["Z"] = physical.axis(info.get("spacing"), unit)
    sizes["T"] = physical.axis(info.get("finterval"), "s")
    return sizes


def layout(path: str, series: int) -> tuple[int, int]:
    """How many series the TIFF at `path` holds, and how many levels its series `series`."""
    with quiet_tifffile(), tifffile.TiffFile(path) as tif:
        return len(tif.series), len(tif.series[series].levels)
