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
