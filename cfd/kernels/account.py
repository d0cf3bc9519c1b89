"""The per-account loop, written once: floating profit, initial and maintenance margin of
one account's positions, with margin tiers by position size (``cfd.instruments.tiers``).

Every place that derives an account's figures calls :func:`account_sums`: the engine's
per-account recompute (``margin.recompute_account``), the full recompute and detection
(``margin.recompute_all``, ``margin.recompute_detect``), the stop-out sweep after each close
(``sweep.sweep_account``) and the risk CLI (``risk.kernels.account_figures``).

Symbols are read either from the packed table of :func:`pack_symbols` (one 64-byte row per
symbol, then the tier schedules: the full recompute's layout) or from the symbol columns as
a tuple ``(bid, ask, k_profit, k_margin, k_margin_maint, calc_mode)`` (the per-account
callers: no table to build); :func:`sym_row` reads both, to the same floats. Tiers come as
the tuple ``(tier_n, tier_off, table)`` of one tier set (:func:`tiers_of`); the kernels over
many accounts take the tier sets ``(tier_n, tier_off, table, set of each account)``,
``tier_n`` and ``tier_off`` one row per set (``cfd.trading.margin_tiers.tier_sets``: the
symbols' own, then one per group overriding them).

Per position, the figures of ``formulas``: profit ``(close - open) * volume * k_profit``,
margin ``|volume| * margin price * k_margin`` (divided by the leverage for CFDLEVERAGE).
Prices are integers below 2**53, so ``float(close) - float(open)`` is ``float(close -
open)`` exactly and the sums are those of ``formulas.position_profit`` / ``position_margin``
to the bit. Positions of untiered symbols are summed in the account's order, as before tiers
existed; a tiered symbol's positions are margined as one aggregate (:func:`tier_factor`)
and added after them.
"""

import numba as nb
import numpy as np
from numba import types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import overload

from cfd.kernels.formulas import CALC_CFDLEVERAGE, CALC_EXCH_STOCKS

#: Columns of :func:`pack_symbols`.
BID, ASK, KP, KM, KMM, MODE, TIER, KX = 0, 1, 2, 3, 4, 5, 6, 7

#: ``tier`` of :func:`sym_row`: ``first row * TIER_ROWS + rows``, 0 for an untiered symbol
#: (``tiers.MAX_TIERS`` brackets at most; ``tier_factor_at`` shifts by its log2, 7).
TIER_ROWS = 128


@nb.njit(cache=True, inline="always")
def tiers_of(tiers, a):
    """The tier tuple ``(tier_n, tier_off, table)`` of account ``a`` from the tier sets
    ``tiers`` (module docstring)."""
    k = tiers[3][a]
    return tiers[0][k], tiers[1][k], tiers[2]


@nb.njit(cache=True, inline="always")
def tiered_anywhere(tiers, s):
    """Whether symbol ``s`` has tiers in any set of ``tiers`` (tier sets)."""
    hit = False
    for k in range(tiers[0].shape[0]):
        hit |= tiers[0][k, s] != 0
    return hit


@nb.njit(cache=True)
def uses_leverage(sym_mode):
    """Whether any symbol of ``sym_mode`` is CFDLEVERAGE (``lev_any`` of
    :func:`account_sums`)."""
    hit = False
    for s in range(len(sym_mode)):
        hit |= sym_mode[s] == CALC_CFDLEVERAGE
    return hit


@nb.njit(cache=True)
def pack_symbols(sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers):
    """:func:`pack_rows` of every tier set of ``tiers`` (tier sets), then the rows of the
    schedules (:func:`pack_schedules`): ``[set, symbol + schedule row, 8]``; an account
    reads the rows of its set."""
    n_sets = tiers[0].shape[0]
    n = len(sym_bid)
    sched, place = pack_schedules(tiers)
    t = np.empty((n_sets, n + len(sched), 8))
    for k in range(n_sets):
        t[k, :n] = pack_rows(sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode,
                             (tiers[0][k], tiers[1][k], tiers[2]), place + n)
        t[k, n:] = sched
    return t


@nb.njit(cache=True)
def pack_schedules(tiers):
    """The schedules of the tier sets ``tiers`` as rows of the packed table, for the
    bracket search of the full recompute (:func:`factor`): each schedule's rows ``(floor,
    rate, deduction, k_x)`` (``tiers.tier_rows``) followed by rows whose floor is NaN (at
    most no measure) up to a multiple of four rows, so that the search reads a schedule's
    first four floors without a test of its length. Returns ``(rows, place)``, ``place[r]``
    the first of these rows for the schedule at row ``r`` of the tier table (-1: none)."""
    tier_n, tier_off, table = tiers[0], tiers[1], tiers[2]
    size = np.zeros(len(table), np.int64)
    for k in range(tier_n.shape[0]):
        for s in range(tier_n.shape[1]):
            if tier_n[k, s]:
                size[tier_off[k, s]] = tier_n[k, s]
    place = np.full(len(table), -1, np.int64)
    total = 0
    for r in range(len(table)):
        if size[r]:
            place[r] = total
            total += (size[r] + 3) // 4 * 4
    rows = np.zeros((total, 8))
    for r in range(len(table)):
        for j in range(size[r]):
            rows[place[r] + j, :4] = table[r + j]
        for j in range(size[r], (size[r] + 3) // 4 * 4):
            rows[place[r] + j, 0] = np.nan
    return rows, place


@nb.njit(cache=True)
def pack_rows(sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers, place):
    """One row per symbol holding all the full recompute reads of it (bid, ask, k_profit,
    k_margin, k_margin_maint, calc mode, the tier schedule's place (:data:`TIER_ROWS`; its
    first row ``place[tier_off]``) and the tier measure's ``k_x`` (``tiers.tier_rows``);
    64 bytes), so a position costs one cache line of symbol data instead of six. Prices,
    modes and row numbers are integers below 2**53 and pass through float64 exactly."""
    tier_n, tier_off, table = tiers
    n = len(sym_bid)
    t = np.empty((n, 8))
    for s in range(n):
        t[s, BID] = sym_bid[s]
        t[s, ASK] = sym_ask[s]
        t[s, KP] = sym_kp[s]
        t[s, KM] = sym_km[s]
        t[s, KMM] = sym_kmm[s]
        t[s, MODE] = sym_mode[s]
        tn = tier_n[s] if s < len(tier_n) else 0
        t[s, TIER] = place[tier_off[s]] * TIER_ROWS + tn if tn else 0
        t[s, KX] = table[tier_off[s], 3] if tn else 0.0
    return t


def sym_row(syms, tiers, s, v):
    """``(close, k_profit, k_margin, k_margin_maint, calc_mode, tier, k_x)`` of symbol
    ``s`` for a position of volume ``v`` (it closes at bid when long, at ask when short), as
    floats, from a packed table or from the columns' tuple (the tier arrays cover every
    symbol of the table: ``SymbolTable.tiers``, :func:`empty_tiers`); ``tier`` the place
    of its schedule (:data:`TIER_ROWS`) and ``k_x`` its measure's factor, both 0.0 for an
    untiered symbol."""
    if isinstance(syms, tuple):
        close = syms[0][s] if v > 0 else syms[1][s]
        tn = int(tiers[0][s])
        return (float(close), float(syms[2][s]), float(syms[3][s]), float(syms[4][s]),
                float(syms[5][s]), float(int(tiers[1][s]) * TIER_ROWS + tn) if tn else 0.0,
                float(tiers[2][tiers[1][s], 3]) if tn else 0.0)
    r = syms[s]
    return (r[BID + int(v <= 0)], r[KP], r[KM], r[KMM], r[MODE], r[TIER], r[KX])


@overload(sym_row)
def _sym_row_nb(syms, tiers, s, v):
    if isinstance(syms, types.Array):
        def packed(syms, tiers, s, v):
            # the close price picked by index rather than by a branch
            return (syms[s, BID + np.intp(v <= 0)], syms[s, KP], syms[s, KM], syms[s, KMM],
                    syms[s, MODE], syms[s, TIER], syms[s, KX])
        return packed

    def columns(syms, tiers, s, v):
        close = syms[0][s] if v > 0 else syms[1][s]
        tn = tiers[0][s]
        tier = float(tiers[1][s] * TIER_ROWS + tn) if tn != 0 else 0.0
        kx = tiers[2][tiers[1][s], 3] if tn != 0 else 0.0
        return (float(close), float(syms[2][s]), float(syms[3][s]), float(syms[4][s]),
                float(syms[5][s]), tier, kx)
    return columns


@nb.njit(cache=True, inline="always")
def position_margins(fv, po, close, km, kmm, mode, lev, lev_any=True):
    """``(margin, maintenance margin, tier measure base)`` of one position of ``fv`` volume
    units opened at ``po`` and closing at ``close``: ``|v| * P * k`` with ``P`` the margin
    price (``formulas.margin_price``), divided by the leverage for CFDLEVERAGE; the last is
    ``|v| * P`` (the notional before the symbol's factors). ``lev_any`` False (a constant:
    :func:`uses_leverage`) leaves the division out: the compiler computes a conditional
    division whether or not it is taken, and it costs more than the rest of the position."""
    base_m = abs(fv) * (close if mode == CALC_EXCH_STOCKS else po)
    m = base_m * km
    mm = base_m * kmm
    if lev_any and mode == CALC_CFDLEVERAGE:
        m = m / lev
        mm = mm / lev
    return m, mm, base_m


@nb.njit(cache=True, inline="always")
def tier_factor(table, off, n, x):
    """``margin(X) / (X * rate_1)`` for an aggregate ``x`` (measure units, > 0) by the
    schedule ``table[off : off + n]`` (``tiers.tier_rows``): ``rate_k / rate_1 - (ded_k /
    rate_1) / x`` for the last bracket ``k`` with ``floor_k <= x`` (floors rise: the
    brackets below ``x`` are counted, without a branch). Rows are indexed unsigned (no
    negative-index wrap-around to compute)."""
    k = np.uintp(off)
    for j in range(np.uintp(off) + np.uintp(1), np.uintp(off) + np.uintp(n)):
        k += np.uintp(table[j, 0] <= x)
    return table[k, 1] - table[k, 2] / x


@nb.njit(cache=True, inline="always")
def tier_factor_at(table, tier, x):
    """:func:`tier_factor` of the schedule at ``tier`` (:func:`sym_row`)."""
    c = np.uintp(np.intp(tier))
    return tier_factor(table, c >> np.uintp(7), c & np.uintp(TIER_ROWS - 1), x)


def factor(syms, tiers, tier, x):
    """:func:`tier_factor` of the schedule at ``tier`` (:func:`sym_row`) for a measure
    ``x``: from the rows of :func:`pack_schedules` in a packed table (its first four floors
    read without a test), else from the tier table of ``tiers``."""
    return tier_factor_at(tiers[2] if isinstance(syms, tuple) else syms, tier, x)


@overload(factor)
def _factor_nb(syms, tiers, tier, x):
    if isinstance(syms, types.Array):
        def packed(syms, tiers, tier, x):
            c = np.uintp(np.intp(tier))
            o = c >> np.uintp(7)
            k = o
            for j in range(1, 4):
                k += np.uintp(syms[o + np.uintp(j), 0] <= x)
            for j in range(o + np.uintp(4), o + (c & np.uintp(TIER_ROWS - 1))):
                k += np.uintp(syms[j, 0] <= x)
            return syms[k, 1] - syms[k, 2] / x
        return packed

    def columns(syms, tiers, tier, x):
        return tier_factor_at(tiers[2], tier, x)
    return columns


#: Work rows of :func:`account_sums` (:func:`scratch`): a small open-addressed table of an
#: account's tiered symbols (a power of two) for an account holding a tiered symbol twice
#: or holding more than :data:`LISTED` positions; past half the table, :func:`_tiered_slow`.
GROUPS = 64


#: Positions of an account whose tiered ones :func:`account_sums` marks in one 64-bit word
#: (bit ``k`` for the account's ``k``-th position); a longer account is summed per symbol
#: (:func:`_tiered_grouped`).
LISTED = 64


def low_bit(x):
    """The index of the lowest set bit of ``x`` (an unsigned integer, not 0)."""
    x = int(x)
    return (x & -x).bit_length() - 1


@overload(low_bit)
def _low_bit_nb(x):
    def count(x):
        return trailing_zeros(x)
    return count


@nb.njit(cache=True)
def scratch():
    """The work rows of :func:`account_sums` (one per thread or per chunk of accounts):
    ``GROUPS`` rows of the table, per tiered symbol ``(symbol, margin, maintenance margin,
    aggregate, row of the k-th symbol)``, symbol -1: free (left free again by each call)."""
    w = np.zeros((GROUPS, 5))
    w[:GROUPS, 0] = -1.0
    return w


@nb.njit(cache=True, inline="always")
def account_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, leverage, work,
                 lev_any=True):
    """``(profit, margin, margin_maint, margin_at_market, delta)`` of the positions
    ``pool[start : start + n]`` of one account: floating profit, initial and maintenance
    margin (tiers applied), the part of the margin margined at the market (EXCH_STOCKS,
    which follows the price) and the signed notional ``sum(close * volume * k_profit)``.

    One pass without a branch on the symbol: an untiered position's margins are added (a
    tiered one's times 0.0, which adds nothing), and a tiered one sets the bit of its index
    in the account in a 64-bit word (no store per position). The positions of the set bits
    are then read again, lowest first (the account's order), each taken as its symbol's
    aggregate and scaled by its bracket's factor (:func:`factor`), while a 64-bit mask of
    their symbols (by ``symbol % 64``) tells whether one may be held twice; if one is
    (checked exactly when the mask says maybe), or the account holds more than
    :data:`LISTED` positions, it is summed again with the tiered positions summed per symbol
    first in the rows of ``work`` (:func:`scratch`, :func:`_tiered_grouped`). Either way
    the aggregates are added after the untiered positions, in the order of their first
    position. The callers that need fewer figures drop the rest (inlined, the compiler
    removes the unused sums). A book without tiers (an empty tier table) takes the loop
    without the marks (:func:`_untiered_sums`), the same sums. ``lev_any`` False when no
    symbol is CFDLEVERAGE (:func:`uses_leverage`): the loops without the leverage's
    division (:func:`position_margins`), the same sums."""
    if tiers[2][0, 1] == 0.0:
        if lev_any:
            return _untiered_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers,
                                  leverage, True)
        return _untiered_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers,
                              leverage, False)
    if lev_any:
        return _tiered_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers,
                            leverage, work, True)
    return _tiered_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, leverage,
                        work, False)


@nb.njit(cache=True, inline="always")
def _tiered_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, leverage, work,
                 lev_any):
    """:func:`account_sums` of a book with tiers."""
    profit = 0.0
    margin = 0.0
    maint = 0.0
    at_market = 0.0
    delta = 0.0
    lev = float(leverage)
    listed = np.uint64(0)
    for k in range(n):
        p = np.uintp(pool[np.uintp(start + k)])
        s = np.uintp(pos_sym[p])
        v = pos_vol[p]
        close, kp, km, kmm, mode, tier, _ = sym_row(syms, tiers, s, v)
        fv = float(v)
        po = float(pos_price[p])
        profit += (close - po) * fv * kp
        delta += close * fv * kp
        m, mm, _ = position_margins(fv, po, close, km, kmm, mode, lev, lev_any)
        t = tier > 0.0  # (a place is never negative: the plainer test)
        u = 0.0 if t else 1.0
        margin += m * u
        maint += mm * u
        if mode == CALC_EXCH_STOCKS:
            at_market += m * u
        listed |= np.uint64(t) << np.uint64(k & (LISTED - 1))
    if listed == 0 and n <= LISTED:
        return profit, margin, maint, at_market, delta
    if n <= LISTED:
        seen = np.uint64(0)
        twice = np.uint64(0)
        rest = listed
        while rest != 0:
            k = low_bit(rest)
            rest &= rest - np.uint64(1)
            p = np.uintp(pool[np.uintp(start + k)])
            s = np.uintp(pos_sym[p])
            v = pos_vol[p]
            bit = np.uint64(1) << (s & np.uint64(63))
            twice |= seen & bit
            seen |= bit
            close, _, km, kmm, mode, tier, kx = sym_row(syms, tiers, s, v)
            fv = float(v)
            m, mm, base_m = position_margins(fv, float(pos_price[p]), close, km, kmm, mode,
                                             lev, lev_any)
            x = abs(fv) if kx == 0.0 else base_m * kx
            if x > 0.0:
                f = factor(syms, tiers, tier, x)
                margin += m * f
                maint += mm * f
                if mode == CALC_EXCH_STOCKS:
                    at_market += m * f
        if twice == 0 or _distinct(pool, start, pos_sym, listed):
            return profit, margin, maint, at_market, delta
    # (the figures summed again from the start: the loop's own sums flow only to the
    # return above, so a caller that drops one has it left out of the loop)
    margin, maint, at_market = _tiered_grouped(pool, start, n, pos_sym, pos_vol, pos_price,
                                               syms, tiers, lev, work)
    return profit, margin, maint, at_market, delta


@nb.njit(cache=True, inline="always")
def _untiered_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, leverage,
                   lev_any):
    """:func:`account_sums` of a book without tiers."""
    profit = 0.0
    margin = 0.0
    maint = 0.0
    at_market = 0.0
    delta = 0.0
    lev = float(leverage)
    for k in range(start, start + n):
        p = np.uintp(pool[np.uintp(k)])
        s = np.uintp(pos_sym[p])
        v = pos_vol[p]
        close, kp, km, kmm, mode, _, _ = sym_row(syms, tiers, s, v)
        fv = float(v)
        po = float(pos_price[p])
        profit += (close - po) * fv * kp
        delta += close * fv * kp
        m, mm, _ = position_margins(fv, po, close, km, kmm, mode, lev, lev_any)
        margin += m
        maint += mm
        if mode == CALC_EXCH_STOCKS:
            at_market += m
    return profit, margin, maint, at_market, delta


@nb.njit(cache=True)
def _distinct(pool, start, pos_sym, listed):
    """Whether the positions ``pool[start + k]`` for the bits ``k`` of ``listed`` are of
    distinct symbols."""
    rest = listed
    while rest != 0:
        k = low_bit(rest)
        rest &= rest - np.uint64(1)
        s = pos_sym[pool[start + k]]
        later = rest
        while later != 0:
            j = low_bit(later)
            later &= later - np.uint64(1)
            if pos_sym[pool[start + j]] == s:
                return False
    return True


@nb.njit(cache=True)
def _tiered_grouped(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, lev, work):
    """``(margin, maint, at_market)`` of :func:`account_sums` for an account holding a
    tiered symbol more than once: the untiered positions summed as the account loop sums
    them, then the tiered ones summed per symbol in the table rows of ``work``, scaled by
    their aggregate's factor and added in the order of their first position."""
    margin = 0.0
    maint = 0.0
    at_market = 0.0
    for k in range(start, start + n):
        p = pool[k]
        v = pos_vol[p]
        close, _, km, kmm, mode, tn, _ = sym_row(syms, tiers, pos_sym[p], v)
        m, mm, _ = position_margins(float(v), float(pos_price[p]), close, km, kmm, mode, lev)
        u = 0.0 if tn != 0.0 else 1.0
        margin += m * u
        maint += mm * u
        if mode == CALC_EXCH_STOCKS:
            at_market += m * u
    ng = 0
    overflow = False
    for k in range(start, start + n):
        p = pool[k]
        s = pos_sym[p]
        v = pos_vol[p]
        close, _, km, kmm, mode, tn, kx = sym_row(syms, tiers, s, v)
        if tn == 0.0:
            continue
        fv = float(v)
        m, mm, base_m = position_margins(fv, float(pos_price[p]), close, km, kmm, mode, lev)
        x = abs(fv) if kx == 0.0 else base_m * kx
        fs = float(s)
        g = s & (GROUPS - 1)
        while work[g, 0] != fs and work[g, 0] >= 0.0:
            g = (g + 1) & (GROUPS - 1)
        if work[g, 0] < 0.0:
            if 2 * ng >= GROUPS:
                overflow = True
                break
            work[ng, 4] = g
            ng += 1
            work[g, 0] = fs
            work[g, 1] = m
            work[g, 2] = mm
            work[g, 3] = x
        else:
            work[g, 1] += m
            work[g, 2] += mm
            work[g, 3] += x
    table = tiers[2]
    for i in range(ng):
        g = np.intp(work[i, 4])
        if not overflow and work[g, 3] > 0.0:
            s = np.intp(work[g, 0])
            _, _, _, _, mode, _, _ = sym_row(syms, tiers, s, 1)
            f = tier_factor(table, tiers[1][s], tiers[0][s], work[g, 3])
            margin += work[g, 1] * f
            maint += work[g, 2] * f
            if mode == CALC_EXCH_STOCKS:
                at_market += work[g, 1] * f
        work[g, 0] = -1.0
    if overflow:
        margin, maint, at_market = _tiered_slow(pool, start, n, pos_sym, pos_vol, pos_price,
                                                syms, tiers, lev, margin, maint, at_market)
    return margin, maint, at_market


@nb.njit(cache=True)
def _tiered_slow(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, lev, margin,
                 maint, at_market):
    """The tiered part of :func:`account_sums` without work rows (an account holding more
    than ``GROUPS / 2`` tiered symbols): the same sums in the same order, found by scanning
    the account again for each symbol; ``(margin, maint, at_market)`` with them added."""
    table = tiers[2]
    for k in range(start, start + n):
        s = pos_sym[pool[k]]
        _, _, _, _, mode, tn, kx = sym_row(syms, tiers, s, 1)
        if tn == 0.0:
            continue
        first = True
        for j in range(start, k):
            if pos_sym[pool[j]] == s:
                first = False
                break
        if not first:
            continue
        u = 0.0
        um = 0.0
        x = 0.0
        for j in range(k, start + n):
            q = pool[j]
            if pos_sym[q] != s:
                continue
            v = pos_vol[q]
            close, _, km, kmm, _, _, _ = sym_row(syms, tiers, s, v)
            fv = float(v)
            m, mm, base_m = position_margins(fv, float(pos_price[q]), close, km, kmm, mode,
                                             lev)
            u += m
            um += mm
            x += abs(fv) if kx == 0.0 else base_m * kx
        if x > 0.0:
            f = tier_factor(table, tiers[1][s], tiers[0][s], x)
            margin += u * f
            maint += um * f
            if mode == CALC_EXCH_STOCKS:
                at_market += u * f
    return margin, maint, at_market


def empty_tiers(n_symbols: int, n_accounts: int = 1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tier sets of a book without tiers."""
    z = np.zeros((1, max(n_symbols, 1)), dtype=np.int64)
    return z, z.copy(), np.zeros((1, 4)), np.zeros(max(n_accounts, 1), dtype=np.int32)
