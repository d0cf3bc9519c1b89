"""What a batch of commands changed, in rows the query tables take as they are.

The engine collects these while it applies commands; ``Engine.take_effects()`` hands them
over (and resets them) once per batch, and the store writes them in the same transaction as
the batch's journal rows. All money fields are integer minor units, prices integer
``cfd.money.PRICE_SCALE`` units, volumes integer ``cfd.money.VOLUME_SCALE`` units, times
integer milliseconds since 1970-01-01 UTC.

Row shapes (plain dicts, keys below):

* ``accounts`` (upsert by login): login, name, group, leverage, margin_mode, margin_so_mode,
  margin_so_call, margin_so_so, balance, credit, currency, trade_mode, updated_msc
* ``positions`` (upsert by ticket): ticket, login, symbol, time_msc, time_update_msc, type,
  magic, identifier, reason, volume, price_open, sl, tp, swap, comment, external_id
* ``closed_positions``: tickets (int) of positions that no longer exist (delete them)
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]


@dataclass
class Effects:
    accounts: dict[int, Row] = field(default_factory=dict)
    positions: dict[int, Row] = field(default_factory=dict)
    closed_positions: set[int] = field(default_factory=set)
    orders: dict[int, Row] = field(default_factory=dict)
    deals: list[Row] = field(default_factory=list)
    postings: list[Row] = field(default_factory=list)
    ticks: list[Any] = field(default_factory=list)  # TickBatch columns
    tick_names: tuple[str, ...] = ()
    symbols: dict[str, Row] = field(default_factory=dict)
    events: list[Row] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.accounts or self.positions or self.closed_positions or self.orders
            or self.deals or self.postings or self.ticks or self.symbols or self.events
        )

    def position_upsert(self, row: Row) -> None:
        self.closed_positions.discard(row["ticket"])
        self.positions[row["ticket"]] = row

    def position_closed(self, ticket: int) -> None:
        self.positions.pop(ticket, None)
        self.closed_positions.add(ticket)
