"""Stop-out (liquidation), MT5 semantics, applied one account at a time.

For each account at or below its stop-out level: close the most loss-making position (ties:
the lowest ticket) at the current bid/ask, re-derive the account, repeat until the account is
above the level (above ``so_end`` with hysteresis) or has nothing left that can be closed
(positions in closed or halted markets wait for the market to open). Deals carry reason SO
(6) and the comment ``so: <level>%/<equity>/<margin>``. A balance left below zero on a flat
account is brought to zero from the insurance fund, then from broker P/L (negative balance
protection), by a posting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cfd.accounts.ledger import BROKER_PL, INSURANCE_FUND, PostingKind, client_ledger
from cfd.constants import DealType, OrderReason
from cfd.kernels.formulas import is_stop_out, margin_level
from cfd.money import MINOR_SCALE
from cfd.trading import market

if TYPE_CHECKING:
    from cfd.engine import Engine


def so_comment(level: float, equity: float, margin: float) -> str:
    return f"so: {level:.2f}%/{equity:.2f}/{margin:.2f}"[:31]


def must_close(eng: Engine, a: int, force: bool, started: bool) -> bool:
    ac = eng.accounts.cols
    eq = eng.accounts.equity(a)
    m = float(ac.margin[a])
    if force:
        return m > 0 or len(eng.positions.of_account(a)) > 0
    rule = int(ac.so_rule[a])
    if is_stop_out(rule, float(ac.so_so[a]), eq, m):
        return True
    end = float(ac.so_end[a])
    if started and end > float(ac.so_so[a]) and m > 0:
        return margin_level(eq, m) <= end if rule != 1 else eq <= end
    return False


def closable(eng: Engine, a: int) -> np.ndarray:
    slots = eng.positions.of_account(a)
    sc = eng.symbols.cols
    syms = eng.positions.cols.sym[slots]
    ok = sc.market_open[syms] & sc.has_quote[syms] & ~sc.halted[syms]
    return slots[ok]


def sweep_python(eng: Engine, accs: np.ndarray, force: bool = False) -> list[dict]:
    events: list[dict] = []
    pc = eng.positions.cols
    ac = eng.accounts.cols
    for a in np.asarray(accs, dtype=np.int64):
        a = int(a)
        closed = 0
        start = None
        while must_close(eng, a, force, closed > 0):
            slots = closable(eng, a)
            if len(slots) == 0:
                break
            order = np.lexsort((pc.ticket[slots], pc.profit[slots]))
            p = int(slots[order[0]])
            eq = eng.accounts.equity(a)
            m = float(ac.margin[a])
            if start is None:
                start = (margin_level(eq, m), eq, m)
            comment = so_comment(margin_level(eq, m), eq, m)
            close_position(eng, a, p, comment)
            closed += 1
        if closed:
            ev = {"kind": "stop_out", "login": int(ac.login[a]), "time_msc": eng.now_msc,
                  "positions_closed": closed, "margin_level": start[0], "equity": start[1],
                  "margin": start[2], "remaining": int(len(eng.positions.of_account(a)))}
            comp = compensate(eng, a)
            if comp:
                ev["compensation"] = comp
            events.append(ev)
            eng._effects.events.append(ev)
    return events


def close_position(eng: Engine, a: int, p: int, comment: str) -> None:
    pc = eng.positions.cols
    s = int(pc.sym[p])
    v = int(pc.volume[p])
    sc = eng.symbols.cols
    price = int(sc.bid[s]) if v > 0 else int(sc.ask[s])
    req = market.TradeRequest(action=1, symbol=eng.symbols.specs[s].name, volume=abs(v) / 1e4,
                              type=1 if v > 0 else 0, position=int(pc.ticket[p]),
                              comment=comment)
    plan = market.Plan(acc=a, sym=s, request=req, order_type=1 if v > 0 else 0,
                       volume=abs(v), price=price)
    leg = market._closing_leg(eng, p, market.CLOSE, 1 if v > 0 else 0, abs(v), price)
    leg.commission = market.commission_minor(eng, s, abs(v))
    plan.legs.append(leg)
    eng.execute(plan, reason=OrderReason.SO, comment=comment)


def compensate(eng: Engine, a: int) -> int:
    """Negative balance protection on a flat account; returns the amount compensated."""
    ac = eng.accounts.cols
    bal = int(ac.balance[a])
    if bal >= 0 or len(eng.positions.of_account(a)) > 0:
        return 0
    need = -bal
    fund = max(int(eng.ledger.balance[INSURANCE_FUND]), 0)
    from_fund = min(fund, need)
    deal = eng._balance_deal(a, DealType.SO_COMPENSATION, need, "so compensation")
    if from_fund:
        eng._post(INSURANCE_FUND, client_ledger(a), from_fund, PostingKind.SO_COMPENSATION,
                  deal, "negative balance protection")
    if need - from_fund:
        eng._post(BROKER_PL, client_ledger(a), need - from_fund, PostingKind.SO_COMPENSATION,
                  deal, "negative balance protection (fund empty)")
    eng._touch_account(a)
    return need


__all__ = ["sweep_python", "close_position", "compensate", "MINOR_SCALE"]
