"""The benchmark suite runs end to end on a tiny book (checks included) and reports."""

from __future__ import annotations

import json

from benchmarks.__main__ import main, parse_args, report, run


def test_suite_runs_on_a_tiny_book(tmp_path, capsys):
    out = tmp_path / "bench.json"
    png = tmp_path / "bench.png"
    assert main(["--sizes", "3000", "6000", "--repeats", "2", "--python-sample", "200",
                 "--tick-targets", "10", "100", "--quiet", "--json", str(out),
                 "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "full recompute + stop-out detection" in text
    assert "crash cascade" in text
    res = json.loads(out.read_text())
    assert [r["book"]["positions"] for r in res["recompute"]] == [3000, 6000]
    assert all(r["checked"] for r in res["cascade"])  # kernel path == Python path
    assert {r["shock"] for r in res["cascade"]} == {0.9, 0.7}
    assert all(r["ledger_total"] == 0 for r in res["cascade"])
    # the rollover phase: checked against the reference before it was timed, and it
    # charged every position (every symbol has a swap)
    assert [r["positions"] for r in res["rollover"]] == [3000, 6000]
    assert all(r["checked_positions"] > 0 and r["charged_positions"] > 0
               for r in res["rollover"])
    assert "rollover (overnight financing" in text
    # the corporate actions on the most held symbol: checked, then both applied
    c = res["corporate"]
    assert c["checked_positions"] > 0
    assert [a["kind"] for a in c["applied"]] == ["split", "dividend"]
    assert "split 10:1" in text
    assert png.stat().st_size > 1000


def test_report_shows_each_size():
    args = parse_args(["--sizes", "2000", "--repeats", "1", "--python-sample", "50",
                       "--tick-targets", "5", "--shocks", "-30", "--quiet"])
    res = run(args)
    text = report(res)
    assert "2,000 positions / 200 accounts / 1 symbols" in text
    assert "-30% on 2,000" in text


def test_tick_replay_runs_through_the_pipeline():
    """``python -m benchmarks.ticks`` on a tiny book: every tick is accepted, the ticks move
    accounts across their levels (margin calls), the ledger stays at zero, and conflation
    processes the same ticks."""
    from benchmarks import ticks

    out = [ticks.run(positions=5_000, accounts=500, symbols=50, pending=500, ticks=50_000,
                     batch=1_000, conflate=c, level_lo=52.0, level_hi=120.0)
           for c in (False, True)]
    for r in out:
        assert r["ticks"] == 49_000 and r["rejected_ticks"] == 0  # the first batch warms up
        assert r["pending"] > 0 and r["ledger_total"] == 0
        assert r["events"].get("margin_call", 0) > 0


def test_tick_replay_with_storage_and_the_storage_benchmark(capsys):
    """``benchmarks.ticks --record`` stores every accepted tick (and says so), and
    ``benchmarks.marketdata`` checks its reads' counts before timing them."""
    from benchmarks import marketdata, ticks

    r = ticks.run(positions=2_000, accounts=200, symbols=10, pending=50, ticks=5_000,
                  batch=500, record="")
    # 10 batches of 500 ticks, all accepted and stored; the first is a warm-up, not timed
    assert r["recorded"] and (r["stored_ticks"], r["ticks"]) == (5_000, 4_500)
    assert marketdata.main(["--ticks", "3000", "--symbols", "5", "--flush", "1000",
                            "--bars", "2000", "--repeats", "1"]) == 0
    text = capsys.readouterr().out
    assert "chunks_ticks_per_s" in text and "copy_rates_range_http_numpy_ms" in text


def test_durable_cascade_writes_every_row(capsys):
    """``benchmarks.liquidation --durable`` on a tiny book: the crash's deals, orders,
    postings, accounts and stop-out events are all in the store's tables."""
    from benchmarks import liquidation

    assert liquidation.main(["--durable", "--positions", "4000"]) == 0
    text = capsys.readouterr().out
    r = json.loads(text[:text.rindex("}") + 1])
    rows = r["rows"]
    assert r["deals"] > 0 and rows["deals"] == r["deals"] and rows["postings"] >= rows["orders"]
    assert rows["events"] == r["accounts_stopped_out"] > 0
    assert rows["accounts"] == 400 and "positions" not in rows  # open positions: no table
    assert 0 < rows["orders"] <= rows["deals"]  # one closing order per closed position
    assert "durable in" in text
