"""Query-table rows of many records at once, as :class:`cfd.effects.Block` columns built
straight from the engine's struct-of-arrays state: no dict and no Python object per row
until the store binds them. Columns are copies, never views of the engine's arrays (the
store may write them while the engine goes on). The same rows as ``Engine.deal_row``, ``order_row``,
``account_row`` and ``Ledger.row`` (``tests/test_bulk_rows.py`` holds
them equal)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cfd.accounts.ledger import HOUSE_CODES, N_HOUSE, PostingKind
from cfd.effects import Block
from cfd.trading.history import ORDER_COLUMNS


def _names(eng: Any, sym: np.ndarray) -> np.ndarray:
    """Symbol names of symbol indices (``""`` for -1), as an object array."""
    names = np.array([s.name for s in eng.symbols.specs] + [""], dtype=object)
    return names[np.where(sym >= 0, sym, len(names) - 1)]


def deals(eng: Any, i0: int, i1: int) -> Block:
    """Deals ``i0 .. i1 - 1`` of the deal log."""
    c = eng.deals.cols
    sl = slice(i0, i1)
    cols: dict[str, Any] = {"ticket": c.ticket[sl].copy(), "order": c.order[sl].copy(),
                            "login": eng.accounts.cols.login[c.acc[sl]],
                            "symbol": _names(eng, c.sym[sl])}
    for k in ("time_msc", "type", "entry", "magic", "position_id", "reason", "volume",
              "price", "commission", "swap", "profit", "fee"):
        cols[k] = getattr(c, k)[sl].copy()
    cols["comment"] = list(eng.deals.comments[i0:i1])
    cols["external_id"] = ""
    return Block(i1 - i0, cols)


def orders(eng: Any, i0: int, i1: int) -> Block:
    """Orders ``i0 .. i1 - 1`` of the order log."""
    c = eng.orders.cols
    sl = slice(i0, i1)
    cols: dict[str, Any] = {k: getattr(c, k)[sl].copy() for k in ORDER_COLUMNS
                            if k not in ("acc", "sym")}
    cols["login"] = eng.accounts.cols.login[c.acc[sl]]
    cols["symbol"] = _names(eng, c.sym[sl])
    cols["comment"] = list(eng.orders.comments[i0:i1])
    cols["external_id"] = ""
    return Block(i1 - i0, cols)


_KINDS = np.array([""] * (max(PostingKind) + 1), dtype=object)
for _k in PostingKind:
    _KINDS[int(_k)] = _k.name.lower()


def _codes(logins: np.ndarray, *ids: np.ndarray) -> list[np.ndarray]:
    """Ledger account codes (``client:<login>``, ``client_credit:<login>``, house codes)
    of each array of ledger ids, as object arrays (one string per distinct id of them
    all)."""
    top = max(int(i.max()) for i in ids if i.size) if any(i.size for i in ids) else 0
    seen = np.zeros(top + 1, np.bool_)
    for i in ids:
        seen[i] = True
    uniq = np.flatnonzero(seen)  # the distinct ids, without sorting them all
    acc, credit = np.divmod(np.maximum(uniq - N_HOUSE, 0), 2)
    lg = logins[acc].tolist()
    text = np.empty(top + 1, dtype=object)
    text[uniq] = [HOUSE_CODES[i] if i < N_HOUSE else
                  (f"client_credit:{g}" if c else f"client:{g}")
                  for i, g, c in zip(uniq.tolist(), lg, credit.tolist(), strict=True)]
    return [text[i] for i in ids]


def postings(eng: Any, i0: int, i1: int) -> Block:
    """Postings ``i0 .. i1 - 1`` of the ledger (keys ``src`` and ``dst``, as the
    ledger's rows)."""
    p = eng.ledger.postings
    logins = eng.accounts.cols.login
    sl = slice(i0, i1)
    src, dst = p.src[sl].astype(np.int64), p.dst[sl].astype(np.int64)
    client = np.where(src >= N_HOUSE, src, np.where(dst >= N_HOUSE, dst, -1))
    login = logins[np.maximum(client - N_HOUSE, 0) // 2].astype(object)
    login[client < 0] = None
    deal = p.deal[sl].astype(object)
    deal[p.deal[sl] == 0] = None
    codes = _codes(logins, src, dst)
    return Block(i1 - i0, {"id": p.id[sl].copy(), "time_msc": p.time_msc[sl].copy(),
                           "src": codes[0], "dst": codes[1],
                           "amount": p.amount[sl].copy(), "kind": _KINDS[p.kind[sl]],
                           "login": login, "deal": deal,
                           "comment": list(eng.ledger.comments[i0:i1])})


def accounts(eng: Any, accs: np.ndarray) -> Block:
    """The accounts at indices ``accs``."""
    ac = eng.accounts.cols
    names, groups = eng.accounts.names, eng.accounts.groups
    a = accs.tolist()
    return Block(len(accs), {
        "login": ac.login[accs], "name": [names[i] for i in a],
        "group": [groups[i] for i in a], "leverage": ac.leverage[accs],
        "margin_mode": ac.margin_mode[accs], "margin_so_mode": ac.so_mode[accs],
        "margin_so_call": ac.so_call[accs], "margin_so_so": ac.so_so[accs],
        "balance": ac.balance[accs], "credit": ac.credit[accs],
        "currency": eng.config.currency, "trade_mode": ac.trade_mode[accs],
        "updated_msc": eng.now_msc})
