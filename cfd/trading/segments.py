"""Grouped index: for each group (account or symbol), a contiguous segment of item ids.

Segments live in one int32 pool with room to grow; a full segment moves to the end of the
pool with double capacity (amortised O(1)); removal swaps the last item into the hole, so
the caller keeps each item's place (``where``) up to date through the return value. Kernels
iterate ``pool[off[g] : off[g] + cnt[g]]``, one thread per group.
"""

from __future__ import annotations

import numpy as np


class SegmentedIndex:
    def __init__(self, n_groups: int = 0, pool_capacity: int = 1024) -> None:
        self.off = np.zeros(max(n_groups, 1), dtype=np.int64)
        self.cnt = np.zeros(max(n_groups, 1), dtype=np.int32)
        self.cap = np.zeros(max(n_groups, 1), dtype=np.int32)
        self.pool = np.full(max(pool_capacity, 16), -1, dtype=np.int32)
        self.end = 0
        self.n_groups = n_groups

    def ensure_groups(self, n_groups: int) -> None:
        if n_groups > len(self.off):
            size = max(n_groups, 2 * len(self.off))
            for name in ("off", "cnt", "cap"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)
        self.n_groups = max(self.n_groups, n_groups)

    def _reserve(self, extra: int) -> None:
        if self.end + extra > len(self.pool):
            live = int(self.cap[: self.n_groups].sum())
            if live + extra <= len(self.pool) // 2:
                self.compact()
            if self.end + extra > len(self.pool):
                new = np.full(max(2 * len(self.pool), self.end + extra), -1, dtype=np.int32)
                new[: self.end] = self.pool[: self.end]
                self.pool = new

    def compact(self) -> None:
        """Rewrite the pool with segments in group order and no holes."""
        n = self.n_groups
        caps = self.cap[:n].astype(np.int64)
        new_off = np.zeros(n, dtype=np.int64)
        if n:
            new_off[1:] = np.cumsum(caps)[:-1]
        new = np.full(len(self.pool), -1, dtype=np.int32)
        for g in np.nonzero(self.cnt[:n])[0]:
            c = int(self.cnt[g])
            new[new_off[g] : new_off[g] + c] = self.pool[self.off[g] : self.off[g] + c]
        self.pool = new
        self.off[:n] = new_off
        self.end = int(caps.sum())

    def add(self, group: int, item: int) -> int:
        """Append ``item`` to ``group``; returns its place within the group."""
        c, cap = int(self.cnt[group]), int(self.cap[group])
        if c == cap:
            new_cap = max(4, 2 * cap)
            self._reserve(new_cap)
            start = self.end
            old = int(self.off[group])
            self.pool[start : start + c] = self.pool[old : old + c]
            self.pool[old : old + c] = -1
            self.off[group] = start
            self.cap[group] = new_cap
            self.end += new_cap
        self.pool[self.off[group] + c] = item
        self.cnt[group] = c + 1
        return c

    def remove(self, group: int, place: int) -> int:
        """Remove the item at ``place``; returns the item moved into that place, or -1."""
        last = int(self.cnt[group]) - 1
        base = int(self.off[group])
        moved = -1
        if place != last:
            moved = int(self.pool[base + last])
            self.pool[base + place] = moved
        self.pool[base + last] = -1
        self.cnt[group] = last
        return moved

    def items(self, group: int) -> np.ndarray:
        base = int(self.off[group])
        return self.pool[base : base + int(self.cnt[group])]

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}.off": self.off[: self.n_groups].copy(),
            f"{prefix}.cnt": self.cnt[: self.n_groups].copy(),
            f"{prefix}.cap": self.cap[: self.n_groups].copy(),
            f"{prefix}.pool": self.pool[: self.end].copy(),
        }

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], prefix: str) -> SegmentedIndex:
        off = arrays[f"{prefix}.off"]
        idx = cls(len(off), max(2 * len(arrays[f"{prefix}.pool"]), 1024))
        idx.off[: len(off)] = off
        idx.cnt[: len(off)] = arrays[f"{prefix}.cnt"]
        idx.cap[: len(off)] = arrays[f"{prefix}.cap"]
        pool = arrays[f"{prefix}.pool"]
        idx.pool[: len(pool)] = pool
        idx.end = len(pool)
        return idx
