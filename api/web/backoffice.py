"""The back office's reads (accounts by margin level, one account, exposure, audit trail)
and its actions, each a journaled admin command with the officer's reason recorded in the
same transaction (an ``admin_action`` event). Admin key only, as every ``/admin`` route.

The figures come from :mod:`risk` (``Book.from_engine``: a copy taken between batches, so
the writer waits only for the copy, not for the arithmetic).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api import history, records
from api import schemas as S
from api.deps import AdminDep, ServiceDep
from api.routers.admin import _actor, _answer, _known_login, _known_symbol, _minor
from api.service import EngineService
from api.web.market import MarketState, market_states
from cfd import commands as C
from cfd.accounts import rules
from cfd.constants import SymbolTradeMode
from cfd.errors import Rejected
from risk.analytics import distance_to_stop_out, exposure
from risk.book import Book

router = APIRouter(prefix="/web/admin", tags=["web"])

AUDIT_ROWS = 1000  # the trail kept for the panel (the store keeps every event)
_FINITE = {"allow_inf_nan": False}


# ---------------------------------------------------------------------------- accounts
BOOK_MAX_AGE_S = 1.0  # pages polling together share one copy of the book


def _book(svc: EngineService, request: Request) -> tuple[Book, list[str], np.ndarray,
                                                         np.ndarray]:
    """A copy of the book (75 ms of the writer's time for 1M positions on the 2-core
    machine), shared by the requests of the next second."""
    now = time.monotonic()
    cached = getattr(request.app.state, "web_book", None)
    if cached is not None and now - cached[0] < BOOK_MAX_AGE_S:
        return cached[1]
    def copy(eng: Any) -> tuple[Book, list[str], np.ndarray, np.ndarray]:
        n = len(eng.accounts)
        ac = eng.accounts.cols
        return (Book.from_engine(eng), list(eng.accounts.names), ac.category[:n].copy(),
                ac.country[:n].copy())

    got = svc.read(copy)
    request.app.state.web_book = (now, got)
    return got


@router.get("/accounts")
def accounts(_: AdminDep, svc: ServiceDep, request: Request,
             group: Annotated[str | None, Query(max_length=64)] = None,
             below: Annotated[float | None, Query(ge=0, le=1e9)] = None,
             search: Annotated[str | None, Query(max_length=64)] = None,
             category: Annotated[str | None, Query(max_length=32)] = None,
             country: Annotated[str | None, Query(max_length=2)] = None,
             include_flat: bool = True,
             limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    """Accounts with margin by margin level (lowest first), then those without margin;
    filtered by group, client category, country, level below ``below`` percent, login or
    name containing ``search``."""
    book, names, cats, countries = _book(svc, request)
    f = book.figures()
    n = book.n_accounts
    groups = np.array(book.groups, dtype=object) if n else np.zeros(0, dtype=object)
    keep = np.ones(n, dtype=np.bool_)
    if group:
        keep &= groups == group
    if category:
        keep &= cats == (rules.CATEGORIES.index(category) if category in rules.CATEGORIES
                         else -1)
    if country:
        try:
            keep &= countries == rules.country_code(country)
        except Rejected:  # no such country: nobody lives there
            keep &= False
    if below is not None:
        keep &= (f["margin"] > 0) & (f["level"] < below)
    if not include_flat:
        keep &= f["margin"] > 0
    if search:
        s = search.lower()
        keep &= np.array([s in str(int(lg)) or s in nm.lower()
                          for lg, nm in zip(book.login, names, strict=True)], dtype=np.bool_)
    idx = np.nonzero(keep)[0]
    flat = f["margin"][idx] <= 0
    idx = idx[np.lexsort((f["level"][idx], flat))][:limit]
    dist = distance_to_stop_out(book)
    rows = []
    for a in idx:
        d = float(dist[a])
        rows.append({
            "login": int(book.login[a]), "name": names[a], "group": book.groups[a],
            "category": rules.CATEGORIES[int(cats[a])],
            "country": rules.country_name(int(countries[a])),
            "positions": int(f["n_pos"][a]), "balance": int(book.balance[a]) / 100,
            "credit": int(book.credit[a]) / 100, "equity": round(float(f["equity"][a]), 2),
            "margin": round(float(f["margin"][a]), 2),
            "margin_free": round(float(f["free"][a]), 2),
            "margin_level": round(float(f["level"][a]), 2),
            "margin_call_level": float(book.so_call[a]),
            "stop_out_level": float(book.so_so[a]),
            "to_stop_out_pct": None if np.isnan(d) else round(d * 100, 2),
        })
    return {"total": int(keep.sum()), "groups": sorted(set(book.groups)),
            "categories": list(rules.CATEGORIES),
            "countries": sorted({rules.country_name(int(c)) for c in np.unique(countries)} - {""}),
            "rows": rows}


Login = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/accounts/{login}")
def account(login: Login, _: AdminDep, svc: ServiceDep,
            deals: Annotated[int, Query(ge=1, le=10_000)] = 200) -> dict[str, Any]:
    """One account: its AccountInfo, group, positions, pending orders and latest deals."""
    _known_login(svc, login)

    def q(eng: Any) -> dict[str, Any]:
        return {"account": eng.account_info(login),
                "group": eng.accounts.groups[eng.accounts.find(login)],
                "positions": records.positions_of(eng, login),
                "orders": records.orders_of(eng, login)}
    out = svc.read(q)
    out["deals"] = history.latest_deals(svc, login, deals)  # from the store, if any
    return out


@router.get("/exposure")
def exposure_by_symbol(_: AdminDep, svc: ServiceDep, request: Request
                       ) -> list[dict[str, Any]]:
    """Clients' long, short, net and gross exposure per symbol held (risk's ``exposure``),
    with the symbol's margin tiers and the groups overriding them."""
    book = _book(svc, request)[0]
    rows = exposure(book)
    tiers = svc.read(_tiers_by_symbol)
    for r in rows:
        r["gross_notional"] = round(r["long_notional"] + r["short_notional"], 2)
        r["margin_tiers"], r["margin_tiers_by"], r["tier_groups"] = tiers.get(
            r["symbol"], ("", "volume", []))
    return rows


def _tiers_by_symbol(eng: Any) -> dict[str, tuple[str, str, list[str]]]:
    """Per symbol: its margin tiers, what they measure, and the groups with a schedule of
    their own for it (``AccountGroup.margin_tiers``)."""
    from cfd.instruments.tiers import group_schedule

    over = {n: g.margin_tiers for n, g in eng.config.groups.items() if g.margin_tiers}
    return {s.name: (s.margin_tiers, s.margin_tiers_by,
                     [n for n, m in over.items() if group_schedule(m, s.name) is not None])
            for s in eng.symbols.specs}


@router.get("/market", response_model=list[MarketState])
def market(_: AdminDep, svc: ServiceDep) -> Any:
    """Every symbol's market state (the terminal's, for the broker)."""
    now = svc.clock()
    return svc.read(lambda eng: market_states(eng, now))


# ---------------------------------------------------------------------------- actions
class Action(BaseModel):
    """A back-office action. ``reason`` is required and journaled with the command."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["halt", "resume", "close_only", "full_trading", "set_levels",
                    "insurance_topup"]
    reason: Annotated[str, Field(min_length=3, max_length=200)]
    symbol: Annotated[str, Field(max_length=64)] | None = None
    login: Annotated[int, Field(ge=1, le=2**62)] | None = None
    group: Annotated[str, Field(max_length=64)] | None = None
    margin_call: Annotated[float, Field(ge=0, le=1e9, **_FINITE)] | None = None
    stop_out: Annotated[float, Field(ge=0, le=1e9, **_FINITE)] | None = None
    amount: S.Money | None = None


def _command(body: Action, actor: str, svc: EngineService) -> tuple[C.Command, str]:
    """The admin command of ``body`` (the same commands as the ``/admin`` routes) and the
    target it names; HTTP 422/404 for what is missing or unknown."""
    def need(value: Any, what: str) -> Any:
        if value is None or value == "":
            raise HTTPException(422, f"{body.action} needs {what}")
        return value
    if body.action in ("halt", "resume", "close_only", "full_trading"):
        name = need(body.symbol, "a symbol")
        _known_symbol(svc, name)
        if body.action in ("halt", "resume"):
            return C.SetMarket(time_msc=0, actor=actor, symbols=(name,),
                               halted=body.action == "halt"), name
        mode = SymbolTradeMode.CLOSEONLY if body.action == "close_only" else \
            SymbolTradeMode.FULL
        return C.SetSymbol(time_msc=0, actor=actor, name=name,
                           changes={"trade_mode": int(mode)}), name
    if body.action == "set_levels":
        if not body.login and not body.group:
            raise HTTPException(422, "set_levels needs a login or a group")
        if body.margin_call is None and body.stop_out is None:
            raise HTTPException(422, "set_levels needs margin_call or stop_out")
        if body.login:
            _known_login(svc, body.login)
        target = f"login {body.login}" if body.login else f"group {body.group}"
        return C.SetAccountLevels(time_msc=0, actor=actor, login=body.login or 0,
                                  group=body.group or "", margin_call=body.margin_call,
                                  stop_out=body.stop_out), target
    amount = _minor(need(body.amount, "an amount"))
    return C.TopUpInsurance(time_msc=0, actor=actor, amount=amount), "insurance fund"


@router.post("/actions", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def act(body: Action, who: AdminDep, svc: ServiceDep, request: Request) -> Any:
    actor = _actor(who)
    cmd, target = _command(body, actor, svc)
    event = {"kind": "admin_action", "actor": actor, "action": body.action,
             "target": target, "reason": body.reason, "time_msc": svc.clock(),
             "params": body.model_dump(exclude={"action", "reason"}, exclude_none=True)}
    trail = _trail(request)
    # with a store the trail reads the event back from it; without one, keep it here
    res = await svc.call(cmd, [event], None if svc.reader is not None else
                         lambda _res: trail.rows.append(_audit_row(event, None)))
    return _answer(res)


# ---------------------------------------------------------------------------- audit trail
class AuditTrail:
    """The latest admin actions: ``admin_action`` events (with their reasons) and the
    engine's events that name an admin actor (halts, forced stop-outs sent by other tools),
    read incrementally from the store's events table; without a store, the actions of this
    process."""

    def __init__(self) -> None:
        self.rows: deque[dict[str, Any]] = deque(maxlen=AUDIT_ROWS)
        self._after = 0
        self._lock = threading.Lock()

    def read(self, svc: EngineService) -> list[dict[str, Any]]:
        with self._lock:
            if svc.reader is not None:
                self._catch_up(svc)
            return list(reversed(self.rows))

    def _catch_up(self, svc: EngineService) -> None:
        while True:
            got = svc.reader.events(after_id=self._after, limit=5000)
            if not got:
                return
            seqs = {r["seq"] for r in got if r["kind"] == "admin_action"}
            for r in got:
                data = r.get("data") or {}
                actor = str(data.get("actor") or "")
                if r["kind"] == "admin_action":
                    self.rows.append(_audit_row(data, r["seq"]))
                elif actor.startswith("admin:") and r["seq"] not in seqs:
                    self.rows.append(_audit_row({**data, "action": r["kind"],
                                                 "reason": ""}, r["seq"]))
            self._after = got[-1]["id"]


def _audit_row(data: dict[str, Any], seq: int | None) -> dict[str, Any]:
    return {"seq": seq, "time_msc": data.get("time_msc"), "actor": data.get("actor", ""),
            "action": data.get("action", ""), "target": data.get("target") or ", ".join(
                str(x) for x in (data.get("symbols") or [data.get("login", "")])),
            "reason": data.get("reason", ""), "params": data.get("params", {})}


def _trail(request: Request) -> AuditTrail:
    trail = getattr(request.app.state, "web_audit", None)
    if trail is None:
        trail = request.app.state.web_audit = AuditTrail()
    return trail


@router.get("/audit")
def audit(_: AdminDep, svc: ServiceDep, request: Request,
          limit: Annotated[int, Query(ge=1, le=AUDIT_ROWS)] = 200) -> list[dict[str, Any]]:
    """Admin actions, newest first."""
    return _trail(request).read(svc)[:limit]
