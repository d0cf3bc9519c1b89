"""Engine rows -> MT5 records (plain dicts in MT5 field order); ``in_group`` is MT5's group
filter (``cfd.instruments.groups``).

The engine keeps integers on grids (``cfd.money``): prices / 1e6, volumes / 1e4, money / 100.
Records are built here, at the edge, for the few rows a request touches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from api.bars import BOOK_DEPTH, BOOK_SOURCE
from cfd.constants import OrderState
from cfd.engine import Engine
from cfd.instruments.groups import symbol_in_group as in_group  # noqa: F401 (re-export)
from cfd.instruments.tiers import group_schedule
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE
from cfd.trading.positions import position_floating_profit

ACTIVE_ORDER_STATES = tuple(int(s) for s in (
    OrderState.STARTED, OrderState.PLACED, OrderState.PARTIAL, OrderState.REQUEST_ADD,
    OrderState.REQUEST_MODIFY, OrderState.REQUEST_CANCEL))


# ---------------------------------------------------------------------------- records
def _px(units: int) -> float:
    return int(units) / PRICE_SCALE


def _vol(units: int) -> float:
    return int(units) / VOLUME_SCALE


def _money(minor: int) -> float:
    return int(minor) / MINOR_SCALE


def quote(eng: Engine, s: int) -> tuple[float, float]:
    sc = eng.symbols.cols
    if not sc.has_quote[s]:
        return 0.0, 0.0
    return _px(sc.bid[s]), _px(sc.ask[s])


def position(eng: Engine, slot: int) -> dict[str, Any]:
    row = eng.position_row(int(slot))
    s = int(eng.positions.cols.sym[slot])
    bid, ask = quote(eng, s)
    profit = position_floating_profit(eng.positions.cols, eng.symbols.cols, int(slot))
    return {
        "ticket": row["ticket"], "time": row["time_msc"] // 1000, "time_msc": row["time_msc"],
        "time_update": row["time_update_msc"] // 1000,
        "time_update_msc": row["time_update_msc"], "type": row["type"],
        "magic": row["magic"], "identifier": row["identifier"], "reason": row["reason"],
        "volume": _vol(row["volume"]), "price_open": _px(row["price_open"]),
        "sl": _px(row["sl"]), "tp": _px(row["tp"]),
        "price_current": bid if row["type"] == 0 else ask, "swap": _money(row["swap"]),
        "profit": round(profit, 2) if np.isfinite(profit) else 0.0, "symbol": row["symbol"],
        "comment": row["comment"], "external_id": row["external_id"],
    }


def deal(row: dict[str, Any]) -> dict[str, Any]:
    """A TradeDeal from an engine/store deal row."""
    return {
        "ticket": row["ticket"], "order": row["order"], "time": row["time_msc"] // 1000,
        "time_msc": row["time_msc"], "type": row["type"], "entry": row["entry"],
        "magic": row["magic"], "position_id": row["position_id"], "reason": row["reason"],
        "volume": _vol(row["volume"]), "price": _px(row["price"]),
        "commission": _money(row["commission"]), "swap": _money(row["swap"]),
        "profit": _money(row["profit"]), "fee": _money(row["fee"]),
        "symbol": row["symbol"] or "", "comment": row["comment"] or "",
        "external_id": row.get("external_id") or "",
    }


def order(row: dict[str, Any]) -> dict[str, Any]:
    """A TradeOrder from an engine/store order row."""
    return {
        "ticket": row["ticket"], "time_setup": row["time_setup_msc"] // 1000,
        "time_setup_msc": row["time_setup_msc"], "time_done": row["time_done_msc"] // 1000,
        "time_done_msc": row["time_done_msc"], "time_expiration": row["time_expiration"],
        "type": row["type"], "type_time": row["type_time"],
        "type_filling": row["type_filling"], "state": row["state"], "magic": row["magic"],
        "position_id": row["position_id"], "position_by_id": row["position_by_id"],
        "reason": row["reason"], "volume_initial": _vol(row["volume_initial"]),
        "volume_current": _vol(row["volume_current"]), "price_open": _px(row["price_open"]),
        "sl": _px(row["sl"]), "tp": _px(row["tp"]), "price_current": _px(row["price_current"]),
        "price_stoplimit": _px(row["price_stoplimit"]), "symbol": row["symbol"] or "",
        "comment": row["comment"] or "", "external_id": row.get("external_id") or "",
    }


def tick(eng: Engine, s: int) -> dict[str, Any]:
    sc = eng.symbols.cols
    bid, ask = quote(eng, s)
    t = int(sc.tick_msc[s])
    return {"time": t // 1000, "bid": bid, "ask": ask, "last": 0.0, "volume": 0,
            "time_msc": t, "flags": 6 if sc.has_quote[s] else 0, "volume_real": 0.0}


def group_of(eng: Engine, login: int) -> str | None:
    """The group of the account ``login`` (None when unknown)."""
    a = eng.accounts.find(login)
    return None if a is None else eng.accounts.groups[a]


def symbol_info(eng: Engine, s: int, day: dict[str, float] | None = None,
                selected: bool = True, group: str | None = None) -> dict[str, Any]:
    """The 96 SymbolInfo fields, then the margin tiers (those of ``group``, the asking
    account's, where it overrides the symbol's). ``day``: the day's bid/ask highs and lows
    and first bid."""
    spec = eng.symbols.specs[s]
    tiers = spec.margin_tiers
    g = eng.config.groups.get(group) if group else None
    if g is not None and g.margin_tiers:
        over = group_schedule(g.margin_tiers, spec.name)
        tiers = tiers if over is None else over
    sc = eng.symbols.cols
    bid, ask = quote(eng, s)
    point = float(spec.point)
    digits = spec.digits
    spread = int(round((ask - bid) / point)) if sc.has_quote[s] else 0
    rate = float(eng.symbols.rates.get(spec.currency_profit, 1))
    tick_value = point * float(spec.contract_size) * rate
    trade_mode = 0 if sc.halted[s] else int(spec.trade_mode)
    day = day or {}
    first = day.get("first_bid", 0.0)
    change = round((bid - first) / first * 100, 4) if first and bid else 0.0
    swap_long, swap_short = eng.day.symbol_rates(s)
    # the margin of one lot at the ask, at the rates in force or about to be (the weekend
    # and holiday schedule's multiplier shows a day ahead: cfd.trading.weekend)
    lot = float(spec.contract_size) * ask * float(eng.weekend.multiplier(s))
    return {
        "custom": False, "chart_mode": 0, "select": selected, "visible": selected,
        "session_deals": 0, "session_buy_orders": 0, "session_sell_orders": 0, "volume": 0,
        "volumehigh": 0, "volumelow": 0, "time": int(sc.tick_msc[s]) // 1000,
        "digits": digits, "spread": spread, "spread_float": True, "ticks_bookdepth": BOOK_DEPTH,
        "trade_calc_mode": int(spec.calc_mode), "trade_mode": trade_mode, "start_time": 0,
        "expiration_time": 0, "trade_stops_level": int(spec.stops_level),
        "trade_freeze_level": int(spec.freeze_level),
        "trade_exemode": int(spec.execution_mode), "swap_mode": int(spec.swap_mode),
        "swap_rollover3days": int(spec.swap_rollover3days), "margin_hedged_use_leg": False,
        "expiration_mode": int(spec.expiration_mode), "filling_mode": int(spec.filling_mode),
        "order_mode": int(spec.order_mode), "order_gtc_mode": 0, "option_mode": 0,
        # the day's range as last stored, widened by the current quote (stored in batches)
        "option_right": 0, "bid": bid, "bidhigh": max(day.get("bidhigh", bid), bid),
        "bidlow": min(day.get("bidlow", bid), bid), "ask": ask,
        "askhigh": max(day.get("askhigh", ask), ask), "asklow": min(day.get("asklow", ask), ask),
        "last": 0.0, "lasthigh": 0.0, "lastlow": 0.0,
        "volume_real": 0.0, "volumehigh_real": 0.0, "volumelow_real": 0.0,
        "option_strike": 0.0, "point": point, "trade_tick_value": tick_value,
        "trade_tick_value_profit": tick_value, "trade_tick_value_loss": tick_value,
        "trade_tick_size": point, "trade_contract_size": float(spec.contract_size),
        "trade_accrued_interest": 0.0, "trade_face_value": 0.0, "trade_liquidity_rate": 0.0,
        "volume_min": float(spec.volume_min), "volume_max": float(spec.volume_max),
        "volume_step": float(spec.volume_step), "volume_limit": 0.0,
        "swap_long": swap_long, "swap_short": swap_short,
        "margin_initial": round(lot * float(spec.margin_initial_rate), 2),
        "margin_maintenance": round(lot * float(spec.margin_maintenance_rate), 2),
        "session_volume": 0.0,
        "session_turnover": 0.0, "session_interest": 0.0, "session_buy_orders_volume": 0.0,
        "session_sell_orders_volume": 0.0, "session_open": first, "session_close": 0.0,
        "session_aw": 0.0, "session_price_settlement": 0.0, "session_price_limit_min": 0.0,
        "session_price_limit_max": 0.0, "margin_hedged": float(spec.contract_size),
        "price_change": change, "price_volatility": 0.0, "price_theoretical": 0.0,
        "price_greeks_delta": 0.0, "price_greeks_theta": 0.0, "price_greeks_gamma": 0.0,
        "price_greeks_vega": 0.0, "price_greeks_rho": 0.0, "price_greeks_omega": 0.0,
        "price_sensitivity": 0.0, "basis": "", "category": "Stocks",
        "currency_base": spec.currency_base, "currency_profit": spec.currency_profit,
        "currency_margin": spec.currency_margin, "bank": BOOK_SOURCE,
        "description": spec.description,
        "exchange": spec.exchange, "formula": "", "isin": spec.isin, "name": spec.name,
        "page": "", "path": spec.path,
        # after MT5's fields (api.mt5._records.SYMBOL_INFO_EXTRA)
        "margin_tiers": tiers, "margin_tiers_by": spec.margin_tiers_by,
    }


# ---------------------------------------------------------------------------- account queries
def positions_of(eng: Engine, login: int) -> list[dict[str, Any]]:
    a = eng.accounts.find(login)
    if a is None:
        return []
    slots = eng.positions.of_account(a)
    pc = eng.positions.cols
    slots = sorted((int(p) for p in slots), key=lambda p: (int(pc.time_msc[p]),
                                                           int(pc.ticket[p])))
    return [position(eng, p) for p in slots]


def _order_indices(eng: Engine, login: int, active: bool) -> np.ndarray:
    a = eng.accounts.find(login)
    n = len(eng.orders)
    if a is None or n == 0:
        return np.zeros(0, dtype=np.int64)
    c = eng.orders.cols
    live = np.isin(c.state[:n], ACTIVE_ORDER_STATES)
    mask = (c.acc[:n] == a) & (live if active else ~live)
    return np.nonzero(mask)[0]


def orders_of(eng: Engine, login: int, active: bool = True) -> list[dict[str, Any]]:
    """Active (pending) orders, by ticket, from the pending-orders extension; or finished
    ones (history, ``Engine.orders``), in the order they were set up."""
    if active:
        a = eng.accounts.find(login)
        if a is not None:
            return [order(r) for r in eng.pending.orders_of(a)]
    return [order(eng.order_row(int(i))) for i in _order_indices(eng, login, active)]


def history_orders(eng: Engine, login: int, t0_msc: int, t1_msc: int) -> list[dict[str, Any]]:
    idx = _order_indices(eng, login, active=False)
    t = eng.orders.cols.time_setup_msc[idx]
    return [order(eng.order_row(int(i))) for i in idx[(t >= t0_msc) & (t <= t1_msc)]]


def history_deals(eng: Engine, login: int, t0_msc: int | None = None,
                  t1_msc: int | None = None, order_ticket: int | None = None,
                  position_id: int | None = None) -> list[dict[str, Any]]:
    a = eng.accounts.find(login)
    n = len(eng.deals)
    if a is None or n == 0:
        return []
    c = eng.deals.cols
    mask = c.acc[:n] == a
    if t0_msc is not None:
        mask &= (c.time_msc[:n] >= t0_msc) & (c.time_msc[:n] <= t1_msc)
    if order_ticket is not None:
        mask &= c.order[:n] == order_ticket
    if position_id is not None:
        mask &= c.position_id[:n] == position_id
    return [deal(eng.deal_row(int(i))) for i in np.nonzero(mask)[0]]
