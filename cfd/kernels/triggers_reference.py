"""Plain-Python reference for ``cfd.kernels.triggers``: a flat scan over every row (no
per-symbol index), returning the firing sequence in MT5's order. Used by the tests."""

from cfd.kernels.triggers import FIRE_ORDER, FIRE_SL, FIRE_TP


def _sltp(volume, sl, tp, bid, ask):
    if volume > 0:
        if sl and bid <= sl:
            return FIRE_SL
        if tp and bid >= tp:
            return FIRE_TP
    if volume < 0:
        if sl and ask >= sl:
            return FIRE_SL
        if tp and ask <= tp:
            return FIRE_TP
    return 0


def _activates(order_type, price, bid, ask):
    return {
        2: ask <= price,  # BUY LIMIT
        4: ask >= price,  # BUY STOP
        6: ask >= price,  # BUY STOP LIMIT
        3: bid >= price,  # SELL LIMIT
        5: bid <= price,  # SELL STOP
        7: bid <= price,  # SELL STOP LIMIT
    }.get(int(order_type), False)


def scan_reference(syms, bid, ask, positions, orders):
    """``positions``: iterable of ``(slot, ticket, sym, volume, sl, tp)`` (active only);
    ``orders``: iterable of ``(slot, ticket, sym, type, price)``. Returns a list of
    ``(kind, slot, price, ticket)``: SL/TP by position ticket, then activations by order
    ticket."""
    moved = {int(s) for s in syms}
    stops, acts = [], []
    for slot, ticket, s, v, sl, tp in positions:
        if int(s) not in moved:
            continue
        b, a = int(bid[s]), int(ask[s])
        kind = _sltp(int(v), int(sl), int(tp), b, a)
        if kind:
            stops.append((kind, int(slot), b if v > 0 else a, int(ticket)))
    for slot, ticket, s, t, price in orders:
        if int(s) not in moved:
            continue
        b, a = int(bid[s]), int(ask[s])
        if _activates(t, int(price), b, a):
            acts.append((FIRE_ORDER, int(slot), a if int(t) % 2 == 0 else b, int(ticket)))
    return sorted(stops, key=lambda f: f[3]) + sorted(acts, key=lambda f: f[3])


def expired_reference(now_msc, orders):
    """``orders``: iterable of ``(slot, ticket, expire_msc)``; the slots that expire at
    ``now_msc`` (0 = never), by ticket."""
    hit = [(int(t), int(slot)) for slot, t, e in orders if e and int(e) <= now_msc]
    return [slot for _, slot in sorted(hit)]
