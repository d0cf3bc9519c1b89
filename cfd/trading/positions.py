"""Open positions in struct-of-arrays slots, indexed by account and by symbol.

A slot is free when ``active`` is False; free slots are reused (lowest first is not
promised, but the order is deterministic). ``volume`` is signed: + long (BUY), - short.
"""

from __future__ import annotations

import numpy as np

from cfd.soa import Columns
from cfd.trading.segments import SegmentedIndex

POSITION_COLUMNS = {
    "active": np.bool_,
    "acc": np.int32,
    "sym": np.int32,
    "volume": np.int64,
    "price_open": np.int64,
    "ticket": np.int64,
    "identifier": np.int64,
    "time_msc": np.int64,
    "time_update_msc": np.int64,
    "sl": np.int64,
    "tp": np.int64,
    "magic": np.int64,
    "reason": np.int8,
    "swap": np.int64,  # minor units, accumulated
    "profit": np.float64,  # floating profit, account currency (re-derived)
    "acc_place": np.int32,
    "sym_place": np.int32,
}


class PositionTable:
    def __init__(self, capacity: int = 1024) -> None:
        self.cols = Columns(POSITION_COLUMNS, capacity)
        self.by_acc = SegmentedIndex(0, capacity)
        self.by_sym = SegmentedIndex(0, capacity)
        self.by_ticket: dict[int, int] = {}
        self.free: list[int] = []
        # symbols whose SL/TP bounds (kernels.triggers) must be recomputed
        self.stops_dirty = np.ones(64, dtype=np.bool_)
        self.comments: list[str] = [""] * self.cols.capacity
        self.external_ids: list[str] = [""] * self.cols.capacity

    def __len__(self) -> int:
        return len(self.by_ticket)

    def _slot(self) -> int:
        if self.free:
            return self.free.pop()
        i = self.cols.append_row()
        if len(self.comments) < self.cols.capacity:
            grow = self.cols.capacity - len(self.comments)
            self.comments.extend([""] * grow)
            self.external_ids.extend([""] * grow)
        return i

    def open(self, acc: int, sym: int, volume: int, price: int, ticket: int, time_msc: int,
             sl: int, tp: int, magic: int, reason: int, comment: str) -> int:
        c = self.cols
        p = self._slot()
        c.active[p], c.acc[p], c.sym[p] = True, acc, sym
        c.volume[p], c.price_open[p] = volume, price
        c.ticket[p], c.identifier[p] = ticket, ticket
        c.time_msc[p], c.time_update_msc[p] = time_msc, time_msc
        c.sl[p], c.tp[p], c.magic[p], c.reason[p] = sl, tp, magic, reason
        c.swap[p], c.profit[p] = 0, 0.0
        self.comments[p] = comment
        self.external_ids[p] = ""
        c.acc_place[p] = self.by_acc.add(acc, p)
        c.sym_place[p] = self.by_sym.add(sym, p)
        self.by_ticket[ticket] = p
        if sl or tp:
            self.mark_stops(sym)
        return p

    def mark_stops(self, sym: int) -> None:
        """The SL/TP (or the side) of a position in ``sym`` changed."""
        if sym >= len(self.stops_dirty):
            grow = np.ones(max(sym + 1, 2 * len(self.stops_dirty)), dtype=np.bool_)
            grow[: len(self.stops_dirty)] = self.stops_dirty
            self.stops_dirty = grow
        self.stops_dirty[sym] = True

    def stops_dirty_for(self, n_symbols: int) -> np.ndarray:
        if n_symbols > len(self.stops_dirty):
            self.mark_stops(n_symbols - 1)
        return self.stops_dirty

    def close(self, p: int) -> None:
        c = self.cols
        moved = self.by_acc.remove(int(c.acc[p]), int(c.acc_place[p]))
        if moved >= 0:
            c.acc_place[moved] = c.acc_place[p]
        moved = self.by_sym.remove(int(c.sym[p]), int(c.sym_place[p]))
        if moved >= 0:
            c.sym_place[moved] = c.sym_place[p]
        del self.by_ticket[int(c.ticket[p])]
        c.active[p] = False
        c.volume[p] = 0
        c.profit[p] = 0.0
        self.free.append(p)

    def retick(self, p: int, new_ticket: int) -> None:
        """A netting reversal gives the position the ticket of the reversing order."""
        c = self.cols
        del self.by_ticket[int(c.ticket[p])]
        c.ticket[p] = new_ticket
        self.by_ticket[new_ticket] = p

    def of_account(self, acc: int) -> np.ndarray:
        return self.by_acc.items(acc)

    def of_symbol(self, sym: int) -> np.ndarray:
        return self.by_sym.items(sym)

    def netting_slot(self, acc: int, sym: int) -> int | None:
        """The one position of ``acc`` in ``sym`` (netting accounts), if any."""
        slots = self.of_account(acc)
        hit = slots[self.cols.sym[slots] == sym]
        return int(hit[0]) if len(hit) else None
