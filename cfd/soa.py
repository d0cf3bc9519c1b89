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
            new = np.full(cap, self._fill.get(name, 0), dtype=dtype)
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
