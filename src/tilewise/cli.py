"""The command line: run, plan, ops, info, preview.

Exit codes: 0 done; 1 the run failed (an op raised on a tile, the disk filled, ...); 2 bad usage,
a bad pipeline file or bad input, found before any work; 130 interrupted. A `TilewiseError` is
printed as its one sentence, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dask.utils import format_bytes

from .errors import OutputError, RunFailure, TilewiseError
from .executors import EXECUTORS
from .run.results import Report

if TYPE_CHECKING:
    from .run.options import Options
    from .spec import Spec


def _size_on_disk(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        if os.path.isdir(path):
            total += sum(os.path.getsize(os.path.join(root, f))
                         for root, _, files in os.walk(path) for f in files)
        else:
            total += os.path.getsize(path)
    return total


def _band_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of band numbers") from None


def info(path: str) -> list[str]:
    """What `tilewise info` prints about one image, line by line."""
    import rasterio

    from . import open as open_image
    from .io.gdal import GDALSource

    image = open_image(path)
    meta = image.meta
    crs = meta.get("crs")
    lines = [
        f"path       {os.path.abspath(path)}",
        f"shape      {' x '.join(map(str, image.shape))}  axes {''.join(image.axes)}",
        f"dtype      {image.dtype}  ({format_bytes(image.nbytes)} in memory)",
        f"blocks     {' x '.join(map(str, image.blocks))}",
        f"crs        {crs.to_string() if crs is not None else 'none'}",
        f"transform  {tuple(meta['transform'])[:6] if meta.get('transform') else 'none'}",
        f"nodata     {meta.get('nodata')}",
    ]
    if meta.get("band_names"):
        lines.append(f"bands      {', '.join(meta['band_names'])}")
    source = image.node.source
    lines.append(f"on disk    {format_bytes(_size_on_disk(source.paths))}")
    lines.append(f"format     {_format(source)}")
    if isinstance(source, GDALSource):
        with rasterio.open(source.path) as ds:
            factors = ds.overviews(1)
        lines.append(f"overviews  {', '.join(f'1/{f}' for f in factors) or 'none'}")
    if meta.get("physical"):
        lines.append("physical   " + ", ".join(
            f"{a} {p['size']:.6g} {p['unit'] or ''}".rstrip() for a, p in meta["physical"].items()))
    if meta.get("wcs") is not None:
        lines.append(f"wcs        {_wcs(meta['wcs'], image.axes)}")
    return lines


def _format(source: object) -> str:
    """The format of a source, and which of the images its file holds it reads."""
    from .io.czi import CziSource
    from .io.fits_image import FitsSource
    from .io.stack import FileStack
    from .io.tiff import TiffSource, layout

    name = source.format  # type: ignore[attr-defined]
    if isinstance(source, TiffSource):
        series, levels = layout(source.path, source.series)
        return f"{name} (series {source.series} of {series}, level {source.level} of {levels})"
    if isinstance(source, CziSource):
        return f"{name} (scene {'none' if source.scene is None else source.scene})"
    if isinstance(source, FitsSource):
        return f"{name} (HDU {source.hdu})"
    if isinstance(source, FileStack):
        return (f"{name} of {len(source.members)} {source.members[0].format} files along "
                f"{source.axes[source.axis]}")
    return name


def _wcs(wcs: object, axes: Sequence[str]) -> str:
    """Each image axis's CTYPE and unit, and the world coordinates of the first pixel."""
    lin = wcs.wcs  # type: ignore[attr-defined]
    names = [axes[-1 - i] if i < len(axes) else "-" for i in range(len(lin.ctype))]
    kinds = ", ".join(f"{n} {t or 'linear'} ({u})" for n, t, u in
                      zip(names, lin.ctype, lin.cunit, strict=True))
    first = wcs.pixel_to_world_values(*([0] * len(lin.ctype)))  # type: ignore[attr-defined]
    return f"{kinds}; pixel 0 at ({', '.join(f'{float(v):.8g}' for v in first)})"


def ops() -> list[str]:
    """What `tilewise ops` prints: each built-in op, its parameters and its halo."""
    import inspect

    from .library import BUILTINS

    lines = []
    for name in sorted(BUILTINS):
        op = BUILTINS[name]
        lines.append(f"{name}  ({op.inputs} input{'s' if op.inputs > 1 else ''})  {op.summary}")
        for key, (hint, default) in op.params.items():
            shown = "required" if default is inspect.Parameter.empty else f"default {default!r}"
            lines.append(f"    {key}: {_hint(hint)}, {shown}")
        lines.append(f"    halo: {op.halo}")
    return lines


def _hint(hint: object) -> str:
    import typing

    if typing.get_origin(hint) is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint)


def _options(spec_options: dict, args: argparse.Namespace) -> dict:
    options = dict(spec_options)
    for key in ("executor", "workers", "memory", "tile", "on_error", "scheduler"):
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    return options


def _tile(text: str) -> int | dict[str, int]:
    """`512`, or per axis: `y=256,x=512`."""
    try:
        if "=" not in text:
            return int(text)
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a tile size such as 512 or y=256,x=512") from None


RESUME = "finished tiles are kept; run the same command again to resume"


def hint(exc: RunFailure) -> str:
    """What is true after a failed run: whether anything is kept, and what a re-run does."""
    if exc.kept is None:
        return "nothing was written; fix the cause and run again"
    return (f"{exc.kept} finished tile(s) are kept: run the same command again to resume; if "
            "you change the pipeline to fix this, add --overwrite to start over")


def summary(report: Report, paths: Sequence[str]) -> list[str]:
    """What `tilewise run` prints when it is done."""
    if report.tiles == 0 and report.resumed:
        return [f"all {len(paths)} output(s) are already complete ({report.resumed} tiles, "
                "done by an earlier run); nothing to do (--overwrite computes them again)"]
    tile = " x ".join(f"{n} {a}" for a, n in report.tile.items())
    resumed = f" ({report.resumed} done by an earlier run)" if report.resumed else ""
    return [f"wrote {len(paths)} output(s) in {report.seconds:.1f} s: {report.tiles} tiles of "
            f"{tile}{resumed}, {report.executor} x {report.workers}",
            *(f"  {path}" for path in paths)]


def run(args: argparse.Namespace) -> int:
    from . import spec as pipeline_file
    from .run.options import Options

    spec = pipeline_file.load(args.pipeline)
    progress = False if args.quiet else (True if sys.stderr.isatty() else "log")
    # A bad option is refused before any folder is made; the executor made here (a dask
    # cluster connected to, or started) serves the run and is closed after it.
    checked = Options.of(**_options(spec.options, args), progress=progress)
    with checked.running():
        return _run(spec, args, checked)


def _run(spec: Spec, args: argparse.Namespace, checked: Options) -> int:
    from .io.location import is_local
    from .run import save

    options = {"executor": checked.runner, "memory": checked.budget,
               "tile": checked.tile, "on_error": checked.on_error}
    for path in filter(is_local, spec.paths):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as exc:
            raise OutputError(f"the folder of output {path} cannot be made: "
                              f"{exc.strerror or exc}") from None
    try:
        report = save(list(spec.images), spec.paths, overwrite=args.overwrite,
                      progress=checked.progress, **options)
    except RunFailure as exc:
        print(f"tilewise: run failed: {exc} ({hint(exc)})", file=sys.stderr)
        return 1
    except TilewiseError:
        raise
    except OSError as exc:
        print(f"tilewise: run failed: {exc} ({RESUME})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Zarr's blocking calls make a coroutine, then hand it to zarr's event loop: one
        # interrupted in between is never run, and Python warns of it as it is collected
        # (seen once in a fresh-clone CI run). That says nothing to the user.
        warnings.filterwarnings("ignore", r"coroutine .* was never awaited", RuntimeWarning)
        print(f"tilewise: interrupted ({RESUME})", file=sys.stderr)
        return 130
    if not args.quiet:
        print("\n".join(summary(report, spec.paths)))
    if args.preview:
        from .preview import render

        for out in spec.outputs:
            picture = os.path.splitext(out.path)[0] + ".png"
            shown = render(out.path, picture, cmap=out.cmap or "viridis")
            if not args.quiet:
                print(f"  preview {shown}")
    return 0


def plan(args: argparse.Namespace) -> int:
    from . import spec as pipeline_file
    from .run import plan as plan_run
    from .summary import describe

    spec = pipeline_file.load(args.pipeline)
    options = _options(spec.options, args)
    options.pop("on_error", None)
    planned = plan_run(list(spec.images), spec.paths, overwrite=args.overwrite, **options)
    print("\n".join(describe(planned)))
    return 0


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", help="the pipeline file (YAML)")
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default=None)
    parser.add_argument("--scheduler", default=None,
                        help="a dask scheduler address (tcp://host:8786) for --executor dask; "
                             "default: a LocalCluster started for the run")
    parser.add_argument("--workers", type=int, default=None, help="default: the CPU count")
    parser.add_argument("--memory", default=None,
                        help="memory budget such as 2GiB (default: half of what is free)")
    parser.add_argument("--tile", type=_tile, default=None,
                        help="tile size in pixels (512, or y=256,x=512); default: planned")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs, recomputing everything")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tilewise", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="run a pipeline file")
    _run_options(go)
    go.add_argument("--quiet", action="store_true", help="no progress and no summary")
    go.add_argument("--preview", action="store_true",
                    help="also write a PNG quick-look beside each output")
    go.add_argument("--on-error", choices=("stop", "continue"), default=None,
                    help="on a failing tile: stop (default), or finish every other tile first")
    _run_options(commands.add_parser("plan", help="explain how a pipeline file would run"))
    commands.add_parser("ops", help="list the built-in ops, their parameters and halos")
    show = commands.add_parser("info", help="describe an image: shape, axes, blocks, CRS, ...")
    show.add_argument("path")
    look = commands.add_parser("preview", help="write a downsampled PNG quick-look of an image")
    look.add_argument("path")
    look.add_argument("-o", "--output", required=True, help="the PNG to write")
    look.add_argument("--max-size", type=int, default=1024, help="longest side, in pixels")
    look.add_argument("--cmap", default="viridis", help="matplotlib colour map for one band")
    look.add_argument("--bands", type=_band_list, default=None,
                      help="1-based band(s) to draw: one, or three as RGB (e.g. 3,2,1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run(args)
        if args.command == "plan":
            return plan(args)
        if args.command == "ops":
            print("\n".join(ops()))
        elif args.command == "info":
            print("\n".join(info(args.path)))
        elif args.command == "preview":
            from .preview import render

            print(render(args.path, args.output, args.max_size, args.cmap, args.bands))
    except TilewiseError as exc:
        print(f"tilewise: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tilewise: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tilewise: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
