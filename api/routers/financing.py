"""The trading day for the broker: rollovers, benchmark rate fixings, financing reports.

The server's clock starts each date's rollover by itself (``api.clock``); these endpoints
start one for a given date (back-dated runs, a missed date) and set the benchmark rates the
interest swaps follow. Each is a journaled command with ``admin:<name>`` as its actor."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api import schemas as S
from api.deps import AdminDep, ServiceDep
from api.routers.admin import _actor, _answer
from cfd import commands as C

router = APIRouter(prefix="/admin", tags=["admin"])

_DATE = r"^\d{4}-\d{2}-\d{2}$"


class RolloverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: str | None = Field(None, pattern=_DATE, description="New York trading date to "
                             "close, YYYY-MM-DD (default: the last date whose rollover time "
                             "has passed)")


class BenchmarkFixing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_]+$",
                      examples=["SOFR"])
    date: str = Field(pattern=_DATE, description="first trading date it applies to")
    rate: str = Field(max_length=16, description="percent a year, e.g. \"4.31\"",
                      examples=["4.31"])


@router.post("/rollover", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def rollover(body: RolloverRequest, who: AdminDep, svc: ServiceDep) -> Any:
    """Close a trading date now: DAY orders expire, financing is charged. A date already
    rolled, or not closed yet, is refused (409) and changes nothing."""
    date = body.date
    if date is None:
        due = svc.read(lambda eng: eng.day.next_date(svc.clock()))
        if due is None:
            last = svc.read(lambda eng: eng.day.rolled_through)
            date = str(dt.date.fromordinal(last)) if last else ""
        else:
            date = str(due)
    return _answer(await svc.call(C.Rollover(time_msc=0, actor=_actor(who), date=date)))


@router.post("/benchmarks", response_model=S.AdminResult,
             responses={409: {"model": S.AdminResult}})
async def set_benchmark(body: BenchmarkFixing, who: AdminDep, svc: ServiceDep) -> Any:
    """A benchmark rate fixing (SOFR, Fed funds) in force from ``date``."""
    return _answer(await svc.call(C.SetBenchmark(time_msc=0, actor=_actor(who),
                                                 name=body.name, date=body.date,
                                                 rate=body.rate)))


@router.get("/financing")
def financing(_: AdminDep, svc: ServiceDep) -> dict:
    """The last rollovers' financing by symbol and group (minor units: ``charged`` to
    clients, ``paid`` to them), the next rollover's projection on the current book, the
    benchmark fixings and the financing account's balance."""
    return svc.read(lambda eng: eng.day.report())
