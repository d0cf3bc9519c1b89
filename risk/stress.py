"""What-if scenarios on a copy of the book: price shocks, correlated market moves, USDT
de-peg. Each runs the engine's own stop-out sweep (``cfd.kernels.sweep``: its decision
rule, closing order, exact realised profit and commission terms) at the shocked prices and
reports who is stopped out, the deals generated, the deficit the insurance fund absorbs,
and the exposure left."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from cfd.kernels import sweep as K
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE
from cfd.trading.commission import scale_terms
from risk.book import Book, shocked_prices

#: Per-account outcome of a stress run.
ST_NONE = 0  # not at or below its stop-out level
ST_STOPPED = 1  # positions closed; now above the level or flat
ST_STUCK = 2  # still at or below the level, nothing closable left (halted or closed market)

_SHOCK = re.compile(r"^\s*([A-Za-z0-9._\\-]+)\s*=\s*([+-]?\d+(?:\.\d+)?)\s*%?\s*$")


def parse_percent(text: str) -> float:
    """``"-10%"`` or ``"-10"`` -> -0.10."""
    t = text.strip().rstrip("%").strip()
    try:
        return float(t) / 100.0
    except ValueError:
        raise ValueError(f"{text!r} is not a percentage (say -10%)") from None


def parse_shocks(specs: list[str], names: list[str]) -> dict[str, float]:
    """``["NVDA=-25%", "TSLA=-30"]`` -> ``{"NVDA": -0.25, "TSLA": -0.30}``."""
    out: dict[str, float] = {}
    for spec in specs:
        m = _SHOCK.match(spec)
        if not m:
            raise ValueError(f"shock {spec!r}: expected SYMBOL=-25%")
        name = m.group(1)
        if name not in names:
            raise ValueError(f"shock {spec!r}: unknown symbol {name!r}")
        out[name] = float(m.group(2)) / 100.0
    return out


def scenario_moves(names: list[str], shocks: dict[str, float] | None = None,
                   all_move: float = 0.0, market: float | None = None,
                   betas: dict[str, float] | None = None) -> np.ndarray:
    """Per-symbol relative moves: ``all_move`` everywhere, or ``beta * market`` (a correlated
    market move), then the per-symbol ``shocks`` on top (they replace, not add)."""
    moves = np.full(len(names), float(all_move))
    if market is not None:
        b = betas or {}
        moves = np.array([b.get(n, 1.0) * market for n in names])
    for name, m in (shocks or {}).items():
        moves[names.index(name)] = m
    if (moves <= -1.0).any():
        raise ValueError("a move of -100% or more leaves no price")
    return moves


@dataclass
class StressResult:
    moves: np.ndarray
    status: np.ndarray
    n_closed: np.ndarray
    closed: np.ndarray  # per position
    balance_after: np.ndarray
    deficit: np.ndarray  # minor units per account
    equity_before: np.ndarray
    level_before: np.ndarray
    equity_after: np.ndarray
    fund_before: int
    exposure: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def stopped(self) -> np.ndarray:
        return np.nonzero(self.status == ST_STOPPED)[0]

    def summary(self) -> dict[str, Any]:
        total = int(self.deficit.sum())
        from_fund = min(max(self.fund_before, 0), total)
        return {
            "accounts_stopped_out": int((self.status == ST_STOPPED).sum()),
            "accounts_stuck": int((self.status == ST_STUCK).sum()),
            "deals": int(self.n_closed.sum()),
            "accounts_negative": int((self.deficit > 0).sum()),
            "deficit": total / MINOR_SCALE,
            "from_insurance_fund": from_fund / MINOR_SCALE,
            "from_broker_pl": (total - from_fund) / MINOR_SCALE,
            "insurance_fund_before": self.fund_before / MINOR_SCALE,
            "insurance_fund_after": (self.fund_before - from_fund) / MINOR_SCALE,
            "seconds": round(self.seconds, 3),
        }


def run_stress(book: Book, moves: np.ndarray, with_exposure: bool = True) -> StressResult:
    """Shock prices by ``moves`` (per symbol) and sweep a copy of the book."""
    import time

    t0 = time.perf_counter()
    s = book.symbols
    bid, ask = shocked_prices(s, moves)
    shocked = book.with_prices(bid, ask)
    fig = shocked.figures()  # floating profit and margin at the shocked prices
    n, n_pos = book.n_accounts, book.n_positions
    acc_off = np.ascontiguousarray(book.acc_off[:-1])
    acc_cnt = np.diff(book.acc_off)
    pool = np.arange(n_pos, dtype=np.int32)  # positions are grouped by account already
    scale = float(MINOR_SCALE)
    everyone = np.arange(n, dtype=np.int64)
    flag = np.zeros(n, dtype=np.bool_)
    K.detect(everyone, False, scale, acc_cnt, book.balance, book.credit, fig["profit"],
             fig["margin"], book.so_rule, book.so_so, book.so_end, flag)
    todo = everyone[flag]
    m = len(todo)
    cnt = acc_cnt[todo]
    base = np.zeros(m, np.int64)
    if m:
        np.cumsum(cnt[:-1], out=base[1:])
    rows = max(int(cnt.sum()), 1)
    out_n, out_status = np.zeros(m, np.int64), np.zeros(m, np.int8)
    slot, work = np.empty(rows, np.int32), np.empty(rows, np.int32)
    price, volume, profit, comm, fee = (np.empty(rows, np.int64) for _ in range(5))
    comm_row = book.comm_row if book.comm_row is not None else np.zeros(max(n, 1), np.int64)
    level, equity, margin = (np.empty(rows) for _ in range(3))
    bal_out, left = np.empty(m, np.int64), np.empty(m, np.int64)
    pr_out, m_out, mm_out = (np.empty(m) for _ in range(3))
    K.sweep(todo, False, scale, acc_off, acc_cnt, pool, book.pos_sym, book.pos_vol,
            book.pos_open, book.pos_ticket, bid, ask, s.k_profit, s.k_margin, s.k_margin,
            s.calc_mode, book.tier_sets(), s.k_num, s.k_den, s.closable, s.comm_terms,
            s.fee_terms, comm_row,
            book.balance, book.credit, fig["profit"], fig["margin"], fig["margin"],
            book.leverage, book.so_rule, book.so_so, book.so_end, base, work, out_n,
            out_status, slot, price, volume, profit, comm, fee, level, equity, margin, bal_out,
            pr_out, m_out, mm_out, left)
    closed = np.zeros(n_pos, dtype=np.bool_)
    closed[slot[np.repeat(base, out_n) + _within(out_n)]] = True
    status = np.zeros(n, dtype=np.int8)
    status[todo] = np.where(out_status == K.SO_PENDING, ST_STUCK,
                            np.where(out_n > 0, ST_STOPPED, ST_NONE))
    n_closed = np.zeros(n, dtype=np.int32)
    n_closed[todo] = out_n
    bal = book.balance.copy()
    bal[todo] = bal_out
    # negative balance protection: a flat account left below zero is brought to zero (one
    # without protection keeps the negative balance, a debt of the client)
    deficit = np.zeros(n, dtype=np.int64)
    flat_negative = todo[(out_n > 0) & (left == 0) & (bal_out < 0)]
    if book.nbp is not None:
        flat_negative = flat_negative[book.nbp[flat_negative]]
    deficit[flat_negative] = -bal[flat_negative]
    bal[flat_negative] = 0
    eq_b = fig["equity"].copy()
    lvl_b = fig["level"].copy()
    after_profit = fig["profit"].copy()
    after_profit[todo] = pr_out
    eq_a = (bal + book.credit) / MINOR_SCALE + after_profit
    res = StressResult(moves=np.asarray(moves), status=status, n_closed=n_closed,
                       closed=closed, balance_after=bal, deficit=deficit, equity_before=eq_b,
                       level_before=lvl_b, equity_after=eq_a, fund_before=book.insurance_fund)
    if with_exposure:
        res.exposure = remaining_exposure(book, closed, bid, ask)
    res.seconds = time.perf_counter() - t0
    return res


def _within(counts: np.ndarray) -> np.ndarray:
    """``0, 1, .., counts[0]-1, 0, 1, .., counts[1]-1, ...``"""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def remaining_exposure(book: Book, closed: np.ndarray, bid: np.ndarray, ask: np.ndarray
                       ) -> list[dict[str, Any]]:
    """Per symbol: clients' net volume before and after the sweep and the broker's book (the
    opposite) at the shocked prices."""
    s = book.symbols
    ns = len(s)
    mid = (bid + ask) / 2
    vol = book.pos_vol.astype(np.float64)
    before = np.bincount(book.pos_sym, weights=vol, minlength=ns)
    keep = ~closed
    after = np.bincount(book.pos_sym[keep], weights=vol[keep], minlength=ns)
    closed_vol = np.bincount(book.pos_sym[closed], weights=np.abs(vol[closed]), minlength=ns)
    rows = []
    for i in range(ns):
        if before[i] == 0 and closed_vol[i] == 0:
            continue
        k = float(s.k_profit[i])
        rows.append({
            "symbol": s.names[i], "move_pct": None,
            "price": float(mid[i]) / PRICE_SCALE,
            "net_lots_before": before[i] / VOLUME_SCALE,
            "closed_lots": closed_vol[i] / VOLUME_SCALE,
            "net_lots_after": after[i] / VOLUME_SCALE,
            "broker_notional_after": -after[i] * mid[i] * k,
        })
    return rows


def depeg_symbols(book: Book, haircut: float, specs: list[dict] | None = None) -> Book:
    """The book when 1 USDT buys only ``1 - haircut`` USD: every USD amount (floating profit,
    margin) is worth ``1 / (1 - haircut)`` USDT, while balances stay in USDT."""
    if not 0.0 <= haircut < 1.0:
        raise ValueError("the haircut must be in [0, 1)")
    from fractions import Fraction

    s = book.symbols
    f = Fraction(Decimal(1)) / (1 - Fraction(Decimal(str(haircut))))
    k_num, k_den = s.k_num.copy(), s.k_den.copy()
    for i in range(len(s)):
        exact = Fraction(int(s.k_num[i]), int(s.k_den[i])) * f
        k_num[i], k_den[i] = exact.numerator, exact.denominator
    from dataclasses import replace

    syms = replace(s, k_profit=s.k_profit * float(f), k_margin=s.k_margin * float(f),
                   k_num=k_num, k_den=k_den, comm_terms=scale_terms(s.comm_terms, f),
                   fee_terms=scale_terms(s.fee_terms, f))
    return book.with_symbols(syms)
