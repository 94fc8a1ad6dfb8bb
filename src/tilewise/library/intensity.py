"""Intensity mappings: a percentile stretch to 8 bits for display."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..graph import Image
from ..ops import Op
from ..reductions import percentile
from .kernels import nodata_of
from .registry import builtin


def _stretch(a, *, low, high, nodata):
    x = a.astype("float64")
    span = high - low if high > low else 1.0
    out = 1 + np.rint(254 * np.clip((x - low) / span, 0, 1))
    invalid = np.isnan(x) if nodata is None or np.isnan(nodata) else (a == nodata) | np.isnan(x)
    return np.where(invalid, 0, out)


@builtin(halo="0 (the percentiles are exact, computed over the whole image first)")
def stretch(image: Image, *, percentiles: tuple[float, float] = (2.0, 98.0)) -> Image:
    """Linear stretch of the image's [low, high] percentiles to uint8 1-255; 0 at nodata."""
    ok = (isinstance(percentiles, (list, tuple)) and len(percentiles) == 2
          and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in percentiles)
          and 0 <= percentiles[0] < percentiles[1] <= 100)
    if not ok:
        raise ParameterError(f"percentiles of op 'stretch' must be two numbers 0 <= low < high "
                             f"<= 100, not {percentiles!r}")
    low, high = percentile(image, [float(p) for p in percentiles])
    return Op(_stretch, dtype="uint8", meta={"nodata": 0}, name="stretch")(
        image, low=low, high=high, nodata=nodata_of(image))
