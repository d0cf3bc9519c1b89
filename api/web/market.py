"""Market state per symbol for the terminal's watchlist: open, closed (with the next
session's open), halted, close-only, long-only, short-only or disabled."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ClientDep, ServiceDep
from cfd.constants import SymbolTradeMode
from cfd.engine import Engine
from cfd.instruments import sessions
from cfd.instruments.spec import SESSION_KINDS

router = APIRouter(prefix="/web", tags=["web"])

_MODE_STATE = {SymbolTradeMode.DISABLED: "disabled", SymbolTradeMode.LONGONLY: "long-only",
               SymbolTradeMode.SHORTONLY: "short-only",
               SymbolTradeMode.CLOSEONLY: "close-only", SymbolTradeMode.FULL: "open"}


class MarketState(BaseModel):
    symbol: str
    state: str  # open | closed | halted | close-only | long-only | short-only | disabled
    next_open_msc: int | None = None  # when closed: the next session's open, if one is due


def market_states(eng: Engine, now_msc: int) -> list[dict[str, Any]]:
    """A halt wins over a closed market, which wins over the symbol's trade mode."""
    sc = eng.symbols.cols
    out = []
    for i, spec in enumerate(eng.symbols.specs):
        nxt = None
        if sc.halted[i]:
            state = "halted"
        elif not sc.market_open[i]:
            state = "closed"
            t = sessions.next_open(SESSION_KINDS.index(spec.session), now_msc)
            nxt = t if t > now_msc else None  # open by the calendar: closed by the broker
        else:
            state = _MODE_STATE.get(SymbolTradeMode(int(spec.trade_mode)), "open")
        out.append({"symbol": spec.name, "state": state, "next_open_msc": nxt})
    return out


@router.get("/market", response_model=list[MarketState])
def market(_: ClientDep, svc: ServiceDep) -> Any:
    now = svc.clock()
    return svc.read(lambda eng: market_states(eng, now))
