"""``cfd-risk financing`` and ``rollover`` on a book that has been through rollovers, and
the financing section of the HTML report."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
from typer.testing import CliRunner

import risk.__main__ as cli
from cfd import commands as C
from cfd.trading.financing import cutoff_msc
from risk.source import encode_npz
from tests.test_risk_fixtures import build_engine


@pytest.fixture(scope="module")
def book_file(tmp_path_factory):
    eng = build_engine(30, seed=5)
    t = cutoff_msc(dt.date(2024, 6, 3))
    assert eng.apply(C.SetBenchmark(time_msc=t, actor="admin", name="SOFR",
                                    date="2024-01-01", rate="5.31")).ok
    res = eng.apply(C.Rollover(time_msc=t, actor="clock", date="2024-06-03"))
    assert res.ok, res
    path = tmp_path_factory.mktemp("book") / "book.npz"
    path.write_bytes(encode_npz(*eng.snapshot()))
    return path, eng, res.data


def fake_server(path, monkeypatch) -> list[tuple]:
    """An admin API that serves the snapshot file and records every other call as
    ``(method, path, content type, body bytes)``."""
    blob = path.read_bytes()
    calls: list[tuple] = []

    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/demo/credentials":
            return httpx.Response(200, json={"admin_key": "k", "accounts": []})
        if req.url.path == "/admin/snapshot":
            return httpx.Response(200, content=blob)
        calls.append((req.method, req.url.path, req.headers.get("content-type"),
                      req.content))
        if req.url.path.endswith("/import"):
            return httpx.Response(200, json={"added": 1, "results": []})
        return httpx.Response(200, json={"retcode": 10009, "comment": "done", "data": None})

    monkeypatch.setattr(cli, "TRANSPORT", httpx.MockTransport(handle))
    monkeypatch.delenv("CFD_ADMIN_KEY", raising=False)
    return calls


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.app, list(args))
    return res.exit_code, res.stdout


def test_financing_report_from_a_snapshot(book_file):
    path, eng, rolled = book_file
    code, out = run("--snapshot", str(path), "financing", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["rolled_through"] == "2024-06-03"
    total = data["last_totals"][-1]
    # what the rollover booked, in USDT, and the rows by symbol and group add up to it
    assert total["charged"] == rolled["charged"] / 100
    assert sum(r["charged"] for r in data["last"]) == pytest.approx(total["charged"])
    assert data["financing_account"] == (rolled["charged"] - rolled["paid"]) / 100
    # the next rollover (Tuesday, one night) is projected on the same book: the same
    # positions at the same prices and rates as Monday's one night
    assert data["next_date"] == "2024-06-04"
    assert sum(r["charged"] for r in data["next"]) == pytest.approx(total["charged"])
    code, out = run("--snapshot", str(path), "financing")
    assert code == 0 and "Next rollover 2024-06-04" in out


def test_report_has_a_financing_section(book_file, tmp_path):
    path, _, _ = book_file
    html = tmp_path / "r.html"
    code, out = run("--snapshot", str(path), "report", "--out", str(html), "--scenarios", "50")
    assert code == 0, out
    text = html.read_text()
    assert "Overnight financing" in text and "rolled through 2024-06-03" in text
    assert "Corporate actions" in text


def test_rollover_action_dry_run_then_confirm(book_file, monkeypatch):
    path, eng, _ = book_file
    calls = fake_server(path, monkeypatch)
    code, out = run("rollover", "--date", "2024-06-04", "--json")
    assert code == 2, out  # a dry run
    dry = json.loads(out)["dry_run"]
    assert dry["ok"] and "rolled 2024-06-04" in dry["comment"]
    assert calls == []
    code, out = run("rollover", "--date", "2024-06-03", "--confirm")
    assert code == 1 and calls == []  # already rolled: the engine refuses, nothing is sent
    code, out = run("rollover", "--date", "2024-06-04", "--confirm")
    assert code == 0, out
    assert [(m, p, json.loads(body)) for m, p, _, body in calls] == [
        ("POST", "/admin/rollover", {"date": "2024-06-04"})]


def test_corporate_actions_from_the_cli(book_file, monkeypatch, tmp_path):
    path, eng, _ = book_file
    calls = fake_server(path, monkeypatch)
    # actions are stamped with the officer's clock: ex-dates two weeks ahead
    ex = str(dt.date.today() + dt.timedelta(days=14))
    code, out = run("action-add", "dividend", "AAPL", ex, "--amount", "0.25", "--json")
    assert code == 2, out
    assert json.loads(out)["dry_run"]["ok"] and calls == []
    code, out = run("action-add", "split", "AAPL", ex, "--ratio", "0:1")
    assert code == 1 and calls == []  # refused by the engine on the private copy
    code, out = run("action-add", "dividend", "AAPL", ex, "--amount", "0.25", "--confirm")
    assert code == 0, out
    assert calls[-1][:2] == ("POST", "/admin/corporate_actions")
    assert json.loads(calls[-1][3]) == {"kind": "dividend", "symbol": "AAPL",
                                        "ex_date": ex, "amount": "0.25"}
    f = tmp_path / "cal.csv"
    f.write_text(f"kind,symbol,ex_date,ratio\nsplit,NVDA,{ex},10:1\nsplit,NOPE,{ex},2:1\n")
    code, out = run("action-import", str(f), "--json")
    assert code == 2
    rows = json.loads(out)["dry_run"]
    assert [r["ok"] for r in rows] == [True, False] and "unknown symbol" in rows[1]["detail"]
    code, out = run("action-import", str(f), "--confirm")
    assert code == 0, out
    assert calls[-1][1] == "/admin/corporate_actions/import"
    assert calls[-1][2] == "text/csv"
    code, out = run("actions", "--json")
    assert code == 0 and json.loads(out)["upcoming"] == []  # the file's copy is unchanged
