"""Orders and deals as MT5 records them, append-only struct-of-arrays.

The engine keeps a window of the most recent rows: once rows are durable in the store the
runner may :meth:`RecordLog.trim` the older ones away. Row indices are positions in the
window (stable for the length of a command: rows are trimmed only between batches);
``base`` counts the rows trimmed before it, ``total`` every row ever appended, and
``digest`` folds the trimmed rows into a fixed-size value so the state hash still covers
all of history (:func:`rows_digest`). Old rows are then read from the store through a
:class:`HistorySource`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from cfd.soa import Columns, rows_digest, trim_columns

if TYPE_CHECKING:
    from cfd.engine import Engine


class HistorySource(Protocol):
    """Old history rows the engine no longer holds (the store implements it).

    Only refusals ask it (which message a refused request gets), so its answers never
    change an accepted command's outcome or a journal replay."""

    def closed_position_of(self, login: int, ticket: int) -> bool:
        """Whether ``ticket`` was a position of ``login`` (now closed)."""
        ...

    def finished_order_state(self, login: int, ticket: int) -> int | None:
        """The state of ``login``'s order ``ticket`` in the history, if it is there."""
        ...

DEAL_COLUMNS = {
    "ticket": np.int64,
    "order": np.int64,
    "acc": np.int32,
    "sym": np.int32,  # -1 for balance/credit deals
    "time_msc": np.int64,
    "type": np.int8,
    "entry": np.int8,
    "magic": np.int64,
    "position_id": np.int64,
    "reason": np.int8,
    "volume": np.int64,
    "price": np.int64,
    "commission": np.int64,  # minor units (negative: charged)
    "swap": np.int64,
    "profit": np.int64,
    "fee": np.int64,
}

ORDER_COLUMNS = {
    "ticket": np.int64,
    "acc": np.int32,
    "sym": np.int32,
    "time_setup_msc": np.int64,
    "time_done_msc": np.int64,
    "time_expiration": np.int64,
    "type": np.int8,
    "type_time": np.int8,
    "type_filling": np.int8,
    "state": np.int8,
    "magic": np.int64,
    "position_id": np.int64,
    "position_by_id": np.int64,
    "reason": np.int8,
    "volume_initial": np.int64,
    "volume_current": np.int64,
    "price_open": np.int64,
    "sl": np.int64,
    "tp": np.int64,
    "price_current": np.int64,
    "price_stoplimit": np.int64,
}


def deal_record(values: tuple, login: int, symbol: str, comment: str) -> dict:
    """The store's deal row (``cfd.effects``) of a deal whose column ``values`` are in
    ``DEAL_COLUMNS``' order: what ``Engine.deal_row`` reads back and what booking a trade
    collects from the values it writes."""
    (ticket, order, _, _, t, ty, en, mg, pid, rs, vol, px, cm, sw, pr, fe) = values
    return {"ticket": ticket, "order": order, "login": login, "symbol": symbol,
            "time_msc": t, "type": ty, "entry": en, "magic": mg, "position_id": pid,
            "reason": rs, "volume": vol, "price": px, "commission": cm, "swap": sw,
            "profit": pr, "fee": fe, "comment": comment, "external_id": ""}


def order_record(values: tuple, login: int, symbol: str, comment: str) -> dict:
    """The store's order row of an order whose column ``values`` are in ``ORDER_COLUMNS``'
    order (as :func:`deal_record` for deals)."""
    (ticket, _, _, setup, done, exp, ty, tt, tf, st, mg, pid, by, rs, vi, vc, po, sl, tp, pc,
     psl) = values
    return {"ticket": ticket, "time_setup_msc": setup, "time_done_msc": done,
            "time_expiration": exp, "type": ty, "type_time": tt, "type_filling": tf,
            "state": st, "magic": mg, "position_id": pid, "position_by_id": by, "reason": rs,
            "volume_initial": vi, "volume_current": vc, "price_open": po, "sl": sl, "tp": tp,
            "price_current": pc, "price_stoplimit": psl, "login": login, "symbol": symbol,
            "comment": comment, "external_id": ""}


_BULK = 64  # a bulk append or close this long is kept whole (a run, two arrays)


class TicketIndex:
    """Ticket -> row of a :class:`RecordLog`: rows appended one at a time in a dict, rows
    appended in bulk with consecutive tickets (a stop-out's deals and orders) as runs
    ``(first ticket, first row, rows)`` found by bisection, so a bulk append costs nothing
    per row. Tickets are unique: a run never overlaps another run or the dict."""

    def __init__(self, items: dict[int, int] | None = None) -> None:
        self._one: dict[int, int] = {} if items is None else items
        self._first: list[int] = []  # the runs, by first ticket
        self._runs: list[tuple[int, int]] = []  # (first row, rows) of each

    @classmethod
    def of(cls, tickets: np.ndarray) -> TicketIndex:
        """The index of rows ``0 .. len(tickets) - 1`` holding ``tickets``."""
        return cls(dict(zip(tickets.tolist(), range(len(tickets)), strict=True)))

    def __len__(self) -> int:
        return len(self._one) + sum(n for _, n in self._runs)

    def __setitem__(self, ticket: int, row: int) -> None:
        self._one[ticket] = row

    def add_run(self, first_ticket: int, first_row: int, rows: int) -> None:
        """Rows ``first_row ..`` hold tickets ``first_ticket ..``, ``rows`` of them (a
        short run goes into the dict: the runs stay few)."""
        if 0 < rows < _BULK:
            self._one.update(zip(range(first_ticket, first_ticket + rows),
                                 range(first_row, first_row + rows), strict=True))
        elif rows > 0:
            k = bisect_right(self._first, first_ticket)
            self._first.insert(k, first_ticket)
            self._runs.insert(k, (first_row, rows))

    def get(self, ticket: int, default: int | None = None) -> int | None:
        row = self._one.get(ticket)
        if row is not None:
            return row
        k = bisect_right(self._first, ticket) - 1
        if k >= 0:
            first_row, rows = self._runs[k]
            if ticket - self._first[k] < rows:
                return first_row + ticket - self._first[k]
        return default

    def __getitem__(self, ticket: int) -> int:
        row = self.get(ticket)
        if row is None:
            raise KeyError(ticket)
        return row

    def __contains__(self, ticket: object) -> bool:
        return type(ticket) is int and self.get(ticket) is not None

    def items(self) -> Iterator[tuple[int, int]]:
        """Every ``(ticket, row)``: the single ones, then each run's."""
        yield from self._one.items()
        for first, (row, n) in zip(self._first, self._runs, strict=True):
            yield from zip(range(first, first + n), range(row, row + n), strict=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TicketIndex) and dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]


class ClosedTickets:
    """Closed position tickets -> account index, in the order they closed (the oldest are
    trimmed away, :func:`trim`): closes one at a time in dicts, a bulk close (a stop-out)
    as its two arrays, looked up by a scan (only a refused request asks: which message it
    gets), so a bulk close costs nothing per position."""

    def __init__(self, tickets: np.ndarray | None = None, accs: np.ndarray | None = None
                 ) -> None:
        self._parts: list[dict[int, int] | tuple[np.ndarray, np.ndarray]] = []
        self._n = 0
        if tickets is not None and accs is not None and len(tickets):
            self.add_many(tickets, accs)

    def __len__(self) -> int:
        return self._n

    def _last_dict(self) -> dict[int, int]:
        last = self._parts[-1] if self._parts else None
        if not isinstance(last, dict):
            last = {}
            self._parts.append(last)
        return last

    def __setitem__(self, ticket: int, acc: int) -> None:
        last = self._last_dict()
        self._n += ticket not in last
        last[ticket] = acc

    def add_many(self, tickets: np.ndarray, accs: np.ndarray) -> None:
        """Tickets closed together, in order, with their accounts (a few go into the
        dict: the parts stay few)."""
        if len(tickets) >= _BULK:
            self._parts.append((np.array(tickets, np.int64), np.array(accs, np.int64)))
            self._n += len(tickets)
        else:
            for t, a in zip(np.asarray(tickets).tolist(), np.asarray(accs).tolist(),
                            strict=True):
                self[t] = a

    def get(self, ticket: int, default: int | None = None) -> int | None:
        for part in reversed(self._parts):
            if isinstance(part, dict):
                acc = part.get(ticket)
                if acc is not None:
                    return acc
            else:
                hit = np.flatnonzero(part[0] == ticket)
                if len(hit):
                    return int(part[1][hit[-1]])
        return default

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(tickets, accounts)`` in the order they closed."""
        ts, accs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for part in self._parts:
            if isinstance(part, dict):
                ts.append(np.fromiter(part.keys(), np.int64, len(part)))
                accs.append(np.fromiter(part.values(), np.int64, len(part)))
            else:
                ts.append(part[0])
                accs.append(part[1])
        return np.concatenate(ts), np.concatenate(accs)

    def items(self) -> Iterator[tuple[int, int]]:
        t, a = self.arrays()
        return zip(t.tolist(), a.tolist(), strict=True)

    def trim(self, n: int) -> None:
        """Forget the ``n`` oldest."""
        while n > 0 and self._parts:
            part = self._parts[0]
            size = len(part) if isinstance(part, dict) else len(part[0])
            if size <= n:
                self._parts.pop(0)
                cut = size
            elif isinstance(part, dict):
                self._parts[0] = dict(list(part.items())[n:])
                cut = n
            else:
                self._parts[0] = (part[0][n:].copy(), part[1][n:].copy())
                cut = n
            n -= cut
            self._n -= cut


class RecordLog:
    """Append-only records with a comment per row and a ticket -> row index, of which the
    engine holds the most recent window (``len``: the rows held; ``total``: all rows)."""

    def __init__(self, schema: dict, capacity: int = 4096,
                 hashed: tuple[str, ...] | None = None) -> None:
        self.cols = Columns(schema, capacity)
        self.comments: list[str] = []
        self.by_ticket = TicketIndex()
        self.base = 0  # rows trimmed away (the global index of row 0)
        self.digest = np.zeros(2, dtype=np.uint64)  # rows_digest of the trimmed rows
        self.hashed = tuple(schema) if hashed is None else hashed
        self.columns = tuple(schema)  # the order of ``append_values``

    def __len__(self) -> int:
        return self.cols.size

    @property
    def total(self) -> int:
        return self.base + self.cols.size

    def history_digest(self) -> np.ndarray:
        """``rows_digest`` of every row ever appended (trimmed and held)."""
        n = self.cols.size
        held = rows_digest([getattr(self.cols, k)[:n] for k in self.hashed], self.base)
        with np.errstate(over="ignore"):
            return self.digest + held

    def trim(self, n: int) -> None:
        """Forget the oldest ``n`` rows (they are durable elsewhere)."""
        if n <= 0:
            return
        c = self.cols
        with np.errstate(over="ignore"):
            self.digest += rows_digest([getattr(c, k)[:n] for k in self.hashed], self.base)
        trim_columns(c, n)
        del self.comments[:n]
        self.base += n
        self.by_ticket = TicketIndex.of(c.ticket[: c.size])

    def append(self, comment: str = "", **fields: int) -> int:
        c = self.cols
        i = c.append_row()
        d = c.__dict__
        for k, v in fields.items():
            d[k][i] = v
        self.comments.append(comment)
        self.by_ticket[int(fields["ticket"])] = i
        return i

    def append_values(self, comment: str, values: tuple[int, ...]) -> int:
        """:meth:`append` of one value per column, in the schema's order (the first is the
        ticket): no keyword dict per row."""
        c = self.cols
        i = c.append_row()
        d = c.__dict__
        for k, v in zip(self.columns, values, strict=True):
            d[k][i] = v
        self.comments.append(comment)
        self.by_ticket[int(values[0])] = i
        return i


class HistoryMarks(NamedTuple):
    """How many rows of each history the engine had booked at one point (all rows ever,
    trimmed or held): what a durable batch covers."""

    deals: int
    orders: int
    postings: int
    closed: int  # closed position tickets


def marks(eng: Engine) -> HistoryMarks:
    return HistoryMarks(eng.deals.total, eng.orders.total, eng.ledger.total_postings,
                        eng.closed_trimmed + len(eng.closed_tickets))


def _cut(held: int, base: int, durable: int, window: int) -> int:
    """Rows to trim from a log holding ``held`` rows after ``base`` trimmed ones: none until
    it holds twice the window (each trim then moves at most a window of rows: amortised
    O(1) a row), then down to ``window`` rows, never past the ``durable`` mark."""
    if held < 2 * window:
        return 0
    return max(0, min(held - window, durable - base))


def trim(eng: Engine, durable: HistoryMarks, window: int) -> int:
    """Drop history rows counted in ``durable`` (stored by a committed batch) beyond the
    last ``window`` rows of each log; returns how many rows went. Rows not yet durable are
    never dropped. Call between commands only."""
    window = max(int(window), 1)
    gone = 0
    for log, mark in ((eng.deals, durable.deals), (eng.orders, durable.orders)):
        n = _cut(len(log), log.base, mark, window)
        log.trim(n)
        gone += n
    led = eng.ledger
    n = _cut(led.postings.size, led.base, durable.postings, window)
    led.trim(n)
    gone += n
    closed = eng.closed_tickets
    n = _cut(len(closed), eng.closed_trimmed, durable.closed, window)
    if n:
        closed.trim(n)
        eng.closed_trimmed += n
        gone += n
    eng.positions.purge_tickets()  # closed in bulk: their tickets leave the index now
    return gone
