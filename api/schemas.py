"""Pydantic schemas of the HTTP API, separate from the engine's types.

MT5 records are generated from the field lists in :mod:`api.mt5._records` (the client's
named tuples come from the same lists), so names and order are MT5's in both places.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from api.mt5 import _records as R

_FINITE = {"allow_inf_nan": False}


def _record(name: str, fields: tuple, doc: str) -> type[BaseModel]:
    spec: dict[str, Any] = {}
    for fname, ftype in fields:
        if ftype == "TradeRequest":
            spec[fname] = (TradeRequest, ...)
        else:
            spec[fname] = (ftype, ...)
    model = create_model(name, __doc__=doc, **spec)  # type: ignore[call-overload]
    return model


I64 = Annotated[int, Field(ge=0, le=2**63 - 1)]
Num = Annotated[float, Field(**_FINITE)]


class TradeRequest(BaseModel):
    """MqlTradeRequest as the MetaTrader5 package takes it (a dict; missing keys are 0/"").

    Values are checked by the engine, which answers with a retcode (a negative volume is
    10014, not a 422); only ill-formed input (wrong types, NaN, unknown keys) is a 422.
    Types are strict: a boolean is not a number, a string is not a number, 1.5 is not an
    integer (a float field takes an integer: ``"volume": 1`` is one lot)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Annotated[int, Field(ge=-(2**31), le=2**31)] = 0
    magic: Annotated[int, Field(ge=0, le=2**64 - 1)] = 0
    order: I64 = 0
    symbol: Annotated[str, Field(max_length=64)] = ""
    volume: Num = 0.0
    price: Num = 0.0
    stoplimit: Num = 0.0
    sl: Num = 0.0
    tp: Num = 0.0
    deviation: Annotated[int, Field(ge=0, le=2**32)] = 0
    type: Annotated[int, Field(ge=-(2**31), le=2**31)] = 0
    type_filling: Annotated[int, Field(ge=-(2**31), le=2**31)] = 0
    type_time: Annotated[int, Field(ge=-(2**31), le=2**31)] = 0
    expiration: Annotated[int, Field(ge=0, le=2**40)] = 0
    comment: Annotated[str, Field(max_length=255)] = ""
    position: I64 = 0
    position_by: I64 = 0


AccountInfo = _record("AccountInfo", R.ACCOUNT_INFO_FIELDS + R.ACCOUNT_INFO_EXTRA,
                      "MT5 AccountInfo (28 fields), then the client category and country.")
TerminalInfo = _record("TerminalInfo", R.TERMINAL_INFO_FIELDS, "MT5 TerminalInfo (22).")
SymbolInfo = _record("SymbolInfo", R.SYMBOL_INFO_FIELDS + R.SYMBOL_INFO_EXTRA,
                     "MT5 SymbolInfo (96 fields), then the margin tiers.")
Tick = _record("Tick", R.TICK_FIELDS, "MT5 Tick.")
TradeOrder = _record("TradeOrder", R.TRADE_ORDER_FIELDS, "MT5 TradeOrder (24).")
TradePosition = _record("TradePosition", R.TRADE_POSITION_FIELDS, "MT5 TradePosition (19).")
TradeDeal = _record("TradeDeal", R.TRADE_DEAL_FIELDS, "MT5 TradeDeal (18).")
BookRow = _record("BookInfo", R.BOOK_INFO_FIELDS, "MT5 BookInfo: one market depth level.")
OrderSendResult = _record("OrderSendResult", R.ORDER_SEND_RESULT_FIELDS,
                          "MT5 OrderSendResult (11); retcode 10009 when executed.")
OrderCheckResult = _record("OrderCheckResult", R.ORDER_CHECK_RESULT_FIELDS,
                           "MT5 OrderCheckResult (9), then the commission and fee the "
                           "trade will be charged; retcode 0 'Done' when it would pass.")


class Version(BaseModel):
    terminal_version: int
    build: int
    release_date: str


class Total(BaseModel):
    total: int


class Value(BaseModel):
    """order_calc_margin / order_calc_profit: a float, or null with the reason."""

    value: float | None
    retcode: int = 0
    comment: str = ""


class SymbolSelect(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    symbol: Annotated[str, Field(max_length=64)]
    enable: bool = True


class Selected(BaseModel):
    ok: bool


class TickRow(BaseModel):
    time: int
    bid: float
    ask: float
    last: float
    volume: int
    time_msc: int
    flags: int
    volume_real: float


class RateRow(BaseModel):
    time: int
    open: float
    high: float
    low: float
    close: float
    tick_volume: int
    spread: int
    real_volume: int


# ---------------------------------------------------------------------------- admin
Money = Annotated[str, Field(pattern=r"^-?\d{1,13}(\.\d{1,2})?$", examples=["123.45"])]


class CreateAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    login: Annotated[int, Field(ge=1, le=2**62)] | None = None
    name: Annotated[str, Field(max_length=128)] = ""
    group: Annotated[str, Field(max_length=64)] = "demo\\usdt"
    leverage: Annotated[int, Field(ge=1, le=1000)] = 100
    category: Literal["retail", "professional", "eligible_counterparty"] = "retail"
    country: Annotated[str, Field(max_length=2)] = ""  # ISO 3166-1 alpha-2


class ClientSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    category: Literal["retail", "professional", "eligible_counterparty"] | None = None
    country: Annotated[str, Field(max_length=2)] | None = None


class Credentials(BaseModel):
    login: int
    api_key: str


class Amount(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount: Money
    comment: Annotated[str, Field(max_length=64)] = ""


class ExposureLimit(BaseModel):
    """A book-wide cap of the clients' net volume in a symbol, in lots."""

    model_config = ConfigDict(extra="forbid", strict=True)
    lots: Annotated[str, Field(max_length=24, pattern=r"^[0-9]+(\.[0-9]+)?$",
                               examples=["5000"])]


class GroupChange(BaseModel):
    """An account group to create or change: its name and the settings to change (field ->
    value, e.g. ``{"stop_out": 30, "blocked_countries": ["US"], "margin_tiers": {"*":
    "0:0.2,100000:0.4"}}``); ``GET /admin/groups`` lists the fields."""

    model_config = ConfigDict(extra="forbid")
    group: Annotated[str, Field(min_length=1, max_length=64, examples=["pro\\usdt"])]
    changes: Annotated[dict[str, Any], Field(min_length=1, max_length=32)]


class AdminResult(BaseModel):
    """An admin command's outcome: retcode 10009 when done (HTTP 200); a rejected command
    answers HTTP 409 with the same shape."""

    retcode: int
    comment: str
    data: dict[str, Any] | None = None


class Levels(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    login: Annotated[int, Field(ge=1, le=2**62)] | None = None
    group: Annotated[str, Field(max_length=64)] | None = None
    margin_call: Annotated[float, Field(ge=0, le=1e9, **_FINITE)] | None = None
    stop_out: Annotated[float, Field(ge=0, le=1e9, **_FINITE)] | None = None
    stop_out_end: Annotated[float, Field(ge=0, le=1e9, **_FINITE)] | None = None


class PushTick(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    symbol: Annotated[str, Field(max_length=64)]
    bid: float
    ask: float
    time_msc: Annotated[int, Field(ge=0, le=2**53)] | None = None


class TicksAccepted(BaseModel):
    accepted: int
    rejected: int


class Insurance(BaseModel):
    balance: str


class DemoAccount(BaseModel):
    login: int
    api_key: str
    name: str


class DemoCredentials(BaseModel):
    admin_key: str
    accounts: list[DemoAccount]
