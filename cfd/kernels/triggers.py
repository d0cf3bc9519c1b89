"""Order triggers: pending-order activations and position SL/TP against a tick batch.

For each changed symbol the kernel visits only that symbol's positions and pending orders (two
grouped indexes, ``pool[off[s] : off[s] + cnt[s]]``), so the cost follows the orders and
positions in the symbols that moved. Prices are integer grid units.

* SL/TP of a long (volume > 0): SL when ``bid <= sl``, TP when ``bid >= tp``; of a short:
  SL when ``ask >= sl``, TP when ``ask <= tp``. A position closes at the market (bid for a
  long, ask for a short), so a gap fills at the current price, not at the SL/TP.
* Pending orders: BUY LIMIT when ``ask <= price``, BUY STOP (and BUY STOP LIMIT) when
  ``ask >= price``, SELL LIMIT when ``bid >= price``, SELL STOP (and SELL STOP LIMIT) when
  ``bid <= price``. Buys fill at ask, sells at bid.

Outcomes are codes in ``out_*`` arrays (``FIRE_SL``, ``FIRE_TP``, ``FIRE_ORDER``); the
caller puts them in MT5's sequence (SL/TP by position ticket, then activations by order
ticket). ``triggers_reference`` is the plain implementation the tests compare against.
"""

import numba as nb

FIRE_NONE = 0
FIRE_SL = 1
FIRE_TP = 2
FIRE_ORDER = 3

BUY_LIMIT = 2
SELL_LIMIT = 3
BUY_STOP = 4
SELL_STOP = 5
BUY_STOP_LIMIT = 6
SELL_STOP_LIMIT = 7


@nb.njit(cache=True, inline="always")
def sltp_hit(volume, sl, tp, bid, ask):
    """FIRE_SL, FIRE_TP or FIRE_NONE for one position (0 means no SL / no TP)."""
    if volume > 0:
        if sl > 0 and bid <= sl:
            return FIRE_SL
        if tp > 0 and bid >= tp:
            return FIRE_TP
    elif volume < 0:
        if sl > 0 and ask >= sl:
            return FIRE_SL
        if tp > 0 and ask <= tp:
            return FIRE_TP
    return FIRE_NONE


@nb.njit(cache=True, inline="always")
def order_hit(order_type, price, bid, ask):
    """True when a pending order of ``order_type`` at ``price`` activates at bid/ask."""
    if order_type == BUY_LIMIT:
        return ask <= price
    if order_type in (BUY_STOP, BUY_STOP_LIMIT):
        return ask >= price
    if order_type == SELL_LIMIT:
        return bid >= price
    if order_type in (SELL_STOP, SELL_STOP_LIMIT):
        return bid <= price
    return False


_NONE_HI = 9_223_372_036_854_775_807  # "no bound" for a minimum
_NONE_LO = -1  # "no bound" for a maximum (prices are positive)


@nb.njit(cache=True)
def _position_bounds(base, cnt, pos_pool, pos_vol, pos_sl, pos_tp, out):
    """Highest long SL, lowest long TP, lowest short SL, highest short TP of a symbol."""
    long_sl, long_tp, short_sl, short_tp = _NONE_LO, _NONE_HI, _NONE_HI, _NONE_LO
    for k in range(cnt):
        p = pos_pool[base + k]
        sl = pos_sl[p]
        tp = pos_tp[p]
        if pos_vol[p] > 0:
            if sl > 0 and sl > long_sl:
                long_sl = sl
            if tp > 0 and tp < long_tp:
                long_tp = tp
        elif pos_vol[p] < 0:
            if sl > 0 and sl < short_sl:
                short_sl = sl
            if tp > 0 and tp > short_tp:
                short_tp = tp
    out[0], out[1], out[2], out[3] = long_sl, long_tp, short_sl, short_tp


@nb.njit(cache=True)
def _order_bounds(base, cnt, ord_pool, ord_type, ord_price, out):
    """Highest BUY LIMIT, lowest BUY STOP(-LIMIT), lowest SELL LIMIT, highest SELL
    STOP(-LIMIT) price of a symbol."""
    buy_limit, buy_stop, sell_limit, sell_stop = _NONE_LO, _NONE_HI, _NONE_HI, _NONE_LO
    for k in range(cnt):
        i = ord_pool[base + k]
        t = ord_type[i]
        px = ord_price[i]
        if t == BUY_LIMIT:
            buy_limit = max(buy_limit, px)
        elif t in (BUY_STOP, BUY_STOP_LIMIT):
            buy_stop = min(buy_stop, px)
        elif t == SELL_LIMIT:
            sell_limit = min(sell_limit, px)
        elif t in (SELL_STOP, SELL_STOP_LIMIT):
            sell_stop = max(sell_stop, px)
    out[0], out[1], out[2], out[3] = buy_limit, buy_stop, sell_limit, sell_stop


@nb.njit(cache=True)
def scan_triggers(syms, sym_bid, sym_ask, pos_off, pos_cnt, pos_pool, pos_vol, pos_sl, pos_tp,
                  ord_off, ord_cnt, ord_pool, ord_type, ord_price, pos_dirty, pos_bounds,
                  ord_dirty, ord_bounds, out_kind, out_item, out_price):
    """Positions whose SL/TP and pending orders that fire in the symbols ``syms``.

    Per symbol, ``pos_bounds`` / ``ord_bounds`` hold the extreme stop and order prices
    (recomputed here when the symbol's ``*_dirty`` flag is set, which the owners set whenever
    a stop or an order price changes); while bid/ask lie strictly inside them nothing of that
    symbol can fire and its positions or orders are not visited, so a tick costs O(1) unless
    something is near its trigger.

    ``out_*`` need room for ``pos_cnt[syms].sum() + ord_cnt[syms].sum()`` entries. Writes
    ``out_kind`` (FIRE_*), ``out_item`` (position slot or order slot) and ``out_price`` (the
    market price it fills at). Returns the number of entries written.
    """
    n = 0
    for j in range(len(syms)):
        s = syms[j]
        bid = sym_bid[s]
        ask = sym_ask[s]
        base = pos_off[s]
        if pos_dirty[s]:
            _position_bounds(base, pos_cnt[s], pos_pool, pos_vol, pos_sl, pos_tp,
                             pos_bounds[s])
            pos_dirty[s] = False
        b = pos_bounds[s]
        if not (bid > b[0] and bid < b[1] and ask < b[2] and ask > b[3]):
            for k in range(pos_cnt[s]):
                p = pos_pool[base + k]
                v = pos_vol[p]
                kind = sltp_hit(v, pos_sl[p], pos_tp[p], bid, ask)
                if kind != FIRE_NONE:
                    out_kind[n] = kind
                    out_item[n] = p
                    out_price[n] = bid if v > 0 else ask
                    n += 1
        base = ord_off[s]
        if ord_dirty[s]:
            _order_bounds(base, ord_cnt[s], ord_pool, ord_type, ord_price, ord_bounds[s])
            ord_dirty[s] = False
        o = ord_bounds[s]
        if not (ask > o[0] and ask < o[1] and bid < o[2] and bid > o[3]):
            for k in range(ord_cnt[s]):
                i = ord_pool[base + k]
                t = ord_type[i]
                if order_hit(t, ord_price[i], bid, ask):
                    out_kind[n] = FIRE_ORDER
                    out_item[n] = i
                    out_price[n] = ask if t % 2 == 0 else bid
                    n += 1
    return n
