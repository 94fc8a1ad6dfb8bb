"""FITS images and cubes through astropy, read window by window.

A FITS file is a list of HDUs; `hdu=` picks one by index, by EXTNAME (`"SCI"`) or by EXTNAME
and EXTVER (`("SCI", 2)`), by default the first holding an image. A window is read through
astropy's `hdu.section`, which reads only that window's bytes from the file (only the tiles it
touches of a tile-compressed image) and scales them as `hdu.data` would: BSCALE and BZERO
applied, BLANK pixels NaN. The image's dtype is astropy's (float32 for scaled 16-bit integers,
uint16 for BZERO = 32768, floats for integers with BLANK) in native byte order. FITS stores an
array row by row, so the blocks are rows (the compression tiles for a compressed image).

Axes are named after CTYPE where every axis has a known kind and no two share one: celestial
longitude `x`, latitude `y`, spectral `z`, time `t`, Stokes `c`; else by position as any array
(`yx`, `zyx`, ...). The WCS (astropy's, with the file's distortion tables) is the `wcs`
metadata field, which slicing and rescaling keep right (see `meta`); an image with BLANK
pixels has NaN as its nodata.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..axes import parse_axes
from ..errors import InputError, ParameterError
from ..regions import Box
from . import handles
from .base import Source

if TYPE_CHECKING:
    from astropy.io import fits
    from astropy.wcs import WCS

#: The first bytes of every FITS file: its primary header's first card.
MAGIC = b"SIMPLE  ="
#: Axis names by the kind of world axis astropy finds in CTYPE.
KINDS = {"lng": "x", "lat": "y", "spec": "z", "time": "t", "stokes": "c"}


def is_fits(path: str, head: bytes) -> bool:
    """Whether a file starting with `head` is a FITS file, whatever its suffix."""
    return head.startswith(MAGIC)


def _open_read(path: str) -> fits.HDUList:
    # astropy is imported when a FITS file is opened: importing it costs a second.
    from astropy.io import fits

    return fits.open(path, mode="readonly", lazy_load_hdus=True)


@dataclass(frozen=True, eq=False)
class FitsSource(Source):
    """One image HDU of a FITS file."""

    format: ClassVar[str] = "fits"
    #: The index of the HDU read.
    hdu: int = 0

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None = None,
             hdu: int | str | tuple[str, int] | None = None) -> FitsSource:
        try:
            hdus = _open_read(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path} as a FITS file: {exc}") from None
        with hdus:
            index = _choose(hdus, hdu, path)
            chosen = hdus[index]
            shape = tuple(chosen.shape)
            first = chosen.section[tuple(slice(0, 1) for _ in shape)]
            dtype = first.dtype.newbyteorder("=")
            tiles = getattr(chosen, "tile_shape", None)
            blocks = tuple(tiles) if tiles else (*(1 for _ in shape[:-1]), shape[-1])
            wcs = _wcs(chosen.header, hdus, path)
            meta: dict[str, Any] = {"wcs": wcs} if wcs is not None else {}
            nodata = _nodata(chosen.header, dtype)
            if nodata is not None:
                meta["nodata"] = nodata
        names = _axis_names(wcs, len(shape)) if axes is None else None
        return cls(shape, dtype, names or parse_axes(axes, len(shape), path),
                   tuple(min(b, n) for b, n in zip(blocks, shape, strict=True)), meta, path,
                   index)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "hdu": self.hdu}

    def read(self, box: Box) -> np.ndarray:
        if box.size == 0:  # astropy's section drops the axes of an empty window
            return np.empty(box.shape, self.dtype)
        hdus = handles.thread_handle(handles.version(self.path), _open_read)
        data = np.array(hdus[self.hdu].section[box.slices], dtype=self.dtype)
        data.flags.writeable = False
        return data


def _choose(hdus: fits.HDUList, hdu: Any, path: str) -> int:
    """The index of the HDU `hdu` names, or of the first image HDU holding data."""
    images = [i for i, h in enumerate(hdus) if getattr(h, "is_image", False) and h.shape]
    if hdu is None:
        if not images:
            raise InputError(f"{path} holds no image HDU with data")
        return images[0]
    try:
        index = hdu if isinstance(hdu, int) and not isinstance(hdu, bool) \
            else hdus.index_of(hdu)
        hdus[index]
    except (KeyError, IndexError, TypeError):
        names = ", ".join(f"{i} ({hdus[i].name})" for i in images) or "none"
        raise ParameterError(f"hdu={hdu!r} names no HDU of {path}; its image HDUs: "
                             f"{names}") from None
    if index not in images and index - len(hdus) not in images:
        raise ParameterError(f"hdu={hdu!r} of {path} is a {type(hdus[index]).__name__} "
                             "holding no image")
    return index % len(hdus)


def _wcs(header: fits.Header, hdus: fits.HDUList, path: str) -> WCS | None:
    """The HDU's WCS, or None where its header describes none (no CTYPE)."""
    from astropy.wcs import WCS, FITSFixedWarning

    if not any(k.startswith("CTYPE") for k in header):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            return WCS(header, hdus)
        except Exception as exc:  # wcslib raises several kinds on a malformed header
            warnings.warn(f"{path}: its WCS cannot be read and is left out: {exc}",
                          stacklevel=3)
            return None


def _axis_names(wcs: WCS | None, ndim: int) -> tuple[str, ...] | None:
    """Names from CTYPE (FITS axis 1 is the last NumPy axis), or None if some axis has no
    known kind or two share one."""
    if wcs is None or wcs.pixel_n_dim != ndim:
        return None
    kinds = {wcs.wcs.lng: "lng", wcs.wcs.lat: "lat", wcs.wcs.spec: "spec"}
    for i, kind in enumerate(wcs.world_axis_physical_types):
        if kind == "time":
            kinds[i] = "time"
        elif kind == "phys.polarization.stokes":
            kinds[i] = "stokes"
    names = [KINDS.get(kinds.get(i, ""), "") for i in reversed(range(ndim))]
    return tuple(names) if all(names) and len(set(names)) == ndim else None


def _nodata(header: fits.Header, dtype: np.dtype) -> float | None:
    """NaN for an integer image with BLANK pixels, which astropy reads as floats with NaN."""
    if header.get("BLANK") is None or header.get("BITPIX", 0) < 0 or dtype.kind != "f":
        return None
    return float("nan")
