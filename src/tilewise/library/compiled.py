"""What the compiled kernel modules share: numba's options and the DEM window's type.

Imported only by those modules, so that numba is loaded with the first op that needs a kernel.
"""

from numba import types

#: Without the GIL (threads scale), cached on disk (compiled once per installation), and
#: NumPy's error model: a division by zero gives inf or NaN, as in RVT, instead of raising,
#: which lets the loops that divide vectorise.
COMPILE = {"nogil": True, "cache": True, "error_model": "numpy"}
#: The DEM window: read only (it may be the op's input, which tilewise never lets ops modify).
DEM = types.Array(types.float32, 2, "C", readonly=True)
