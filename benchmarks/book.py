"""Seeded synthetic books, built directly as arrays inside a real :class:`cfd.engine.Engine`
(not through its per-command path), so that the kernels, the references and the engine's bulk
stop-out path all run on the same state.

A book: ``symbols`` stocks (CFD calc mode unless asked otherwise) quoted 10-500 USD with a
1-5 cent spread; ``accounts`` accounts (hedging, netting and ESMA groups); ``positions``
positions spread over the accounts (Poisson counts), long with probability ``long_frac``,
opened within about 5% of the current price, 0.1-10 lots. Each account's balance is chosen so
that its margin level starts uniformly between ``level_lo`` and ``level_hi`` percent. Margin
rate ``1 / leverage``. Positions lie in the pool grouped by account (as after compaction).
Deposits are written straight into the ledger balances (from external cash) without
postings.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from cfd.accounts.ledger import BROKER_PL, EXTERNAL_CASH, INSURANCE_FUND, N_HOUSE
from cfd.engine import Engine
from cfd.instruments.spec import SymbolSpec
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE
from cfd.trading.margin_tiers import tier_sets

GROUPS = ("demo\\usdt", "demo\\netting", "retail\\esma")
FIRST_TICKET = 10_000_001


@dataclass(frozen=True)
class BookSpec:
    positions: int = 100_000
    accounts: int = 10_000
    symbols: int = 500
    long_frac: float = 0.6
    leverage: float = 5.0
    seed: int = 1
    level_lo: float = 110.0
    level_hi: float = 400.0
    calc_modes: tuple[int, ...] = (2,)
    hedging_frac: float = 0.6
    esma_frac: float = 0.2
    insurance_fund: int = 10**9  # minor units
    symbol_skew: float = 0.0  # hedging positions pick symbol k with weight 1 / (k + 1)**skew
    tiered_frac: float = 0.0  # share of symbols with margin tiers (half by volume, half value)


#: Tier ladders of the tiered books, as multiples of the symbol's rate: by volume (lots; the
#: positions are 0.1-10 lots, several per symbol on hedging accounts) and by value (USD).
VOLUME_LADDER = ((0, 1), (2, Decimal("1.5")), (5, 2), (12, 3))
VALUE_LADDER = ((0, 1), (500, Decimal("1.25")), (2_000, 2), (8_000, 4))


def ladder(rate: Decimal, steps: tuple) -> str:
    return ",".join(f"{floor}:{min(rate * k, Decimal(1))}" for floor, k in steps)


def make_specs(n: int, leverage: float, calc_modes: tuple[int, ...], seed: int,
               tiered_frac: float = 0.0) -> list[SymbolSpec]:
    rng = np.random.default_rng(seed + 17)
    rate = f"{1.0 / leverage:.6f}".rstrip("0")
    modes = rng.choice(np.array(calc_modes), n)
    tiered = np.random.default_rng(seed + 29).random(n) < tiered_frac
    specs = []
    for i in range(n):
        row = {"name": f"S{i:05d}", "contract_size": 1, "margin_initial_rate": rate,
               "margin_maintenance_rate": f"{1.0 / leverage / 2:.6f}",
               "calc_mode": int(modes[i])}
        if tiered[i]:
            by_value = i % 2 == 1
            row["margin_tiers"] = ladder(Decimal(rate),
                                         VALUE_LADDER if by_value else VOLUME_LADDER)
            row["margin_tiers_by"] = "value" if by_value else "volume"
        specs.append(SymbolSpec.from_dict(row))
    return specs


def build(spec: BookSpec) -> Engine:
    """An engine holding the synthetic book ``spec``, recomputed and ready."""
    rng = np.random.default_rng(spec.seed)
    eng = Engine(specs=make_specs(spec.symbols, spec.leverage, spec.calc_modes, spec.seed,
                                  spec.tiered_frac))
    ns = spec.symbols
    sc = eng.symbols.cols
    cent = PRICE_SCALE // 100
    bid = rng.integers(1_000, 50_000, ns) * cent
    sc.bid[:ns] = bid
    sc.ask[:ns] = bid + rng.integers(1, 6, ns) * cent
    sc.has_quote[:ns] = True
    sc.market_open[:ns] = True
    _accounts(eng, spec, rng)
    _positions(eng, spec, rng)
    eng.recompute_all()
    _fund(eng, spec, rng)
    return eng


def _accounts(eng: Engine, spec: BookSpec, rng: np.random.Generator) -> None:
    na = spec.accounts
    at = eng.accounts
    ac = at.cols
    ac.reserve(na)
    ac.size = na
    u = rng.random(na)
    group = np.where(u < spec.esma_frac, 2,
                     np.where(u < spec.esma_frac + (1 - spec.esma_frac) * spec.hedging_frac,
                              0, 1))
    ac.login[:na] = 1_000_000 + np.arange(na)
    ac.leverage[:na] = int(spec.leverage)
    for g, name in enumerate(GROUPS):
        cfg = eng.config.groups[name]
        sel = group == g
        ac.margin_mode[:na][sel] = cfg.margin_mode
        ac.so_mode[:na][sel] = cfg.so_mode
        ac.so_rule[:na][sel] = cfg.rule
        ac.so_call[:na][sel] = cfg.margin_call
        ac.so_so[:na][sel] = cfg.stop_out
        ac.so_end[:na][sel] = cfg.stop_out_end
    ac.trade_allowed[:na] = True
    at.index = dict(zip(ac.login[:na].tolist(), range(na), strict=True))
    at.names = [""] * na
    at.groups = [GROUPS[g] for g in group.tolist()]
    eng.ledger.ensure_clients(na)
    eng.positions.by_acc.ensure_groups(na)


def _positions(eng: Engine, spec: BookSpec, rng: np.random.Generator) -> None:
    npos, na, ns = spec.positions, spec.accounts, spec.symbols
    ac = eng.accounts.cols
    acc = np.sort(rng.integers(0, na, npos)).astype(np.int32)
    cnt = np.bincount(acc, minlength=na).astype(np.int64)
    start = np.cumsum(cnt) - cnt
    within = np.arange(npos, dtype=np.int64) - np.repeat(start, cnt)
    # netting accounts: one position per symbol (consecutive symbols from a random start)
    # (a netting account drawn with more positions than symbols becomes a hedging one)
    crowded = np.nonzero((ac.margin_mode[:na] != 2) & (cnt > ns))[0]
    ac.margin_mode[crowded] = 2
    for a in crowded.tolist():
        eng.accounts.groups[a] = GROUPS[0]
    first = rng.integers(0, ns, na)
    if spec.symbol_skew:
        w = 1.0 / np.arange(1, ns + 1) ** spec.symbol_skew
        sym = rng.choice(ns, npos, p=w / w.sum())
    else:
        sym = rng.integers(0, ns, npos)
    netting = ac.margin_mode[:na][acc] != 2
    sym = np.where(netting, (first[acc] + within) % ns, sym).astype(np.int32)
    sc = eng.symbols.cols
    cent = PRICE_SCALE // 100
    mid = sc.bid[sym]
    price = np.maximum((mid * (1 + rng.normal(0, 0.05, npos)) // cent) * cent, cent)
    lots = rng.integers(1, 101, npos) * (VOLUME_SCALE // 10)
    vol = np.where(rng.random(npos) < spec.long_frac, lots, -lots)
    pt = eng.positions
    pc = pt.cols
    pc.reserve(npos)
    pc.size = npos
    pc.active[:npos] = True
    pc.acc[:npos] = acc
    pc.sym[:npos] = sym
    pc.volume[:npos] = vol
    pc.price_open[:npos] = price
    tickets = FIRST_TICKET + np.arange(npos, dtype=np.int64)
    pc.ticket[:npos] = tickets
    pc.identifier[:npos] = tickets
    pc.time_msc[:npos] = 1_767_000_000_000
    pc.time_update_msc[:npos] = 1_767_000_000_000
    pc.acc_place[:npos] = within
    pt.comments = [""] * pc.capacity
    pt.external_ids = [""] * pc.capacity
    pt.by_ticket = dict(zip(tickets.tolist(), range(npos), strict=True))
    eng.next_order = FIRST_TICKET + npos
    bi = pt.by_acc
    bi.ensure_groups(na)
    bi.pool = np.full(max(npos, 16), -1, np.int32)
    bi.pool[:npos] = np.arange(npos, dtype=np.int32)
    bi.off[:na], bi.cnt[:na], bi.cap[:na] = start, cnt, cnt
    bi.end = npos
    bs = pt.by_sym
    bs.ensure_groups(ns)
    order = np.argsort(sym, kind="stable").astype(np.int32)
    scnt = np.bincount(sym, minlength=ns).astype(np.int64)
    sstart = np.cumsum(scnt) - scnt
    bs.pool = np.full(max(npos, 16), -1, np.int32)
    bs.pool[:npos] = order
    bs.off[:ns], bs.cnt[:ns], bs.cap[:ns] = sstart, scnt, scnt
    bs.end = npos
    place = np.empty(npos, np.int32)
    place[order] = np.arange(npos, dtype=np.int64) - np.repeat(sstart, scnt)
    pc.sym_place[:npos] = place


def _fund(eng: Engine, spec: BookSpec, rng: np.random.Generator) -> None:
    na = spec.accounts
    ac = eng.accounts.cols
    level = rng.uniform(spec.level_lo, spec.level_hi, na) / 100.0
    equity = ac.margin[:na] * level
    equity = np.where(ac.margin[:na] > 0, equity, rng.uniform(100, 10_000, na))
    bal = np.maximum(np.round((equity - ac.profit[:na]) * MINOR_SCALE), 100).astype(np.int64)
    ac.balance[:na] = bal
    led = eng.ledger
    led.balance[N_HOUSE:N_HOUSE + 2 * na:2] = bal
    led.balance[EXTERNAL_CASH] -= int(bal.sum())
    led.balance[INSURANCE_FUND] += spec.insurance_fund
    led.balance[BROKER_PL] -= spec.insurance_fund


def kernel_args(eng: Engine) -> dict:
    """The arrays of the full recompute + detection, by kernel argument name."""
    ac, sc, pc = eng.accounts.cols, eng.symbols.cols, eng.positions.cols
    idx = eng.positions.by_acc
    return dict(n_acc=len(eng.accounts), minor_scale=float(MINOR_SCALE), acc_off=idx.off,
                acc_cnt=idx.cnt, pool=idx.pool, pos_sym=pc.sym, pos_vol=pc.volume,
                pos_price=pc.price_open, sym_bid=sc.bid, sym_ask=sc.ask, sym_kp=sc.k_profit,
                sym_km=sc.k_margin, sym_kmm=sc.k_margin_maint, sym_mode=sc.calc_mode,
                tiers=tier_sets(eng), acc_lev=ac.leverage, acc_balance=ac.balance,
                acc_credit=ac.credit, acc_rule=ac.so_rule, acc_so=ac.so_so, acc_call=ac.so_call)


def shock(eng: Engine, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multiply every quote by ``factor`` (on the cent grid); returns ``(symbols, old bid,
    old ask)`` for the incremental recompute."""
    sc = eng.symbols.cols
    ns = len(eng.symbols)
    cent = PRICE_SCALE // 100
    old_bid, old_ask = sc.bid[:ns].copy(), sc.ask[:ns].copy()
    sc.bid[:ns] = np.maximum(np.round(old_bid * factor / cent) * cent, cent).astype(np.int64)
    sc.ask[:ns] = np.maximum(np.round(old_ask * factor / cent) * cent,
                             sc.bid[:ns]).astype(np.int64)
    return np.arange(ns, dtype=np.int32), old_bid, old_ask
