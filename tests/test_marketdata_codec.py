"""The compact tick chunks (cfd.marketdata.codec) give back the very ticks stored."""

from __future__ import annotations

import numpy as np

from cfd.feed.ticks import TickBatch
from cfd.marketdata import codec
from cfd.marketdata.bars import as_ticks
from cfd.marketdata.store import chunks_by_symbol

T0 = 1_767_000_000_000


def grouped(n: int, seed: int, trades: bool = False, off_grid: int = -1,
            walk: bool = False) -> TickBatch:
    """``walk``: quotes as a market moves them (small steps, a tick every few seconds)
    rather than anywhere on the grid at any time."""
    rng = np.random.default_rng(seed)
    sym = np.sort(rng.integers(0, 6, n)).astype(np.int32)
    span = 86_400_000 * (1 if walk else 3)
    t = np.concatenate([np.sort(rng.integers(T0, T0 + span, (sym == s).sum()))
                        for s in range(6)])
    cents = (20_000 + np.cumsum(rng.integers(-3, 4, n)) if walk
             else rng.integers(1, 5_000_000, n))  # up to 50,000.00 on a cent grid
    bid = cents / 100
    ask = (cents + rng.integers(0, 4 if walk else 300, n)) / 100
    if off_grid >= 0:
        bid[sym == off_grid] += 0.001  # a tenth of a point off
    kw = {}
    if trades:
        kw = {"last": np.where(rng.random(n) < 0.3, bid, 0.0),
              "volume": rng.integers(0, 50, n), "volume_real": rng.random(n) * 5}
    flags = rng.choice(np.array([6, 2, 4, 30], np.int32), n)
    return TickBatch.from_arrays(sym, t, bid, ask, flags=flags, **kw)


def check(batch: TickBatch) -> dict:
    names = tuple(f"S{i}" for i in range(6))
    points = np.array([0.01, 0.01, 0.005, 0.01, 0.0, 0.01])
    got = chunks_by_symbol(names, batch, points)
    for s, name in enumerate(names):
        part = batch.take(batch.symbol == s)
        if not len(part):
            continue
        t0, t1, n, blob = got[name]
        assert (t0, t1, n) == (part.time_msc[0], part.time_msc[-1], len(part))
        back = codec.columns(blob)
        for k in ("time_msc", "bid", "ask", "last", "volume", "volume_real", "flags"):
            assert np.array_equal(getattr(back, k), getattr(part, k)), (name, k)
        assert np.array_equal(codec.ticks(blob), as_ticks(part))
    return got


def test_quotes_come_back_bit_for_bit_in_a_few_bytes_each() -> None:
    check(grouped(20_000, 1))  # anywhere on the grid: still exact
    b = grouped(20_000, 1, walk=True)
    got = check(b)
    assert all(blob[:4] == codec.MAGIC for *_, blob in got.values())
    assert sum(len(v[3]) for v in got.values()) < 7 * len(b)  # journal encoding: 32


def test_trades_and_prices_off_the_grid() -> None:
    got = check(grouped(5_000, 2, trades=True, off_grid=3))
    assert got["S3"][3][:4] != codec.MAGIC  # off its grid: the journal's encoding
    assert got["S0"][3][:4] == codec.MAGIC


def test_both_encodings_read_back() -> None:
    b = grouped(3_000, 3)
    names = tuple(f"S{i}" for i in range(6))
    plain = chunks_by_symbol(names, b)
    compact = chunks_by_symbol(names, b, np.full(6, 0.01))
    for name in names:
        assert np.array_equal(codec.ticks(plain[name][3]), codec.ticks(compact[name][3]))
