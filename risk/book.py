"""The book as the risk CLI sees it: flat arrays copied out of an engine (or built directly,
for benchmarks), with positions grouped by account.

A :class:`Book` is a copy: nothing the CLI computes writes back into an engine. Prices are
the engine's integer grid units (``cfd.money``), money at rest integer minor units.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from cfd.kernels.account import empty_tiers
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE
from cfd.trading.commission import ZERO as ZERO_TERMS
from risk.kernels import account_figures

if TYPE_CHECKING:
    from cfd.engine import Engine


@dataclass
class Symbols:
    names: list[str]
    bid: np.ndarray  # int64 price units
    ask: np.ndarray
    point: np.ndarray  # int64 price units per point
    k_profit: np.ndarray  # account currency per (price unit x volume unit)
    k_margin: np.ndarray
    k_num: np.ndarray  # exact profit factor (minor units), numerator / denominator
    k_den: np.ndarray
    calc_mode: np.ndarray
    closable: np.ndarray  # market open, quoted and not halted
    # commission and fee of a stop-out close, the engine's terms rows (R, 6) int64
    # (``cfd.trading.commission.exit_terms``): account a in symbol s uses row
    # ``Book.comm_row[a] + s`` (row s when the book has no ``comm_row``)
    comm_terms: np.ndarray
    fee_terms: np.ndarray
    contract_size: np.ndarray
    # margin tier sets (``cfd.trading.margin_tiers.tier_sets`` without the accounts' sets:
    # tier_n, tier_off per set and symbol, table); None: no tiers
    tiers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def tier_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.tiers if self.tiers is not None else empty_tiers(len(self.names))[:3]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown symbol {name!r} (known: {', '.join(self.names)})") from None

    def mid(self) -> np.ndarray:
        """Mid price in quote currency (float)."""
        return (self.bid + self.ask) / 2 / PRICE_SCALE


@dataclass
class Book:
    """Accounts, positions (CSR by account) and symbols; everything a risk run reads."""

    symbols: Symbols
    login: np.ndarray  # int64
    balance: np.ndarray  # int64 minor units
    credit: np.ndarray  # int64 minor units
    leverage: np.ndarray  # int32
    so_rule: np.ndarray  # int8, cfd.kernels.formulas RULE_*
    so_call: np.ndarray  # float64
    so_so: np.ndarray
    so_end: np.ndarray
    groups: list[str]
    acc_off: np.ndarray  # int64, n_acc + 1: positions of account a are acc_off[a]:acc_off[a+1]
    pos_acc: np.ndarray  # int32
    pos_sym: np.ndarray  # int32
    pos_vol: np.ndarray  # int64 volume units, signed (+ long)
    pos_open: np.ndarray  # int64 price units
    pos_ticket: np.ndarray  # int64
    insurance_fund: int = 0  # minor units
    comm_row: np.ndarray | None = None  # int64 per account, see Symbols.comm_terms
    # negative balance protection per account (AccountGroup.nbp_for); None: every account
    nbp: np.ndarray | None = None
    tier_set: np.ndarray | None = None  # each account's tier set (None: the symbols' own)
    info: dict[str, Any] = field(default_factory=dict)
    _fig: dict[str, np.ndarray] | None = None

    @property
    def n_accounts(self) -> int:
        return len(self.login)

    @property
    def n_positions(self) -> int:
        return len(self.pos_vol)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_engine(cls, eng: Engine, info: dict[str, Any] | None = None) -> Book:
        """Copy the book out of an engine (the engine is not changed)."""
        from cfd.trading.commission import exit_terms

        sc, ac, pc = eng.symbols.cols, eng.accounts.cols, eng.positions.cols
        ns, na = len(eng.symbols), len(eng.accounts)
        slots = np.nonzero(pc.active[: pc.size])[0]
        slots = slots[np.argsort(pc.acc[slots], kind="stable")]
        counts = np.bincount(pc.acc[slots], minlength=na) if na else np.zeros(0, np.int64)
        off = np.zeros(na + 1, dtype=np.int64)
        off[1:] = np.cumsum(counts)
        specs = eng.symbols.specs
        comm_terms, fee_terms, comm_row = (x.copy() for x in exit_terms(eng))
        syms = Symbols(
            names=[s.name for s in specs], bid=sc.bid[:ns].copy(), ask=sc.ask[:ns].copy(),
            point=np.array([eng.symbols.point_units(i) for i in range(ns)], dtype=np.int64),
            k_profit=sc.k_profit[:ns].copy(), k_margin=sc.k_margin[:ns].copy(),
            k_num=sc.k_num[:ns].copy(), k_den=sc.k_den[:ns].copy(),
            calc_mode=sc.calc_mode[:ns].copy(),
            closable=(sc.market_open[:ns] & sc.has_quote[:ns] & ~sc.halted[:ns]).copy(),
            comm_terms=comm_terms, fee_terms=fee_terms,
            contract_size=np.array([float(s.contract_size) for s in specs]),
            tiers=tuple(x.copy() for x in eng.tier_sets()[:3]))
        return cls(
            symbols=syms, login=ac.login[:na].copy(), balance=ac.balance[:na].copy(),
            credit=ac.credit[:na].copy(), leverage=ac.leverage[:na].copy(),
            so_rule=ac.so_rule[:na].copy(), so_call=ac.so_call[:na].copy(),
            so_so=ac.so_so[:na].copy(), so_end=ac.so_end[:na].copy(),
            groups=list(eng.accounts.groups), acc_off=off,
            pos_acc=pc.acc[slots].astype(np.int32), pos_sym=pc.sym[slots].astype(np.int32),
            pos_vol=pc.volume[slots].copy(), pos_open=pc.price_open[slots].copy(),
            pos_ticket=pc.ticket[slots].copy(),
            insurance_fund=eng.insurance_fund, comm_row=comm_row[:max(na, 1)],
            nbp=np.array([eng.config.groups[g].nbp_for(int(c))
                          for g, c in zip(eng.accounts.groups, ac.category[:na], strict=True)],
                         dtype=np.bool_),
            tier_set=eng.tier_sets()[3][:max(na, 1)].copy(),
            info={"exposure_limits": {k: str(v) for k, v in
                                      eng.config.exposure_limits.items()}, **(info or {})})

    def with_prices(self, bid: np.ndarray, ask: np.ndarray) -> Book:
        """The same book at other prices (arrays shared, figures re-derived)."""
        syms = replace(self.symbols, bid=bid, ask=ask)
        return replace(self, symbols=syms, _fig=None)

    def with_symbols(self, symbols: Symbols) -> Book:
        return replace(self, symbols=symbols, _fig=None)

    def accounts(self, first: int, stop: int) -> Book:
        """Accounts ``first:stop`` and their positions, as a book of their own (copies; the
        symbols and the insurance fund are shared): what one worker sweeps."""
        p0, p1 = int(self.acc_off[first]), int(self.acc_off[stop])
        a = slice(first, stop)
        p = slice(p0, p1)
        return replace(
            self, login=self.login[a].copy(), balance=self.balance[a].copy(),
            credit=self.credit[a].copy(), leverage=self.leverage[a].copy(),
            so_rule=self.so_rule[a].copy(), so_call=self.so_call[a].copy(),
            so_so=self.so_so[a].copy(), so_end=self.so_end[a].copy(),
            groups=self.groups[a], acc_off=self.acc_off[first : stop + 1] - p0,
            pos_acc=(self.pos_acc[p] - first).astype(np.int32),
            pos_sym=self.pos_sym[p].copy(), pos_vol=self.pos_vol[p].copy(),
            pos_open=self.pos_open[p].copy(), pos_ticket=self.pos_ticket[p].copy(),
            nbp=None if self.nbp is None else self.nbp[a].copy(),
            tier_set=None if self.tier_set is None else self.tier_set[a].copy(),
            info=dict(self.info), _fig=None)

    def tier_sets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The tier sets of the kernels (``cfd.kernels.account``), each account's own."""
        acc = self.tier_set if self.tier_set is not None else \
            np.zeros(max(self.n_accounts, 1), np.int32)
        return (*self.symbols.tier_tuple(), acc)

    # ----------------------------------------------------------------- figures
    def figures(self) -> dict[str, np.ndarray]:
        """Per account: ``profit``, ``margin``, ``equity``, ``free``, ``level``, ``delta``
        (signed notional), ``margin_var``; per position: ``pos_profit``. Cached."""
        if self._fig is None:
            s = self.symbols
            n = self.n_accounts
            out = {k: np.zeros(n) for k in ("profit", "margin", "delta", "margin_var")}
            pos_profit = np.zeros(self.n_positions)
            account_figures(self.acc_off, self.pos_sym, self.pos_vol, self.pos_open, s.bid, s.ask,
                            s.k_profit, s.k_margin, s.calc_mode, self.tier_sets(), self.leverage,
                            pos_profit,
                            out["profit"], out["margin"], out["delta"], out["margin_var"])
            eq = (self.balance + self.credit) / MINOR_SCALE + out["profit"]
            out["equity"] = eq
            out["free"] = eq - out["margin"]
            with np.errstate(divide="ignore", invalid="ignore"):
                out["level"] = np.where(out["margin"] > 0, eq / out["margin"] * 100.0, 0.0)
            out["pos_profit"] = pos_profit
            out["n_pos"] = np.diff(self.acc_off)
            self._fig = out
        return self._fig

    def close_prices(self) -> np.ndarray:
        """Per position: the price it would close at (bid for longs, ask for shorts)."""
        s = self.symbols
        return np.where(self.pos_vol > 0, s.bid[self.pos_sym], s.ask[self.pos_sym])

    def notional(self) -> np.ndarray:
        """Per position: signed value in account currency at its close price."""
        return self.close_prices() * self.pos_vol * self.symbols.k_profit[self.pos_sym]


def shocked_prices(symbols: Symbols, moves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask after relative moves (per symbol; ``-0.25`` = 25% down), on each symbol's
    point grid as the engine's tick intake rounds them, and never below one point."""
    pt = symbols.point
    factor = 1.0 + np.asarray(moves, dtype=np.float64)
    bid = np.maximum(np.round(symbols.bid * factor / pt), 1).astype(np.int64) * pt
    ask = np.maximum(np.round(symbols.ask * factor / pt), 1).astype(np.int64) * pt
    ask = np.maximum(ask, bid)
    return bid, ask


def synthetic_book(n_accounts: int, n_positions: int, n_symbols: int = 25, seed: int = 7,
                   target_level: tuple[float, float] = (120.0, 1500.0)) -> Book:
    """A random book built directly as arrays (benchmarks): CFD symbols at 20% initial
    margin, one lot = one share, accounts at a margin level drawn log-uniformly from
    ``target_level`` (percent), stop-out at 50%, positions long or short at a few percent
    from the current price, 85% of them on their account's side (65% of accounts lean long)."""
    rng = np.random.default_rng(seed)
    price = np.round(rng.uniform(20, 900, n_symbols), 2)
    bid = (price * PRICE_SCALE).astype(np.int64)
    ask = bid + 2 * 10_000
    k_profit = np.full(n_symbols, 1.0 / (PRICE_SCALE * VOLUME_SCALE))
    syms = Symbols(
        names=[f"S{i:03d}" for i in range(n_symbols)], bid=bid, ask=ask,
        point=np.full(n_symbols, 10_000, dtype=np.int64), k_profit=k_profit,
        k_margin=k_profit * 0.2, k_num=np.ones(n_symbols, dtype=np.int64),
        k_den=np.full(n_symbols, PRICE_SCALE * VOLUME_SCALE // MINOR_SCALE, dtype=np.int64),
        calc_mode=np.full(n_symbols, 2, dtype=np.int32),
        closable=np.ones(n_symbols, dtype=np.bool_),
        comm_terms=np.tile(np.array(ZERO_TERMS, np.int64), (n_symbols, 1)),
        fee_terms=np.tile(np.array(ZERO_TERMS, np.int64), (n_symbols, 1)),
        contract_size=np.ones(n_symbols))
    pos_acc = np.sort(rng.integers(0, n_accounts, n_positions)).astype(np.int32)
    off = np.zeros(n_accounts + 1, dtype=np.int64)
    off[1:] = np.cumsum(np.bincount(pos_acc, minlength=n_accounts))
    pos_sym = rng.integers(0, n_symbols, n_positions).astype(np.int32)
    bias = np.where(rng.random(n_accounts) < 0.65, 1, -1)[pos_acc]  # mostly-long accounts
    side = np.where(rng.random(n_positions) < 0.85, bias, -bias)
    pos_vol = side * rng.integers(1, 200, n_positions) * 1_000  # 0.1 .. 19.9 lots
    drift = rng.normal(0.0, 0.03, n_positions)
    pos_open = (np.round(bid[pos_sym] * (1 + drift) / 10_000) * 10_000).astype(np.int64)
    book = Book(
        symbols=syms, login=np.arange(1, n_accounts + 1, dtype=np.int64) + 100_000,
        balance=np.zeros(n_accounts, dtype=np.int64),
        credit=np.zeros(n_accounts, dtype=np.int64),
        leverage=np.ones(n_accounts, dtype=np.int32),
        so_rule=np.zeros(n_accounts, dtype=np.int8),
        so_call=np.full(n_accounts, 100.0), so_so=np.full(n_accounts, 50.0),
        so_end=np.zeros(n_accounts), groups=["demo\\usdt"] * n_accounts, acc_off=off,
        pos_acc=pos_acc, pos_sym=pos_sym, pos_vol=pos_vol.astype(np.int64), pos_open=pos_open,
        pos_ticket=np.arange(n_positions, dtype=np.int64) + 1,
        insurance_fund=int(n_accounts) * 10_000, info={"source": f"synthetic seed {seed}"})
    fig = book.figures()
    lo, hi = np.log(target_level[0]), np.log(target_level[1])
    level = np.exp(rng.uniform(lo, hi, n_accounts))
    want_equity = fig["margin"] * level / 100.0
    book.balance = np.round((want_equity - fig["profit"]) * MINOR_SCALE).astype(np.int64)
    book._fig = None
    return book
