"""Price hygiene: which ticks may move prices, and the mark price built from them.

:class:`PriceHygiene` screens each :class:`~cfd.feed.ticks.TickBatch` in two passes:

1. vectorised checks, one reason per tick, first match wins: unknown symbol index, NaN, ±inf,
   zero or negative price (bid, ask, and ``last`` when the LAST flag is set), crossed quote
   (``bid > ask``; a locked quote ``bid == ask`` passes);
2. a sequential pass over the ticks that passed (a small ``@njit`` loop, :func:`_screen_nb`,
   with the plain-Python twin :func:`screen_reference` for tests), because a symbol's state
   moves tick by tick:

   * a tick older than the symbol's last accepted tick is rejected (``OUT_OF_ORDER``);
   * the first tick of a symbol sets its level;
   * a mid that jumps more than ``outlier_pct`` % from the confirmed level is *accepted as a
     price* but the symbol is flagged unconfirmed (reason ``OUTLIER_UNCONFIRMED``), with the
     jump's mid as the pending level. It is confirmed when ``confirm_ticks`` further ticks lie
     within ``outlier_pct`` % of the pending level, or when a second source agrees
     (:meth:`PriceHygiene.confirm_with`). A tick back within the band of the old level ends the
     episode (the jump was a spike); a tick far from both starts a new pending level.

Accepted ticks update the per-symbol last bid/ask/time, which are the default mark price.
:class:`MarkAggregator` gives the median bid and ask of several sources' latest fresh quotes
instead; the median of bids never exceeds the median of asks when each source's quote is
uncrossed (order statistics are monotone), so the aggregate is never crossed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numba import njit

from cfd.constants import TickFlag
from cfd.feed.ticks import TickBatch

__all__ = ["HygieneResult", "MarkAggregator", "PriceHygiene", "TickReject", "screen_reference"]

NO_TIME = np.iinfo(np.int64).min


class TickReject(IntEnum):
    """Why a tick did not (or not fully) count. OK and OUTLIER_UNCONFIRMED are accepted."""

    OK = 0
    NAN = 1
    INF = 2
    NONPOSITIVE = 3
    CROSSED = 4
    UNKNOWN_SYMBOL = 5
    OUTLIER_UNCONFIRMED = 6
    OUT_OF_ORDER = 7


_N_REASONS = len(TickReject)
_OK, _OUTLIER, _OOO = int(TickReject.OK), int(TickReject.OUTLIER_UNCONFIRMED), int(
    TickReject.OUT_OF_ORDER)


@dataclass(frozen=True, slots=True)
class HygieneResult:
    """Outcome of one :meth:`PriceHygiene.screen` call.

    ``accepted``/``reason`` have one entry per tick; ``confirmed``/``changed`` one per symbol
    (``changed``: at least one tick of the symbol was accepted in this batch).
    """

    accepted: np.ndarray
    reason: np.ndarray
    confirmed: np.ndarray
    changed: np.ndarray

    @property
    def n_accepted(self) -> int:
        return int(self.accepted.sum())

    @property
    def n_rejected(self) -> int:
        return int(self.accepted.size - self.accepted.sum())


def _step(state: tuple, s: int, t: int, b: float, a: float, frac: float, confirm: int) -> int:
    """One tick through the outlier state machine; shared by the njit loop and the reference.

    ``state`` is (bid, ask, time, has, ref_mid, confirmed, pending_mid, pending_count).
    Returns the reason code; the caller treats OK and OUTLIER_UNCONFIRMED as accepted.
    """
    st_bid, st_ask, st_time, st_has, st_ref, st_conf, st_pend, st_cnt = state
    m = 0.5 * (b + a)
    if st_has[s] and t < st_time[s]:
        return _OOO
    reason = _OK
    if not st_has[s]:
        st_ref[s] = m
        st_conf[s] = True
    elif st_conf[s]:
        if abs(m - st_ref[s]) > frac * st_ref[s] and confirm > 0:
            st_conf[s] = False
            st_pend[s] = m
            st_cnt[s] = 0
            reason = _OUTLIER
        else:
            st_ref[s] = m
    elif abs(m - st_pend[s]) <= frac * st_pend[s]:
        st_cnt[s] += 1
        if st_cnt[s] >= confirm:
            st_conf[s] = True
            st_ref[s] = m
        else:
            reason = _OUTLIER
    elif abs(m - st_ref[s]) <= frac * st_ref[s]:
        st_conf[s] = True  # back at the old level: the jump was a spike
        st_ref[s] = m
    else:
        st_pend[s] = m
        st_cnt[s] = 0
        reason = _OUTLIER
    st_bid[s] = b
    st_ask[s] = a
    st_time[s] = t
    st_has[s] = True
    return reason


_step_nb = njit(cache=True)(_step)


@njit(cache=True)
def _screen_nb(symbol, time_msc, bid, ask, frac, confirm, state, out_reason, out_changed):
    for i in range(symbol.shape[0]):
        if out_reason[i] != 0:
            continue
        s = symbol[i]
        r = _step_nb(state, s, time_msc[i], bid[i], ask[i], frac, confirm)
        out_reason[i] = r
        if r != _OOO:
            out_changed[s] = True


def screen_reference(symbol, time_msc, bid, ask, frac, confirm, state, out_reason, out_changed):
    """Plain-Python twin of :func:`_screen_nb` (same arguments, same effects)."""
    for i in range(len(symbol)):
        if out_reason[i] != 0:
            continue
        s = int(symbol[i])
        r = _step(state, s, int(time_msc[i]), float(bid[i]), float(ask[i]), frac, confirm)
        out_reason[i] = r
        if r != _OOO:
            out_changed[s] = True


def prescreen(batch: TickBatch, n_symbols: int) -> np.ndarray:
    """Pass 1: int8 reason per tick from the state-free checks (0 where the tick passes)."""
    sym, bid, ask, last = batch.symbol, batch.bid, batch.ask, batch.last
    has_last = (batch.flags & int(TickFlag.LAST)) != 0
    last_eff = np.where(has_last, last, 1.0)
    reason = np.zeros(len(batch), dtype=np.int8)
    with np.errstate(invalid="ignore"):
        reason[bid > ask] = TickReject.CROSSED
        nonpos = ~((bid > 0) & (ask > 0) & (last_eff > 0))
        reason[nonpos] = TickReject.NONPOSITIVE
        reason[np.isinf(bid) | np.isinf(ask) | np.isinf(last_eff)] = TickReject.INF
        reason[np.isnan(bid) | np.isnan(ask) | np.isnan(last_eff)] = TickReject.NAN
    reason[(sym < 0) | (sym >= n_symbols)] = TickReject.UNKNOWN_SYMBOL
    return reason


class PriceHygiene:
    """Per-symbol screening state and the last accepted quote (the default mark price)."""

    def __init__(
        self,
        n_symbols: int,
        outlier_pct: float = 10.0,
        stale_after_ms: int = 60_000,
        confirm_ticks: int = 2,
        use_jit: bool = True,
    ) -> None:
        if n_symbols < 0 or outlier_pct <= 0 or stale_after_ms <= 0 or confirm_ticks < 0:
            raise ValueError("n_symbols, confirm_ticks >= 0; outlier_pct, stale_after_ms > 0")
        self.n_symbols = int(n_symbols)
        self.outlier_pct = float(outlier_pct)
        self.stale_after_ms = int(stale_after_ms)
        self.confirm_ticks = int(confirm_ticks)
        self._screen = _screen_nb if use_jit else screen_reference
        n = self.n_symbols
        self._bid = np.full(n, np.nan)
        self._ask = np.full(n, np.nan)
        self._time = np.full(n, NO_TIME, dtype=np.int64)
        self._has = np.zeros(n, dtype=np.bool_)
        self._ref_mid = np.full(n, np.nan)
        self._confirmed = np.ones(n, dtype=np.bool_)
        self._pending_mid = np.full(n, np.nan)
        self._pending_count = np.zeros(n, dtype=np.int64)
        self.rejected_counts = np.zeros((n, _N_REASONS), dtype=np.int64)  # by symbol, reason
        self.accepted_counts = np.zeros(n, dtype=np.int64)
        self.unknown_symbol_count = 0

    def _state(self) -> tuple:
        return (self._bid, self._ask, self._time, self._has, self._ref_mid, self._confirmed,
                self._pending_mid, self._pending_count)

    # -- commands -------------------------------------------------------------------------

    def screen(self, batch: TickBatch) -> HygieneResult:
        """Screen a batch in order, updating the per-symbol state and counters."""
        reason = prescreen(batch, self.n_symbols)
        changed = np.zeros(self.n_symbols, dtype=np.bool_)
        if len(batch):
            self._screen(batch.symbol, batch.time_msc, batch.bid, batch.ask,
                         self.outlier_pct / 100.0, self.confirm_ticks, self._state(), reason,
                         changed)
        accepted = (reason == _OK) | (reason == _OUTLIER)
        known = reason != TickReject.UNKNOWN_SYMBOL
        self.unknown_symbol_count += int((~known).sum())
        sym = batch.symbol[known].astype(np.int64)
        self.rejected_counts += np.bincount(
            sym * _N_REASONS + reason[known], minlength=self.n_symbols * _N_REASONS
        ).reshape(self.n_symbols, _N_REASONS)
        self.accepted_counts += np.bincount(
            batch.symbol[accepted], minlength=self.n_symbols).astype(np.int64)
        return HygieneResult(accepted, reason, self._confirmed.copy(), changed)

    def confirm_with(self, symbol: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
        """A second source's quotes: confirm pending outliers whose level they agree with.

        Returns, per given quote, whether it confirmed its symbol.
        """
        s = np.asarray(symbol, dtype=np.int64)
        m = 0.5 * (np.asarray(bid, dtype=np.float64) + np.asarray(ask, dtype=np.float64))
        ok = (s >= 0) & (s < self.n_symbols)
        sc = np.where(ok, s, 0)
        pend = self._pending_mid[sc]
        with np.errstate(invalid="ignore"):
            agree = ok & ~self._confirmed[sc] & (
                np.abs(m - pend) <= self.outlier_pct / 100.0 * pend)
        hit = sc[agree]
        self._confirmed[hit] = True
        self._ref_mid[hit] = 0.5 * (self._bid[hit] + self._ask[hit])
        return agree

    # -- queries --------------------------------------------------------------------------

    @property
    def bid(self) -> np.ndarray:
        """Last accepted bid per symbol (NaN before the first tick); read-only view."""
        v = self._bid.view()
        v.setflags(write=False)
        return v

    @property
    def ask(self) -> np.ndarray:
        v = self._ask.view()
        v.setflags(write=False)
        return v

    @property
    def time_msc(self) -> np.ndarray:
        v = self._time.view()
        v.setflags(write=False)
        return v

    @property
    def confirmed(self) -> np.ndarray:
        return self._confirmed.copy()

    def mark(self) -> tuple[np.ndarray, np.ndarray]:
        """Mark price per symbol: copies of the last accepted bid and ask."""
        return self._bid.copy(), self._ask.copy()

    def stale(self, now_msc: int) -> np.ndarray:
        """Per symbol: no accepted tick in the last ``stale_after_ms`` (or none ever)."""
        return ~self._has | (self._time < int(now_msc) - self.stale_after_ms)

    def stats(self) -> dict[str, object]:
        """Counters: accepted ticks, rejected ticks by reason name, unconfirmed symbols."""
        by_reason = self.rejected_counts.sum(axis=0)
        rejected = {r.name: int(by_reason[r]) for r in TickReject
                    if r not in (TickReject.OK, TickReject.OUTLIER_UNCONFIRMED)}
        rejected["UNKNOWN_SYMBOL"] = self.unknown_symbol_count
        return {
            "accepted": int(self.accepted_counts.sum()),
            "accepted_unconfirmed": int(by_reason[TickReject.OUTLIER_UNCONFIRMED]),
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "unconfirmed_symbols": int((~self._confirmed).sum()),
        }

    def rescale(self, sym: int, factor: float, bid: float, ask: float) -> None:
        """A split: the symbol's prices are multiplied by ``factor``; the last quote becomes
        ``bid`` / ``ask`` (already on the grid) and the reference follows, confirmed, so
        the first tick after the split is judged against the new level."""
        self._bid[sym], self._ask[sym] = bid, ask
        self._ref_mid[sym] = 0.5 * (bid + ask) if self._has[sym] else np.nan
        self._pending_mid[sym] = np.nan
        self._pending_count[sym] = 0
        self._confirmed[sym] = True
        del factor  # the quote given is the rescaled one

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the whole state (for engine snapshots); see :meth:`restore`."""
        names = ("bid", "ask", "time", "has", "ref_mid", "confirmed", "pending_mid",
                 "pending_count")
        snap = {n: a.copy() for n, a in zip(names, self._state(), strict=True)}
        snap["rejected_counts"] = self.rejected_counts.copy()
        snap["accepted_counts"] = self.accepted_counts.copy()
        snap["unknown_symbol_count"] = np.array(self.unknown_symbol_count)
        return snap

    def restore(self, snap: dict[str, np.ndarray]) -> None:
        for name in ("bid", "ask", "time", "has", "ref_mid", "confirmed", "pending_mid",
                     "pending_count"):
            getattr(self, "_" + name)[:] = snap[name]
        self.rejected_counts[:] = snap["rejected_counts"]
        self.accepted_counts[:] = snap["accepted_counts"]
        self.unknown_symbol_count = int(snap["unknown_symbol_count"])


class MarkAggregator:
    """Median bid/ask over several sources' latest fresh quotes, per symbol."""

    def __init__(self, n_symbols: int, n_sources: int, stale_after_ms: int = 60_000) -> None:
        if n_symbols < 0 or n_sources < 1 or stale_after_ms <= 0:
            raise ValueError("need n_symbols >= 0, n_sources >= 1, stale_after_ms > 0")
        self.n_symbols, self.n_sources = int(n_symbols), int(n_sources)
        self.stale_after_ms = int(stale_after_ms)
        self.bid = np.full((n_sources, n_symbols), np.nan)
        self.ask = np.full((n_sources, n_symbols), np.nan)
        self.time_msc = np.full((n_sources, n_symbols), NO_TIME, dtype=np.int64)

    def update(self, source: int, batch: TickBatch) -> None:
        """Take each symbol's latest valid quote in ``batch`` (if newer than the stored one).

        Invalid ticks (the state-free checks of :func:`prescreen`) are ignored.
        """
        if not 0 <= source < self.n_sources:
            raise ValueError(f"source {source} outside 0..{self.n_sources - 1}")
        ok = prescreen(batch, self.n_symbols) == 0
        sym, t = batch.symbol[ok], batch.time_msc[ok]
        if sym.size == 0:
            return
        order = np.lexsort((t, sym))  # by symbol, then time; input order breaks ties
        sym_sorted = sym[order]
        last = np.r_[sym_sorted[1:] != sym_sorted[:-1], True]
        idx = np.flatnonzero(ok)[order[last]]
        s = batch.symbol[idx]
        newer = batch.time_msc[idx] >= self.time_msc[source, s]
        s, idx = s[newer], idx[newer]
        self.bid[source, s] = batch.bid[idx]
        self.ask[source, s] = batch.ask[idx]
        self.time_msc[source, s] = batch.time_msc[idx]

    def mark(self, now_msc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(bid, ask, n_fresh)`` per symbol; NaN where no source is fresh."""
        fresh = self.time_msc >= int(now_msc) - self.stale_after_ms
        b = np.where(fresh, self.bid, np.nan)
        a = np.where(fresh, self.ask, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
            return np.nanmedian(b, axis=0), np.nanmedian(a, axis=0), fresh.sum(axis=0)
