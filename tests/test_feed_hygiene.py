"""Price hygiene: reject reasons, outlier confirmation, staleness, mark aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cfd.constants import TickFlag
from cfd.feed.hygiene import MarkAggregator, PriceHygiene, TickReject
from cfd.feed.ticks import TickBatch

R = TickReject
nan, inf = np.nan, np.inf


def ticks(sym, bid, ask, t=None, **kw) -> TickBatch:
    t = list(range(1, len(sym) + 1)) if t is None else t
    return TickBatch.from_arrays(sym, t, bid, ask, **kw)


def test_state_free_rejects_one_reason_each() -> None:
    h = PriceHygiene(2)
    b = ticks(
        [0, 0, 0, 0, 0, 0, 2, -1, 1, 1],
        [nan, inf, 0.0, -1.0, 10.1, 10.0, 10.0, 10.0, 10.0, nan],
        [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.1, 10.1, 10.0, -inf],
    )
    r = h.screen(b)
    assert r.reason.tolist() == [
        R.NAN, R.INF, R.NONPOSITIVE, R.NONPOSITIVE, R.CROSSED,  # 10.1 > 10.0 is crossed
        R.OK,  # bid == ask: locked, not crossed
        R.UNKNOWN_SYMBOL, R.UNKNOWN_SYMBOL,  # index 2 with n_symbols=2, and -1
        R.OK,
        R.NAN,  # NaN outranks -inf
    ]
    assert r.accepted.tolist() == [False] * 5 + [True, False, False, True, False]
    assert r.changed.tolist() == [True, True]
    s = h.stats()
    # rejected: NAN 2, INF 1, NONPOSITIVE 2, CROSSED 1, UNKNOWN_SYMBOL 2 = 8; accepted 2
    assert s["rejected"] == {"NAN": 2, "INF": 1, "NONPOSITIVE": 2, "CROSSED": 1,
                             "UNKNOWN_SYMBOL": 2, "OUT_OF_ORDER": 0}
    assert s["rejected_total"] == 8 and s["accepted"] == 2
    assert h.rejected_counts[0, R.NONPOSITIVE] == 2 and h.rejected_counts[1, R.NAN] == 1
    assert r.n_accepted == 2 and r.n_rejected == 8


def test_last_is_checked_only_when_flagged() -> None:
    h = PriceHygiene(1)
    last_flag = int(TickFlag.BID | TickFlag.ASK | TickFlag.LAST)
    quote = int(TickFlag.BID | TickFlag.ASK)
    r = h.screen(ticks([0, 0, 0], [10.0] * 3, [10.1] * 3, last=[nan, 0.0, -5.0],
                       flags=[last_flag, quote, last_flag]))
    assert r.reason.tolist() == [R.NAN, R.OK, R.NONPOSITIVE]


def test_outlier_accepted_unconfirmed_then_confirmed_by_ticks() -> None:
    h = PriceHygiene(1, outlier_pct=10.0, confirm_ticks=2)
    # mids: 100.5; 120.5 (+19.9% > 10%); 121.5 and 122.5 within 10% of 120.5
    r = h.screen(ticks([0, 0, 0, 0], [100, 120, 121, 122], [101, 121, 122, 123]))
    assert r.reason.tolist() == [R.OK, R.OUTLIER_UNCONFIRMED, R.OUTLIER_UNCONFIRMED, R.OK]
    assert r.accepted.all() and r.confirmed.tolist() == [True]
    assert h.bid.tolist() == [122.0] and h.ask.tolist() == [123.0]
    assert h.stats()["accepted_unconfirmed"] == 2


def test_outlier_stays_unconfirmed_across_batches() -> None:
    h = PriceHygiene(1, outlier_pct=5.0, confirm_ticks=2)
    h.screen(ticks([0], [100.0], [100.0]))
    r = h.screen(ticks([0], [90.0], [90.0], t=[2]))  # -10% > 5%
    assert r.confirmed.tolist() == [False] and r.accepted.tolist() == [True]
    assert h.bid.tolist() == [90.0]  # accepted as the price
    assert h.stats()["unconfirmed_symbols"] == 1
    r = h.screen(ticks([0], [91.0], [91.0], t=[3]))  # 1st agreeing tick: |91-90| <= 4.5
    assert r.confirmed.tolist() == [False]
    r = h.screen(ticks([0], [89.0], [89.0], t=[4]))  # 2nd agreeing tick: |89-90| <= 4.5
    assert r.confirmed.tolist() == [True] and r.reason.tolist() == [R.OK]


def test_spike_back_to_old_level_and_third_level() -> None:
    h = PriceHygiene(1, outlier_pct=10.0, confirm_ticks=2)
    r = h.screen(ticks([0] * 5, [100, 150, 101, 150, 200], [100, 150, 101, 150, 200]))
    assert r.reason.tolist() == [
        R.OK,
        R.OUTLIER_UNCONFIRMED,  # 150 vs 100: +50%
        R.OK,  # 101 within 10% of the old 100: the spike is over, confirmed at 101
        R.OUTLIER_UNCONFIRMED,  # 150 vs 101 again
        R.OUTLIER_UNCONFIRMED,  # 200: 33% from 150 and 98% from 101 -> new pending level
    ]
    r = h.screen(ticks([0, 0], [199, 201], [199, 201], t=[6, 7]))
    assert r.reason.tolist() == [R.OUTLIER_UNCONFIRMED, R.OK]  # 2 ticks agree with 200


def test_confirm_with_second_source() -> None:
    h = PriceHygiene(2, outlier_pct=10.0)
    h.screen(ticks([0, 1, 0], [100, 50, 130], [100, 50, 130]))  # symbol 0 jumps +30%
    assert h.confirmed.tolist() == [False, True]
    # a far quote (mid 100.5) does not confirm; an agreeing one (mid 128.5) does;
    # symbol 1 is not pending, symbol 9 is unknown: nothing to confirm
    got = h.confirm_with(np.array([0, 0, 1, 9]), np.array([100.0, 128.0, 50.0, 1.0]),
                         np.array([101.0, 129.0, 50.0, 1.0]))
    assert got.tolist() == [False, True, False, False]
    assert h.confirmed.tolist() == [True, True]
    # confirmed at 130: a tick at 135 (+3.8%) is plain OK
    assert h.screen(ticks([0], [135], [135], t=[9])).reason.tolist() == [R.OK]


def test_confirm_ticks_zero_never_flags() -> None:
    h = PriceHygiene(1, confirm_ticks=0)
    assert h.screen(ticks([0, 0], [100, 300], [100, 300])).reason.tolist() == [R.OK, R.OK]


def test_out_of_order_and_stale() -> None:
    h = PriceHygiene(2, stale_after_ms=1_000)
    r = h.screen(ticks([0, 0, 0], [10, 11, 10.5], [10, 11, 10.5], t=[5_000, 4_999, 5_000]))
    assert r.reason.tolist() == [R.OK, R.OUT_OF_ORDER, R.OK]  # equal times are fine
    assert h.bid.tolist()[0] == 10.5
    assert h.stale(6_000).tolist() == [False, True]  # 6000 - 5000 = 1000, not > 1000
    assert h.stale(6_001).tolist() == [True, True]  # 1001 > 1000; symbol 1 never ticked
    assert h.time_msc.tolist() == [5_000, np.iinfo(np.int64).min]


def test_mark_and_views_are_safe() -> None:
    h = PriceHygiene(2)
    h.screen(ticks([1], [5.0], [5.5]))
    b, a = h.mark()
    assert np.isnan(b[0]) and b[1] == 5.0 and a[1] == 5.5
    b[1] = 0.0
    assert h.bid[1] == 5.0
    with pytest.raises(ValueError):
        h.bid[1] = 1.0


def test_snapshot_restore_continues_identically() -> None:
    a = PriceHygiene(2)
    a.screen(ticks([0, 1, 0], [100, 7, 140], [100, 7, 140]))
    b = PriceHygiene(2)
    b.restore(a.snapshot())
    nxt = ticks([0, 1, 0], [141, 7.1, 142], [141, 7.1, 142], t=[10, 11, 12])
    ra, rb = a.screen(nxt), b.screen(nxt)
    assert ra.reason.tolist() == rb.reason.tolist() == [R.OUTLIER_UNCONFIRMED, R.OK, R.OK]
    assert a.stats() == b.stats()


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        PriceHygiene(1, outlier_pct=0.0)
    with pytest.raises(ValueError):
        MarkAggregator(1, 0)


# -- properties --------------------------------------------------------------------------

_price = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1.0, 100.0, 100.5, 111.0, 130.0, 90.0]),
)


@st.composite
def raw_batches(draw: st.DrawFn, n_symbols: int = 3) -> TickBatch:
    n = draw(st.integers(0, 30))
    sym = draw(hnp.arrays(np.int32, n, elements=st.integers(-1, n_symbols)))
    t = np.sort(draw(hnp.arrays(np.int64, n, elements=st.integers(0, 100))))
    if draw(st.booleans()):
        t = t[::-1].copy()  # also time going backwards
    bid = draw(hnp.arrays(np.float64, n, elements=_price))
    ask = draw(hnp.arrays(np.float64, n, elements=_price))
    return TickBatch.from_arrays(sym, t, bid, ask)


@settings(max_examples=200, deadline=None)
@given(st.lists(raw_batches(), min_size=1, max_size=4), st.sampled_from([0, 1, 2, 3]))
def test_never_accepts_a_bad_quote_and_jit_equals_reference(batches, confirm) -> None:
    jit = PriceHygiene(3, outlier_pct=10.0, confirm_ticks=confirm)
    ref = PriceHygiene(3, outlier_pct=10.0, confirm_ticks=confirm, use_jit=False)
    for b in batches:
        r = jit.screen(b)
        r_ref = ref.screen(b)
        assert r.reason.tolist() == r_ref.reason.tolist()
        assert r.confirmed.tolist() == r_ref.confirmed.tolist()
        acc = b.take(r.accepted)
        assert np.all(np.isfinite(acc.bid)) and np.all(np.isfinite(acc.ask))
        assert np.all(acc.bid > 0) and np.all(acc.bid <= acc.ask)
        assert np.all((acc.symbol >= 0) & (acc.symbol < 3))
        has = jit.time_msc != np.iinfo(np.int64).min
        assert np.all(jit.bid[has] > 0) and np.all(jit.bid[has] <= jit.ask[has])
        assert r.changed.tolist() == [bool(np.any(acc.symbol == s)) for s in range(3)]
    assert jit.stats() == ref.stats()
    assert jit.stats()["accepted"] + jit.stats()["rejected_total"] == sum(map(len, batches))


# -- mark aggregation ----------------------------------------------------------------------


def test_mark_aggregator_median_of_fresh_sources() -> None:
    m = MarkAggregator(2, 3, stale_after_ms=1_000)
    m.update(0, ticks([0, 0, 1], [100.0, 101.0, 50.0], [100.2, 101.2, 50.1], t=[10, 20, 10]))
    m.update(1, ticks([0], [102.0], [102.4], t=[15]))
    m.update(2, ticks([0, 0], [99.0, 98.0], [99.1, 98.1], t=[30, 5]))  # t=5 is older: ignored
    bid, ask, n = m.mark(now_msc=30)
    # symbol 0: bids {101.0, 102.0, 99.0} -> median 101.0; asks {101.2, 102.4, 99.1} -> 101.2
    assert bid[0] == 101.0 and ask[0] == 101.2 and n[0] == 3
    assert bid[1] == 50.0 and ask[1] == 50.1 and n[1] == 1
    bid, ask, n = m.mark(now_msc=1_021)  # 1021 - 20 = 1001 > 1000: sources 0 and 1 are stale
    assert bid[0] == 99.0 and n.tolist() == [1, 0] and np.isnan(bid[1])
    m.update(1, ticks([0], [100.0], [100.3], t=[1_021]))
    bid, ask, _ = m.mark(now_msc=1_021)
    # two fresh sources: (99.0 + 100.0) / 2 = 99.5 and (99.1 + 100.3) / 2 = 99.7
    assert bid[0] == pytest.approx(99.5) and ask[0] == pytest.approx(99.7)
    with pytest.raises(ValueError):
        m.update(3, ticks([0], [1.0], [1.0]))


def test_mark_aggregator_ignores_bad_ticks() -> None:
    m = MarkAggregator(1, 1)
    m.update(0, ticks([0, 0, 0, 5], [10.0, nan, 12.0, 1.0], [10.5, 11.0, 11.0, 1.0]))
    bid, ask, _ = m.mark(now_msc=4)
    assert bid[0] == 10.0 and ask[0] == 10.5  # NaN, crossed and unknown-symbol ticks ignored


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float64, (5, 4), elements=st.floats(0.01, 1e6)),
       hnp.arrays(np.float64, (5, 4), elements=st.floats(0.0, 1e3)),
       hnp.arrays(np.int64, (5, 4), elements=st.integers(0, 2_000)))
def test_aggregate_mark_is_never_crossed(bid, spread, t) -> None:
    m = MarkAggregator(4, 5, stale_after_ms=1_000)
    for src in range(5):
        m.update(src, TickBatch.from_arrays(np.arange(4), t[src], bid[src], bid[src] + spread[src]))
    b, a, n = m.mark(now_msc=2_000)
    fresh = n > 0
    assert np.all(b[fresh] <= a[fresh])
    assert np.all(np.isnan(b[~fresh]))
    assert n.tolist() == (t >= 1_000).sum(axis=0).tolist()
