"""The CLI end to end: against a fake admin API (httpx MockTransport), a snapshot file and
a database."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

import risk.__main__ as cli
from risk.source import decode_npz, encode_npz
from tests.test_risk_fixtures import build_engine


@pytest.fixture(scope="module")
def engine():
    return build_engine(50, seed=7)


@pytest.fixture
def server(engine, monkeypatch):
    """A fake server: demo credentials, the snapshot, and every admin call recorded."""
    arrays, meta = engine.snapshot()
    blob = encode_npz(arrays, meta)
    calls = []

    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/demo/credentials":
            return httpx.Response(200, json={"admin_key": "demo-key", "accounts": []})
        if req.headers.get("authorization") != "Bearer demo-key":
            return httpx.Response(401, json={"detail": "bad key"})
        if req.url.path == "/admin/snapshot":
            return httpx.Response(200, content=blob)
        body = json.loads(req.content) if req.content else None
        calls.append((req.method, req.url.path, body, req.headers.get("x-officer")))
        return httpx.Response(200, json={"retcode": 10009, "comment": "done", "data": None})

    monkeypatch.setattr(cli, "TRANSPORT", httpx.MockTransport(handle))
    monkeypatch.delenv("CFD_ADMIN_KEY", raising=False)
    return calls


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli.app, list(args))
    return res.exit_code, res.stdout


def test_npz_round_trip(engine):
    arrays, meta = engine.snapshot()
    a2, m2 = decode_npz(encode_npz(arrays, meta))
    assert m2 == json.loads(json.dumps(meta))
    assert set(a2) == set(arrays)


def test_read_commands_from_the_server(server, engine):
    code, out = run("accounts", "--json", "--limit", "5")
    assert code == 0, out
    rows = json.loads(out)["accounts"]
    levels = [r["margin_level"] for r in rows]
    assert levels == sorted(levels) and len(rows) == 5
    first = rows[0]
    info = engine.account_info(first["login"])
    assert first["equity"] == pytest.approx(info["equity"], abs=0.01)
    assert first["margin_level"] == pytest.approx(info["margin_level"], abs=0.01)
    code, out = run("accounts", "--below", "200", "--symbol", "NVDA")
    assert code == 0 and "Accounts by margin level" in out
    code, out = run("exposure", "--json")
    expo = json.loads(out)["exposure"]
    assert {r["symbol"] for r in expo} <= {"AAPL", "NVDA", "TSLA", "ORCL", "MSFT", "KO"}
    for r in expo:  # the broker holds the opposite of the clients' net
        assert r["broker_notional"] == pytest.approx(-r["net_notional"])
    code, out = run("stress", "--shock", "NVDA=-25%", "--all=-10%", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["moves"]["NVDA"] == -0.25 and data["moves"]["AAPL"] == -0.1
    code, out = run("stress", "--market", "-10%", "--beta")
    assert code == 0 and "x beta" in out
    code, out = run("depeg", "--haircut", "5%", "--json")
    assert json.loads(out)["depeg"]["usd_per_usdt"] == pytest.approx(0.95)
    code, out = run("gap", "--scenarios", "500", "--json")
    assert code == 0, out
    s = json.loads(out)["summary"]
    assert s["scenarios"] == 500 and s["var_99_9"] >= s["var_99"] >= 0
    assert not server  # reading never calls an action endpoint


def test_actions_need_confirm(server):
    code, out = run("halt", "NVDA")
    assert code == 2 and "Dry run" in out
    assert server == []
    code, out = run("--officer", "alice", "halt", "NVDA", "--confirm")
    assert code == 0, out
    assert server[-1] == ("POST", "/admin/symbols/NVDA/halt", None, "alice")
    run("--officer", "alice", "resume", "NVDA", "--confirm")
    assert server[-1][1] == "/admin/symbols/NVDA/resume"
    run("set-margin", "NVDA", "--initial", "0.3", "--maintenance", "0.15", "--confirm")
    assert server[-1][:3] == ("PATCH", "/admin/symbols/NVDA",
                              {"margin_initial_rate": 0.3, "margin_maintenance_rate": 0.15})
    code, out = run("set-margin", "NVDA", "--initial", "0.2", "--tiers", "0:0.2,500:0.5",
                    "--confirm")
    assert code == 0, out
    assert server[-1][2] == {"margin_initial_rate": 0.2, "margin_tiers": "0:0.2,500:0.5"}
    run("set-limit", "NVDA", "5000", "--confirm")
    assert server[-1][:3] == ("PUT", "/admin/exposure_limits/NVDA", {"lots": "5000"})
    # the dry run plays on the server's book, which has no limit on NVDA to remove
    code, out = run("set-limit", "NVDA", "none", "--confirm")
    assert code != 0 and "no exposure limit" in out
    assert server[-1][0] == "PUT"
    code, out = run("set-group", "demo\\usdt", "stop_out=30", 'blocked_countries=["US"]',
                    "--confirm")
    assert code == 0, out
    assert server[-1][:3] == ("POST", "/admin/groups", {
        "group": "demo\\usdt", "changes": {"stop_out": 30, "blocked_countries": ["US"]}})
    code, out = run("set-group", "demo\\usdt", "stop_out=bogus", "--confirm")
    assert code != 0 and "finite" in out and server[-1][1] == "/admin/groups"
    run("close-only", "TSLA", "--confirm")
    assert server[-1][2] == {"trade_mode": 3}
    run("liquidate", "1003", "--confirm")
    assert server[-1][1] == "/admin/accounts/1003/stop_out"
    run("set-levels", "--group", "demo\\usdt", "--stop-out", "30", "--confirm")
    assert server[-1][2] == {"group": "demo\\usdt", "stop_out": 30.0}
    code, out = run("topup", "1000", "--json")
    assert code == 2 and json.loads(out)["dry_run"]["insurance_fund_after"] == pytest.approx(
        json.loads(out)["dry_run"]["insurance_fund_before"] + 1000)
    run("topup", "1000", "--confirm")
    assert server[-1][:3] == ("POST", "/admin/insurance/topup", {"amount": "1000.00"})


def test_a_refused_action_sends_nothing(server):
    code, _ = run("liquidate", "999999", "--confirm")
    assert code == 1
    code, _ = run("set-levels", "--login", "1001", "--stop-out", "500", "--confirm")
    assert code == 1  # stop-out above the margin-call level: the engine refuses
    assert server == []


def test_verify_and_report_from_a_snapshot_file(engine, tmp_path):
    arrays, meta = engine.snapshot()
    path = tmp_path / "book.npz"
    path.write_bytes(encode_npz(arrays, meta))
    code, out = run("--snapshot", str(path), "verify", "--json")
    assert code == 0, out
    checks = json.loads(out)["checks"]
    assert all(c["ok"] is not False for c in checks)
    html = tmp_path / "r.html"
    code, out = run("--snapshot", str(path), "report", "--out", str(html), "--scenarios", "200")
    assert code == 0, out
    text = html.read_text()
    assert text.count("data:image/png;base64,") >= 4 and "Stress scenarios" in text


def test_verify_replays_the_database(tmp_path):
    from cfd import commands as C
    from cfd.store.runner import open_durable

    url = f"sqlite:///{tmp_path / 'cfd.sqlite'}"
    durable = open_durable(url, snapshot_every=5)
    durable.submit([C.CreateAccount(time_msc=1, actor="admin", login=1001, name="a")])
    for i in range(8):
        durable.submit([C.Deposit(time_msc=2 + i, actor="admin", login=1001, amount=1000)])
    durable.close()
    code, out = run("--db", url, "verify", "--json")
    assert code == 0, out
    names = [c["check"] for c in json.loads(out)["checks"]]
    assert "clean replay hash == recovered engine hash" in names
    code, out = run("--db", url, "halt", "AAPL", "--confirm")
    assert code == 1  # actions need the server
