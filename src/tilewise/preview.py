"""Quick-look pictures of large images, read at low resolution, never whole.

A GeoTIFF is read through `rasterio` at the preview's size, so GDAL uses the file's overviews
when it has them; a Zarr array or `.npy` file is read with a stride. One band is drawn with a
colour map and a colour bar; three or more are drawn as RGB from the first three bands, each
stretched between its 2nd and 98th percentile.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .errors import ParameterError


def sample(path: str, max_size: int = 1024) -> tuple[np.ndarray, float | None]:
    """The image at `path` shrunk so that its longest side is at most `max_size`, as
    (bands, rows, cols) float64 with nodata as NaN, and the nodata value."""
    import rasterio

    from . import open as open_image
    from .io.gdal import GDALSource

    if max_size < 2:
        raise ParameterError(f"max_size={max_size} must be at least 2")
    image = open_image(path)
    source = image.node.source
    nodata = image.meta.get("nodata")
    spatial = image.shape[-2:]
    step = max(1, math.ceil(max(spatial) / max_size))
    out = out_shape(spatial, step)
    if isinstance(source, GDALSource):
        from rasterio.enums import Resampling

        with rasterio.open(source.path) as ds:
            data = ds.read(out_shape=(ds.count, *out), resampling=Resampling.average,
                           masked=False)
    else:
        # Planes other than the last two axes: every channel, the middle of anything else.
        index = tuple(slice(None) if a == "c" else n // 2
                      for a, n in zip(image.axes[:-2], image.shape[:-2], strict=True))
        index += (slice(None, None, step), slice(None, None, step))
        data = np.asarray(_array(source)[index]).reshape(-1, *out_shape(spatial, step))
    data = data.astype(np.float64)
    if nodata is not None:
        data[data == nodata] = np.nan
    return data, nodata


def out_shape(spatial: tuple[int, ...], step: int) -> tuple[int, int]:
    """Rows and columns of a strided read: every `step`-th pixel, the first included."""
    return (-(-spatial[0] // step), -(-spatial[1] // step))


def _array(source: object) -> object:
    """The array behind a Zarr or .npy source, for strided slicing."""
    from .io.npy import NpySource
    from .io.zarr_array import ZarrSource

    if isinstance(source, ZarrSource):
        import zarr

        return zarr.open_array(source.path, mode="r")
    if isinstance(source, NpySource):
        return np.load(source.path, mmap_mode="r")
    raise ParameterError("a preview needs a GeoTIFF, Zarr or .npy file")


def render(path: str, out: str, max_size: int = 1024, cmap: str = "viridis",
           bands: tuple[int, ...] | None = None) -> str:
    """Write a PNG quick-look of the image at `path` to `out`.

    `bands` picks, 1-based, the band to draw with `cmap` or the three to draw as RGB.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    data, _ = sample(path, max_size)
    if bands is not None:
        if len(bands) not in (1, 3) or not all(1 <= b <= data.shape[0] for b in bands):
            raise ParameterError(f"bands={bands} must name 1 or 3 of the {data.shape[0]} "
                                 "bands, counting from 1")
        data = data[[b - 1 for b in bands]]
    rows, cols = data.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(4, cols / 150 + 1.5), max(3, rows / 150)), dpi=150)
    if data.shape[0] >= 3:
        rgb = np.stack([_stretch(b) for b in data[:3]], axis=-1)
        ax.imshow(rgb, interpolation="nearest")
    else:
        band = data[0]
        finite = band[np.isfinite(band)]
        lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0, 1))
        shown = ax.imshow(band, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(shown, ax=ax, shrink=0.8)
    ax.set_title(os.path.basename(path.rstrip("/")), fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _stretch(band: np.ndarray) -> np.ndarray:
    finite = band[np.isfinite(band)]
    if not finite.size:
        return np.zeros(band.shape)
    lo, hi = np.percentile(finite, [2, 98])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(np.clip((band - lo) / max(hi - lo, 1e-12), 0, 1))
