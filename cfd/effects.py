"""What a batch of commands changed, in rows the query tables take as they are.

The engine collects these while it applies commands; ``Engine.take_effects()`` hands them
over (and resets them) once per batch, and the store writes them in the same transaction as
the batch's journal rows. All money fields are integer minor units, prices integer
``cfd.money.PRICE_SCALE`` units, volumes integer ``cfd.money.VOLUME_SCALE`` units, times
integer milliseconds since 1970-01-01 UTC.

Row shapes (plain dicts, keys below):

* ``accounts`` (upsert by login): login, name, group, leverage, margin_mode, margin_so_mode,
  margin_so_call, margin_so_so, balance, credit, currency, trade_mode, updated_msc
* ``orders`` (upsert by ticket; active while state is PLACED/STARTED/PARTIAL): ticket, login,
  symbol, time_setup_msc, time_done_msc, time_expiration, type, type_time, type_filling,
  state, magic, position_id, position_by_id, reason, volume_initial, volume_current,
  price_open, sl, tp, price_current, price_stoplimit, comment, external_id
* ``deals`` (insert): ticket, order, login, symbol, time_msc, type, entry, magic,
  position_id, reason, volume, price, commission, swap, profit, fee, comment, external_id
* ``postings`` (insert): id, time_msc, src, dst, amount, kind, login, deal, comment.
  ``src`` and ``dst`` are ledger account codes (``"client:1001"``,
  ``"client_credit:1001"``, ``"broker_pl"``, ``"insurance_fund"``, ``"external_cash"``,
  ``"broker_credit"``); ``amount`` > 0 minor units move from ``src`` to ``dst``
  (see cfd.accounts.ledger).
* ``ticks``: the accepted ticks, as ``cfd.feed.ticks.TickBatch`` columns (bid/ask snapped
  to the symbol's point, as floats, as MT5 records ticks); ``tick_names`` maps their symbol
  indices to names. The market-data recorder stores them (``cfd.marketdata``).
* ``symbols`` (upsert by name): the symbol spec as a dict, when an admin changed it
* ``events``: margin calls, stop-outs, admin actions: dicts with ``kind`` and fields
* ``blocks``: rows of ``deals``, ``orders``, ``postings`` and ``accounts`` from bulk
  bookings (a stop-out cascade), as :class:`Block` columns rather than a dict per row: the
  same rows (keys as above), newer than the dicts' rows of the same key that came before
  them. :meth:`Effects.deal_rows` and :meth:`Effects.order_rows` read both as dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Row = dict[str, Any]

BLOCK_TABLES = ("accounts", "orders", "deals", "postings")
BLOCK_KEYS = {"accounts": "login", "orders": "ticket"}  # upserts; deals, postings: inserts


@dataclass
class Block:
    """``n`` rows of one query table as columns: ``cols`` maps each key of the table's
    rows (see the module's row shapes) to a 1-D numpy array or a list of ``n`` values, or
    to one value (not a list or array) that every row has."""

    n: int
    cols: dict[str, Any]

    def column(self, key: str) -> list[Any]:
        """The ``n`` values of ``key`` as plain Python values."""
        v = self.cols[key]
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, list):
            return v
        return [v] * self.n

    def rows(self) -> Iterator[Row]:
        """The rows as dicts (for readers that want one row at a time)."""
        keys = list(self.cols)
        for values in zip(*(self.column(k) for k in keys), strict=True):
            yield dict(zip(keys, values, strict=True))


@dataclass
class Effects:
    accounts: dict[int, Row] = field(default_factory=dict)
    orders: dict[int, Row] = field(default_factory=dict)
    deals: list[Row] = field(default_factory=list)
    postings: list[Row] = field(default_factory=list)
    ticks: list[Any] = field(default_factory=list)  # TickBatch columns
    tick_names: tuple[str, ...] = ()
    symbols: dict[str, Row] = field(default_factory=dict)
    events: list[Row] = field(default_factory=list)
    blocks: dict[str, list[Block]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (
            self.accounts or self.orders
            or self.deals or self.postings or self.ticks or self.symbols or self.events
            or self.blocks
        )

    def add_block(self, table: str, block: Block) -> None:
        """Rows of ``table`` (one of ``BLOCK_TABLES``) as columns; for an upserted table
        they replace the dict rows of the same keys collected so far."""
        if table not in BLOCK_TABLES:
            raise ValueError(f"no block rows for table {table!r}")
        if not block.n:
            return
        key = BLOCK_KEYS.get(table)
        if key is not None:
            rows = getattr(self, table)
            if rows:
                for k in block.column(key):
                    rows.pop(k, None)
        self.blocks.setdefault(table, []).append(block)

    def table_rows(self, table: str) -> list[Row] | dict[int, Row]:
        """All rows of ``table`` (one of ``BLOCK_TABLES``) as dicts, blocks and dict rows
        together: a list for deals and postings, by key for accounts and orders (the
        newest row of each key)."""
        mine = getattr(self, table)
        if table not in BLOCK_KEYS:
            return [*mine, *(r for b in self.blocks.get(table, ()) for r in b.rows())]
        key = BLOCK_KEYS[table]
        out = {r[key]: r for b in self.blocks.get(table, ()) for r in b.rows()}
        out.update(mine)
        return out

    def deal_rows(self) -> Iterator[Row]:
        """Every deal row of the batch as a dict."""
        yield from self.deals
        for b in self.blocks.get("deals", ()):
            yield from b.rows()

    def order_rows(self) -> Iterator[Row]:
        """Every order row of the batch as a dict (a ticket may come twice: the later
        row is the newer)."""
        for b in self.blocks.get("orders", ()):
            yield from b.rows()
        yield from self.orders.values()
