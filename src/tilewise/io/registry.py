"""The formats tilewise reads and writes, and how an input finds its format.

Each format is a `Format` value: a name, the suffixes and URL schemes it accepts, an optional
sniffer that recognises its content, an opener and, if it writes, its sink class. The built-in
ones are listed here; another package adds one through the entry-point group `tilewise.formats`,
naming a `Format` object, e.g. in its pyproject.toml:

    [project.entry-points."tilewise.formats"]
    fits = "tilewise_fits:FORMAT"

Plug-ins are imported on the first lookup, once per process (`plugins.cache_clear()` forgets
them); a built-in name cannot be taken over. An application may also `register` a format for
its own process.

An input's format is, in this order: the one named by `format=`; for a URL, one that accepts its
scheme (then its suffix decides among those); for a local file, the first whose sniffer
recognises its first bytes (a file's content is surer than its name: a `.tif` may be a
GeoTIFF or an ImageJ stack, a `.dat` a TIFF); else its suffix. A list of files or a glob
pattern is a stack of files (`open_stack`), each file's format found as above.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from ..errors import InputError, ParameterError, UnsupportedFormatError
from .base import Sink, Source
from .location import VSI, scheme, suffix
from .stack import holds_files, open_files

#: The entry-point group third-party formats register under.
GROUP = "tilewise.formats"
#: Bytes a sniffer sees of a file.
HEAD_BYTES = 512
#: Remote locations GDAL reads through its virtual file systems.
GDAL_SCHEMES = ("s3", "gs", "az", "http", "https", VSI)


@dataclass(frozen=True)
class Format:
    """One format: how to recognise an input of it, open it, and (if writable) write it.

    `open(location, axes, **options)` returns a `Source`; `location` is an absolute path or a
    URL, `axes` None or the user's axis names. `options` lists the keyword options it takes.
    `sniff(path, head)` says whether a local file starting with the bytes `head` (b'' for a
    folder) is of this format; it may raise `UnsupportedFormatError` for content it recognises
    but cannot read. `folder` says the format is stored as a folder, not a file.
    `forwards_options` says it passes options it does not take itself to the formats of the
    files it opens (a stack of files), whose openers check them.
    """

    name: str
    open: Callable[..., Source]
    suffixes: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    sniff: Callable[[str, bytes], bool] | None = None
    sink: type[Sink] | str | None = None
    options: tuple[str, ...] = ()
    folder: bool = False
    forwards_options: bool = False


def _resolve(reference: str) -> Any:
    """The object a `"module:name"` reference names (`name` may be dotted: `Class.method`)."""
    module, _, name = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _deferred(reference: str) -> Callable[..., Any]:
    """The function `reference` names (of a module of this package, `"geotiff:is_tiff"`),
    imported on the first call: every format's module imported up front cost each process (the
    driver, every worker) Zarr's import and the OME-Zarr code's, 0.16 s and 12 MiB, for
    formats a run does not touch."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return _resolve(f"{__package__}.{reference}")(*args, **kwargs)

    return call


BUILTINS: tuple[Format, ...] = (
    # Before GeoTIFF: TIFF stacks, OME-TIFF and ImageJ files without GeoTIFF keys, by tifffile.
    Format("tiff", _deferred("tiff:TiffSource.open"), (".ome.tif", ".ome.tiff"), (),
           _deferred("tiff:is_stack"), options=("series", "level")),
    Format("geotiff", _deferred("geotiff:GeoTIFFSource.open"), (".tif", ".tiff"),
           GDAL_SCHEMES, _deferred("geotiff:is_tiff"), f"{__package__}.geotiff:GeoTIFFSink"),
    Format("zarr", _deferred("zarr_array:ZarrSource.open"), (".zarr",),
           ("s3", "gs", "http", "https"), _deferred("zarr_array:is_zarr"),
           f"{__package__}.zarr_array:ZarrSink", options=("storage_options",), folder=True),
    Format("npy", _deferred("npy:NpySource.open"), (".npy",), (), _deferred("npy:is_npy"),
           f"{__package__}.npy:NpySink"),
    Format("gdal", _deferred("gdal:GDALSource.open"),
           (".vrt", ".img", ".jp2", ".png", ".nc", ".hdf", ".h5", ""), GDAL_SCHEMES),
    # Written as a COG (see cog), read as any GeoTIFF: the geotiff sniffer recognises it first.
    Format("cog", _deferred("geotiff:GeoTIFFSource.open"), (".cog.tif", ".cog.tiff"),
           sink=f"{__package__}.cog:COGSink"),
    # A Zarr group with NGFF metadata (see ome_zarr); its levels are Zarr arrays.
    Format("ome-zarr", _deferred("ome_zarr:OMEZarrSource.open"), (".ome.zarr",), (),
           _deferred("ome_zarr:is_ome_zarr"), f"{__package__}.ome_zarr:OMEZarrSink",
           options=("level",), folder=True),
    Format("czi", _deferred("czi:CziSource.open"), (".czi",), (), _deferred("czi:is_czi"),
           options=("scene",)),
    Format("fits", _deferred("fits_image:FitsSource.open"), (".fits", ".fit", ".fts"), (),
           _deferred("fits_image:is_fits"), options=("hdu",)),
    # A folder of files (a list or a glob pattern goes to `open_stack` directly).
    Format("stack", lambda location, axes, **options: open_stack(location, axes, None, options),
           sniff=holds_files, options=("axis",), folder=True, forwards_options=True),
)


@cache
def plugins() -> tuple[Format, ...]:
    """The formats other packages register under `GROUP`, each imported once.

    One that fails to import, is no `Format` or takes a name already taken is left out with a
    warning naming it, so that a broken plug-in does not stop tilewise reading anything else.
    """
    found: list[Format] = []
    taken = {f.name for f in BUILTINS}
    for point in entry_points(group=GROUP):
        try:
            fmt = point.load()
        except Exception as exc:  # whatever a third party's import raises
            warnings.warn(f"tilewise format plug-in {point.name!r} ({point.value}) cannot be "
                          f"imported, left out: {type(exc).__name__}: {exc}", stacklevel=2)
            continue
        if not isinstance(fmt, Format):
            warnings.warn(f"tilewise format plug-in {point.name!r} ({point.value}) is a "
                          f"{type(fmt).__name__}, not a tilewise.io.Format; left out",
                          stacklevel=2)
        elif fmt.name in taken:
            warnings.warn(f"tilewise format plug-in {point.name!r} ({point.value}) takes the "
                          f"name {fmt.name!r} of another format; left out", stacklevel=2)
        else:
            taken.add(fmt.name)
            found.append(fmt)
    return tuple(found)


#: Formats an application registered at run time (`register`), in order.
REGISTERED: list[Format] = []


def register(fmt: Format) -> None:
    """Add a format for this process: for an application's own format, without a package
    and an entry point. A name already taken is refused."""
    if not isinstance(fmt, Format):
        raise ParameterError(f"register takes a tilewise.io.Format, not {type(fmt).__name__}")
    if any(f.name == fmt.name for f in formats()):
        raise ParameterError(f"format name {fmt.name!r} is taken")
    REGISTERED.append(fmt)


def formats() -> tuple[Format, ...]:
    """Every known format: built-ins first (they win a tie), then registered, then plug-ins."""
    return tuple(_in_order())


def _in_order() -> Iterator[Format]:
    """Every known format in that order, plug-ins imported only when reached: finding them
    reads the metadata of every installed package (~10 ms), which a file a built-in format
    recognises never needs."""
    yield from BUILTINS
    yield from REGISTERED
    yield from plugins()


def by_name(name: str) -> Format:
    for fmt in _in_order():
        if fmt.name == name:
            return fmt
    known = ", ".join(f.name for f in formats())
    raise UnsupportedFormatError(f"unknown format {name!r}; the known formats are {known}")


def open_location(location: str, axes: Any, format: str | None,
                  options: dict[str, Any]) -> Source:
    """The source for `location` (an absolute path or a URL) in its format (see above)."""
    fmt = by_name(format) if format is not None else None
    url = scheme(location)
    if url is not None:
        fmt = fmt or _for_url(location, url)
        if url not in fmt.schemes:
            raise UnsupportedFormatError(
                f"cannot read {location}: format {fmt.name!r} does not read {url} locations")
    else:
        fmt = _for_local(location, fmt)
    unknown = sorted(set(options) - set(fmt.options))
    if unknown and not fmt.forwards_options:
        valid = ", ".join(fmt.options) or "none"
        raise ParameterError(f"format {fmt.name!r} takes no option {unknown[0]!r} "
                             f"(for {location}; its options: {valid})")
    return fmt.open(location, axes, **options)


def open_stack(spec: Any, axes: Any, format: str | None, options: dict[str, Any]) -> Source:
    """Many files as one array (see `stack`): each file opened in `format`, else its own."""
    return open_files(spec, axes, format, options, open_location)


def _for_url(location: str, url: str) -> Format:
    accepting = [f for f in formats() if url in f.schemes]
    if not accepting:
        raise UnsupportedFormatError(f"cannot read {location}: no format reads {url} locations")
    for fmt in accepting:
        if suffix(location) in fmt.suffixes:
            return fmt
    names = ", ".join(f.name for f in accepting)
    raise UnsupportedFormatError(
        f"cannot read {location}: no format reads {url} locations with suffix "
        f"{suffix(location)!r} (formats reading {url}: {names}); name one with format=")


def _for_local(path: str, fmt: Format | None) -> Format:
    if not os.path.lexists(path):
        raise InputError(f"input {path} does not exist")
    folder = os.path.isdir(path)
    if fmt is None:
        head = b"" if folder else _head(path)
        fmt = next((f for f in _in_order()
                    if f.sniff is not None and f.folder == folder and f.sniff(path, head)), None)
    if fmt is None and folder:
        fmt = next((f for f in _in_order() if f.folder and suffix(path) in f.suffixes), None)
        if fmt is None:
            raise InputError(f"input {path} is a directory that no format reads (a Zarr array "
                             "holds a zarr.json or .zarray file)")
    if fmt is None:
        fmt = _by_suffix(path, formats(), "read")
    if folder and not fmt.folder:
        raise InputError(f"input {path} is a directory; format {fmt.name!r} reads files")
    return fmt


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _by_suffix(path: str, candidates: tuple[Format, ...], verb: str) -> Format:
    """The format whose suffix `path` ends with; a compound one (`.cog.tif`) wins."""
    end, lower = suffix(path), path.lower()
    for fmt in candidates:
        if any(s.count(".") > 1 and lower.endswith(s) for s in fmt.suffixes):
            return fmt
    for fmt in candidates:
        if end in fmt.suffixes:
            return fmt
    known = "; ".join(f"{f.name} ({', '.join(s for s in f.suffixes if s)})"
                      for f in candidates)
    raise UnsupportedFormatError(
        f"cannot {verb} {path}: unknown suffix {end!r} (known: {known}); name one with format=")


def sink_class(path: str, format: str | None = None) -> type[Sink]:
    """The sink class that writes `path`: that of the format named, else of its suffix."""
    writers = tuple(f for f in formats() if f.sink is not None)
    if format is None:
        fmt = _by_suffix(path, writers, "write")
    else:
        fmt = by_name(format)
        if fmt.sink is None:
            names = ", ".join(f.name for f in writers)
            raise UnsupportedFormatError(f"cannot write {path}: format {fmt.name!r} is read "
                                         f"only (formats that write: {names})")
    return _resolve(fmt.sink) if isinstance(fmt.sink, str) else fmt.sink
