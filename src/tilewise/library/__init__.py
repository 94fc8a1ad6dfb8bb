"""Built-in ops: functions from images to images, the same from Python and from pipeline files.

    from tilewise import library as ops
    relief = ops.hillshade(ops.gaussian(tw.open("dem.tif"), sigma=1.5))

Each is registered under its name with `registry.builtin`; its keyword-only parameters, their
type hints and defaults are the schema pipeline files are checked against and `tilewise ops`
prints. Every built-in gives, tile by tile, exactly what it gives on the whole image.
"""

from .filters import gaussian, gradient_magnitude, maximum, mean, median, minimum
from .horizon import anisotropic_sky_view_factor, local_dominance, openness, sky_view_factor
from .illumination import sky_illumination
from .intensity import stretch
from .microscopy import denoise_nl_means, denoise_tv, normalize_channels, subtract_background
from .nodata import fillnodata, nodata_mask
from .registry import BUILTINS, Builtin
from .render import blend, byte_scale, colormap, normalize
from .reprojection import reproject, warp
from .resample import rebin
from .terrain import (
    aspect,
    hillshade,
    msrm,
    mstp,
    multi_hillshade,
    multi_hillshade_rgb,
    slope,
    slrm,
)

__all__ = [
    "BUILTINS",
    "Builtin",
    "anisotropic_sky_view_factor",
    "aspect",
    "blend",
    "byte_scale",
    "colormap",
    "denoise_nl_means",
    "denoise_tv",
    "fillnodata",
    "gaussian",
    "gradient_magnitude",
    "hillshade",
    "local_dominance",
    "maximum",
    "mean",
    "median",
    "minimum",
    "msrm",
    "mstp",
    "multi_hillshade",
    "multi_hillshade_rgb",
    "nodata_mask",
    "normalize",
    "normalize_channels",
    "openness",
    "rebin",
    "reproject",
    "sky_illumination",
    "sky_view_factor",
    "slope",
    "slrm",
    "stretch",
    "subtract_background",
    "warp",
]
