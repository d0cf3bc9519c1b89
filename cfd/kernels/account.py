"""The per-account loop, written once: floating profit, initial and maintenance margin of
one account's positions, with margin tiers by position size (``cfd.instruments.tiers``).

Every place that derives an account's figures calls :func:`account_sums`: the engine's
per-account recompute (``margin.recompute_account``), the full recompute and detection
(``margin.recompute_all``, ``margin.recompute_detect``), the stop-out sweep after each close
(``sweep.sweep_account``) and the risk CLI (``risk.kernels.account_figures``).

Symbols are read either from the packed table of :func:`pack_symbols` (one 64-byte row per
symbol: the full recompute's layout) or from the symbol columns as a tuple ``(bid, ask,
k_profit, k_margin, k_margin_maint, calc_mode)`` (the per-account callers: no table to
build); :func:`sym_row` reads both, to the same floats. Tiers come as the tuple ``(tier_n,
tier_off, table)`` of ``SymbolTable.tiers``.

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
from numba.extending import overload

from cfd.kernels.formulas import CALC_CFDLEVERAGE, CALC_EXCH_STOCKS

#: Columns of :func:`pack_symbols`.
BID, ASK, KP, KM, KMM, MODE, TIER_N, TIER_OFF = 0, 1, 2, 3, 4, 5, 6, 7


@nb.njit(cache=True)
def pack_symbols(sym_bid, sym_ask, sym_kp, sym_km, sym_kmm, sym_mode, tiers):
    """One row per symbol holding all the full recompute reads of it (bid, ask, k_profit,
    k_margin, k_margin_maint, calc mode, tier rows, first tier row; 64 bytes), so a position
    costs one cache line of symbol data instead of six. Prices, modes and row numbers are
    integers below 2**53 and pass through float64 exactly."""
    tier_n, tier_off = tiers[0], tiers[1]
    n = len(sym_bid)
    t = np.empty((n, 8))
    for s in range(n):
        t[s, BID] = sym_bid[s]
        t[s, ASK] = sym_ask[s]
        t[s, KP] = sym_kp[s]
        t[s, KM] = sym_km[s]
        t[s, KMM] = sym_kmm[s]
        t[s, MODE] = sym_mode[s]
        t[s, TIER_N] = tier_n[s] if s < len(tier_n) else 0
        t[s, TIER_OFF] = tier_off[s] if s < len(tier_off) else 0
    return t


def sym_row(syms, tiers, s, v):
    """``(close, k_profit, k_margin, k_margin_maint, calc_mode, tier_n, tier_off)`` of symbol
    ``s`` for a position of volume ``v`` (it closes at bid when long, at ask when short), as
    floats, from a packed table or from the columns' tuple (the tier arrays cover every
    symbol of the table: ``SymbolTable.tiers``, :func:`empty_tiers`)."""
    if isinstance(syms, tuple):
        close = syms[0][s] if v > 0 else syms[1][s]
        return (float(close), float(syms[2][s]), float(syms[3][s]), float(syms[4][s]),
                float(syms[5][s]), float(tiers[0][s]), float(tiers[1][s]))
    r = syms[s]
    return (r[BID + int(v <= 0)], r[KP], r[KM], r[KMM], r[MODE], r[TIER_N], r[TIER_OFF])


@overload(sym_row)
def _sym_row_nb(syms, tiers, s, v):
    if isinstance(syms, types.Array):
        def packed(syms, tiers, s, v):
            # the close price picked by index rather than by a branch
            return (syms[s, BID + np.intp(v <= 0)], syms[s, KP], syms[s, KM], syms[s, KMM],
                    syms[s, MODE], syms[s, TIER_N], syms[s, TIER_OFF])
        return packed

    def columns(syms, tiers, s, v):
        close = syms[0][s] if v > 0 else syms[1][s]
        return (float(close), float(syms[2][s]), float(syms[3][s]), float(syms[4][s]),
                float(syms[5][s]), float(tiers[0][s]), float(tiers[1][s]))
    return columns


@nb.njit(cache=True, inline="always")
def position_margins(fv, po, close, km, kmm, mode, lev):
    """``(margin, maintenance margin, tier measure base)`` of one position of ``fv`` volume
    units opened at ``po`` and closing at ``close``: ``|v| * P * k`` with ``P`` the margin
    price (``formulas.margin_price``), divided by the leverage for CFDLEVERAGE; the last is
    ``|v| * P`` (the notional before the symbol's factors)."""
    base_m = abs(fv) * (close if mode == CALC_EXCH_STOCKS else po)
    m = base_m * km
    mm = base_m * kmm
    if mode == CALC_CFDLEVERAGE:
        m = m / lev
        mm = mm / lev
    return m, mm, base_m


@nb.njit(cache=True, inline="always")
def tier_factor(table, off, n, x):
    """``margin(X) / (X * rate_1)`` for an aggregate ``x`` (measure units, > 0) by the
    schedule ``table[off : off + n]`` (``tiers.tier_rows``): ``rate_k / rate_1 - (ded_k /
    rate_1) / x`` for the last bracket ``k`` with ``floor_k <= x`` (floors rise: the
    brackets below ``x`` are counted, without a branch)."""
    k = off
    for j in range(off + 1, off + n):
        k += np.intp(table[j, 0] <= x)
    return table[k, 1] - table[k, 2] / x


#: Work rows of :func:`account_sums`: a small open-addressed table of the account's tiered
#: symbols (a power of two; past half full, :func:`_tiered_slow`).
GROUPS = 64


@nb.njit(cache=True)
def scratch():
    """The work rows of :func:`account_sums` (one per thread or per chunk of accounts): per
    tiered symbol of the account, ``(symbol, margin, maintenance margin, aggregate,
    row of the k-th symbol)``; symbol -1: free. Left free again by each call."""
    w = np.zeros((GROUPS, 5))
    w[:, 0] = -1.0
    return w


@nb.njit(cache=True, inline="always")
def account_sums(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, leverage, work):
    """``(profit, margin, margin_maint, margin_at_market, delta)`` of the positions
    ``pool[start : start + n]`` of one account: floating profit, initial and maintenance
    margin (tiers applied), the part of the margin margined at the market (EXCH_STOCKS,
    which follows the price) and the signed notional ``sum(close * volume * k_profit)``.

    Positions of tiered symbols are summed per symbol in ``work`` (:func:`scratch`, a table
    keyed by symbol) and added after the untiered ones, in the order of their first
    position. The callers that need
    fewer figures drop the rest (inlined, the compiler removes the unused sums)."""
    profit = 0.0
    margin = 0.0
    maint = 0.0
    at_market = 0.0
    delta = 0.0
    lev = float(leverage)
    ng = 0
    overflow = False
    for k in range(start, start + n):
        p = pool[k]
        s = pos_sym[p]
        v = pos_vol[p]
        close, kp, km, kmm, mode, tn, to = sym_row(syms, tiers, s, v)
        fv = float(v)
        po = float(pos_price[p])
        profit += (close - po) * fv * kp
        delta += close * fv * kp
        m, mm, base_m = position_margins(fv, po, close, km, kmm, mode, lev)
        if tn == 0.0:
            margin += m
            maint += mm
            if mode == CALC_EXCH_STOCKS:
                at_market += m
        elif not overflow:
            kx = tiers[2][np.intp(to), 3]
            x = abs(fv) if kx == 0.0 else base_m * kx
            fs = float(s)
            g = s & (GROUPS - 1)
            while work[g, 0] != fs and work[g, 0] >= 0.0:
                g = (g + 1) & (GROUPS - 1)
            if work[g, 0] < 0.0:
                if 2 * ng >= GROUPS:
                    overflow = True
                    continue
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
            _, _, _, _, mode, tn, to = sym_row(syms, tiers, np.intp(work[g, 0]), 1)
            f = tier_factor(table, np.intp(to), np.intp(tn), work[g, 3])
            margin += work[g, 1] * f
            maint += work[g, 2] * f
            if mode == CALC_EXCH_STOCKS:
                at_market += work[g, 1] * f
        work[g, 0] = -1.0
    if overflow:
        margin, maint, at_market = _tiered_slow(pool, start, n, pos_sym, pos_vol, pos_price,
                                                syms, tiers, lev, margin, maint, at_market)
    return profit, margin, maint, at_market, delta


@nb.njit(cache=True)
def _tiered_slow(pool, start, n, pos_sym, pos_vol, pos_price, syms, tiers, lev, margin,
                 maint, at_market):
    """The tiered part of :func:`account_sums` without work rows (an account holding more
    than :data:`GROUPS` tiered symbols): the same sums in the same order, found by scanning
    the account again for each symbol; ``(margin, maint, at_market)`` with them added."""
    table = tiers[2]
    for k in range(start, start + n):
        s = pos_sym[pool[k]]
        _, _, _, _, mode, tn, to = sym_row(syms, tiers, s, 1)
        if tn == 0.0:
            continue
        first = True
        for j in range(start, k):
            if pos_sym[pool[j]] == s:
                first = False
                break
        if not first:
            continue
        kx = table[np.intp(to), 3]
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
            f = tier_factor(table, np.intp(to), np.intp(tn), x)
            margin += u * f
            maint += um * f
            if mode == CALC_EXCH_STOCKS:
                at_market += u * f
    return margin, maint, at_market


def empty_tiers(n_symbols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tier tuple of a book without tiers."""
    z = np.zeros(max(n_symbols, 1), dtype=np.int64)
    return z, z.copy(), np.zeros((1, 4))
