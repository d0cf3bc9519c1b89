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


@nb.njit(cache=True)
def scan_triggers(syms, sym_bid, sym_ask, pos_off, pos_cnt, pos_pool, pos_vol, pos_sl, pos_tp,
                  ord_off, ord_cnt, ord_pool, ord_type, ord_price, out_kind, out_item,
                  out_price):
    """Positions whose SL/TP and pending orders that fire in the symbols ``syms``.

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
        for k in range(ord_cnt[s]):
            i = ord_pool[base + k]
            t = ord_type[i]
            if order_hit(t, ord_price[i], bid, ask):
                out_kind[n] = FIRE_ORDER
                out_item[n] = i
                out_price[n] = ask if t % 2 == 0 else bid
                n += 1
    return n
