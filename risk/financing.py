"""Overnight financing for the risk officer: the last rollovers' income and expense by
symbol and group, the next rollover's projection on the current book, and the rollover
action (a dry run on a private copy, then the admin API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cfd import commands as C
from cfd.money import MINOR_SCALE
from risk.actions import Action, _now


def summary(eng: Any) -> dict[str, Any]:
    """``TradingDay.report()`` with money in USDT and the rows flattened for tables."""
    rep = eng.day.report()

    def rows(rollover: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"date": rollover["date"], **r, "charged": r["charged"] / MINOR_SCALE,
                 "paid": r["paid"] / MINOR_SCALE,
                 "net_income": (r["charged"] - r["paid"]) / MINOR_SCALE}
                for r in rollover["by"]]

    last = [r for rollover in rep["last"] for r in rows(rollover)]
    return {
        "rolled_through": rep["rolled_through"],
        "financing_account": rep["financing_account"] / MINOR_SCALE,
        "benchmarks": rep["benchmarks"],
        "last": last,
        "last_totals": [{"date": r["date"], "positions": r["positions"],
                         "charged": r["charged"] / MINOR_SCALE,
                         "paid": r["paid"] / MINOR_SCALE,
                         "net_income": (r["charged"] - r["paid"]) / MINOR_SCALE}
                        for r in rep["last"]],
        "next": rows(rep["next"]),
        "next_date": rep["next"]["date"],
        "next_total": (rep["next"]["charged"] - rep["next"]["paid"]) / MINOR_SCALE,
    }


def rollover(date: str | None, officer: str) -> Action:
    """Close trading date ``date`` (default: the date the server's clock would roll next)."""
    day = date or str(dt.date.today() - dt.timedelta(days=1))
    return Action(f"roll over trading date {day}",
                  C.Rollover(time_msc=_now(), actor=officer, date=day), "rollover", (day,))


def corporate_summary(eng: Any) -> dict[str, Any]:
    """Upcoming corporate actions with their cash effect in USDT, and the last applied."""
    money = ("due_to_longs", "due_from_shorts", "withholding", "broker_net",
             "paid_to_longs", "charged_to_shorts", "withheld", "cash_to_clients",
             "cash_from_clients")

    def usdt(row: dict[str, Any]) -> dict[str, Any]:
        out = {k: (v / MINOR_SCALE if k in money else v) for k, v in row.items()
               if k not in ("results", "actor", "added_msc", "note")}
        out["detail"] = out.get("amount") or out.get("ratio") or out.get("new_symbol") \
            or out.get("last_price") or ""
        return out

    return {"upcoming": [usdt(r) for r in eng.corporate.upcoming()],
            "last_applied": [usdt(r) for r in eng.corporate.last_applied()]}


def add_action(fields: dict[str, Any], officer: str) -> Action:
    text = ", ".join(f"{k}={v}" for k, v in fields.items())
    return Action(f"add corporate action: {text}",
                  C.CorporateAction(time_msc=_now(), actor=officer, op="add", fields=fields),
                  "add_action", (fields,))


def cancel_action(action_id: int, officer: str) -> Action:
    return Action(f"cancel corporate action {action_id}",
                  C.CorporateAction(time_msc=_now(), actor=officer, op="cancel",
                                    id=action_id), "cancel_action", (action_id,))


def import_dry_run(eng: Any, raw: bytes, officer: str) -> list[dict[str, Any]]:
    """Each row of a calendar file applied to ``eng`` (a private copy): its outcome."""
    from cfd.trading.corporate_fields import parse_calendar

    rows = parse_calendar(raw)
    out = []
    for i, row in enumerate(rows, start=1):
        fields = {k: v for k, v in row.items() if v not in (None, "")}
        res = eng.apply(C.CorporateAction(time_msc=_now(), actor=officer, op="add",
                                          fields=fields))
        out.append({"row": i, "ok": bool(res.ok), "detail": res.comment})
    return out
