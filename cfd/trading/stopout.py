"""Stop-out (liquidation), MT5 semantics, applied one account at a time.

For each account at or below its stop-out level: close the most loss-making position (ties:
the lowest ticket) at the current bid/ask, re-derive the account, repeat until the account is
above the level (above ``so_end`` with hysteresis) or has nothing left that can be closed
(positions in closed or halted markets wait for the market to open). Deals carry reason SO
(6) and the comment ``so: <level>%/<equity>/<margin>``. A balance left below zero on a flat
account is brought to zero from the insurance fund, then from broker P/L (negative balance
protection), by a posting.

Two implementations with one result (the same state hash): :func:`sweep_python`, the
reference, closes positions one at a time through ``Engine.execute``; :func:`sweep_kernel`
runs the numba sweep (``cfd.kernels.sweep``) over all accounts at once and books its output
in bulk (:func:`bulk_close`): deals, orders, postings and index updates as array
operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cfd import bulk_rows
from cfd.accounts.ledger import BROKER_PL, INSURANCE_FUND, PostingKind, client_ledger
from cfd.constants import DealEntry, DealReason, DealType, OrderReason, OrderState
from cfd.kernels import sweep as K
from cfd.kernels.formulas import margin_level
from cfd.money import MINOR_SCALE, VOLUME_SCALE
from cfd.trading import margin_tiers, market
from cfd.trading.commission import exit_terms
from cfd.trading.positions import floating_profit

if TYPE_CHECKING:
    from cfd.engine import Engine


def so_comment(level: float, equity: float, margin: float) -> str:
    return f"so: {level:.2f}%/{equity:.2f}/{margin:.2f}"[:31]


def must_close(eng: Engine, a: int, force: bool, started: bool) -> bool:
    """The sweep's loop condition for account ``a`` (the kernel's ``sweep.must_close``)."""
    ac = eng.accounts.cols
    return bool(K.must_close(force, int(ac.so_rule[a]), float(ac.so_so[a]),
                             float(ac.so_end[a]), int(ac.balance[a]), int(ac.credit[a]),
                             float(ac.profit[a]), float(ac.margin[a]),
                             len(eng.positions.of_account(a)), started, float(MINOR_SCALE)))


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
            order = np.lexsort((pc.ticket[slots],
                                floating_profit(pc, eng.symbols.cols, slots)))
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
            elif debt(eng, a):
                ev["debt"] = debt(eng, a)
            events.append(ev)
            eng._effects.events.append(ev)
    return events


def close_position(eng: Engine, a: int, p: int, comment: str) -> None:
    pc = eng.positions.cols
    s = int(pc.sym[p])
    v = int(pc.volume[p])
    sc = eng.symbols.cols
    price = int(sc.bid[s]) if v > 0 else int(sc.ask[s])
    req = market.TradeRequest(action=1, symbol=eng.symbols.specs[s].name,
                              volume=abs(v) / VOLUME_SCALE,
                              type=1 if v > 0 else 0, position=int(pc.ticket[p]),
                              comment=comment)
    plan = market.Plan(acc=a, sym=s, request=req, order_type=1 if v > 0 else 0,
                       volume=abs(v), price=price)
    leg = market._closing_leg(eng, p, market.CLOSE, 1 if v > 0 else 0, abs(v), price)
    market.charge_leg(eng, a, s, leg)
    plan.legs.append(leg)
    eng.execute(plan, reason=OrderReason.SO, comment=comment)


def protected(eng: Engine, accs: np.ndarray) -> np.ndarray:
    """Per account of ``accs``: negative balance protection (``AccountGroup.nbp_for`` its
    client category)."""
    groups, names = eng.config.groups, eng.accounts.groups
    accs = np.asarray(accs, dtype=np.int64)
    cats = eng.accounts.cols.category[accs].tolist()
    memo: dict[tuple[str, int], bool] = {}  # per group and category: few of them

    def nbp(key: tuple[str, int]) -> bool:
        got = memo.get(key)
        if got is None:
            got = memo[key] = groups[key[0]].nbp_for(key[1])
        return got

    return np.fromiter(map(nbp, zip(map(names.__getitem__, accs.tolist()), cats,
                                    strict=True)), np.bool_, len(accs))


def debt(eng: Engine, a: int) -> int:
    """What a flat account without protection owes (minor units; 0 when not negative)."""
    bal = int(eng.accounts.cols.balance[a])
    if bal >= 0 or len(eng.positions.of_account(a)) > 0 or protected(eng, [a])[0]:
        return 0
    return -bal


def compensate(eng: Engine, a: int) -> int:
    """Negative balance protection on a flat account; returns the amount compensated. An
    account without protection keeps its negative balance (``debt``)."""
    ac = eng.accounts.cols
    bal = int(ac.balance[a])
    if bal >= 0 or len(eng.positions.of_account(a)) > 0 or not protected(eng, [a])[0]:
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




# ---------------------------------------------------------------------- kernel path
COMMENT_WIDTH = 31
_FUND_COMMENT = "negative balance protection"
_BROKER_COMMENT = "negative balance protection (fund empty)"


@dataclass
class SweepOut:
    """The kernel's output for ``accs`` (accounts swept, in order)."""

    accs: np.ndarray
    base: np.ndarray
    n: np.ndarray
    status: np.ndarray
    slot: np.ndarray
    price: np.ndarray
    volume: np.ndarray
    profit: np.ndarray
    comm: np.ndarray
    fee: np.ndarray
    level: np.ndarray
    equity: np.ndarray
    margin: np.ndarray
    balance: np.ndarray
    acc_profit: np.ndarray
    acc_margin: np.ndarray
    acc_maint: np.ndarray
    left: np.ndarray


@dataclass
class Booked:
    """What :func:`bulk_close` appended: row ranges of the logs, for effects and events."""

    deals: tuple[int, int]
    orders: tuple[int, int]
    postings: tuple[int, int]
    closed_tickets: np.ndarray
    accs: np.ndarray
    events: list[dict] = field(default_factory=list)


def run_kernel(eng: Engine, accs: np.ndarray, force: bool = False) -> SweepOut:
    """Run the numba sweep over ``accs`` (all of which should need it: see ``detect``)."""
    ac, sc, pc = eng.accounts.cols, eng.symbols.cols, eng.positions.cols
    idx = eng.positions.by_acc
    accs = np.ascontiguousarray(accs, dtype=np.int64)
    m = len(accs)
    cnt = idx.cnt[accs].astype(np.int64)
    base = np.zeros(m, np.int64)
    if m:
        np.cumsum(cnt[:-1], out=base[1:])
    rows = max(int(cnt.sum()), 1)
    c_terms, f_terms, acc_trow = exit_terms(eng)
    closable = sc.market_open & sc.has_quote & ~sc.halted
    out = SweepOut(accs, base, np.zeros(m, np.int64), np.zeros(m, np.int8),
                   np.empty(rows, np.int32), np.empty(rows, np.int64), np.empty(rows, np.int64),
                   np.empty(rows, np.int64), np.empty(rows, np.int64),
                   np.empty(rows, np.int64), np.empty(rows, np.float64), np.empty(rows, np.float64),
                   np.empty(rows, np.float64), np.empty(m, np.int64), np.empty(m, np.float64),
                   np.empty(m, np.float64), np.empty(m, np.float64), np.empty(m, np.int64))
    work = np.empty(rows, np.int32)
    K.sweep(accs, force, float(MINOR_SCALE), idx.off, idx.cnt, idx.pool, pc.sym, pc.volume,
            pc.price_open, pc.ticket, sc.bid, sc.ask, sc.k_profit, sc.k_margin,
            sc.k_margin_maint, sc.calc_mode, margin_tiers.tier_sets(eng), sc.k_num, sc.k_den,
            closable, c_terms, f_terms, acc_trow, ac.balance, ac.credit, ac.profit, ac.margin,
            ac.margin_maint, ac.leverage, ac.so_rule, ac.so_so, ac.so_end, base, work, out.n,
            out.status, out.slot, out.price, out.volume, out.profit, out.comm, out.fee, out.level,
            out.equity, out.margin, out.balance, out.acc_profit, out.acc_margin, out.acc_maint,
            out.left)
    return out


def needing_sweep(eng: Engine, accs: np.ndarray, force: bool = False) -> np.ndarray:
    """The accounts of ``accs`` (in order) at or below their stop-out level."""
    ac = eng.accounts.cols
    accs = np.ascontiguousarray(accs, dtype=np.int64)
    flag = np.zeros(len(accs), np.bool_)
    if len(accs):
        K.detect(accs, force, float(MINOR_SCALE), eng.positions.by_acc.cnt, ac.balance,
                 ac.credit, ac.profit, ac.margin, ac.so_rule, ac.so_so, ac.so_end, flag)
    return accs[flag]


def sweep_kernel(eng: Engine, accs: np.ndarray, force: bool = False,
                 effects: bool = True) -> list[dict]:
    """The stop-out sweep through the numba kernel and the bulk booking path; same result
    as :func:`sweep_python`. ``effects=False`` skips the per-row effect dicts (benchmarks)."""
    todo = needing_sweep(eng, accs, force)
    if len(todo) == 0:
        return []
    out = run_kernel(eng, todo, force)
    events: list[dict] = []
    bad = np.nonzero(out.status == K.SO_OVERFLOW)[0]
    start = 0
    for j in [*bad.tolist(), len(todo)]:
        if j > start:
            booked = bulk_close(eng, out, np.arange(start, j))
            if effects:
                emit_effects(eng, booked, rows=getattr(eng, "collect_effects", True))
            events.extend(booked.events)
        if j < len(todo):
            events.extend(sweep_python(eng, todo[j:j + 1], force))
        start = j + 1
    return events


def so_comments(level: np.ndarray, equity: np.ndarray, margin: np.ndarray) -> list[str]:
    """``so_comment`` for many rows at once (numba formatting, Python for odd values)."""
    n = len(level)
    if n == 0:
        return []
    buf = np.zeros((n, 72), np.uint8)
    ok = np.zeros(n, np.bool_)
    K.format_so_comments(level, equity, margin, buf, ok)
    out = np.ascontiguousarray(buf[:, :COMMENT_WIDTH]).view(f"S{COMMENT_WIDTH}").ravel()
    texts = [b.decode("ascii") for b in out.tolist()]  # (numpy's bytes: NULs cut)
    for i in np.nonzero(~ok)[0].tolist():
        texts[i] = so_comment(float(level[i]), float(equity[i]), float(margin[i]))
    return texts


def _append(log_cols, n: int, **values) -> int:
    i0 = log_cols.size
    log_cols.reserve(i0 + n)
    for k, v in values.items():
        getattr(log_cols, k)[i0:i0 + n] = v
    log_cols.size = i0 + n
    return i0


def bulk_close(eng: Engine, out: SweepOut, which: np.ndarray) -> Booked:
    """Book the kernel's closes for accounts ``out.accs[which]`` (in order) as array
    operations: deals, orders, postings, compensation, positions and indices; exactly what
    :func:`sweep_python` books for them one close at a time."""
    ac, pc = eng.accounts.cols, eng.positions.cols
    accs = out.accs[which]
    n = out.n[which]
    has = n > 0
    accs, n, which = accs[has], n[has], which[has]
    n_close = int(n.sum())
    # rows of the kernel output, in account order
    first = np.repeat(out.base[which], n)
    within = np.arange(n_close, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    rows = first + within
    slot = out.slot[rows].astype(np.int64)
    vol = out.volume[rows]
    price = out.price[rows]
    profit = out.profit[rows]
    comm = out.comm[rows]
    fee = out.fee[rows]
    acc_c = np.repeat(accs, n)
    sym_c = pc.sym[slot]
    pos_id = pc.identifier[slot]
    tickets = pc.ticket[slot]
    # negative balance protection: a flat account left below zero, in order (those without
    # protection keep the debt)
    bal = out.balance[which]
    flat_below = (bal < 0) & (out.left[which] == 0)
    nbp = protected(eng, accs)
    need = np.where(flat_below & nbp, -bal, 0)
    owed = np.where(flat_below & ~nbp, -bal, 0)
    comp = need > 0
    fund0 = max(int(eng.ledger.balance[INSURANCE_FUND]), 0)
    from_fund = np.clip(fund0 - (np.cumsum(need) - need), 0, need)
    from_broker = need - from_fund
    # deal sequence: each account's closes, then its compensation deal
    per_acc = n + comp
    n_deals = int(per_acc.sum())
    acc_start = np.cumsum(per_acc) - per_acc
    close_pos = np.repeat(acc_start, n) + within
    comp_pos = (acc_start + n)[comp]
    d0 = eng.next_deal
    o0 = eng.next_order
    t = eng.now_msc
    deal_ticket = d0 + np.arange(n_deals, dtype=np.int64)
    order_ticket = o0 + np.arange(n_close, dtype=np.int64)

    def deal_col(close_v, comp_v, dtype=np.int64):
        col = np.empty(n_deals, dtype)
        col[close_pos] = close_v
        col[comp_pos] = comp_v
        return col

    is_long = vol > 0
    side = np.where(is_long, 1, 0).astype(np.int8)
    comments = so_comments(out.level[rows], out.equity[rows], out.margin[rows])
    texts = np.empty(n_deals, dtype=object)
    texts[close_pos] = comments
    texts[comp_pos] = "so compensation"
    deal_comments = texts.tolist()
    dl = eng.deals
    i_d = _append(dl.cols, n_deals, ticket=deal_ticket,
                  order=deal_col(order_ticket, 0), acc=deal_col(acc_c, accs[comp], np.int32),
                  sym=deal_col(sym_c, -1, np.int32), time_msc=t,
                  type=deal_col(side, int(DealType.SO_COMPENSATION), np.int8),
                  entry=deal_col(int(DealEntry.OUT), int(DealEntry.IN), np.int8), magic=0,
                  position_id=deal_col(pos_id, 0), reason=deal_col(int(OrderReason.SO),
                                                                   int(DealReason.CLIENT),
                                                                   np.int8),
                  volume=deal_col(np.abs(vol), 0), price=deal_col(price, 0),
                  commission=deal_col(-comm, 0), swap=deal_col(pc.swap[slot], 0),
                  profit=deal_col(profit, need[comp]), fee=deal_col(-fee, 0))
    dl.comments.extend(deal_comments)
    dl.by_ticket.add_run(d0, i_d, n_deals)
    ol = eng.orders
    i_o = _append(ol.cols, n_close, ticket=order_ticket, acc=acc_c, sym=sym_c,
                  time_setup_msc=t, time_done_msc=t, time_expiration=0, type=side, type_time=0,
                  type_filling=0, state=int(OrderState.FILLED), magic=0, position_id=pos_id,
                  position_by_id=0, reason=int(OrderReason.SO), volume_initial=np.abs(vol),
                  volume_current=0, price_open=price, sl=0, tp=0, price_current=price,
                  price_stoplimit=0)
    ol.comments.extend(comments)
    ol.by_ticket.add_run(o0, i_o, n_close)
    # postings: per close deal (profit, commission, fee), per compensation deal (fund, broker)
    client_c = client_ledger(0) + 2 * acc_c
    client_a = (client_ledger(0) + 2 * accs[comp]).astype(np.int64)
    src = np.zeros((n_deals, 3), np.int64)
    dst = np.zeros((n_deals, 3), np.int64)
    amt = np.zeros((n_deals, 3), np.int64)
    kind = np.zeros((n_deals, 3), np.int8)
    src[close_pos, 0] = np.where(profit > 0, BROKER_PL, client_c)
    dst[close_pos, 0] = np.where(profit > 0, client_c, BROKER_PL)
    amt[close_pos, 0] = np.abs(profit)
    kind[close_pos, 0] = int(PostingKind.PROFIT)
    src[close_pos, 1] = client_c
    dst[close_pos, 1] = BROKER_PL
    amt[close_pos, 1] = comm
    kind[close_pos, 1] = int(PostingKind.COMMISSION)
    src[close_pos, 2] = client_c
    dst[close_pos, 2] = BROKER_PL
    amt[close_pos, 2] = fee
    kind[close_pos, 2] = int(PostingKind.COMMISSION)
    src[comp_pos, 0] = INSURANCE_FUND
    src[comp_pos, 1] = BROKER_PL
    dst[comp_pos, 0] = client_a
    dst[comp_pos, 1] = client_a
    amt[comp_pos, 0] = from_fund[comp]
    amt[comp_pos, 1] = from_broker[comp]
    kind[comp_pos, :] = int(PostingKind.SO_COMPENSATION)
    flat = amt.ravel() > 0
    p_src, p_dst, p_amt = src.ravel()[flat], dst.ravel()[flat], amt.ravel()[flat]
    n_post = len(p_amt)
    led = eng.ledger
    post_ids = led.next_id + np.arange(n_post, dtype=np.int64)
    i_p = _append(led.postings, n_post, id=post_ids, time_msc=t, src=p_src, dst=p_dst,
                  amount=p_amt, kind=kind.ravel()[flat],
                  deal=np.repeat(deal_ticket, 3)[flat])
    led.next_id += n_post
    is_comp = np.zeros((n_deals, 3), np.int8)
    is_comp[comp_pos, 0] = 1
    is_comp[comp_pos, 1] = 2
    tags = is_comp.ravel()[flat]
    if comp.any():
        led.comments.extend(np.array(["", _FUND_COMMENT, _BROKER_COMMENT], dtype=object)[tags]
                            .tolist())
    else:
        led.comments.extend([""] * n_post)
    K.apply_postings(led.balance, p_src, p_dst, p_amt)
    ac.balance[accs] = led.balance[client_ledger(0) + 2 * accs]
    eng.next_deal += n_deals
    eng.next_order += n_close
    # positions: indices (in close order), slots, tickets
    bi, bs = eng.positions.by_acc, eng.positions.by_sym
    K.remove_positions(slot, pc.acc, pc.sym, pc.acc_place, pc.sym_place, bi.off, bi.cnt,
                       bi.pool, bs.off, bs.cnt, bs.pool)
    pc.active[slot] = False
    pc.volume[slot] = 0
    pos = eng.positions
    pos.touch_symbols(sym_c)
    pos.forget_tickets(tickets)
    pos.free.extend(slot.tolist())
    eng.closed_tickets.add_many(tickets, acc_c)
    # the accounts as the engine re-derives them
    ac.profit[accs] = out.acc_profit[which]
    ac.margin[accs] = out.acc_margin[which]
    ac.margin_maint[accs] = out.acc_maint[which]
    # events
    first_row = out.base[which]
    events = [{"kind": "stop_out", "login": lg, "time_msc": t, "positions_closed": k,
               "margin_level": lv, "equity": eq, "margin": mg, "remaining": left}
              for lg, k, lv, eq, mg, left in zip(ac.login[accs].tolist(), n.tolist(),
                                                 out.level[first_row].tolist(),
                                                 out.equity[first_row].tolist(),
                                                 out.margin[first_row].tolist(),
                                                 out.left[which].tolist(), strict=True)]
    for i in np.flatnonzero(need | owed).tolist():  # (few: accounts left below zero)
        if need[i]:
            events[i]["compensation"] = int(need[i])
        else:
            events[i]["debt"] = int(owed[i])
    return Booked((i_d, i_d + n_deals), (i_o, i_o + n_close), (i_p, i_p + n_post),
                  tickets, accs, events)


def emit_effects(eng: Engine, booked: Booked, rows: bool = True) -> None:
    """The effects of a :func:`bulk_close`, as the store takes them: its events, and
    (``rows``; not while replaying) the deal, posting, order and account rows."""
    eff = eng._effects
    eff.events.extend(booked.events)
    if not rows:
        return
    # as columns straight from the logs (cfd.bulk_rows): no dict per row
    eff.add_block("deals", bulk_rows.deals(eng, *booked.deals))
    eff.add_block("postings", bulk_rows.postings(eng, *booked.postings))
    eff.add_block("orders", bulk_rows.orders(eng, *booked.orders))
    eff.add_block("accounts", bulk_rows.accounts(eng, booked.accs))
    eng._forget_account_rows(booked.accs)
