"""Struct-of-arrays columns with capacity that grows by doubling."""

from __future__ import annotations

import numpy as np


class Columns:
    """Named numpy columns of one length (``capacity``); rows ``[0, size)`` are in use.

    Columns are attributes (``table.balance``), so kernels get plain arrays. Growth
    re-allocates every column; callers must not keep array references across a call that
    may grow the table.
    """

    def __init__(self, schema: dict[str, np.dtype | type | str], capacity: int = 1024,
                 fill: dict[str, int | float] | None = None) -> None:
        self._schema = {k: np.dtype(v) for k, v in schema.items()}
        self._fill = fill or {}
        self.capacity = max(int(capacity), 16)
        self.size = 0
        for name, dtype in self._schema.items():
            setattr(self, name, np.full(self.capacity, self._fill.get(name, 0), dtype=dtype))

    def reserve(self, n: int) -> None:
        if n <= self.capacity:
            return
        cap = self.capacity
        while cap < n:
            cap *= 2
        for name, dtype in self._schema.items():
            fill = self._fill.get(name, 0)
            # zeros: the new rows' pages stay unmapped until rows are written there
            new = np.zeros(cap, dtype=dtype) if fill == 0 else np.full(cap, fill, dtype=dtype)
            new[: self.capacity] = getattr(self, name)
            setattr(self, name, new)
        self.capacity = cap

    def append_row(self) -> int:
        self.reserve(self.size + 1)
        self.size += 1
        return self.size - 1

    def dump(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{k}": getattr(self, k)[: self.size].copy() for k in self._schema}

    def load(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        n = len(arrays[f"{prefix}.{next(iter(self._schema))}"])
        self.reserve(max(n, 16))
        self.size = n
        for k in self._schema:
            getattr(self, k)[:n] = arrays[f"{prefix}.{k}"]


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xD6E8FEB86659FD93))


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (xor-shift-multiply), in place on a uint64 array."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def rows_digest(columns: list[np.ndarray], first_index: int) -> np.ndarray:
    """Two 64-bit sums over rows of a per-row hash that mixes the row's global index with
    each column value: appending rows adds their terms, so the digest of a history cut into
    pieces (trimmed in batches) equals the digest of it whole. Not cryptographic: it makes
    replay equality cover the history rows without keeping them."""
    out = np.zeros(2, dtype=np.uint64)
    n = len(columns[0]) if columns else 0
    if n == 0:
        return out
    with np.errstate(over="ignore"):
        idx = np.arange(first_index, first_index + n, dtype=np.uint64)
        for lane, seed in enumerate(_SEEDS):
            h = _mix(idx ^ seed)
            for col in columns:  # xor, multiply, shift: a bijection of h for each value
                h ^= np.ascontiguousarray(col, dtype=np.int64).view(np.uint64)
                h *= _M1
                h ^= h >> np.uint64(29)
            out[lane] = _mix(h).sum(dtype=np.uint64)
    return out


def trim_columns(cols: Columns, n: int) -> None:
    """Drop the first ``n`` rows of ``cols`` (the rest move to the front)."""
    size = cols.size
    for k in cols._schema:
        a = getattr(cols, k)
        a[: size - n] = a[n:size]
        a[size - n: size] = cols._fill.get(k, 0)
    cols.size = size - n
