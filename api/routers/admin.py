"""Risk-officer endpoints. Every action is a journaled command whose ``actor`` is
``admin:<name>``; a rejected command answers HTTP 409 with ``{retcode, comment}``."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, HTTPException, Path
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api import auth
from api import schemas as S
from api.deps import AdminDep, ServiceDep
from api.service import EngineService
from cfd import commands as C
from cfd.accounts import group_rules
from cfd.engine import Result
from cfd.money import MINOR_SCALE, money_minor

router = APIRouter(prefix="/admin", tags=["admin"])

Login = Annotated[int, Path(ge=1, le=2**62)]
SymbolName = Annotated[str, Path(max_length=64)]


def _actor(who: auth.Admin) -> str:
    return f"admin:{who.name}"


def _answer(res: Result) -> Any:
    data = res.data if isinstance(res.data, dict) else None
    body = {"retcode": int(res.retcode), "comment": res.comment, "data": data}
    if not res.ok:
        return JSONResponse(body, status_code=409)
    return body


def _minor(amount: str) -> int:
    try:
        return money_minor(amount)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _known_login(svc: EngineService, login: int) -> None:
    if svc.read(lambda eng: eng.accounts.find(login)) is None:
        raise HTTPException(404, f"unknown account {login}")


def _known_symbol(svc: EngineService, name: str) -> None:
    if svc.read(lambda eng: eng.symbols.get(name)) is None:
        raise HTTPException(404, f"unknown symbol {name!r}")


async def register_key(svc: EngineService, login: int, actor: str,
                       cmd: C.Command | None = None) -> tuple[Result, str]:
    """A new API key for ``login`` (with ``cmd``, e.g. CreateAccount, in one transaction)."""
    key = auth.new_key()
    salt, digest = await run_in_threadpool(auth.hash_key, key)
    event = {"kind": "api_key", "login": login, "salt": salt, "hash": digest,
             "actor": actor, "time_msc": svc.clock()}

    def install(_: Result) -> None:
        svc.keys.set_client(login, salt, digest)
    if cmd is None:
        import asyncio

        res = await asyncio.wrap_future(svc.submit_events([event], install))
    else:
        res = await svc.call(cmd, [event], install)
    return res, key


@router.post("/accounts", response_model=S.Credentials,
             responses={409: {"model": S.AdminResult}})
async def create_account(body: S.CreateAccount, who: AdminDep, svc: ServiceDep) -> Any:
    login = body.login or svc.next_login()
    cmd = C.CreateAccount(time_msc=0, actor=_actor(who), login=login, name=body.name,
                          group=body.group, leverage=body.leverage,
                          category=body.category, country=body.country)
    res, key = await register_key(svc, login, _actor(who), cmd)
    if not res.ok:
        return _answer(res)
    return S.Credentials(login=login, api_key=key)


@router.patch("/accounts/{login}/client", response_model=S.AdminResult,
              responses={409: {"model": S.AdminResult}})
async def set_client(login: Login, body: S.ClientSettings, who: AdminDep,
                     svc: ServiceDep) -> Any:
    _known_login(svc, login)
    return _answer(await svc.call(C.SetClient(time_msc=0, actor=_actor(who), login=login,
                                              category=body.category, country=body.country)))


@router.post("/accounts/{login}/api_key", response_model=S.Credentials)
async def rotate_key(login: Login, who: AdminDep, svc: ServiceDep) -> Any:
    _known_login(svc, login)
    _, key = await register_key(svc, login, _actor(who))
    return S.Credentials(login=login, api_key=key)


async def _money(svc: EngineService, who: auth.Admin, login: int, body: S.Amount,
                 kind: type[C.Deposit | C.Withdraw | C.AdjustCredit]) -> Any:
    """A deposit, withdrawal or credit change of ``body.amount`` on account ``login``."""
    _known_login(svc, login)
    return _answer(await svc.call(kind(time_msc=0, actor=_actor(who), login=login,
                                       amount=_minor(body.amount), comment=body.comment)))


@router.post("/accounts/{login}/deposit", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def deposit(login: Login, body: S.Amount, who: AdminDep, svc: ServiceDep) -> Any:
    return await _money(svc, who, login, body, C.Deposit)


@router.post("/accounts/{login}/withdraw", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def withdraw(login: Login, body: S.Amount, who: AdminDep, svc: ServiceDep) -> Any:
    return await _money(svc, who, login, body, C.Withdraw)


@router.post("/accounts/{login}/credit", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def credit(login: Login, body: S.Amount, who: AdminDep, svc: ServiceDep) -> Any:
    return await _money(svc, who, login, body, C.AdjustCredit)


@router.post("/accounts/{login}/stop_out", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def stop_out(login: Login, who: AdminDep, svc: ServiceDep) -> Any:
    _known_login(svc, login)
    return _answer(await svc.call(C.ForceStopOut(time_msc=0, actor=_actor(who), login=login)))


@router.patch("/symbols/{name}", response_model=S.AdminResult,
              responses={409: {"model": S.AdminResult}})
async def set_symbol(name: SymbolName, who: AdminDep, svc: ServiceDep,
                     changes: Annotated[dict[str, str | int | float | bool | None],
                                        Body(examples=[{"margin_initial_rate": "0.25"}])],
                     ) -> Any:
    """Change symbol fields (``margin_initial_rate``, ``trade_mode``, ...); an unknown
    symbol is added from the given fields."""
    if not changes:
        raise HTTPException(422, "give at least one field to change")
    if any(isinstance(v, float) and v != v for v in changes.values()):
        raise HTTPException(422, "values must be finite")
    clean = {k: v for k, v in changes.items() if v is not None}
    return _answer(await svc.call(C.SetSymbol(time_msc=0, actor=_actor(who), name=name,
                                              changes=clean)))


async def _market(name: str, who: auth.Admin, svc: EngineService, halted: bool) -> Any:
    _known_symbol(svc, name)
    return _answer(await svc.call(C.SetMarket(time_msc=0, actor=_actor(who), symbols=(name,),
                                              halted=halted)))


@router.post("/symbols/{name}/halt", response_model=S.AdminResult)
async def halt(name: SymbolName, who: AdminDep, svc: ServiceDep) -> Any:
    return await _market(name, who, svc, True)


@router.post("/symbols/{name}/resume", response_model=S.AdminResult)
async def resume(name: SymbolName, who: AdminDep, svc: ServiceDep) -> Any:
    return await _market(name, who, svc, False)


@router.put("/exposure_limits/{name}", response_model=S.AdminResult,
            responses={409: {"model": S.AdminResult}})
async def set_exposure_limit(name: SymbolName, body: S.ExposureLimit, who: AdminDep,
                             svc: ServiceDep) -> Any:
    """Cap the clients' net volume in a symbol, book-wide (journaled)."""
    _known_symbol(svc, name)
    return _answer(await svc.call(C.SetExposureLimit(time_msc=0, actor=_actor(who),
                                                     symbol=name, lots=body.lots)))


@router.delete("/exposure_limits/{name}", response_model=S.AdminResult,
               responses={409: {"model": S.AdminResult}})
async def remove_exposure_limit(name: SymbolName, who: AdminDep, svc: ServiceDep) -> Any:
    _known_symbol(svc, name)
    return _answer(await svc.call(C.SetExposureLimit(time_msc=0, actor=_actor(who),
                                                     symbol=name, lots="")))


@router.get("/groups")
async def groups(_: AdminDep, svc: ServiceDep) -> dict[str, Any]:
    """Every account group's settings, and how many accounts each holds."""
    def read(eng: Any) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for g in eng.accounts.groups:
            counts[g] = counts.get(g, 0) + 1
        return {name: {"accounts": counts.get(name, 0), "settings": group_rules.to_dict(g)}
                for name, g in sorted(eng.config.groups.items())}
    return svc.read(read)


@router.post("/groups", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def set_group(body: S.GroupChange, who: AdminDep, svc: ServiceDep) -> Any:
    """Create an account group or change its settings (journaled); the group's accounts
    follow at once (``cfd.accounts.group_rules``)."""
    return _answer(await svc.call(C.SetGroup(time_msc=0, actor=_actor(who), group=body.group,
                                             changes=body.changes)))


@router.post("/levels", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def levels(body: S.Levels, who: AdminDep, svc: ServiceDep) -> Any:
    return _answer(await svc.call(C.SetAccountLevels(
        time_msc=0, actor=_actor(who), login=body.login or 0, group=body.group or "",
        margin_call=body.margin_call, stop_out=body.stop_out,
        stop_out_end=body.stop_out_end)))


@router.post("/insurance/topup", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def insurance_topup(body: S.Amount, who: AdminDep, svc: ServiceDep) -> Any:
    return _answer(await svc.call(C.TopUpInsurance(time_msc=0, actor=_actor(who),
                                                   amount=_minor(body.amount))))


@router.get("/insurance", response_model=S.Insurance)
def insurance(_: AdminDep, svc: ServiceDep) -> S.Insurance:
    minor = svc.read(lambda eng: eng.insurance_fund)
    return S.Insurance(balance=f"{minor / MINOR_SCALE:.2f}")


@router.post("/ticks", response_model=S.TicksAccepted)
async def push_ticks(ticks: Annotated[list[S.PushTick], Body(max_length=10_000)],
                     who: AdminDep, svc: ServiceDep) -> S.TicksAccepted:
    """The push source: quotes from an external feed handler. Unknown symbols, NaN, crossed
    or non-positive quotes are rejected (and counted), the rest applied in order."""
    index = svc.read(lambda eng: dict(eng.symbols.index))
    now = svc.clock()
    groups: list[tuple[int, list[PushRow]]] = []
    for t in ticks:
        tm = min(t.time_msc, now) if t.time_msc is not None else 0
        if not groups or groups[-1][0] != tm:
            groups.append((tm, []))
        groups[-1][1].append((index.get(t.symbol, -1), float(t.bid), float(t.ask)))
    accepted = rejected = 0
    for tm, rows in groups:
        cmd = C.Ticks(time_msc=tm, actor=f"push:{who.name}",
                      symbols=tuple(r[0] for r in rows), bid=tuple(r[1] for r in rows),
                      ask=tuple(r[2] for r in rows))
        res = await svc.call(cmd)
        data = res.data or {}
        accepted += int(data.get("accepted", 0))
        rejected += int(data.get("rejected", len(rows)))
    return S.TicksAccepted(accepted=accepted, rejected=rejected)


PushRow = tuple[int, float, float]


@router.get("/snapshot", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def snapshot(_: AdminDep, svc: ServiceDep) -> Response:
    """``numpy.savez`` of ``Engine.snapshot()`` arrays, the meta dict as JSON bytes in the
    uint8 array ``__meta__``: ``Engine.from_snapshot(arrays, meta)`` rebuilds the engine."""
    arrays, meta = svc.read(lambda eng: eng.snapshot())
    buf = io.BytesIO()
    meta_bytes = np.frombuffer(json.dumps(meta, default=str).encode(), dtype=np.uint8)
    np.savez(buf, __meta__=meta_bytes, **arrays)
    return Response(buf.getvalue(), media_type="application/octet-stream",
                    headers={"Content-Disposition": "attachment; filename=cfd-snapshot.npz"})
