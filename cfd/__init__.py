"""USDT-margined stock-CFD margin engine.

The engine keeps accounts, positions and a double-entry ledger in struct-of-arrays state,
applies commands through one writer (:class:`cfd.engine.Engine`) and speaks MetaTrader 5's
numbers (enums, retcodes, record fields).
"""

__version__ = "0.1.0"

from cfd.kernel_cache import drop_stale as _drop_stale

_drop_stale()  # numba's cached kernels compiled from other sources are not used
