"""One endpoint per function of the MetaTrader5 package, for the logged-in account.

Queries read the engine between batches (``service.read``); order_send goes through the
writer (journaled, durable before the answer). Business rejections are results with a
retcode; ill-formed input is a 422.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, Response

from api import bars, history, records
from api import schemas as S
from api.deps import ClientDep, ServiceDep
from api.idempotency import RequestIdReused
from api.service import EngineService, Retryable
from cfd.engine import Engine
from cfd.errors import Rejected
from cfd.marketdata.timeframes import TIMEFRAMES

router = APIRouter(prefix="/v1", tags=["mt5"])

VERSION = (500, 5000, "01 Jan 2026")
MAX_ROWS = 100_000
Seconds = Annotated[int, Query(ge=0, le=2**40)]
Ticket = Annotated[int, Query(ge=0, le=2**63 - 1)]
Sym = Annotated[str, Query(max_length=64)]
Group = Annotated[str, Query(max_length=256)]


def _day(svc: EngineService, name: str) -> dict | None:
    return None if svc.market is None else svc.market.day.get(name)


def _symbol(eng: Engine, name: str) -> int:
    s = eng.symbols.get(name)
    if s is None:
        raise HTTPException(404, f"unknown symbol {name!r}")
    return s


@router.get("/version", response_model=S.Version)
async def version(_: ClientDep) -> S.Version:
    return S.Version(terminal_version=VERSION[0], build=VERSION[1], release_date=VERSION[2])


@router.get("/terminal_info", response_model=S.TerminalInfo)
async def terminal_info(_: ClientDep, svc: ServiceDep) -> Any:
    return {
        "community_account": False, "community_connection": False,
        "connected": svc.failed is None, "dlls_allowed": False, "trade_allowed": True,
        "tradeapi_disabled": False, "email_enabled": False, "ftp_enabled": False,
        "notifications_enabled": False, "mqid": False, "build": VERSION[1],
        "maxbars": MAX_ROWS, "codepage": 0, "ping_last": 0, "community_balance": 0.0,
        "retransmission": 0.0, "company": svc.engine.config.company,
        "name": "CFD Engine API", "language": "English", "path": "", "data_path": "",
        "commondata_path": "",
    }


@router.get("/account_info", response_model=S.AccountInfo)
def account_info(me: ClientDep, svc: ServiceDep) -> Any:
    return svc.read(lambda eng: eng.account_info(me.login))


@router.get("/symbols_total", response_model=S.Total)
def symbols_total(_: ClientDep, svc: ServiceDep) -> S.Total:
    return S.Total(total=svc.read(lambda eng: len(eng.symbols)))


@router.get("/symbols_get", response_model=list[S.SymbolInfo])
def symbols_get(me: ClientDep, svc: ServiceDep, group: Group | None = None) -> Any:
    hidden = svc.hidden_symbols(me.login)

    def q(eng: Engine) -> list[dict]:
        return [records.symbol_info(eng, i, _day(svc, s.name), s.name not in hidden)
                for i, s in enumerate(eng.symbols.specs) if records.in_group(s.name, group)]
    return svc.read(q)


@router.get("/symbol_info/{symbol}", response_model=S.SymbolInfo)
def symbol_info(symbol: str, me: ClientDep, svc: ServiceDep) -> Any:
    hidden = svc.hidden_symbols(me.login)
    return svc.read(lambda eng: records.symbol_info(
        eng, _symbol(eng, symbol), _day(svc, symbol), symbol not in hidden,
        records.group_of(eng, me.login)))


@router.get("/symbol_info_tick/{symbol}", response_model=S.Tick)
def symbol_info_tick(symbol: str, _: ClientDep, svc: ServiceDep) -> Any:
    return svc.read(lambda eng: records.tick(eng, _symbol(eng, symbol)))


@router.post("/symbol_select", response_model=S.Selected)
def symbol_select(body: S.SymbolSelect, me: ClientDep, svc: ServiceDep) -> S.Selected:
    known = svc.read(lambda eng: eng.symbols.get(body.symbol) is not None)
    if known:
        svc.select_symbol(me.login, body.symbol, body.enable)
    return S.Selected(ok=known)


def _calc(fn: Any) -> S.Value:
    try:
        return S.Value(value=fn())
    except Rejected as exc:
        return S.Value(value=None, retcode=int(exc.retcode), comment=exc.comment)


@router.get("/order_calc_margin", response_model=S.Value)
def order_calc_margin(me: ClientDep, svc: ServiceDep,
                      action: Annotated[int, Query(ge=-(2**31), le=2**31)], symbol: Sym,
                      volume: Annotated[float, Query(allow_inf_nan=False)],
                      price: Annotated[float, Query(allow_inf_nan=False)]) -> S.Value:
    return svc.read(lambda eng: _calc(lambda: eng.order_calc_margin(
        action, symbol, volume, price, login=me.login)))


@router.get("/order_calc_profit", response_model=S.Value)
def order_calc_profit(_: ClientDep, svc: ServiceDep,
                      action: Annotated[int, Query(ge=-(2**31), le=2**31)], symbol: Sym,
                      volume: Annotated[float, Query(allow_inf_nan=False)],
                      price_open: Annotated[float, Query(allow_inf_nan=False)],
                      price_close: Annotated[float, Query(allow_inf_nan=False)]) -> S.Value:
    return svc.read(lambda eng: _calc(lambda: eng.order_calc_profit(
        action, symbol, volume, price_open, price_close)))


def _request_dict(req: S.TradeRequest) -> dict:
    return req.model_dump(exclude_unset=True)


@router.post("/order_check", response_model=S.OrderCheckResult)
def order_check(req: S.TradeRequest, me: ClientDep, svc: ServiceDep) -> Any:
    body = _request_dict(req)
    if not svc.rate.allow(me.login):
        svc.metrics.too_many.inc()
        return svc.too_many(body, check=True)

    def q(eng: Engine) -> dict:
        try:
            return eng.order_check(me.login, body).to_dict()
        except Exception:  # an engine bug: answer it as MT5's processing error
            svc.metrics.engine_errors.inc()
            return svc.error_result(body, check=True)
    return svc.read(q)


@router.post("/order_send", response_model=S.OrderSendResult)
async def order_send(req: S.TradeRequest, me: ClientDep, svc: ServiceDep,
                     x_request_id: Annotated[int | None, Header(
                         alias="X-Request-Id", ge=1, le=2**63 - 1,
                         description="client request id: a retry with the same id returns "
                                     "the first result instead of trading twice")] = None,
                     ) -> Any:
    # the ordinary request does not come here: api.fastpath answers it with place_order
    out = await place_order(svc, me.login, _request_dict(req), x_request_id or 0)
    return Response(out, media_type="application/json")


async def place_order(svc: EngineService, login: int, body: dict, rid: int) -> bytes:
    """order_send for ``login``: rate limit, idempotency, the writer; the OrderSendResult as
    JSON (already in MT5's field order: serialised once, without re-validating it against
    the response model)."""
    if not (rid and svc.results.done((login, rid))) and not svc.rate.allow(login):
        svc.metrics.too_many.inc()
        return dumps(svc.too_many(body, request_id=rid))
    try:
        out = await svc.order_send(login, body, rid)
    except (RequestIdReused, Retryable):
        raise  # answered 409 / 503 (api.app)
    except Exception:
        svc.metrics.engine_errors.inc()
        out = svc.error_result(body, request_id=rid)
    return dumps(out)


def dumps(obj: Any) -> bytes:
    """JSON of a result dict (numpy scalars as numbers)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def _pick(rows: list[dict], symbol: str | None, group: str | None, ticket: int | None,
          ticket_key: str = "ticket") -> list[dict]:
    """MT5's selection: ``symbol`` wins over ``group``, which wins over ``ticket``."""
    if symbol is not None:
        return [r for r in rows if r["symbol"] == symbol]
    if group is not None:
        return [r for r in rows if records.in_group(r["symbol"], group)]
    if ticket is not None:
        return [r for r in rows if r[ticket_key] == ticket]
    return rows


@router.get("/orders_total", response_model=S.Total)
def orders_total(me: ClientDep, svc: ServiceDep) -> S.Total:
    return S.Total(total=len(svc.read(lambda eng: records.orders_of(eng, me.login))))


@router.get("/orders_get", response_model=list[S.TradeOrder])
def orders_get(me: ClientDep, svc: ServiceDep, symbol: Sym | None = None,
               group: Group | None = None, ticket: Ticket | None = None) -> Any:
    return _pick(svc.read(lambda eng: records.orders_of(eng, me.login)), symbol, group, ticket)


@router.get("/positions_total", response_model=S.Total)
def positions_total(me: ClientDep, svc: ServiceDep) -> S.Total:
    return S.Total(total=len(svc.read(lambda eng: records.positions_of(eng, me.login))))


@router.get("/positions_get", response_model=list[S.TradePosition])
def positions_get(me: ClientDep, svc: ServiceDep, symbol: Sym | None = None,
                  group: Group | None = None, ticket: Ticket | None = None) -> Any:
    return _pick(svc.read(lambda eng: records.positions_of(eng, me.login)), symbol, group,
                 ticket)


def _range(date_from: int | None, date_to: int | None) -> tuple[int, int]:
    if date_from is None or date_to is None:
        raise HTTPException(422, "give date_from and date_to (seconds), or ticket, or position")
    return date_from * 1000, date_to * 1000 + 999


@router.get("/history_orders_total", response_model=S.Total)
def history_orders_total(me: ClientDep, svc: ServiceDep, date_from: Seconds,
                         date_to: Seconds) -> S.Total:
    t0, t1 = _range(date_from, date_to)
    return S.Total(total=len(history.orders(svc, me.login, t0, t1)))


@router.get("/history_orders_get", response_model=list[S.TradeOrder])
def history_orders_get(me: ClientDep, svc: ServiceDep, date_from: Seconds | None = None,
                       date_to: Seconds | None = None, group: Group | None = None,
                       ticket: Ticket | None = None, position: Ticket | None = None) -> Any:
    if ticket is not None or position is not None:
        return history.orders(svc, me.login, ticket=ticket, position_id=position)
    t0, t1 = _range(date_from, date_to)
    return _pick(history.orders(svc, me.login, t0, t1), None, group, None)


@router.get("/history_deals_total", response_model=S.Total)
def history_deals_total(me: ClientDep, svc: ServiceDep, date_from: Seconds,
                        date_to: Seconds) -> S.Total:
    t0, t1 = _range(date_from, date_to)
    return S.Total(total=len(history.deals(svc, me.login, t0, t1)))


@router.get("/history_deals_get", response_model=list[S.TradeDeal])
def history_deals_get(me: ClientDep, svc: ServiceDep, date_from: Seconds | None = None,
                      date_to: Seconds | None = None, group: Group | None = None,
                      ticket: Annotated[int | None, Query(
                          ge=0, le=2**63 - 1, description="an ORDER ticket: deals of that "
                          "order (MT5's behaviour)")] = None,
                      position: Ticket | None = None) -> Any:
    if ticket is not None:
        return history.deals(svc, me.login, order_ticket=ticket)
    if position is not None:
        return history.deals(svc, me.login, position_id=position)
    t0, t1 = _range(date_from, date_to)
    return _pick(history.deals(svc, me.login, t0, t1), None, group, None)


# ---------------------------------------------------------------------------- market data
MAX_RECORDS = 1_000_000  # bars or ticks in one answer
Count = Annotated[int, Query(ge=0, le=MAX_RECORDS)]
Timeframe = Annotated[int, Query(ge=1, le=0xFFFF)]
CopyFlags = Annotated[int, Query(ge=-1, le=2, description="COPY_TICKS_ALL (-1), "
                                 "COPY_TICKS_INFO (1) or COPY_TICKS_TRADE (2)")]
Format = Annotated[str, Query(pattern="^(json|numpy)$", description="numpy: the records' "
                              "raw bytes in MT5's numpy dtype (see X-Numpy-Dtype)")]


def _market(svc: EngineService, symbol: str, timeframe: int | None = None) -> float:
    """The symbol's point, after checking the symbol and the timeframe; every tick handed
    to the recorder so far is stored once this returns."""
    if timeframe is not None and timeframe not in TIMEFRAMES:
        raise HTTPException(422, f"timeframe {timeframe} is not an MT5 TIMEFRAME_*")
    point = svc.read(lambda eng: float(eng.symbols.specs[_symbol(eng, symbol)].point))
    if svc.market is None:
        raise HTTPException(404, "this server keeps no market data")
    svc.market.sync()
    return point


def _records(records: Any, fmt: str) -> Response:
    if fmt == "numpy":
        return Response(records.tobytes(), media_type="application/octet-stream",
                        headers={"X-Numpy-Dtype": str(records.dtype.descr),
                                 "X-Count": str(len(records))})
    return Response(dumps(bars.rows(records)), media_type="application/json")


@router.get("/copy_rates_from", response_model=list[S.RateRow])
def copy_rates_from(_: ClientDep, svc: ServiceDep, symbol: Sym, timeframe: Timeframe,
                    date_from: Seconds, count: Count, format: Format = "json") -> Any:
    """``count`` bars opening at or before ``date_from``, oldest first."""
    point = _market(svc, symbol, timeframe)
    return _records(svc.market.store.rates_from(symbol, timeframe, date_from, count, point),
                    format)


@router.get("/copy_rates_from_pos", response_model=list[S.RateRow])
def copy_rates_from_pos(_: ClientDep, svc: ServiceDep, symbol: Sym, timeframe: Timeframe,
                        start_pos: Count, count: Count, format: Format = "json") -> Any:
    """``count`` bars ending ``start_pos`` bars before the latest one (0: the current)."""
    point = _market(svc, symbol, timeframe)
    return _records(svc.market.store.rates_from(symbol, timeframe, 2**40, count, point,
                                                skip=start_pos), format)


@router.get("/copy_rates_range", response_model=list[S.RateRow])
def copy_rates_range(_: ClientDep, svc: ServiceDep, symbol: Sym, timeframe: Timeframe,
                     date_from: Seconds, date_to: Seconds, format: Format = "json") -> Any:
    """Bars opening in ``[date_from, date_to]``."""
    point = _market(svc, symbol, timeframe)
    out = svc.market.store.rates_range(symbol, timeframe, date_from, date_to, point)
    return _records(out[:MAX_RECORDS], format)


@router.get("/copy_ticks_from", response_model=list[S.TickRow])
def copy_ticks_from(_: ClientDep, svc: ServiceDep, symbol: Sym, date_from: Seconds,
                    count: Count, flags: CopyFlags = -1, format: Format = "json") -> Any:
    """The first ``count`` ticks (of the kind ``flags`` selects) at or after
    ``date_from``."""
    point = _market(svc, symbol)
    out = svc.market.store.ticks_from(symbol, date_from * 1000, count, point, flags)
    return _records(out, format)


@router.get("/copy_ticks_range", response_model=list[S.TickRow])
def copy_ticks_range(_: ClientDep, svc: ServiceDep, symbol: Sym, date_from: Seconds,
                     date_to: Seconds, flags: CopyFlags = -1, format: Format = "json") -> Any:
    """Ticks (of the kind ``flags`` selects) in ``[date_from, date_to]`` (seconds)."""
    point = _market(svc, symbol)
    out = svc.market.store.ticks_range(symbol, date_from * 1000, date_to * 1000 + 999,
                                       MAX_RECORDS, point, flags)
    return _records(out, format)


@router.get("/market_book_get/{symbol}", response_model=list[S.BookRow])
def market_book_get(symbol: str, _: ClientDep, svc: ServiceDep) -> Any:
    """Market depth: the feed carries none, so a ladder synthesised from the top of book
    and :data:`api.bars.BOOK_LEVELS` (``symbol_info().ticks_bookdepth`` levels a side)."""
    def q(eng: Engine) -> list[dict]:
        s = _symbol(eng, symbol)
        if not eng.symbols.cols.has_quote[s]:
            return []
        bid, ask = records.quote(eng, s)
        spec = eng.symbols.specs[s]
        return bars.book(bid, ask, float(spec.point), float(spec.volume_step))
    return svc.read(q)
