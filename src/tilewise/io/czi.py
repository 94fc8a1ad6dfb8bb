"""Zeiss CZI files through pylibCZIrw (libCZI), read as T, C, Z, Y, X.

A CZI stores subblocks: tiles of 2-D planes, each at one (T, C, Z) position and one place of a
large plane that may be a mosaic of many tiles grouped into scenes. tilewise reads one scene
(`scene=`; by default the first, or the whole plane of a file that declares none) as a 5-D image
with axes ("t", "c", "z", "y", "x"), always these five, one long where the file has one position.
A window is read plane by plane as a region of interest, which libCZI composes from the
subblocks it touches, at full resolution. The blocks are one plane deep and as large as the
largest full-resolution subblock of the first plane (a whole plane for a single-field
acquisition), so that tiles align to subblocks.

Metadata: pixel sizes (`Scaling/Items/Distance`, in metres in the file) as the `physical` field
in micrometres, and channel names as `band_names`. Grey pixel types are read (Gray8, Gray16,
Gray32Float); colour ones (Bgr24, ...) and further dimensions (H, I, R, V) are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import InputError, ParameterError, UnsupportedFormatError
from ..regions import Box
from . import handles, physical
from .blocks import BlockedSource

if TYPE_CHECKING:
    from pylibCZIrw import czi

#: The first bytes of every CZI file (the magic of its file header segment).
MAGIC = b"ZISRAWFILE"
#: The grey pixel types and their NumPy types.
DTYPES = {"Gray8": np.dtype("uint8"), "Gray16": np.dtype("uint16"),
          "Gray32Float": np.dtype("float32")}
#: Plane dimensions besides T, C, Z that a CZI may have; read only where one position long
#: (B, the legacy block index, always is).
OTHER_DIMS = ("R", "I", "H", "V", "B")


def is_czi(path: str, head: bytes) -> bool:
    """Whether a file starting with `head` is a CZI, whatever its suffix."""
    return head.startswith(MAGIC)


@dataclass(frozen=True, eq=False)
class CziSource(BlockedSource):
    """One scene of a CZI file, at full resolution."""

    format: ClassVar[str] = "czi"
    #: The scene read (None: the file declares none), and the file coordinates of this
    #: image's first T, C, Z, Y and X.
    scene: int | None = None
    first: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    @classmethod
    def open(cls, path: str, axes: str | tuple[str, ...] | None = None,
             scene: int | None = None) -> CziSource:
        try:
            reader = _reader(path)
        except Exception as exc:  # libCZI raises RuntimeError and others on a damaged file
            raise InputError(f"cannot read {path} as a CZI file: {exc}") from None
        try:
            bounds = reader.total_bounding_box
            for dim in OTHER_DIMS:
                lo, hi = bounds.get(dim, (0, 1))
                if hi - lo > 1:
                    raise UnsupportedFormatError(
                        f"{path} has {hi - lo} positions along CZI dimension {dim}; tilewise "
                        "reads CZI planes by T, C and Z only")
            scene, rect = _scene(reader, scene, path)
            dtype = _dtype(reader.pixel_types, path)
            tcz = [bounds.get(d, (0, 1)) for d in "TCZ"]
            first = (*(lo for lo, _ in tcz), rect.y, rect.x)
            shape = (*(hi - lo for lo, hi in tcz), rect.h, rect.w)
            blocks = (1, 1, 1, *_subblock(reader, rect, first))
            meta = _metadata(reader.metadata, shape[1])
        finally:
            reader.close()
        names = ("t", "c", "z", "y", "x")
        if axes is not None:
            names, meta = physical.renamed_axes(names, meta, axes, path)
        return cls(shape, dtype, names, blocks, meta, path, scene, first)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "scene": self.scene}

    def version(self) -> tuple[Any, ...]:
        return (*handles.version(self.path), self.scene)

    def read_window(self, box: Box) -> np.ndarray:
        reader = handles.thread_handle(self.version(), _reader)
        out = np.empty(box.shape, self.dtype)
        y, x = (s + f for s, f in zip(box.start[3:], self.first[3:], strict=True))
        roi = (x, y, box.shape[4], box.shape[3])
        for index in np.ndindex(*box.shape[:3]):
            plane = {d: s + i + f for d, s, i, f in
                     zip("TCZ", box.start[:3], index, self.first[:3], strict=True)}
            out[index] = reader.read(roi=roi, plane=plane, scene=self.scene)[..., 0]
        return out


def _reader(path: str) -> czi.CziReader:
    """libCZI is imported on the first CZI opened: a process reading none keeps its 7 MB."""
    from pylibCZIrw import czi

    return czi.CziReader(path)


def _scene(reader: czi.CziReader, scene: Any, path: str) -> tuple[int | None, Any]:
    """The scene to read (None where the file declares none) and its bounding rectangle."""
    scenes = reader.scenes_bounding_rectangle
    if not scenes:
        if scene not in (None, 0):
            raise ParameterError(f"scene={scene!r}: {path} declares no scenes; leave scene "
                                 "out to read its whole plane")
        return None, reader.total_bounding_rectangle
    if scene is None:
        scene = min(scenes)
    if isinstance(scene, bool) or scene not in scenes:
        raise ParameterError(f"scene={scene!r} is not one of the scenes of {path} "
                             f"({', '.join(map(str, sorted(scenes)))})")
    return scene, scenes[scene]


def _dtype(types: Mapping[int, str], path: str) -> np.dtype:
    kinds = sorted(set(types.values()))
    if len(kinds) != 1:
        raise UnsupportedFormatError(f"{path} mixes pixel types {kinds} across its channels, "
                                     "which tilewise cannot hold in one image")
    if kinds[0] not in DTYPES:
        raise UnsupportedFormatError(f"{path} holds {kinds[0]} pixels; tilewise reads the grey "
                                     f"CZI pixel types ({', '.join(DTYPES)})")
    return DTYPES[kinds[0]]


def _subblock(reader: czi.CziReader, rect: Any, first: tuple[int, ...]) -> tuple[int, int]:
    """Height and width of the largest full-resolution subblock of the first plane."""
    sizes: list[tuple[int, int]] = []

    def seen(index: int, info: Any) -> bool:
        sizes.append((info.logicalRect.h, info.logicalRect.w))
        return True

    reader.enumerate_subblocks_subset(seen, plane=dict(zip("TCZ", first[:3], strict=True)),
                                      roi=(rect.x, rect.y, rect.w, rect.h), only_layer0=True)
    if not sizes:
        return rect.h, rect.w
    return min(rect.h, max(h for h, _ in sizes)), min(rect.w, max(w for _, w in sizes))


def _metadata(document: Mapping[str, Any], channels: int) -> dict[str, Any]:
    """Pixel sizes in micrometres and channel names, from the file's XML metadata."""
    meta: dict[str, Any] = {}
    root = (document.get("ImageDocument") or {}).get("Metadata") or {}
    items = ((root.get("Scaling") or {}).get("Items") or {}).get("Distance") or []
    sizes = {}
    for item in items if isinstance(items, list) else [items]:
        name = str(item.get("@Id", "")).lower()
        size = physical.axis(physical.metres_to_micrometres(item.get("Value", "")),
                             "micrometer")
        if name in ("z", "y", "x") and size is not None:
            sizes[name] = size
    if sizes:
        meta["physical"] = {a: sizes[a] for a in ("z", "y", "x") if a in sizes}
    image = ((root.get("Information") or {}).get("Image") or {})
    found = ((image.get("Dimensions") or {}).get("Channels") or {}).get("Channel") or []
    found = found if isinstance(found, list) else [found]
    names = [str(c.get("@Name") or "") for c in found]
    if len(names) == channels and all(names):
        meta["band_names"] = tuple(names)
    return meta
