"""Open positions in struct-of-arrays slots, indexed by account and by symbol.

A slot is free when ``active`` is False; free slots are reused (lowest first is not
promised, but the order is deterministic). ``volume`` is signed: + long (BUY), - short.

A position stores what was traded; its floating profit is derived from the current quote
when asked (:func:`floating_profit`), so there is nothing per position to keep up to date
on a tick. For the incremental tick kernel the table keeps a symbol-ordered copy of each
position's account and volume, slot for slot with ``by_sym.pool`` (``seg_acc``,
``seg_vol``), refreshed per symbol when a position of that symbol opens, changes volume or
closes.
"""

from __future__ import annotations

import numpy as np

from cfd.kernels.formulas import position_profit
from cfd.kernels.margin import gather_segments
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
    "acc_place": np.int32,
    "sym_place": np.int32,
}


class PositionTable:
    def __init__(self, capacity: int = 1024) -> None:
        self.cols = Columns(POSITION_COLUMNS, capacity)
        self.by_acc = SegmentedIndex(0, capacity)
        self.by_sym = SegmentedIndex(0, capacity)
        self.by_ticket: dict[int, int] = {}  # ticket -> slot (and the stale, below)
        self._stale: list[np.ndarray] = []  # tickets closed in bulk, still in by_ticket
        self._n_stale = 0
        self.free: list[int] = []
        # symbols whose SL/TP bounds (kernels.triggers) must be recomputed
        self.stops_dirty = np.ones(64, dtype=np.bool_)
        self.comments: list[str] = [""] * self.cols.capacity
        self.external_ids: list[str] = [""] * self.cols.capacity
        # symbol-ordered copies of acc / volume (see the module docstring)
        self.seg_acc = np.zeros(0, dtype=np.int32)
        self.seg_vol = np.zeros(0, dtype=np.int64)
        self._seg_dirty = np.zeros(64, dtype=np.bool_)
        self._seg_any = False
        self._seg_pool: np.ndarray | None = None  # the pool the copies follow

    def __len__(self) -> int:
        return len(self.by_ticket) - self._n_stale

    def slot_of(self, ticket: int) -> int | None:
        """The slot of the open position ``ticket``, or None."""
        p = self.by_ticket.get(ticket)
        if p is None or (self._n_stale and not (self.cols.active[p]
                                                and self.cols.ticket[p] == ticket)):
            return None
        return p

    def forget_tickets(self, tickets: np.ndarray) -> None:
        """Positions ``tickets``, closed in bulk (their slots freed by the caller), leave
        the ticket index at the next :meth:`purge_tickets`: until then :meth:`slot_of`
        checks the slot it finds (freed, or holding a newer position). A stop-out's
        hundreds of thousands of deletes from a dict of millions of tickets, each a cache
        miss, then come after its batch is durable, not before. (Without history trims,
        an engine with no store, the stale tickets go here once they outnumber the open
        positions.)"""
        if self._n_stale > max(len(self), 1 << 16):
            self.purge_tickets()
        if len(tickets):
            self._stale.append(np.array(tickets, np.int64))
            self._n_stale += len(tickets)

    def purge_tickets(self) -> None:
        """Delete the tickets :meth:`forget_tickets` left in the index."""
        if self._stale:
            pop = self.by_ticket.pop
            for part in self._stale:
                for t in part.tolist():
                    pop(t, None)
            self._stale.clear()
            self._n_stale = 0

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
        c.swap[p] = 0
        self.comments[p] = comment
        self.external_ids[p] = ""
        c.acc_place[p] = self.by_acc.add(acc, p)
        c.sym_place[p] = self.by_sym.add(sym, p)
        self.by_ticket[ticket] = p
        self.touch_symbols(sym)
        if sl or tp:
            self.mark_stops(sym)
        return p

    def set_volume(self, p: int, volume: int, price_open: int) -> None:
        c = self.cols
        c.volume[p], c.price_open[p] = volume, price_open
        self.touch_symbols(int(c.sym[p]))

    def touch_symbols(self, syms: int | np.ndarray) -> None:
        """The positions of ``syms`` changed: their symbol-ordered copies are stale."""
        if type(syms) is int:  # one symbol (the order path)
            top = syms
        elif np.ndim(syms):
            if len(syms) == 0:
                return
            top = int(np.max(syms))
        else:
            top = int(syms)
        if top >= len(self._seg_dirty):
            grow = np.zeros(max(top + 1, 2 * len(self._seg_dirty)), dtype=np.bool_)
            grow[: len(self._seg_dirty)] = self._seg_dirty
            self._seg_dirty = grow
        self._seg_dirty[syms] = True
        self._seg_any = True

    def symbol_ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """``(seg_acc, seg_vol)`` up to date with ``by_sym`` (see the module docstring). A new
        pool (grown, compacted or rebuilt) is copied whole; otherwise only stale symbols."""
        bs, c = self.by_sym, self.cols
        if self._seg_pool is not bs.pool:
            n = len(bs.pool)
            self.seg_acc = np.zeros(n, dtype=np.int32)
            self.seg_vol = np.zeros(n, dtype=np.int64)
            live = np.nonzero(bs.pool[: bs.end] >= 0)[0]
            slots = bs.pool[live]
            self.seg_acc[live] = c.acc[slots]
            self.seg_vol[live] = c.volume[slots]
            self._seg_pool = bs.pool
            self._seg_dirty[:] = False
            self._seg_any = False
        elif self._seg_any:
            n_g = min(bs.n_groups, len(self._seg_dirty))
            groups = np.nonzero(self._seg_dirty[:n_g])[0]
            gather_segments(groups, bs.off, bs.cnt, bs.pool, c.acc, self.seg_acc)
            gather_segments(groups, bs.off, bs.cnt, bs.pool, c.volume, self.seg_vol)
            self._seg_dirty[:] = False
            self._seg_any = False
        return self.seg_acc, self.seg_vol

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
        self.touch_symbols(int(c.sym[p]))
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


def floating_profit(pc: Columns, sc: Columns, slots: np.ndarray) -> np.ndarray:
    """Floating profit of the positions in ``slots`` at the current quotes, in account
    currency (``formulas.position_profit``, the same float operations, vectorised)."""
    s = pc.sym[slots]
    v = pc.volume[slots]
    close = np.where(v > 0, sc.bid[s], sc.ask[s])
    return (close - pc.price_open[slots]).astype(np.float64) * v.astype(np.float64) \
        * sc.k_profit[s]


def position_floating_profit(pc: Columns, sc: Columns, p: int) -> float:
    """:func:`floating_profit` of one position."""
    s = int(pc.sym[p])
    return float(position_profit.py_func(int(pc.volume[p]), int(pc.price_open[p]),
                                         int(sc.bid[s]), int(sc.ask[s]),
                                         float(sc.k_profit[s])))
