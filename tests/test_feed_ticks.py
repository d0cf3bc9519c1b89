"""TickBatch: construction checks, concat/take, and the lossless journal encoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cfd.feed.ticks import FLAG_QUOTE, TickBatch

HEADER = 16


def _batch(n: int = 3, t0: int = 1_700_000_000_000) -> TickBatch:
    return TickBatch.from_arrays(
        symbol=np.arange(n) % 2,
        time_msc=t0 + np.arange(n) * 250,
        bid=100.0 + np.arange(n),
        ask=100.5 + np.arange(n),
    )


def test_from_arrays_defaults_and_dtypes() -> None:
    b = TickBatch.from_arrays([0, 1], [10, 20], [1.0, 2.0], [1.5, 2.5], last=[0.0, 2.2],
                              volume=[0, 7])
    assert len(b) == 2
    assert b.symbol.dtype == np.int32 and b.time_msc.dtype == np.int64
    assert b.volume.dtype == np.int64 and b.flags.dtype == np.int32
    # row 0: BID|ASK = 0x02|0x04 = 0x06; row 1 adds LAST 0x08 and VOLUME 0x10 = 0x1E
    assert b.flags.tolist() == [0x06, 0x1E]
    assert b.volume_real.tolist() == [0.0, 0.0]
    assert not b.bid.flags.writeable


def test_from_arrays_rejects_bad_shapes_and_types() -> None:
    with pytest.raises(ValueError, match="rows"):
        TickBatch.from_arrays([0, 1], [10], [1.0, 2.0], [1.5, 2.5])
    with pytest.raises(ValueError, match="1-D"):
        TickBatch.from_arrays([[0, 1]], [[10, 20]], [[1.0, 2.0]], [[1.5, 2.5]])
    with pytest.raises(TypeError, match="integers"):
        TickBatch.from_arrays([0.5], [10], [1.0], [1.5])
    with pytest.raises(OverflowError):
        TickBatch.from_arrays([2**40], [10], [1.0], [1.5])
    with pytest.raises(TypeError, match="numeric"):
        TickBatch.from_arrays([0], [10], ["x"], [1.5])
    # the plain constructor refuses what from_arrays would have had to convert
    good = _batch(2)
    with pytest.raises(TypeError, match="from_arrays"):
        TickBatch(good.symbol.astype(np.int64), good.time_msc, good.bid, good.ask, good.last,
                  good.volume, good.volume_real, good.flags)


def test_from_arrays_copies_input() -> None:
    bid = np.array([1.0, 2.0])
    b = TickBatch.from_arrays([0, 0], [1, 2], bid, bid + 1)
    bid[0] = 99.0
    assert b.bid[0] == 1.0


def test_concat_take_sorted() -> None:
    a, b = _batch(3), _batch(2, t0=1_000)
    c = TickBatch.concat([a, b])
    assert len(c) == 5  # 3 + 2
    assert c.take(slice(0, 3)) == a
    assert c.take(np.arange(5) >= 3) == b
    s = c.sorted_by_time()
    assert s.time_msc.tolist() == [1_000, 1_250] + a.time_msc.tolist()
    assert TickBatch.concat([]) == TickBatch.empty()
    assert len(TickBatch.empty()) == 0


def test_equality_is_bitwise() -> None:
    a = TickBatch.from_arrays([0], [1], [np.nan], [1.0])
    assert a == TickBatch.from_arrays([0], [1], [np.nan], [1.0])
    assert TickBatch.from_arrays([0], [1], [0.0], [1.0]) != TickBatch.from_arrays(
        [0], [1], [-0.0], [1.0])
    assert a != "not a batch"


def test_encoding_is_compact_for_quote_only_batches() -> None:
    b = _batch(10)
    data = b.to_bytes()
    # header 16 + symbol 4*10 + time base 8 + offsets 4*10 + bid 8*10 + ask 8*10 + flags 4*10
    # = 16 + 40 + 8 + 40 + 80 + 80 + 40 = 304 bytes (last/volume/volume_real left out)
    assert len(data) == 304
    assert TickBatch.from_bytes(data) == b


def test_encoding_absolute_time_when_span_is_large() -> None:
    b = TickBatch.from_arrays([0, 1], [0, 2**40], [1.0, 2.0], [1.5, 2.5], volume=[3, 0])
    data = b.to_bytes()
    # header 16 + symbol 8 + time 16 + bid 16 + ask 16 + volume 16 + flags 8 = 96
    assert len(data) == 96
    assert TickBatch.from_bytes(data) == b


def test_from_bytes_rejects_garbage() -> None:
    data = _batch(3).to_bytes()
    with pytest.raises(ValueError, match="header"):
        TickBatch.from_bytes(data[:5])
    with pytest.raises(ValueError, match="not a TickBatch"):
        TickBatch.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="truncated"):
        TickBatch.from_bytes(data[:-1])
    with pytest.raises(ValueError, match="trailing"):
        TickBatch.from_bytes(data + b"\0")
    assert TickBatch.from_bytes(TickBatch.empty().to_bytes()) == TickBatch.empty()
    assert len(TickBatch.empty().to_bytes()) == HEADER


def _floats() -> st.SearchStrategy[float]:
    return st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def tick_batches(draw: st.DrawFn) -> TickBatch:
    n = draw(st.integers(0, 20))
    t0 = draw(st.integers(-(2**62), 2**62))
    span = draw(st.sampled_from([1, 1000, 2**32 - 1, 2**32, 2**40]))
    arr = hnp.arrays
    return TickBatch.from_arrays(
        symbol=draw(arr(np.int32, n)),
        time_msc=t0 + draw(arr(np.int64, n, elements=st.integers(0, span))),
        bid=draw(arr(np.float64, n, elements=_floats())),
        ask=draw(arr(np.float64, n, elements=_floats())),
        last=draw(arr(np.float64, n, elements=_floats())),
        volume=draw(arr(np.int64, n)),
        volume_real=draw(st.one_of(st.none(), arr(np.float64, n, elements=_floats()))),
        flags=draw(arr(np.int32, n)),
    )


@settings(max_examples=150, deadline=None)
@given(tick_batches())
def test_encoding_roundtrip_is_bit_exact(b: TickBatch) -> None:
    back = TickBatch.from_bytes(b.to_bytes())
    assert back == b
    for name in ("time_msc", "bid", "ask", "last", "volume", "volume_real", "flags", "symbol"):
        assert getattr(back, name).dtype == getattr(b, name).dtype
    # never larger than the plain 56 bytes a row (+ header and time base)
    assert len(b.to_bytes()) <= HEADER + 8 + 56 * len(b)


def test_flag_quote_constant() -> None:
    assert FLAG_QUOTE == 0x06  # TICK_FLAG_BID 0x02 | TICK_FLAG_ASK 0x04
