"""The corporate-actions calendar for the broker: add, amend, cancel, import, list.

Each change is a journaled ``CorporateAction`` command with ``admin:<name>`` as its actor; a
refused one answers 409 with the engine's reason and changes nothing. The rollover before an
action's ex-date applies it (``cfd.trading.corporate``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request

from api import schemas as S
from api.deps import AdminDep, ServiceDep
from api.routers.admin import _actor, _answer
from cfd import commands as C
from cfd.trading.corporate_fields import parse_calendar

router = APIRouter(prefix="/admin", tags=["admin"])

ActionId = Annotated[int, Path(ge=1, le=2**31)]
Fields = Annotated[dict[str, str | int | float | None], Body(
    examples=[{"kind": "split", "symbol": "NVDA", "ex_date": "2024-06-10", "ratio": "10:1"},
              {"kind": "dividend", "symbol": "KO", "ex_date": "2024-06-14",
               "amount": "0.485"}])]


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in fields.items():
        if v is None or v == "":
            continue
        if isinstance(v, float) and v != v:
            raise HTTPException(422, f"{k} must be finite")
        out[k] = str(v) if isinstance(v, (int, float)) and k != "id" else v
    return out


@router.get("/corporate_actions")
def list_actions(_: AdminDep, svc: ServiceDep) -> dict:
    """The calendar (every action and its status), the upcoming actions with their cash
    effect on the current book (minor units: ``due_to_longs``, ``due_from_shorts``,
    ``withholding``, ``broker_net``) and what the last rollovers applied."""
    return svc.read(lambda eng: {"actions": eng.corporate.listing(),
                                 "upcoming": eng.corporate.upcoming(),
                                 "last_applied": eng.corporate.last_applied()})


@router.post("/corporate_actions", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def add_action(fields: Fields, who: AdminDep, svc: ServiceDep) -> Any:
    """Add a dividend, split, ticker change or delisting (see ``cfd.trading.corporate``)."""
    return _answer(await svc.call(C.CorporateAction(time_msc=0, actor=_actor(who), op="add",
                                                    fields=_clean(fields))))


@router.patch("/corporate_actions/{action_id}", response_model=S.AdminResult,
              responses={409: {"model": S.AdminResult}})
async def amend_action(action_id: ActionId, fields: Fields, who: AdminDep,
                       svc: ServiceDep) -> Any:
    """Change fields of an action that has not taken effect (a delisting's last price and
    settlement date until it settles)."""
    return _answer(await svc.call(C.CorporateAction(time_msc=0, actor=_actor(who),
                                                    op="amend", id=action_id,
                                                    fields=_clean(fields))))


@router.delete("/corporate_actions/{action_id}", response_model=S.AdminResult,
               responses={409: {"model": S.AdminResult}})
async def cancel_action(action_id: ActionId, who: AdminDep, svc: ServiceDep) -> Any:
    return _answer(await svc.call(C.CorporateAction(time_msc=0, actor=_actor(who),
                                                    op="cancel", id=action_id)))


@router.post("/corporate_actions/import")
async def import_actions(request: Request, who: AdminDep, svc: ServiceDep) -> dict:
    """Add many actions from a CSV (header: kind,symbol,ex_date,amount,currency,ratio,
    new_symbol,settle_date,last_price,note; ``Content-Type: text/csv``) or a JSON list of
    objects. Each row is its own command: the answer lists each row's result."""
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    try:
        rows = parse_calendar(raw, kind)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    results = []
    for i, row in enumerate(rows, start=1):
        res = await svc.call(C.CorporateAction(time_msc=0, actor=_actor(who), op="add",
                                               fields=_clean(row)))
        results.append({"row": i, "retcode": int(res.retcode), "comment": res.comment})
    return {"added": sum(r["retcode"] == 10009 for r in results), "results": results}
