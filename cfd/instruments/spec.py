"""Symbol specifications: the MT5 fields that matter for trading a stock CFD.

A :class:`SymbolSpec` is validated when it is built; an invalid one raises
:class:`cfd.errors.SpecError` naming the symbol and the field.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from cfd.constants import (
    SUPPORTED_CALC_MODES,
    CalcMode,
    ExpirationFlag,
    FillingFlag,
    OrderModeFlag,
    SymbolTradeExecution,
    SymbolTradeMode,
)
from cfd.errors import SpecError
from cfd.instruments.tiers import TIERS_BY, check_tiers, parse_tiers
from cfd.money import PRICE_DIGITS, VOLUME_DIGITS, VOLUME_SCALE, parse_decimal

SESSION_KINDS = ("US_REGULAR", "US_EXTENDED", "ALWAYS")


@dataclass(frozen=True)
class SymbolSpec:
    """One tradable stock CFD.

    Margin (initial, per lot) by ``calc_mode``, ``P`` the margin price:
      * CFD (2):          lots * contract_size * P * margin_initial_rate
      * CFDLEVERAGE (4):  lots * contract_size * P / account_leverage * margin_initial_rate
      * EXCH_STOCKS (32): lots * contract_size * P * margin_initial_rate
    ``P`` is the position's open price for CFD and CFDLEVERAGE (MT5 margins open positions at
    their weighted-average open price) and the current price (bid for longs, ask for shorts)
    for EXCH_STOCKS. Profit: ``(close - open) * contract_size * lots`` for a buy, negated for a
    sell, in ``currency_profit``, converted into the account currency.
    """

    name: str
    description: str = ""
    exchange: str = ""
    isin: str = ""
    digits: int = 2
    contract_size: Decimal = Decimal(1)
    volume_min: Decimal = Decimal("0.1")
    volume_max: Decimal = Decimal(50000)
    volume_step: Decimal = Decimal("0.1")
    calc_mode: int = CalcMode.CFD
    margin_initial_rate: Decimal = Decimal("0.2")
    margin_maintenance_rate: Decimal = Decimal("0.1")
    # margin tiers by position size (cfd.instruments.tiers): "floor:rate,..." ("" none),
    # floors in lots ("volume") or in the margin currency ("value")
    margin_tiers: str = ""
    margin_tiers_by: str = "volume"
    trade_mode: int = SymbolTradeMode.FULL
    execution_mode: int = SymbolTradeExecution.INSTANT
    filling_mode: int = FillingFlag.FOK | FillingFlag.IOC
    expiration_mode: int = 15
    order_mode: int = 127
    stops_level: int = 0
    freeze_level: int = 0
    currency_base: str = "USD"
    currency_profit: str = "USD"
    currency_margin: str = "USD"
    commission_per_lot: Decimal = Decimal(0)
    commission_min: Decimal = Decimal(0)
    # the rest of the commission schedule (cfd.trading.commission): per deal, percent of
    # the notional, a maximum (0: none), the side charged, and a venue's fee
    commission_per_deal: Decimal = Decimal(0)
    commission_percent: Decimal = Decimal(0)
    commission_max: Decimal = Decimal(0)
    commission_charge: str = "both"  # "entry", "exit" or "both"
    fee_per_lot: Decimal = Decimal(0)
    fee_percent: Decimal = Decimal(0)
    swap_mode: int = 0  # SYMBOL_SWAP_MODE (cfd.trading.financing)
    swap_long: Decimal = Decimal(0)
    swap_short: Decimal = Decimal(0)
    swap_rollover3days: int = 5  # DAY_OF_WEEK of the triple night (FRIDAY); -1: none
    swap_year_days: int = 360  # days of the interest year (365 where a market uses it)
    swap_benchmark: str = ""  # benchmark rate series of the INTEREST modes ("SOFR"), or none
    borrow_fee: Decimal = Decimal(0)  # percent a year charged to shorts (hard to borrow)
    session: str = "US_REGULAR"
    reference_price: Decimal = Decimal(100)
    path: str = field(default="")

    def __post_init__(self) -> None:
        _validate(self)
        if not self.path:
            object.__setattr__(self, "path", f"Stocks\\US\\{self.name}")

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)

    def with_changes(self, **changes: Any) -> SymbolSpec:
        """A copy with some fields changed, validated again."""
        return replace(self, **{k: _coerce(k, v, self.name) for k, v in changes.items()})

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values; the margin tiers only when set, so the specs of books
        without tiers (and the state hash over them) read as before tiers existed."""
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()
                if not (k in _ONLY_WHEN_SET and v == _ONLY_WHEN_SET[k])}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> SymbolSpec:
        name = str(row.get("name", "")).strip()
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(row) - known
        if unknown:
            raise SpecError(name or "?", sorted(unknown)[0], "unknown field")
        kwargs = {k: _coerce(k, v, name) for k, v in row.items() if v is not None and v != ""}
        return cls(**kwargs)


_ONLY_WHEN_SET = {"margin_tiers": "", "margin_tiers_by": "volume"}
_DECIMAL_FIELDS = {
    "contract_size", "volume_min", "volume_max", "volume_step", "margin_initial_rate",
    "margin_maintenance_rate", "commission_per_lot", "commission_min", "swap_long",
    "swap_short", "reference_price", "borrow_fee", "commission_per_deal", "commission_percent",
    "commission_max", "fee_per_lot", "fee_percent",
}
_INT_FIELDS = {
    "digits", "calc_mode", "trade_mode", "execution_mode", "filling_mode", "expiration_mode",
    "order_mode", "stops_level", "freeze_level", "swap_mode", "swap_rollover3days",
    "swap_year_days",
}


def _coerce(key: str, value: Any, name: str) -> Any:
    try:
        if key in _DECIMAL_FIELDS:
            return parse_decimal(value, key)
        if key in _INT_FIELDS:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            dec = parse_decimal(value, key)
            if dec != dec.to_integral_value():
                raise ValueError(f"{value!r} is not an integer")
            return int(dec)
    except ValueError as exc:
        raise SpecError(name or "?", key, str(exc)) from None
    return str(value) if key not in _DECIMAL_FIELDS | _INT_FIELDS else value


def _on_volume_grid(value: Decimal) -> bool:
    scaled = value * VOLUME_SCALE
    return scaled == scaled.to_integral_value()


def _validate(s: SymbolSpec) -> None:
    def bad(fld: str, why: str) -> None:
        raise SpecError(s.name or "?", fld, why)

    if not s.name or not s.name.replace(".", "").replace("_", "").isalnum() or len(s.name) > 31:
        bad("name", "must be 1-31 letters, digits, '.' or '_'")
    if not 0 <= s.digits <= PRICE_DIGITS:
        bad("digits", f"must be between 0 and {PRICE_DIGITS}")
    if s.contract_size <= 0:
        bad("contract_size", "must be greater than zero")
    if s.volume_step <= 0:
        bad("volume_step", "must be greater than zero")
    for fld in ("volume_min", "volume_max", "volume_step"):
        if not _on_volume_grid(getattr(s, fld)):
            bad(fld, f"has more than {VOLUME_DIGITS} decimal places")
    if s.volume_min <= 0:
        bad("volume_min", "must be greater than zero")
    if s.volume_min % s.volume_step != 0:
        bad("volume_step", f"{s.volume_step} does not divide volume_min {s.volume_min}")
    if s.volume_max < s.volume_min:
        bad("volume_max", f"{s.volume_max} is below volume_min {s.volume_min}")
    if s.calc_mode not in SUPPORTED_CALC_MODES:
        bad("calc_mode", f"{s.calc_mode} is not one of {[int(m) for m in SUPPORTED_CALC_MODES]}")
    if not Decimal(0) < s.margin_initial_rate <= Decimal(100):
        bad("margin_initial_rate", "must be in (0, 100]")
    if not Decimal(0) < s.margin_maintenance_rate <= s.margin_initial_rate:
        bad("margin_maintenance_rate", "must be in (0, margin_initial_rate]")
    if s.trade_mode not in set(SymbolTradeMode):
        bad("trade_mode", f"{s.trade_mode} is not a SYMBOL_TRADE_MODE")
    if s.execution_mode not in set(SymbolTradeExecution):
        bad("execution_mode", f"{s.execution_mode} is not a SYMBOL_TRADE_EXECUTION")
    if s.filling_mode & ~int(FillingFlag.FOK | FillingFlag.IOC | FillingFlag.BOC):
        bad("filling_mode", "unknown bits (FOK=1, IOC=2, BOC=4)")
    if s.expiration_mode & ~15 or s.expiration_mode == 0:
        bad("expiration_mode", "must be a non-empty set of GTC=1, DAY=2, SPECIFIED=4, "
                               "SPECIFIED_DAY=8")
    if s.order_mode & ~127 or not s.order_mode & OrderModeFlag.MARKET:
        bad("order_mode", "must be flags of 1..64 including MARKET=1")
    if s.stops_level < 0:
        bad("stops_level", "must not be negative")
    if s.freeze_level < 0:
        bad("freeze_level", "must not be negative")
    _validate_commission(s, bad)
    _validate_swaps(s, bad)
    _validate_tiers(s, bad)
    if s.session not in SESSION_KINDS:
        bad("session", f"must be one of {SESSION_KINDS}")
    if s.reference_price <= 0:
        bad("reference_price", "must be greater than zero")
    for fld in ("currency_base", "currency_profit", "currency_margin"):
        v = getattr(s, fld)
        if not (isinstance(v, str) and 3 <= len(v) <= 5 and v.isalpha()):
            bad(fld, "must be a 3-5 letter currency code")
    _ = ExpirationFlag  # flags documented above


def _validate_tiers(s: SymbolSpec, bad) -> None:
    if s.margin_tiers_by not in TIERS_BY:
        bad("margin_tiers_by", f"must be one of {TIERS_BY}")
    try:
        why = check_tiers(parse_tiers(s.margin_tiers), s.margin_initial_rate)
    except ValueError as exc:
        why = str(exc)
    if why:
        bad("margin_tiers", why)


def _validate_commission(s: SymbolSpec, bad) -> None:
    from cfd.trading.commission import symbol_schedule

    fields = {"per_lot": "commission_per_lot", "per_deal": "commission_per_deal",
              "percent": "commission_percent", "minimum": "commission_min",
              "maximum": "commission_max", "charge": "commission_charge"}
    try:
        symbol_schedule(s)
    except SpecError as exc:
        bad(fields.get(exc.field, exc.field), exc.reason)


def _validate_swaps(s: SymbolSpec, bad) -> None:
    if s.swap_mode not in (0, 1, 4, 5, 6):
        bad("swap_mode", f"{s.swap_mode} is not one of DISABLED 0, POINTS 1, CURRENCY_DEPOSIT "
                         f"4, INTEREST_CURRENT 5, INTEREST_OPEN 6")
    if not -1 <= s.swap_rollover3days <= 6:
        bad("swap_rollover3days", "must be a day of the week, SUNDAY 0 .. SATURDAY 6 (-1: none)")
    if s.swap_year_days not in (360, 365):
        bad("swap_year_days", "must be 360 or 365")
    if s.swap_benchmark and s.swap_mode not in (5, 6):
        bad("swap_benchmark", "needs an interest swap mode (5 or 6)")
    if s.swap_benchmark and not (s.swap_benchmark.replace("_", "").isalnum()
                                 and len(s.swap_benchmark) <= 16):
        bad("swap_benchmark", "must be 1-16 letters, digits or '_'")
    if s.borrow_fee < 0:
        bad("borrow_fee", "must not be negative")
    for fld in ("swap_long", "swap_short", "borrow_fee"):
        if abs(getattr(s, fld)) > 100_000:
            bad(fld, "is out of range")


def profit_factor(spec: SymbolSpec, rate: Decimal) -> Fraction:
    """Minor units of account currency per (price unit x volume unit) of a position.

    ``profit_minor = (close - open) * volume * profit_factor`` before rounding, with prices
    and volumes in integer grid units (``cfd.money``).
    """
    from cfd.money import MINOR_SCALE, PRICE_SCALE

    return (Fraction(spec.contract_size) * Fraction(rate) * MINOR_SCALE
            / (PRICE_SCALE * VOLUME_SCALE))


def load_catalogue(path: str | Path | None = None) -> list[SymbolSpec]:
    """The symbol catalogue from a CSV file (default: the packaged US stock list).

    Every row is validated; the first bad row raises :class:`SpecError` with the line.
    """
    if path is None:
        text = resources.files("cfd.instruments").joinpath("data/us_stocks.csv").read_text()
        source = "us_stocks.csv"
    else:
        text = Path(path).read_text()
        source = str(path)
    specs: list[SymbolSpec] = []
    seen: set[str] = set()
    for lineno, row in enumerate(csv.DictReader(text.splitlines()), start=2):
        try:
            spec = SymbolSpec.from_dict(row)
        except SpecError as exc:
            raise SpecError(exc.symbol, exc.field, f"{exc.reason} ({source} line {lineno})") \
                from None
        if spec.name in seen:
            raise SpecError(spec.name, "name", f"duplicate symbol ({source} line {lineno})")
        seen.add(spec.name)
        specs.append(spec)
    return specs
