"""Exception classes, so that a caller can tell a user error from a bug.

Every error that bad input can cause derives from `TilewiseError` and carries one sentence
that names the file, parameter or tile at fault. Anything else escaping tilewise is a bug.
Each class also derives from the built-in exception it refines (as rasterio's do), so code
written as `except ValueError` or `except OSError` keeps working.
"""


class TilewiseError(Exception):
    """Base class of every error caused by input, configuration or the environment."""


class InputError(TilewiseError, OSError):
    """An input file is missing, unreadable or malformed."""


class UnsupportedFormatError(TilewiseError, ValueError):
    """A path whose format tilewise cannot read or write."""


class GridMismatchError(TilewiseError, ValueError):
    """Images that must share one grid (shape, axes, georeference) do not."""


class MarginError(TilewiseError, ValueError):
    """A margin that is negative, not an integer, or names an unknown axis."""


class ParameterError(TilewiseError, ValueError, TypeError):
    """A parameter of tilewise or of an op is unknown, missing or invalid (a `TypeError` too,
    as Python's own error for an unknown keyword is)."""


class BudgetError(TilewiseError, ValueError):
    """The memory budget cannot hold even the smallest allowed tile, or a result to compute."""


class UnpicklableFunctionError(TilewiseError, TypeError):
    """An op function cannot be sent to worker processes."""


class OutputExistsError(TilewiseError, FileExistsError):
    """An output exists and `overwrite` was not given, or an output would replace an input."""


class RunFailure(TilewiseError, RuntimeError):
    """A run that started failed; `kept` is how many finished tiles its outputs keep for a
    resume (None when it failed before writing anything: on the probe tile or a reduction)."""

    kept: int | None = None


class TileError(RunFailure):
    """An op failed, or returned the wrong shape or values, on one tile."""


class WorkerLostError(RunFailure):
    """A worker of the executor died (killed, out of memory, a crash in a C extension)."""


class UnguardedMainError(TilewiseError, RuntimeError):
    """Worker processes were asked for while a worker process imported the main module: a
    script run with `executor="processes"` must start its run under `if __name__ ==
    "__main__":`, since each spawned worker imports the script again."""


class ClusterLostError(RunFailure):
    """The connection to a dask cluster's scheduler was lost (the scheduler died, or the
    network or the job holding it went away); running the same command again resumes."""


class OutputError(TilewiseError, OSError):
    """An output cannot be written where it was asked for."""


class PipelineFileError(TilewiseError, ValueError):
    """A pipeline file is not valid YAML or does not describe a valid pipeline."""
