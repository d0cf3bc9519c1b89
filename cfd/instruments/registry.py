"""The symbol table: specs, name -> int32 index, and the per-symbol arrays kernels read."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np

from cfd.errors import SpecError
from cfd.instruments.spec import SESSION_KINDS, SymbolSpec, profit_factor
from cfd.instruments.tiers import parse_tiers, tier_rows, tier_table
from cfd.money import MINOR_SCALE, PRICE_DIGITS, PRICE_SCALE, VOLUME_SCALE
from cfd.soa import Columns

SYMBOL_COLUMNS = {
    "bid": np.int64,  # price units; 0 = no quote yet
    "ask": np.int64,
    "last": np.int64,
    "tick_msc": np.int64,
    "has_quote": np.bool_,
    "market_open": np.bool_,  # effective: session_open and admin_open
    "session_open": np.bool_,  # the symbol's trading session is open
    "admin_open": np.bool_,  # not closed by an admin (SetMarket)
    "halted": np.bool_,
    "confirmed": np.bool_,  # last quote is not an unconfirmed outlier
    "calc_mode": np.int32,
    "session": np.int8,
    "k_profit": np.float64,
    "k_margin": np.float64,
    "k_margin_maint": np.float64,
    "k_num": np.int64,
    "k_den": np.int64,
}


class SymbolTable:
    """Specs by name and index plus their arrays; conversion rates into the account currency
    (``rates``: currency -> Decimal USDT per unit; USD 1:1 unless configured)."""

    def __init__(self, specs: list[SymbolSpec], rates: dict[str, Decimal] | None = None) -> None:
        self.rates = {"USD": Decimal(1), "USDT": Decimal(1)}
        self.rates.update(rates or {})
        self.specs: list[SymbolSpec] = []
        self.index: dict[str, int] = {}
        self.k_exact: list[Fraction] = []
        self._points: np.ndarray | None = None
        self._names: tuple[str, ...] | None = None
        self._vol_limits: dict[int, tuple[int, int, int]] = {}
        self._tiers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        flags_on = {"market_open": 1, "session_open": 1, "admin_open": 1, "confirmed": 1}
        self.cols = Columns(SYMBOL_COLUMNS, max(len(specs), 16), fill=flags_on)
        for spec in specs:
            self.add(spec)

    def __len__(self) -> int:
        return len(self.specs)

    def rate(self, currency: str, spec: SymbolSpec) -> Decimal:
        try:
            return self.rates[currency]
        except KeyError:
            raise SpecError(spec.name, "currency_profit",
                            f"no conversion rate configured for {currency}") from None

    def add(self, spec: SymbolSpec) -> int:
        if spec.name in self.index:
            raise SpecError(spec.name, "name", "duplicate symbol")
        i = self.cols.append_row()
        self.specs.append(spec)
        self.k_exact.append(Fraction(0))
        self.index[spec.name] = i
        self._load(i, spec)
        return i

    def replace(self, i: int, spec: SymbolSpec) -> None:
        self.specs[i] = spec
        self._load(i, spec)

    def _load(self, i: int, spec: SymbolSpec) -> None:
        self._points = None
        self._names = None
        self._tiers = None
        self._vol_limits.pop(i, None)
        c = self.cols
        kp = profit_factor(spec, self.rate(spec.currency_profit, spec))
        self.k_exact[i] = kp
        c.k_num[i], c.k_den[i] = kp.numerator, kp.denominator
        c.k_profit[i] = float(kp / MINOR_SCALE)
        conv = self.rate(spec.currency_margin, spec)
        base = Fraction(spec.contract_size) * Fraction(conv) / (PRICE_SCALE * VOLUME_SCALE)
        c.k_margin[i] = float(base * Fraction(spec.margin_initial_rate))
        c.k_margin_maint[i] = float(base * Fraction(spec.margin_maintenance_rate))
        c.calc_mode[i] = spec.calc_mode
        c.session[i] = SESSION_KINDS.index(spec.session)

    def tiers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tier_n, tier_off, table)`` of the margin tiers (``tiers.tier_table``), built
        from the specs once until a symbol is added or replaced."""
        if self._tiers is None:
            self._tiers = tier_table([
                tier_rows(parse_tiers(s.margin_tiers), s.margin_tiers_by, s.contract_size)
                if s.margin_tiers else [] for s in self.specs])
        return self._tiers

    def get(self, name: str) -> int | None:
        return self.index.get(name)

    def volume_limits(self, i: int) -> tuple[int, int, int]:
        """``(min, max, step)`` of symbol ``i`` in volume units."""
        lim = self._vol_limits.get(i)
        if lim is None:
            s = self.specs[i]
            lim = (int(s.volume_min * VOLUME_SCALE), int(s.volume_max * VOLUME_SCALE),
                   int(s.volume_step * VOLUME_SCALE))
            self._vol_limits[i] = lim
        return lim

    def names(self) -> tuple[str, ...]:
        """Symbol names by index (one tuple until a symbol is added or replaced)."""
        if self._names is None:
            self._names = tuple(s.name for s in self.specs)
        return self._names

    def point_array(self) -> np.ndarray:
        """Price units per point, per symbol (int64)."""
        if self._points is None or len(self._points) != len(self.specs):
            self._points = np.array([10 ** (PRICE_DIGITS - s.digits) for s in self.specs],
                                    dtype=np.int64)
        return self._points

    def point_units(self, i: int) -> int:
        """Price units per point of symbol ``i``."""
        return 10 ** (PRICE_DIGITS - self.specs[i].digits)
