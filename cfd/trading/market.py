"""Market orders (TRADE_ACTION_DEAL and CLOSE_BY): validation and the plan of deals.

:func:`plan_deal` checks a request against the symbol, the account and the market, in MT5's
order of concerns, and returns a :class:`Plan` (the deals to make and the account as it would
be after them) or raises :class:`cfd.errors.Rejected` with the retcode. Nothing here changes
state; the engine applies a plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN
from fractions import Fraction
from typing import TYPE_CHECKING

from cfd.accounts import rules
from cfd.accounts.book import minor
from cfd.constants import (
    DealEntry,
    FillingFlag,
    MarginMode,
    OrderFilling,
    OrderTime,
    OrderType,
    Retcode,
    SymbolTradeExecution,
    SymbolTradeMode,
)
from cfd.errors import Rejected
from cfd.kernels import formulas as F
from cfd.kernels.formulas import deal_profit_minor
from cfd.money import (
    MINOR_SCALE,
    PRICE_SCALE,
    VOLUME_SCALE,
    div_round_half_even,
    parse_decimal,
)
from cfd.trading import margin_tiers
from cfd.trading.commission import charge_leg
from cfd.trading.request import COMMENT_MAX, TradeRequest

if TYPE_CHECKING:
    from cfd.engine import Engine

OPEN, ADD, REDUCE, CLOSE, REVERSE = "open", "add", "reduce", "close", "reverse"


@dataclass
class Leg:
    """One deal of a plan."""

    action: str  # OPEN / ADD / REDUCE / CLOSE / REVERSE / CLOSE_BY
    slot: int  # position slot, -1 for a new position
    deal_type: int  # DEAL_TYPE_BUY / SELL
    entry: int  # DealEntry
    volume: int  # deal volume (units, > 0)
    price: int  # deal price (units)
    closed_volume: int = 0  # signed as the position, the part that is closed
    profit: int = 0  # realised, minor units
    commission: int = 0  # charged, minor units (>= 0)
    fee: int = 0  # a venue's fee, charged, minor units (>= 0; cfd.trading.commission)
    new_volume: int = 0  # signed position volume after the deal
    new_price: int = 0  # position open price after the deal


@dataclass
class Plan:
    acc: int
    sym: int
    request: TradeRequest
    order_type: int
    volume: int
    price: int
    legs: list[Leg] = field(default_factory=list)
    sl: int = 0
    tp: int = 0
    balance_after: int = 0  # minor units
    profit_after: float = 0.0
    margin_after: float = 0.0
    equity_after: float = 0.0


_FILLING_FLAG = {OrderFilling.FOK: FillingFlag.FOK, OrderFilling.IOC: FillingFlag.IOC}
_ORDER_TIMES = frozenset(int(t) for t in OrderTime.__members__.values())


def fmt(minor: float) -> str:
    return f"{minor / MINOR_SCALE:,.2f} USDT"


def price_text(units: int, digits: int) -> str:
    return f"{units / PRICE_SCALE:.{digits}f}"


def parse_volume(eng: Engine, sym: int, value: float) -> int:
    spec = eng.symbols.specs[sym]
    if not isinstance(value, float) or not math.isfinite(value):
        raise Rejected(Retcode.INVALID_VOLUME, f"volume {value!r} is not a finite number")
    if value <= 0:
        raise Rejected(Retcode.INVALID_VOLUME, f"volume {value!r} must be greater than zero")
    if value > float(spec.volume_max):
        raise Rejected(Retcode.INVALID_VOLUME,
                       f"volume {value!r} exceeds the maximum {spec.volume_max} for {spec.name}")
    units = round(value * VOLUME_SCALE)
    if units / VOLUME_SCALE == value and units <= 2**53:
        # the float is exactly the decimal units / VOLUME_SCALE typed by the client (a
        # correctly rounded division gives back the same double only then): integer checks
        lim = eng.symbols.volume_limits(sym)
        if lim[0] <= units <= lim[1] and units % lim[2] == 0:
            return units
    dec = parse_decimal(value, "volume")
    if dec > spec.volume_max:
        raise Rejected(Retcode.INVALID_VOLUME,
                       f"volume {dec} exceeds the maximum {spec.volume_max} for {spec.name}")
    if dec < spec.volume_min:
        raise Rejected(Retcode.INVALID_VOLUME,
                       f"volume {dec} is below the minimum {spec.volume_min} for {spec.name}")
    if dec % spec.volume_step != 0:
        raise Rejected(Retcode.INVALID_VOLUME,
                       f"volume {dec} is not a multiple of the step {spec.volume_step}")
    return int(dec * VOLUME_SCALE)


def parse_price(eng: Engine, sym: int, value: float, what: str, retcode: int,
                required: bool) -> int:
    """A request price -> units on the symbol's point grid; 0 means "not given"."""
    spec = eng.symbols.specs[sym]
    if not math.isfinite(value):
        raise Rejected(retcode, f"{what} {value!r} is not a finite number")
    if value < 0:
        raise Rejected(retcode, f"{what} {value!r} is negative")
    if value == 0:
        if required:
            raise Rejected(retcode, f"{what} is required for {spec.name} "
                                    f"(instant execution)")
        return 0
    if value > 1e9:
        raise Rejected(retcode, f"{what} {value!r} is out of range")
    scale = 10**spec.digits
    points = round(value * scale)
    if points / scale == value:  # exactly on the point grid (see parse_volume)
        return points * (PRICE_SCALE // scale)
    dec = parse_decimal(value, what)
    q = dec.quantize(spec.point)
    if q != dec:
        raise Rejected(retcode, f"{what} {value!r} is not a multiple of the point {spec.point}")
    return int(q * PRICE_SCALE)


def check_filling(spec, filling: int) -> None:
    if filling not in (OrderFilling.FOK, OrderFilling.IOC, OrderFilling.RETURN):
        raise Rejected(Retcode.INVALID_FILL,
                       f"filling type {filling} is not allowed for market orders")
    if spec.execution_mode in (SymbolTradeExecution.MARKET, SymbolTradeExecution.EXCHANGE):
        if filling == OrderFilling.RETURN:
            if spec.execution_mode == SymbolTradeExecution.MARKET:
                raise Rejected(Retcode.INVALID_FILL,
                               f"{spec.name} has market execution: RETURN filling is not "
                               f"allowed (use FOK or IOC, symbol filling_mode "
                               f"{spec.filling_mode})")
        elif not spec.filling_mode & _FILLING_FLAG[filling]:
            raise Rejected(Retcode.INVALID_FILL,
                           f"{spec.name} does not allow {OrderFilling(filling).name} filling "
                           f"(symbol filling_mode {spec.filling_mode})")


def check_stops(eng: Engine, sym: int, is_buy: bool, sl: int, tp: int) -> None:
    """SL/TP of a position about to be opened on the ``is_buy`` side: a buy's SL below bid and
    TP above bid, a sell's SL above ask and TP below ask, each at least stops_level away."""
    spec = eng.symbols.specs[sym]
    c = eng.symbols.cols
    gap = spec.stops_level * eng.symbols.point_units(sym)
    ref = int(c.bid[sym]) if is_buy else int(c.ask[sym])
    d = spec.digits
    if is_buy:
        if sl and not (sl < ref and sl <= ref - gap):
            raise Rejected(Retcode.INVALID_STOPS, f"sl {price_text(sl, d)} must be below bid "
                           f"{price_text(ref, d)} by at least {spec.stops_level} points")
        if tp and not (tp > ref and tp >= ref + gap):
            raise Rejected(Retcode.INVALID_STOPS, f"tp {price_text(tp, d)} must be above bid "
                           f"{price_text(ref, d)} by at least {spec.stops_level} points")
    else:
        if sl and not (sl > ref and sl >= ref + gap):
            raise Rejected(Retcode.INVALID_STOPS, f"sl {price_text(sl, d)} must be above ask "
                           f"{price_text(ref, d)} by at least {spec.stops_level} points")
        if tp and not (tp < ref and tp <= ref - gap):
            raise Rejected(Retcode.INVALID_STOPS, f"tp {price_text(tp, d)} must be below ask "
                           f"{price_text(ref, d)} by at least {spec.stops_level} points")


def realised_profit(eng: Engine, sym: int, closed_volume: int, price_open: int,
                    price_close: int) -> int:
    """Exact profit in minor units of closing ``closed_volume`` (signed as the position)."""
    c = eng.symbols.cols
    ok, minor = deal_profit_minor(closed_volume, price_open, price_close, int(c.k_num[sym]),
                                  int(c.k_den[sym]))
    if ok:
        return int(minor)
    k = eng.symbols.k_exact[sym]
    exact = Fraction(price_close - price_open) * closed_volume * k
    return div_round_half_even(exact.numerator, exact.denominator)


def charge_legs(eng: Engine, acc: int, sym: int, legs: list[Leg]) -> None:
    """Commission and fee of each leg, by the account's schedule (``cfd.trading.commission``)."""
    for leg in legs:
        charge_leg(eng, acc, sym, leg)


def to_units(value: float, scale: int) -> int:
    """A float typed by a client -> grid units, rounding half to even past the grid."""
    dec = parse_decimal(float(value), "value") * scale
    return int(dec.to_integral_value(rounding=ROUND_HALF_EVEN))


def netting_average(v1: int, p1: int, v2: int, p2: int) -> int:
    """Weighted average open price, rounded half to even on the price grid."""
    return div_round_half_even(abs(v1) * p1 + abs(v2) * p2, abs(v1) + abs(v2))


def find_position(eng: Engine, acc: int, ticket: int, what: str = "position") -> int:
    p = eng.positions.slot_of(ticket)
    if p is not None and int(eng.positions.cols.acc[p]) == acc:
        return p
    if eng.was_position(acc, ticket):
        raise Rejected(Retcode.POSITION_CLOSED, f"{what} #{ticket} is already closed")
    raise Rejected(Retcode.INVALID, f"{what} #{ticket} not found on this account")


def plan_deal(eng: Engine, acc: int, req: TradeRequest) -> Plan:
    pos_t = eng.positions
    pc = pos_t.cols
    ac = eng.accounts.cols
    hedging = int(ac.margin_mode[acc]) == MarginMode.RETAIL_HEDGING
    if req.type not in (OrderType.BUY, OrderType.SELL):
        raise Rejected(Retcode.INVALID_ORDER,
                       f"order type {req.type} is not a market order (BUY=0 or SELL=1)")
    target = -1
    if req.position:
        target = find_position(eng, acc, req.position)
        sym = int(pc.sym[target])
        if req.symbol and req.symbol != eng.symbols.specs[sym].name:
            raise Rejected(Retcode.INVALID, f"position #{req.position} is in "
                           f"{eng.symbols.specs[sym].name}, not {req.symbol}")
    else:
        sym = symbol_index(eng, req.symbol)
    spec = eng.symbols.specs[sym]
    volume = parse_volume(eng, sym, req.volume)
    check_request_text(req)
    check_market(eng, acc, sym)
    check_filling(spec, req.type_filling)
    if req.type_time not in _ORDER_TIMES:
        raise Rejected(Retcode.INVALID_EXPIRATION, f"type_time {req.type_time} is not GTC (0), "
                       "DAY (1), SPECIFIED (2) or SPECIFIED_DAY (3)")
    is_buy = req.type == OrderType.BUY
    sc = eng.symbols.cols
    market = int(sc.ask[sym]) if is_buy else int(sc.bid[sym])
    instant = spec.execution_mode in (SymbolTradeExecution.INSTANT, SymbolTradeExecution.REQUEST)
    asked = parse_price(eng, sym, req.price, "price", Retcode.INVALID_PRICE, required=instant)
    if instant and req.deviation < 0:
        raise Rejected(Retcode.INVALID, f"deviation {req.deviation} is negative")
    if instant and abs(market - asked) > req.deviation * eng.symbols.point_units(sym):
        code = (Retcode.REQUOTE if spec.execution_mode == SymbolTradeExecution.INSTANT
                else Retcode.PRICE_CHANGED)
        raise Rejected(code, f"price {price_text(asked, spec.digits)} is "
                       f"{abs(market - asked) // eng.symbols.point_units(sym)} points from the "
                       f"market {price_text(market, spec.digits)}, deviation {req.deviation}")
    sl = parse_price(eng, sym, req.sl, "sl", Retcode.INVALID_STOPS, required=False)
    tp = parse_price(eng, sym, req.tp, "tp", Retcode.INVALID_STOPS, required=False)

    signed = volume if is_buy else -volume
    deal_type = 0 if is_buy else 1
    plan = Plan(acc=acc, sym=sym, request=req, order_type=req.type, volume=volume,
                price=market, sl=sl, tp=tp)
    if hedging:
        if target >= 0:
            pv = int(pc.volume[target])
            if (pv > 0) == is_buy:
                raise Rejected(Retcode.INVALID, f"position #{req.position} is a "
                               f"{'BUY' if pv > 0 else 'SELL'}: close it with a "
                               f"{'SELL' if pv > 0 else 'BUY'} order")
            if volume > abs(pv):
                raise Rejected(Retcode.INVALID_CLOSE_VOLUME, f"close volume "
                               f"{volume / VOLUME_SCALE:g} exceeds position volume "
                               f"{abs(pv) / VOLUME_SCALE:g}")
            action = CLOSE if volume == abs(pv) else REDUCE
            plan.legs.append(_closing_leg(eng, target, action, deal_type, volume, market))
        else:
            plan.legs.append(Leg(OPEN, -1, deal_type, DealEntry.IN, volume, market,
                                 new_volume=signed, new_price=market))
    else:
        p = pos_t.netting_slot(acc, sym)
        if target >= 0 and p != target:
            raise Rejected(Retcode.INVALID, f"position #{req.position} is not the {spec.name} "
                           f"position of this account")
        if p is None:
            plan.legs.append(Leg(OPEN, -1, deal_type, DealEntry.IN, volume, market,
                                 new_volume=signed, new_price=market))
        else:
            pv = int(pc.volume[p])
            if (pv > 0) == is_buy:
                plan.legs.append(Leg(ADD, p, deal_type, DealEntry.IN, volume, market,
                                     new_volume=pv + signed,
                                     new_price=netting_average(pv, int(pc.price_open[p]),
                                                               signed, market)))
            elif volume <= abs(pv):
                action = CLOSE if volume == abs(pv) else REDUCE
                plan.legs.append(_closing_leg(eng, p, action, deal_type, volume, market))
            else:
                leg = _closing_leg(eng, p, REVERSE, deal_type, volume, market)
                leg.entry = DealEntry.INOUT
                leg.new_volume = pv + signed
                leg.new_price = market
                plan.legs.append(leg)
    check_direction(eng, sym, plan)
    charge_legs(eng, acc, sym, plan.legs)
    if sl or tp:
        opens = plan.legs[0].action in (OPEN, ADD, REVERSE)
        if opens:
            check_stops(eng, sym, is_buy, sl, tp)
    project(eng, plan)
    rules.check_plan(eng, plan)
    if any(leg.action in (OPEN, ADD, REVERSE) for leg in plan.legs):
        check_money(eng, plan)
    return plan


def _closing_leg(eng: Engine, p: int, action: str, deal_type: int, volume: int,
                 price: int) -> Leg:
    pc = eng.positions.cols
    pv = int(pc.volume[p])
    closing = min(volume, abs(pv))
    closed = closing if pv > 0 else -closing
    profit = realised_profit(eng, int(pc.sym[p]), closed, int(pc.price_open[p]), price)
    return Leg(action, p, deal_type, DealEntry.OUT, volume, price, closed_volume=closed,
               profit=profit, new_volume=pv - closed, new_price=int(pc.price_open[p]))


def symbol_index(eng: Engine, name: str) -> int:
    if not name:
        raise Rejected(Retcode.INVALID, "symbol is required")
    sym = eng.symbols.get(name)
    if sym is None:
        raise Rejected(Retcode.INVALID, f"unknown symbol {name!r}")
    return sym


def check_request_text(req: TradeRequest) -> None:
    if len(req.comment) > COMMENT_MAX:
        raise Rejected(Retcode.INVALID,
                       f"comment is {len(req.comment)} characters, at most {COMMENT_MAX}")
    if req.magic < 0:
        raise Rejected(Retcode.INVALID, f"magic {req.magic} is negative")


def check_market(eng: Engine, acc: int, sym: int) -> None:
    spec = eng.symbols.specs[sym]
    sc = eng.symbols.cols
    if not eng.accounts.cols.trade_allowed[acc]:
        raise Rejected(Retcode.TRADE_DISABLED, "trading is disabled for this account")
    if spec.trade_mode == SymbolTradeMode.DISABLED:
        raise Rejected(Retcode.TRADE_DISABLED, f"trading in {spec.name} is disabled")
    if sc.halted[sym]:
        raise Rejected(Retcode.TRADE_DISABLED, f"trading in {spec.name} is halted")
    if not sc.market_open[sym]:
        raise Rejected(Retcode.MARKET_CLOSED, f"the market for {spec.name} is closed")
    if not sc.has_quote[sym]:
        raise Rejected(Retcode.PRICE_OFF, f"no quote for {spec.name}")
    if eng.is_stale(sym):
        raise Rejected(Retcode.PRICE_OFF, f"the quote for {spec.name} is stale")
    if eng.is_unconfirmed(sym):
        raise Rejected(Retcode.PRICE_OFF, f"the quote for {spec.name} jumped and awaits "
                                          f"confirmation")


def check_direction(eng: Engine, sym: int, plan: Plan) -> None:
    spec = eng.symbols.specs[sym]
    mode = spec.trade_mode
    leg = plan.legs[0]
    opens = leg.action in (OPEN, ADD, REVERSE)
    if not opens:
        return
    long_after = leg.new_volume > 0
    if mode == SymbolTradeMode.CLOSEONLY:
        raise Rejected(Retcode.CLOSE_ONLY, f"{spec.name} is close-only: positions can only "
                       f"be closed or reduced")
    if mode == SymbolTradeMode.LONGONLY and not long_after:
        raise Rejected(Retcode.LONG_ONLY, f"{spec.name} allows only long positions")
    if mode == SymbolTradeMode.SHORTONLY and long_after:
        raise Rejected(Retcode.SHORT_ONLY, f"{spec.name} allows only short positions")


# The kernels' own formulas, run as plain Python for one position at a time (``py_func`` is
# the same source; calling a compiled kernel from Python costs more than the arithmetic).
position_margin = getattr(F.position_margin, "py_func", F.position_margin)
margin_price = getattr(F.margin_price, "py_func", F.margin_price)
position_profit = getattr(F.position_profit, "py_func", F.position_profit)


def project(eng: Engine, plan: Plan) -> None:
    """Fill in the account as it would be after the plan (balance, profit, margin)."""
    ac = eng.accounts.cols
    sc = eng.symbols.cols
    pc = eng.positions.cols
    a, s = plan.acc, plan.sym
    lev = int(ac.leverage[a])
    mode = int(sc.calc_mode[s])
    bid, ask = int(sc.bid[s]), int(sc.ask[s])
    kp, km = float(sc.k_profit[s]), float(sc.k_margin[s])
    balance = int(ac.balance[a])
    profit = float(ac.profit[a])
    margin = float(ac.margin[a])
    for leg in plan.legs:
        balance += leg.profit - leg.commission - leg.fee
        if leg.slot >= 0:
            v, po = int(pc.volume[leg.slot]), int(pc.price_open[leg.slot])
            profit -= position_profit(v, po, bid, ask, kp)
            margin -= position_margin(mode, v, margin_price(mode, v, po, bid, ask), km, lev)
        if leg.new_volume:
            v, po = leg.new_volume, leg.new_price
            profit += position_profit(v, po, bid, ask, kp)
            margin += position_margin(mode, v, margin_price(mode, v, po, bid, ask), km, lev)
    if margin_tiers.is_tiered(eng, s):
        margin = margin_tiers.plan_margin(eng, plan)
    plan.balance_after = balance
    plan.profit_after = profit
    plan.margin_after = max(margin, 0.0)
    plan.equity_after = (balance + int(ac.credit[a])) / MINOR_SCALE + profit


def figures_after(eng: Engine, plan: Plan) -> tuple[int, int, int]:
    """``(equity, margin, margin of pending orders)`` in minor units after the plan, by the
    rule of ``account_info`` (``AccountTable.figures``)."""
    ac = eng.accounts.cols
    a = plan.acc
    return (plan.balance_after + int(ac.credit[a]) + minor(plan.profit_after),
            minor(plan.margin_after), minor(float(ac.margin_orders[a])))


def check_money(eng: Engine, plan: Plan) -> None:
    """Free margin after the plan must stay >= 0, decided on the figures ``account_info``
    would show (pending orders keep their reserved margin out of the free margin)."""
    equity, margin, orders = figures_after(eng, plan)
    if equity - margin - orders < 0:
        held = f" and {fmt(orders)} held by pending orders" if orders else ""
        raise Rejected(Retcode.NO_MONEY,
                       f"not enough money: margin {fmt(margin)} required{held}, equity "
                       f"would be {fmt(equity)}")
