"""The command line: `tilewise info PATH`, `tilewise preview PATH -o OUT.png`.

Exit codes: 0 done, 1 failed, 2 bad usage or bad input. A `TilewiseError` is printed as its
one sentence, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from dask.utils import format_bytes

from .errors import TilewiseError


def _size_on_disk(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def _band_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of band numbers") from None


def info(path: str) -> list[str]:
    """What `tilewise info` prints about one image, line by line."""
    from . import open as open_image
    from .io.geotiff import GeoTIFFSource

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
    lines.append(f"on disk    {format_bytes(_size_on_disk(path))}")
    source = image.node.source
    if isinstance(source, GeoTIFFSource):
        import rasterio

        with rasterio.open(source.path) as ds:
            factors = ds.overviews(1)
        lines.append(f"overviews  {', '.join(f'1/{f}' for f in factors) or 'none'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tilewise", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
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
        if args.command == "info":
            print("\n".join(info(args.path)))
        elif args.command == "preview":
            from .preview import render

            print(render(args.path, args.output, args.max_size, args.cmap, args.bands))
    except TilewiseError as exc:
        print(f"tilewise: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
