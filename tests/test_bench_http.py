"""The HTTP benchmark runs end to end on a tiny load: real trades, the no-op beside them,
CPU figures, and every answered order found in the server's journal."""

from __future__ import annotations

import json

from benchmarks import http


def test_http_benchmark_runs_and_checks_durability(capsys):
    assert http.main(["--clients", "2", "--seconds", "0.5", "--rate", "40", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    codes = out["order_send"]["codes"]  # two clients this fast meet the per-account limit
    assert int(codes.get("10009", 0)) > 0 and set(codes) <= {"10009", "10024"}
    assert set(out["noop"]["codes"]) == {"200"} and out["ratio"] > 0
    assert out["paced"]["codes"] == {"10009": 20}
    assert out["durable"]["ok"] and out["durable"]["journaled"] == out["durable"]["answered"]
    assert out["order_send"]["client_cores"] >= 0 and out["paced"]["other_cores"] >= 0
    lines = http._line(out, 2)
    assert lines[-1].endswith("(all durable)")
    s = http.summary([out, out])
    assert s["order_send_per_s"]["median"] == out["order_send"]["per_s"]
    assert s["paced_p99_ms"]["runs"] == [out["paced"]["p99_ms"]] * 2
