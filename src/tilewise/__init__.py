"""tilewise: exact, bounded-memory, parallel tile-by-tile processing of large images.

    import tilewise as tw
    dem = tw.open("dem.tif")
    smooth = tw.map(scipy.ndimage.uniform_filter, dem, margin=4, size=9)
    tw.save(smooth, "smooth.tif", memory="1GiB")
"""

from . import interop  # noqa: F401  (installs Image.to_dask and Image.to_xarray)
from .errors import (
    BudgetError,
    ClusterLostError,
    GridMismatchError,
    InputError,
    MarginError,
    OutputError,
    OutputExistsError,
    ParameterError,
    PipelineFileError,
    RunFailure,
    TileError,
    TilewiseError,
    UnguardedMainError,
    UnpicklableFunctionError,
    UnsupportedFormatError,
    WorkerLostError,
)
from .graph import Image, TileInfo
from .ops import Op, map, op, open
from .reductions import Value, percentile, quantile, reduce
from .run import Progress, Report, compute, evaluate, save

__version__ = "0.1.0"

__all__ = [
    "BudgetError",
    "ClusterLostError",
    "GridMismatchError",
    "Image",
    "InputError",
    "MarginError",
    "Op",
    "OutputError",
    "OutputExistsError",
    "ParameterError",
    "PipelineFileError",
    "Progress",
    "Report",
    "RunFailure",
    "TileError",
    "TileInfo",
    "TilewiseError",
    "UnguardedMainError",
    "UnpicklableFunctionError",
    "UnsupportedFormatError",
    "Value",
    "WorkerLostError",
    "compute",
    "evaluate",
    "map",
    "op",
    "open",
    "percentile",
    "quantile",
    "reduce",
    "save",
]
