"""``stress`` and ``gap`` on a Dask LocalCluster give the local answer exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import risk.__main__ as cli
from risk import fanout
from risk.book import Book, synthetic_book
from risk.fanout import account_blocks, gap_blocks, stress_on_cluster
from risk.gaps import run_gap
from risk.source import encode_npz
from risk.stress import run_stress
from tests.test_risk_fixtures import build_engine

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    # two in-process workers of one thread each: quick to start on two cores
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as lc, distributed.Client(lc) as c:
        yield lc, c


def test_blocks_cover_everything_once():
    # 10 chunks of 7 scenarios (the last one 4), 2 workers -> ceil(10 / 4) = 3 chunks a task
    assert gap_blocks(67, 7, 2) == [(0, 21), (21, 42), (42, 63), (63, 67)]
    # a block of 10 rounds up to whole chunks: 14
    assert gap_blocks(67, 7, 2, block=10) == [(0, 14), (14, 28), (28, 42), (42, 56), (56, 67)]
    book = synthetic_book(300, 2_000, seed=3)
    ranges = account_blocks(book, 250)
    assert ranges[0][0] == 0 and ranges[-1][1] == book.n_accounts
    assert all(a < b for a, b in ranges)
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
    sizes = [int(book.acc_off[b] - book.acc_off[a]) for a, b in ranges]
    assert sum(sizes) == book.n_positions and len(ranges) >= 8  # 2,000 / 250


def test_gap_on_the_cluster_equals_the_local_run(cluster):
    _, client = cluster
    book = synthetic_book(3_000, 15_000, seed=5, target_level=(60.0, 400.0))
    rng = np.random.default_rng(9)
    gaps = rng.normal(-0.05, 0.12, (len(book.symbols), 301))
    local = run_gap(book, gaps, chunk=7)
    seen = []
    remote = run_gap(book, gaps, chunk=7, client=client,
                     progress=lambda done, n: seen.append((done, n)))
    assert (local.losses > 0).sum() > 10  # the scenarios do cost the fund something
    assert np.array_equal(local.losses, remote.losses)  # bit for bit, not approximately
    assert local.accounts_at_risk == remote.accounts_at_risk
    assert seen[-1] == (301, 301)
    a, b = local.summary(), remote.summary()
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def _same(local, remote):
    for name in ("status", "n_closed", "closed", "balance_after", "deficit",
                 "equity_before", "level_before", "equity_after"):
        assert np.array_equal(getattr(local, name), getattr(remote, name)), name
    a, b = local.summary(), remote.summary()
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert local.exposure == remote.exposure


def test_stress_on_the_cluster_equals_the_local_run(cluster):
    _, client = cluster
    # an engine's book: real symbols, commissions, hedged and halted cases of the fixtures
    book = Book.from_engine(build_engine(120, seed=11, fund=500_00))
    moves = np.full(len(book.symbols), -0.35)
    local = run_stress(book, moves)
    remote = stress_on_cluster(client, book, moves, positions_per_block=40)
    assert len(account_blocks(book, 40)) > 3  # really cut into several tasks
    assert len(local.stopped) > 0 and local.deficit.sum() > 0
    _same(local, remote)
    big = synthetic_book(2_000, 12_000, seed=2, target_level=(60.0, 400.0))
    m = np.linspace(-0.3, 0.1, len(big.symbols))
    _same(run_stress(big, m), stress_on_cluster(client, big, m, positions_per_block=1_000))


def test_cli_cluster_option(cluster, tmp_path):
    lc, _ = cluster
    eng = build_engine(60, seed=4, fund=300_00)
    arrays, meta = eng.snapshot()
    snap = tmp_path / "book.npz"
    snap.write_bytes(encode_npz(arrays, meta))

    def run(*args: str) -> dict:
        res = CliRunner().invoke(cli.app, ["--snapshot", str(snap), *args, "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    here = run("gap", "--scenarios", "500", "--seed", "3")
    there = run("gap", "--scenarios", "500", "--seed", "3", "--cluster", lc.scheduler_address)
    here["summary"].pop("seconds"), there["summary"].pop("seconds")
    assert here == there
    here = run("stress", "--all", "-30%")
    there = run("stress", "--all", "-30%", "--cluster", lc.scheduler_address)
    here["summary"].pop("seconds"), there["summary"].pop("seconds")
    assert here == there and here["summary"]["accounts_stopped_out"] > 0


def test_cli_unreachable_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(fanout, "CONNECT_TIMEOUT", 2.0)
    eng = build_engine(10, seed=4)
    arrays, meta = eng.snapshot()
    snap = tmp_path / "book.npz"
    snap.write_bytes(encode_npz(arrays, meta))
    res = CliRunner().invoke(cli.app, ["--snapshot", str(snap), "gap", "--scenarios", "10",
                                       "--cluster", "tcp://127.0.0.1:9"])
    assert res.exit_code == 1
    assert "cannot reach the Dask scheduler" in res.output
