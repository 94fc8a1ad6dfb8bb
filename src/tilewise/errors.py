"""Exception classes, so that a caller can tell a user error from a bug.

Every error that bad input can cause derives from `TilewiseError` and carries one sentence
that names the file, parameter or tile at fault. Anything else escaping tilewise is a bug.
"""


class TilewiseError(Exception):
    """Base class of every error caused by input, configuration or the environment."""


class InputError(TilewiseError):
    """An input file is missing, unreadable or malformed."""


class UnsupportedFormatError(TilewiseError):
    """A path whose format tilewise cannot read or write."""


class GridMismatchError(TilewiseError):
    """Images that must share one grid (shape, axes, georeference) do not."""


class MarginError(TilewiseError):
    """A margin that is negative, not an integer, or names an unknown axis."""


class ParameterError(TilewiseError):
    """A parameter of tilewise itself (tile, workers, executor, dtype, ...) is invalid."""


class BudgetError(TilewiseError):
    """The memory budget cannot hold even the smallest allowed tile, or a result to compute."""


class UnpicklableFunctionError(TilewiseError):
    """An op function cannot be sent to worker processes."""


class OutputExistsError(TilewiseError):
    """An output exists and `overwrite` was not given, or an output would replace an input."""


class TileError(TilewiseError):
    """An op failed, or returned the wrong shape, on one tile."""


class OutputError(TilewiseError):
    """An output cannot be written where it was asked for."""


class PipelineFileError(TilewiseError):
    """A pipeline file is not valid YAML or does not describe a valid pipeline."""
