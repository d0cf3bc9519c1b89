"""Validation of pending-order requests (PENDING, MODIFY) and of SLTP on positions.

Each ``check_*`` function reads state and either returns what to apply or raises
:class:`cfd.errors.Rejected` with the MT5 retcode; nothing here changes state.

Order prices against the market (``gap`` = stops_level points; buys compare with ask, sells
with bid):

* BUY LIMIT below ask, SELL LIMIT above bid, BUY STOP above ask, SELL STOP below bid, each at
  least ``gap`` away (and strictly away when stops_level is 0);
* STOP LIMIT: the stop ``price`` as a STOP order; its ``stoplimit`` (the LIMIT order placed
  on activation) below the stop price for a buy, above it for a sell, by at least ``gap``;
* SL/TP of an order, against the price it fills at (``stoplimit`` for STOP LIMIT orders): a
  buy's SL below and TP above, a sell's SL above and TP below, at least ``gap`` away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cfd.accounts import rules
from cfd.accounts.book import minor
from cfd.constants import (
    ExpirationFlag,
    MarginMode,
    OrderFilling,
    OrderModeFlag,
    OrderTime,
    OrderType,
    Retcode,
    SymbolTradeMode,
)
from cfd.errors import Rejected
from cfd.instruments import sessions
from cfd.money import VOLUME_SCALE
from cfd.trading import margin_tiers, market
from cfd.trading.market import price_text
from cfd.trading.request import TradeRequest

if TYPE_CHECKING:
    from cfd.engine import Engine

PENDING_TYPES = (OrderType.BUY_LIMIT, OrderType.SELL_LIMIT, OrderType.BUY_STOP,
                 OrderType.SELL_STOP, OrderType.BUY_STOP_LIMIT, OrderType.SELL_STOP_LIMIT)
STOP_LIMITS = (OrderType.BUY_STOP_LIMIT, OrderType.SELL_STOP_LIMIT)
_MODE_FLAG = {2: OrderModeFlag.LIMIT, 3: OrderModeFlag.LIMIT, 4: OrderModeFlag.STOP,
              5: OrderModeFlag.STOP, 6: OrderModeFlag.STOP_LIMIT, 7: OrderModeFlag.STOP_LIMIT}
_TIME_FLAG = {OrderTime.GTC: ExpirationFlag.GTC, OrderTime.DAY: ExpirationFlag.DAY,
              OrderTime.SPECIFIED: ExpirationFlag.SPECIFIED,
              OrderTime.SPECIFIED_DAY: ExpirationFlag.SPECIFIED_DAY}
DAY_MSC = 86_400_000
MAX_EXPIRATION = 32_503_680_000  # 3000-01-01, seconds


@dataclass
class OrderTerms:
    """A pending order's validated terms (prices in units, volume in units)."""

    sym: int
    type: int
    volume: int
    price: int
    stoplimit: int
    sl: int
    tp: int
    type_time: int
    type_filling: int
    expire_msc: int  # 0: never (GTC)
    expiration: int  # seconds, as MT5 records it (0 for GTC)
    margin: float  # reserved margin, account currency

    @property
    def is_buy(self) -> bool:
        return self.type % 2 == 0

    @property
    def fill_price(self) -> int:
        """The price the order fills at when reached (the LIMIT price of a STOP LIMIT)."""
        return self.stoplimit if self.type in STOP_LIMITS else self.price


def order_margin(eng: Engine, acc: int, sym: int, volume: int, price: int) -> float:
    """Margin reserved by a pending order: the position margin of ``volume`` at the price the
    order fills at (MT5 margins pending orders at their open price), tiers applied to the
    order's volume (``margin_tiers.order_margin``)."""
    return margin_tiers.order_margin(eng, acc, sym, volume, price)


def check_expiration(eng: Engine, sym: int, type_time: int, expiration: int) -> tuple[int, int]:
    """``(expire_msc, expiration seconds)`` for a time type, or INVALID_EXPIRATION.

    GTC never expires; DAY expires at the end of the symbol's current (or next) session
    (at the next UTC midnight for 24/7 symbols); SPECIFIED at ``expiration`` (seconds);
    SPECIFIED_DAY at the end (UTC midnight) of the day of ``expiration``."""
    spec = eng.symbols.specs[sym]
    now = eng.now_msc
    if type_time not in _TIME_FLAG:
        raise Rejected(Retcode.INVALID_EXPIRATION, f"type_time {type_time} is not GTC (0), "
                       f"DAY (1), SPECIFIED (2) or SPECIFIED_DAY (3)")
    if not spec.expiration_mode & _TIME_FLAG[OrderTime(type_time)]:
        raise Rejected(Retcode.INVALID_EXPIRATION, f"{spec.name} does not allow "
                       f"{OrderTime(type_time).name} orders (expiration_mode "
                       f"{spec.expiration_mode})")
    if type_time == OrderTime.GTC:
        return 0, 0
    if type_time == OrderTime.DAY:
        end = sessions.next_close(int(eng.symbols.cols.session[sym]), now)
        if end >= sessions.NEVER:
            end = (now // DAY_MSC + 1) * DAY_MSC
        return end, end // 1000
    if not 0 < expiration < MAX_EXPIRATION:
        raise Rejected(Retcode.INVALID_EXPIRATION, f"expiration {expiration} is not a time "
                       f"(seconds since 1970)")
    end = expiration * 1000
    if type_time == OrderTime.SPECIFIED_DAY:
        end = (end // DAY_MSC + 1) * DAY_MSC
    if end <= now:
        raise Rejected(Retcode.INVALID_EXPIRATION, f"expiration {expiration} is not after "
                       f"the server time {now // 1000}")
    return end, end // 1000


def check_order_prices(eng: Engine, sym: int, otype: int, price: int, stoplimit: int, sl: int,
                       tp: int) -> None:
    spec = eng.symbols.specs[sym]
    sc = eng.symbols.cols
    gap = spec.stops_level * eng.symbols.point_units(sym)
    d = spec.digits
    bid, ask = int(sc.bid[sym]), int(sc.ask[sym])
    name = OrderType(otype).name
    need = f" by at least {spec.stops_level} points"
    if otype == OrderType.BUY_LIMIT and not (price < ask and ask - price >= gap):
        raise Rejected(Retcode.INVALID_PRICE, f"{name} price {price_text(price, d)} must be "
                       f"below ask {price_text(ask, d)}{need}")
    if otype == OrderType.SELL_LIMIT and not (price > bid and price - bid >= gap):
        raise Rejected(Retcode.INVALID_PRICE, f"{name} price {price_text(price, d)} must be "
                       f"above bid {price_text(bid, d)}{need}")
    if otype in (OrderType.BUY_STOP, OrderType.BUY_STOP_LIMIT) and not (
            price > ask and price - ask >= gap):
        raise Rejected(Retcode.INVALID_PRICE, f"{name} price {price_text(price, d)} must be "
                       f"above ask {price_text(ask, d)}{need}")
    if otype in (OrderType.SELL_STOP, OrderType.SELL_STOP_LIMIT) and not (
            price < bid and bid - price >= gap):
        raise Rejected(Retcode.INVALID_PRICE, f"{name} price {price_text(price, d)} must be "
                       f"below bid {price_text(bid, d)}{need}")
    if otype == OrderType.BUY_STOP_LIMIT and not (stoplimit < price and price - stoplimit >= gap):
        raise Rejected(Retcode.INVALID_PRICE, f"stoplimit {price_text(stoplimit, d)} must be "
                       f"below the stop price {price_text(price, d)}{need}")
    if otype == OrderType.SELL_STOP_LIMIT and not (stoplimit > price
                                                   and stoplimit - price >= gap):
        raise Rejected(Retcode.INVALID_PRICE, f"stoplimit {price_text(stoplimit, d)} must be "
                       f"above the stop price {price_text(price, d)}{need}")
    fill = stoplimit if otype in STOP_LIMITS else price
    if otype % 2 == 0:
        if sl and not (sl < fill and fill - sl >= gap):
            raise Rejected(Retcode.INVALID_STOPS, f"sl {price_text(sl, d)} must be below the "
                           f"order price {price_text(fill, d)}{need}")
        if tp and not (tp > fill and tp - fill >= gap):
            raise Rejected(Retcode.INVALID_STOPS, f"tp {price_text(tp, d)} must be above the "
                           f"order price {price_text(fill, d)}{need}")
    else:
        if sl and not (sl > fill and sl - fill >= gap):
            raise Rejected(Retcode.INVALID_STOPS, f"sl {price_text(sl, d)} must be above the "
                           f"order price {price_text(fill, d)}{need}")
        if tp and not (tp < fill and fill - tp >= gap):
            raise Rejected(Retcode.INVALID_STOPS, f"tp {price_text(tp, d)} must be below the "
                           f"order price {price_text(fill, d)}{need}")


def check_stop_flags(eng: Engine, sym: int, sl: int, tp: int) -> None:
    spec = eng.symbols.specs[sym]
    if sl and not spec.order_mode & OrderModeFlag.SL:
        raise Rejected(Retcode.INVALID_STOPS, f"{spec.name} does not allow stop loss")
    if tp and not spec.order_mode & OrderModeFlag.TP:
        raise Rejected(Retcode.INVALID_STOPS, f"{spec.name} does not allow take profit")


def check_direction(eng: Engine, acc: int, sym: int, is_buy: bool, volume: int) -> None:
    """The symbol's trade mode against the position the order would open (hedging: always a
    new position; netting: the account's position after the fill)."""
    spec = eng.symbols.specs[sym]
    mode = spec.trade_mode
    if mode == SymbolTradeMode.FULL:
        return
    signed = volume if is_buy else -volume
    pv = 0
    if int(eng.accounts.cols.margin_mode[acc]) != MarginMode.RETAIL_HEDGING:
        p = eng.positions.netting_slot(acc, sym)
        pv = int(eng.positions.cols.volume[p]) if p is not None else 0
    new = pv + signed
    opens = pv == 0 or (pv > 0) == is_buy or abs(signed) > abs(pv)
    if not opens:
        return
    if mode == SymbolTradeMode.CLOSEONLY:
        raise Rejected(Retcode.CLOSE_ONLY, f"{spec.name} is close-only: positions can only "
                       f"be closed or reduced")
    if mode == SymbolTradeMode.LONGONLY and new < 0:
        raise Rejected(Retcode.LONG_ONLY, f"{spec.name} allows only long positions")
    if mode == SymbolTradeMode.SHORTONLY and new > 0:
        raise Rejected(Retcode.SHORT_ONLY, f"{spec.name} allows only short positions")


def check_filling(otype: int, filling: int) -> None:
    """Pending orders fill whole (this engine has no partial fills), so FOK, IOC and RETURN
    are accepted; BOC only for LIMIT and STOP LIMIT orders (a BOC order that would execute at
    once is refused by the price checks anyway)."""
    allowed = (OrderFilling.FOK, OrderFilling.IOC, OrderFilling.RETURN)
    if otype in (OrderType.BUY_LIMIT, OrderType.SELL_LIMIT) or otype in STOP_LIMITS:
        allowed = (*allowed, OrderFilling.BOC)
    if filling not in allowed:
        raise Rejected(Retcode.INVALID_FILL, f"filling type {filling} is not allowed for "
                       f"{OrderType(otype).name} orders")


def check_free_margin(eng: Engine, acc: int, extra: float) -> None:
    """Free margin (equity - margin - margin of pending orders) must stay >= 0 after
    reserving ``extra`` more."""
    if extra <= 0:
        return
    # decided on the figures account_info would show once the order holds its margin
    equity, margin, orders = eng.accounts.figures(acc)
    orders_after = minor(float(eng.accounts.cols.margin_orders[acc]) + extra)
    if equity - margin - orders_after < 0:
        raise Rejected(Retcode.NO_MONEY, f"not enough money: free margin "
                       f"{market.fmt(equity - margin - orders)}, the order needs "
                       f"{market.fmt(orders_after - orders)}")


def _prices(eng: Engine, sym: int, otype: int, req: TradeRequest) -> tuple[int, int, int, int]:
    price = market.parse_price(eng, sym, req.price, "price", Retcode.INVALID_PRICE, False)
    if price == 0:
        raise Rejected(Retcode.INVALID_PRICE, "price is required for a pending order")
    stoplimit = 0
    if otype in STOP_LIMITS:
        stoplimit = market.parse_price(eng, sym, req.stoplimit, "stoplimit",
                                       Retcode.INVALID_PRICE, False)
        if stoplimit == 0:
            raise Rejected(Retcode.INVALID_PRICE, "stoplimit is required for a STOP LIMIT "
                                                  "order")
    sl = market.parse_price(eng, sym, req.sl, "sl", Retcode.INVALID_STOPS, False)
    tp = market.parse_price(eng, sym, req.tp, "tp", Retcode.INVALID_STOPS, False)
    return price, stoplimit, sl, tp


def check_pending(eng: Engine, acc: int, req: TradeRequest, n_orders: int) -> OrderTerms:
    """TRADE_ACTION_PENDING; ``n_orders``: the account's active pending orders."""
    sym = market.symbol_index(eng, req.symbol)
    spec = eng.symbols.specs[sym]
    if req.type not in PENDING_TYPES:
        raise Rejected(Retcode.INVALID_ORDER, f"order type {req.type} is not a pending order "
                       f"(BUY/SELL LIMIT 2/3, STOP 4/5, STOP LIMIT 6/7)")
    if not spec.order_mode & _MODE_FLAG[req.type]:
        raise Rejected(Retcode.INVALID_ORDER, f"{spec.name} does not allow "
                       f"{OrderType(req.type).name} orders (order_mode {spec.order_mode})")
    volume = market.parse_volume(eng, sym, req.volume)
    market.check_request_text(req)
    market.check_market(eng, acc, sym)
    check_filling(req.type, req.type_filling)
    expire_msc, expiration = check_expiration(eng, sym, req.type_time, req.expiration)
    price, stoplimit, sl, tp = _prices(eng, sym, req.type, req)
    check_stop_flags(eng, sym, sl, tp)
    check_order_prices(eng, sym, req.type, price, stoplimit, sl, tp)
    is_buy = req.type % 2 == 0
    check_direction(eng, acc, sym, is_buy, volume)
    limit = eng.config.groups[eng.accounts.groups[acc]].limit_orders
    if limit and n_orders >= limit:
        raise Rejected(Retcode.LIMIT_ORDERS, f"the account has {n_orders} pending orders, "
                       f"the limit is {limit}")
    rules.check_pending(eng, acc, sym, volume, price)
    terms = OrderTerms(sym, int(req.type), volume, price, stoplimit, sl, tp, int(req.type_time),
                       int(req.type_filling), expire_msc, expiration, 0.0)
    terms.margin = order_margin(eng, acc, sym, volume, terms.fill_price)
    check_free_margin(eng, acc, terms.margin)
    return terms


def check_modify(eng: Engine, acc: int, req: TradeRequest, old: OrderTerms) -> OrderTerms:
    """TRADE_ACTION_MODIFY of an order with terms ``old``: new price, stoplimit, sl, tp,
    type_time and expiration (MT5 sends all of them); NO_CHANGES when none differs."""
    sym = old.sym
    market.check_market(eng, acc, sym)
    price, stoplimit, sl, tp = _prices(eng, sym, old.type, req)
    if old.type_time == req.type_time == OrderTime.DAY:
        expire_msc, expiration = old.expire_msc, old.expiration  # a DAY order keeps its day
    else:
        expire_msc, expiration = check_expiration(eng, sym, req.type_time, req.expiration)
    new = OrderTerms(sym, old.type, old.volume, price, stoplimit, sl, tp, int(req.type_time),
                     old.type_filling, expire_msc, expiration, 0.0)
    same = (new.price, new.stoplimit, new.sl, new.tp, new.type_time, new.expire_msc) == (
        old.price, old.stoplimit, old.sl, old.tp, old.type_time, old.expire_msc)
    if same:
        raise Rejected(Retcode.NO_CHANGES, "the order already has these terms")
    check_stop_flags(eng, sym, sl, tp)
    check_order_prices(eng, sym, old.type, price, stoplimit, sl, tp)
    new.margin = order_margin(eng, acc, sym, old.volume, new.fill_price)
    check_free_margin(eng, acc, new.margin - old.margin)
    return new


def check_sltp(eng: Engine, acc: int, req: TradeRequest) -> tuple[int, int, int]:
    """TRADE_ACTION_SLTP: ``(position slot, sl, tp)``. Hedging needs ``position``; netting
    finds the position by ``symbol`` (a given ``position`` must be that one)."""
    pc = eng.positions.cols
    hedging = int(eng.accounts.cols.margin_mode[acc]) == MarginMode.RETAIL_HEDGING
    if hedging and not req.position:
        raise Rejected(Retcode.INVALID, "position is required to modify SL/TP on a hedging "
                                        "account")
    if req.position:
        p = market.find_position(eng, acc, req.position)
        sym = int(pc.sym[p])
        if req.symbol and req.symbol != eng.symbols.specs[sym].name:
            raise Rejected(Retcode.INVALID, f"position #{req.position} is in "
                           f"{eng.symbols.specs[sym].name}, not {req.symbol}")
    else:
        sym = market.symbol_index(eng, req.symbol)
        slot = eng.positions.netting_slot(acc, sym)
        if slot is None:
            raise Rejected(Retcode.INVALID, f"no open {eng.symbols.specs[sym].name} position "
                                            f"on this account")
        p = slot
    market.check_market(eng, acc, sym)
    sl = market.parse_price(eng, sym, req.sl, "sl", Retcode.INVALID_STOPS, False)
    tp = market.parse_price(eng, sym, req.tp, "tp", Retcode.INVALID_STOPS, False)
    if (sl, tp) == (int(pc.sl[p]), int(pc.tp[p])):
        raise Rejected(Retcode.NO_CHANGES, f"position #{int(pc.ticket[p])} already has these "
                                           f"stops")
    check_stop_flags(eng, sym, sl, tp)
    market.check_stops(eng, sym, int(pc.volume[p]) > 0, sl, tp)
    return p, sl, tp


def volume_text(units: int) -> str:
    return f"{units / VOLUME_SCALE:g}"


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)
