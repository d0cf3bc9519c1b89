"""MT5 result records: field names in the MetaTrader5 package's order (5.0.6231).

Each record is a :func:`collections.namedtuple` (picklable, ``_asdict()``, iteration), built
from the ``*_FIELDS`` tuples, which the server's pydantic schemas also use, so the HTTP field
order and the client's tuple order come from one list.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

ACCOUNT_INFO_FIELDS = (
    ("login", int), ("trade_mode", int), ("leverage", int), ("limit_orders", int),
    ("margin_so_mode", int), ("trade_allowed", bool), ("trade_expert", bool),
    ("margin_mode", int), ("currency_digits", int), ("fifo_close", bool), ("balance", float),
    ("credit", float), ("profit", float), ("equity", float), ("margin", float),
    ("margin_free", float), ("margin_level", float), ("margin_so_call", float),
    ("margin_so_so", float), ("margin_initial", float), ("margin_maintenance", float),
    ("assets", float), ("liabilities", float), ("commission_blocked", float), ("name", str),
    ("server", str), ("currency", str), ("company", str),
)

#: Fields the server's account_info adds after MT5's 28: the client category (MiFID II) and
#: the country of residence (ISO 3166-1 alpha-2, "" when not declared). The MT5-compatible
#: client's AccountInfo keeps MT5's fields (it reads records by field name).
ACCOUNT_INFO_EXTRA = (("category", str), ("country", str))

TERMINAL_INFO_FIELDS = (
    ("community_account", bool), ("community_connection", bool), ("connected", bool),
    ("dlls_allowed", bool), ("trade_allowed", bool), ("tradeapi_disabled", bool),
    ("email_enabled", bool), ("ftp_enabled", bool), ("notifications_enabled", bool),
    ("mqid", bool), ("build", int), ("maxbars", int), ("codepage", int), ("ping_last", int),
    ("community_balance", float), ("retransmission", float), ("company", str), ("name", str),
    ("language", str), ("path", str), ("data_path", str), ("commondata_path", str),
)

_SYMBOL_INFO_SPEC = """
custom:bool chart_mode:int select:bool visible:bool session_deals:int session_buy_orders:int
session_sell_orders:int volume:int volumehigh:int volumelow:int time:int digits:int spread:int
spread_float:bool ticks_bookdepth:int trade_calc_mode:int trade_mode:int start_time:int
expiration_time:int trade_stops_level:int trade_freeze_level:int trade_exemode:int
swap_mode:int swap_rollover3days:int margin_hedged_use_leg:bool expiration_mode:int
filling_mode:int order_mode:int order_gtc_mode:int option_mode:int option_right:int
bid:float bidhigh:float bidlow:float ask:float askhigh:float asklow:float last:float
lasthigh:float lastlow:float volume_real:float volumehigh_real:float volumelow_real:float
option_strike:float point:float trade_tick_value:float trade_tick_value_profit:float
trade_tick_value_loss:float trade_tick_size:float trade_contract_size:float
trade_accrued_interest:float trade_face_value:float trade_liquidity_rate:float
volume_min:float volume_max:float volume_step:float volume_limit:float swap_long:float
swap_short:float margin_initial:float margin_maintenance:float session_volume:float
session_turnover:float session_interest:float session_buy_orders_volume:float
session_sell_orders_volume:float session_open:float session_close:float session_aw:float
session_price_settlement:float session_price_limit_min:float session_price_limit_max:float
margin_hedged:float price_change:float price_volatility:float price_theoretical:float
price_greeks_delta:float price_greeks_theta:float price_greeks_gamma:float
price_greeks_vega:float price_greeks_rho:float price_greeks_omega:float
price_sensitivity:float basis:str category:str currency_base:str currency_profit:str
currency_margin:str bank:str description:str exchange:str formula:str isin:str name:str
page:str path:str
"""
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
SYMBOL_INFO_FIELDS = tuple(
    (name, _TYPES[kind]) for name, kind in (w.split(":") for w in _SYMBOL_INFO_SPEC.split()))

#: Fields the server's symbol_info adds after MT5's 96: the margin tiers by position size
#: (``"floor:rate,..."``, "" for none) and what their floors measure ("volume": lots,
#: "value": the notional in the margin currency); MT5's own ``margin_initial`` stays the
#: margin of one lot at the first rate. The MT5-compatible client keeps MT5's fields.
SYMBOL_INFO_EXTRA = (("margin_tiers", str), ("margin_tiers_by", str))

TICK_FIELDS = (
    ("time", int), ("bid", float), ("ask", float), ("last", float), ("volume", int),
    ("time_msc", int), ("flags", int), ("volume_real", float),
)

TRADE_ORDER_FIELDS = (
    ("ticket", int), ("time_setup", int), ("time_setup_msc", int), ("time_done", int),
    ("time_done_msc", int), ("time_expiration", int), ("type", int), ("type_time", int),
    ("type_filling", int), ("state", int), ("magic", int), ("position_id", int),
    ("position_by_id", int), ("reason", int), ("volume_initial", float),
    ("volume_current", float), ("price_open", float), ("sl", float), ("tp", float),
    ("price_current", float), ("price_stoplimit", float), ("symbol", str), ("comment", str),
    ("external_id", str),
)

TRADE_POSITION_FIELDS = (
    ("ticket", int), ("time", int), ("time_msc", int), ("time_update", int),
    ("time_update_msc", int), ("type", int), ("magic", int), ("identifier", int),
    ("reason", int), ("volume", float), ("price_open", float), ("sl", float), ("tp", float),
    ("price_current", float), ("swap", float), ("profit", float), ("symbol", str),
    ("comment", str), ("external_id", str),
)

TRADE_DEAL_FIELDS = (
    ("ticket", int), ("order", int), ("time", int), ("time_msc", int), ("type", int),
    ("entry", int), ("magic", int), ("position_id", int), ("reason", int), ("volume", float),
    ("price", float), ("commission", float), ("swap", float), ("profit", float),
    ("fee", float), ("symbol", str), ("comment", str), ("external_id", str),
)

TRADE_REQUEST_FIELDS = (
    ("action", int), ("magic", int), ("order", int), ("symbol", str), ("volume", float),
    ("price", float), ("stoplimit", float), ("sl", float), ("tp", float), ("deviation", int),
    ("type", int), ("type_filling", int), ("type_time", int), ("expiration", int),
    ("comment", str), ("position", int), ("position_by", int),
)

ORDER_SEND_RESULT_FIELDS = (
    ("retcode", int), ("deal", int), ("order", int), ("volume", float), ("price", float),
    ("bid", float), ("ask", float), ("comment", str), ("request_id", int),
    ("retcode_external", int), ("request", "TradeRequest"),
)

ORDER_CHECK_RESULT_FIELDS = (
    ("retcode", int), ("balance", float), ("equity", float), ("profit", float),
    ("margin", float), ("margin_free", float), ("margin_level", float), ("comment", str),
    ("request", "TradeRequest"), ("commission", float), ("fee", float),
)

BOOK_INFO_FIELDS = (("type", int), ("price", float), ("volume", int), ("volume_dbl", float))


def _names(fields: tuple) -> list[str]:
    return [f[0] for f in fields]


AccountInfo = namedtuple("AccountInfo", _names(ACCOUNT_INFO_FIELDS))
TerminalInfo = namedtuple("TerminalInfo", _names(TERMINAL_INFO_FIELDS))
SymbolInfo = namedtuple("SymbolInfo", _names(SYMBOL_INFO_FIELDS))
Tick = namedtuple("Tick", _names(TICK_FIELDS))
TradeOrder = namedtuple("TradeOrder", _names(TRADE_ORDER_FIELDS))
TradePosition = namedtuple("TradePosition", _names(TRADE_POSITION_FIELDS))
TradeDeal = namedtuple("TradeDeal", _names(TRADE_DEAL_FIELDS))
TradeRequest = namedtuple("TradeRequest", _names(TRADE_REQUEST_FIELDS))
OrderSendResult = namedtuple("OrderSendResult", _names(ORDER_SEND_RESULT_FIELDS))
OrderCheckResult = namedtuple("OrderCheckResult", _names(ORDER_CHECK_RESULT_FIELDS))
BookInfo = namedtuple("BookInfo", _names(BOOK_INFO_FIELDS))

# Every record class is defined at module level under its own name, so pickle finds it.
for _cls in (AccountInfo, TerminalInfo, SymbolInfo, Tick, TradeOrder, TradePosition,
             TradeDeal, TradeRequest, OrderSendResult, OrderCheckResult, BookInfo):
    _cls.__module__ = __name__


def build(cls: type, data: dict[str, Any]) -> Any:
    """A record from a JSON object (missing fields: the field's zero value)."""
    kw = {}
    for name in cls._fields:
        v = data.get(name)
        if name == "request":
            v = build(TradeRequest, v or {})
        kw[name] = v
    return cls(**kw)
