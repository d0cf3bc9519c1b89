"""Risk-officer actions: each is first played on a private copy of the engine (the dry run
shows what it would do), then, with ``--confirm``, sent to the server's admin API, which
journals it under the officer's identity. And ``verify``: the ledger and replay checks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cfd import commands as C
from cfd.money import MINOR_SCALE, money_minor
from risk.source import AdminClient


@dataclass
class Action:
    """One action: the engine command for the dry run and the admin call that does it."""

    title: str
    command: C.Command
    call: str  # AdminClient method
    args: tuple

    def perform(self, client: AdminClient) -> Any:
        return getattr(client, self.call)(*self.args)


def halt(symbol: str, officer: str) -> Action:
    return Action(f"halt trading in {symbol}",
                  C.SetMarket(time_msc=_now(), actor=officer, symbols=(symbol,), halted=True),
                  "halt", (symbol,))


def resume(symbol: str, officer: str) -> Action:
    return Action(f"resume trading in {symbol}",
                  C.SetMarket(time_msc=_now(), actor=officer, symbols=(symbol,), halted=False),
                  "resume", (symbol,))


def set_symbol(symbol: str, changes: dict[str, Any], officer: str) -> Action:
    text = ", ".join(f"{k}={v}" for k, v in changes.items())
    return Action(f"set {symbol}: {text}",
                  C.SetSymbol(time_msc=_now(), actor=officer, name=symbol,
                              changes={k: str(v) if isinstance(v, float) else v
                                       for k, v in changes.items()}),
                  "set_symbol", (symbol, changes))


def set_exposure_limit(symbol: str, lots: str, officer: str) -> Action:
    what = f"cap the clients' net volume in {symbol} at {lots} lots" if lots else \
        f"remove the exposure limit of {symbol}"
    return Action(what, C.SetExposureLimit(time_msc=_now(), actor=officer, symbol=symbol,
                                           lots=lots),
                  "set_exposure_limit", (symbol, lots))


def set_group(group: str, changes: dict[str, Any], officer: str) -> Action:
    text = ", ".join(f"{k}={v}" for k, v in changes.items())
    return Action(f"set group {group}: {text}",
                  C.SetGroup(time_msc=_now(), actor=officer, group=group, changes=changes),
                  "set_group", (group, changes))


def liquidate(login: int, officer: str) -> Action:
    return Action(f"liquidate account {login} (stop-out now)",
                  C.ForceStopOut(time_msc=_now(), actor=officer, login=login),
                  "stop_out", (login,))


def set_levels(officer: str, login: int | None = None, group: str | None = None,
               margin_call: float | None = None, stop_out: float | None = None,
               stop_out_end: float | None = None) -> Action:
    body: dict[str, Any] = {}
    for k, v in (("login", login), ("group", group), ("margin_call", margin_call),
                 ("stop_out", stop_out), ("stop_out_end", stop_out_end)):
        if v is not None:
            body[k] = v
    who = f"account {login}" if login else f"group {group}"
    return Action(f"set levels of {who}: " + ", ".join(f"{k}={v}" for k, v in body.items()
                                                        if k not in ("login", "group")),
                  C.SetAccountLevels(time_msc=_now(), actor=officer, login=login or 0,
                                     group=group or "", margin_call=margin_call,
                                     stop_out=stop_out, stop_out_end=stop_out_end),
                  "set_levels", (body,))


def topup(amount: str, officer: str) -> Action:
    minor = money_minor(amount, "amount")
    text = f"{minor / MINOR_SCALE:.2f}"
    return Action(f"top up the insurance fund by {text} USDT",
                  C.TopUpInsurance(time_msc=_now(), actor=officer, amount=minor),
                  "topup", (text,))


def dry_run(eng: Any, action: Action) -> dict[str, Any]:
    """Apply the action's command to ``eng`` (a private copy) and summarise the outcome."""
    fund_before = eng.insurance_fund
    deals_before = len(eng.deals)
    res = eng.apply(action.command)
    events = list(res.events)
    stopped = [e for e in events if e.get("kind") == "stop_out"]
    return {
        "action": action.title, "retcode": int(res.retcode), "comment": res.comment,
        "ok": bool(res.ok),
        "accounts_stopped_out": len(stopped),
        "positions_closed": sum(int(e.get("positions_closed", 0)) for e in stopped),
        "compensation": sum(int(e.get("compensation", 0)) for e in stopped) / MINOR_SCALE,
        "deals": len(eng.deals) - deals_before,
        "margin_calls": sum(1 for e in events if e.get("kind") == "margin_call"),
        "insurance_fund_before": fund_before / MINOR_SCALE,
        "insurance_fund_after": eng.insurance_fund / MINOR_SCALE,
        "stop_outs": [{"login": e["login"], "positions_closed": e["positions_closed"],
                       "margin_level": round(float(e["margin_level"]), 2),
                       "compensation": e.get("compensation", 0) / MINOR_SCALE}
                      for e in stopped[:50]],
    }


def _now() -> int:
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------- verify
def verify_ledger(eng: Any) -> list[dict[str, Any]]:
    """Balances re-derived from the postings equal the ledger's, the global sum is zero, and
    each client's balance equals its ledger account."""
    from cfd.engine import client_ledger

    led = eng.ledger
    n = led.n_accounts
    derived = led.rederive()
    held = led.balance[:n]
    diff = np.nonzero(derived != held)[0]
    n_acc = len(eng.accounts)
    client = led.balance[[client_ledger(a) for a in range(n_acc)]] if n_acc else np.zeros(0)
    bal_diff = np.nonzero(client != eng.accounts.cols.balance[:n_acc])[0]
    return [
        {"check": "postings re-derive every ledger balance", "ok": len(diff) == 0,
         "detail": f"{led.total_postings} postings ({led.postings.size} in memory, the rest "
                   f"as their sums), {n} ledger accounts"
                   + (f"; differs at {diff[:5].tolist()}" if len(diff) else "")},
        {"check": "sum over all ledger accounts is zero", "ok": int(derived.sum()) == 0,
         "detail": f"sum {int(derived.sum())} minor units"},
        {"check": "account balances equal their ledger accounts", "ok": len(bal_diff) == 0,
         "detail": f"{n_acc} accounts" + (f"; differs at logins "
                   f"{eng.accounts.cols.login[bal_diff[:5]].tolist()}" if len(bal_diff)
                   else "")},
    ]


def verify_snapshot_hash(eng: Any, meta: dict[str, Any] | None) -> dict[str, Any]:
    recorded = (meta or {}).get("state_hash")
    got = eng.state_hash()
    return {"check": "state rebuilt from the snapshot hashes as recorded",
            "ok": recorded is None or recorded == got,
            "detail": f"{got[:16]}... (recorded {str(recorded)[:16]}...)"}


def verify_replay(store: Any, live_hash: str) -> list[dict[str, Any]]:
    """A clean replay of the whole journal reaches the hash of the recovered engine."""
    from cfd.store.errors import StoreError
    from cfd.store.runner import verify_replay as replay

    out = []
    try:
        chain = store.verify()
    except StoreError as exc:
        return [{"check": "journal hash chain", "ok": False, "detail": str(exc)[:200]}]
    out.append({"check": "journal hash chain", "ok": True,
                "detail": ", ".join(f"{k}={v}" for k, v in chain.items())})
    try:
        res = replay(store)
    except StoreError as exc:
        out.append({"check": "clean replay matches every snapshot", "ok": False,
                    "detail": str(exc)[:200]})
        return out
    out.append({"check": "clean replay matches every snapshot", "ok": True,
                "detail": f"{res['snapshots_checked']} snapshots, head seq {res['head_seq']}"})
    out.append({"check": "clean replay hash == recovered engine hash",
                "ok": res["state_hash"] == live_hash,
                "detail": f"{res['state_hash'][:16]}... vs {live_hash[:16]}..."})
    return out
