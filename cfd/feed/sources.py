"""Tick sources: synthetic prices, replays of recorded ticks or daily bars, and a push queue.

Every source hands out :class:`~cfd.feed.ticks.TickBatch` objects in time order;
:func:`paced` turns any stream of batches into one delivered at a factor of real time.

* :class:`SyntheticFeed` -- seeded, reproducible prices: a market factor shared by all symbols
  plus idiosyncratic GBM noise, Poisson jumps, and gaps when a session reopens.
* :class:`ReplayFeed` -- ticks from a CSV (``time`` or ``time_msc``, ``symbol``, ``bid``,
  ``ask`` [, ``last``, ``volume``]), or daily OHLC bars turned into four ticks a day.
* :class:`PushSource` -- a thread-safe queue the API posts ticks into; the engine drains it.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from cfd.constants import TickFlag
from cfd.feed.ticks import FLAG_QUOTE, TickBatch
from cfd.instruments.sessions import NEW_YORK, Session, SessionCalendar, default_calendar

__all__ = ["MS_PER_YEAR", "PushSource", "ReplayFeed", "SyntheticFeed", "paced"]

MS_PER_YEAR = 365.25 * 86_400_000  # volatility is quoted per calendar year
_NO_TIME = np.iinfo(np.int64).min
# Monday 2026-01-05 09:30 New York: the default start of a synthetic feed
_DEFAULT_START = int(dt.datetime(2026, 1, 5, 9, 30, tzinfo=NEW_YORK).timestamp() * 1000)


def paced(
    batches: Iterable[TickBatch],
    speed: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[TickBatch]:
    """Yield each batch once ``speed`` x real time has reached its last tick.

    ``speed=None`` (or 0) yields as fast as possible; ``speed=60`` plays a minute per second.
    Feed time starts at the first tick of the first non-empty batch.
    """
    start: tuple[float, int] | None = None
    for b in batches:
        if speed and len(b):
            if start is None:
                start = (clock(), int(b.time_msc.min()))
            due = start[0] + (int(b.time_msc.max()) - start[1]) / 1000.0 / speed
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield b


def _on_grid(price: np.ndarray, scale: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bid and ask on the point grid ``1/scale``: bid >= 1 point, ask >= bid."""
    kb = np.maximum(np.rint((price - spread / 2) * scale), 1.0)
    ka = np.maximum(np.rint((price + spread / 2) * scale), kb)
    return kb / scale, ka / scale


class SyntheticFeed:
    """Reproducible synthetic quotes for a set of symbols.

    Each clock step (``tick_interval_ms``) quotes every symbol whose session is open; when
    every symbol is closed the clock jumps to the next session open. For a symbol quoted after
    ``elapsed`` ms, the log mid moves by

        ``-sigma**2/2 * tau + sigma * sqrt(tau) * (b * M + sqrt(1 - b**2) * e) + jump``,

    with ``tau`` = elapsed in years, ``M`` the market factor (one draw a step, shared),
    ``b = sqrt(market_corr)`` (so two symbols' returns correlate by
    ``sqrt(corr_i * corr_j)``), and ``jump ~ N(0, jump_size**2)`` with probability
    ``jump_prob`` a tick. At the first tick after a closed period ``tau`` counts the closed
    time with variance weight ``gap_vol_mult**2``, and the jump probability and size are
    ``gap_jump_prob`` and ``gap_jump_size``: the overnight and weekend gaps.

    Randomness comes from three streams spawned from ``seed`` and consumed a fixed amount per
    step, so the ticks depend on the seed and the number of steps only, not on batch sizes.
    Quotes are ``mid -/+ spread/2`` rounded to each symbol's point (``10**-digits``).
    """

    def __init__(
        self,
        symbol_names: Sequence[str],
        start_prices: Sequence[float] | np.ndarray,
        seed: int = 0,
        vol_annual: float | Sequence[float] = 0.3,
        jump_prob: float | Sequence[float] = 0.0,
        jump_size: float | Sequence[float] = 0.05,
        market_corr: float | Sequence[float] = 0.3,
        spread_bps: float | Sequence[float] = 5.0,
        tick_interval_ms: int = 1_000,
        digits: int | Sequence[int] = 2,
        sessions: Sequence[int] | np.ndarray | None = None,
        start_msc: int = _DEFAULT_START,
        gap_vol_mult: float = 1.0,
        gap_jump_prob: float | Sequence[float] = 0.0,
        gap_jump_size: float | Sequence[float] = 0.05,
        symbol_index: Sequence[int] | np.ndarray | None = None,
        calendar: SessionCalendar | None = None,
    ) -> None:
        n = len(symbol_names)
        self.symbol_names = list(symbol_names)
        self.n = n

        def per_symbol(x: object, dtype: type = np.float64) -> np.ndarray:
            a = np.broadcast_to(np.asarray(x, dtype=dtype), (n,)).copy()
            return a

        start = per_symbol(start_prices)
        self.vol = per_symbol(vol_annual)
        self.jump_prob = per_symbol(jump_prob)
        self.jump_size = per_symbol(jump_size)
        corr = per_symbol(market_corr)
        self.spread_bps = per_symbol(spread_bps)
        self.digits = per_symbol(digits, np.int64)
        self.gap_jump_prob = per_symbol(gap_jump_prob)
        self.gap_jump_size = per_symbol(gap_jump_size)
        if not (np.all(start > 0) and np.all(np.isfinite(start))):
            raise ValueError("start prices must be finite and positive")
        if np.any(self.vol < 0) or np.any((corr < 0) | (corr > 1)) or tick_interval_ms <= 0:
            raise ValueError("need vol_annual >= 0, 0 <= market_corr <= 1, tick_interval_ms > 0")
        if np.any((self.digits < 0) | (self.digits > 10)):
            raise ValueError("digits must be within 0..10")
        self.beta = np.sqrt(corr)
        self.idio = np.sqrt(1.0 - corr)
        self.scale = 10.0 ** self.digits
        self.dt = int(tick_interval_ms)
        self.gap_vol_mult = float(gap_vol_mult)
        self.kinds = (np.full(n, Session.ALWAYS, dtype=np.int8) if sessions is None
                      else np.asarray(sessions, dtype=np.int8).reshape(n))
        self.symbol_index = (np.arange(n, dtype=np.int32) if symbol_index is None
                             else np.asarray(symbol_index, dtype=np.int32).reshape(n))
        self.calendar = calendar or default_calendar()
        self._always = bool(np.all(self.kinds == Session.ALWAYS))
        ss = np.random.SeedSequence(seed)
        self._rng_norm, self._rng_unif, self._rng_jump = (
            np.random.Generator(np.random.PCG64(s)) for s in ss.spawn(3))
        self._log_mid = np.log(start)
        self._clock = int(start_msc) - self.dt  # the first step lands on start_msc
        self._last_t = np.full(n, int(start_msc) - self.dt, dtype=np.int64)
        self._prev_open = self._open(np.array([[int(start_msc)]]))[0]

    @property
    def time_msc(self) -> int:
        """Time of the last step taken."""
        return self._clock

    def mid(self) -> np.ndarray:
        """Current unrounded mid per symbol."""
        return np.exp(self._log_mid)

    def _open(self, times: np.ndarray) -> np.ndarray:
        if self._always:
            return np.ones((times.shape[0], self.n), dtype=bool)
        return self.calendar.open_mask(self.kinds, times)

    def next_batch(self, n_ticks: int) -> TickBatch:
        """Advance ``n_ticks`` clock steps (steps with every market closed are skipped)."""
        parts = []
        remaining = int(n_ticks)
        while remaining > 0:
            times = self._clock + self.dt * np.arange(1, remaining + 1, dtype=np.int64)
            open_ = self._open(times[:, None])
            any_open = open_.any(axis=1)
            if not any_open[0]:  # everything closed: jump to the next open
                t = int(times[0])
                nxt = min(self.calendar.next_open(int(k), t) for k in np.unique(self.kinds))
                self._clock = nxt - self.dt
                self._prev_open[:] = False
                continue
            if not any_open.all():
                k = int(np.argmin(any_open))
                times, open_ = times[:k], open_[:k]
            parts.append(self._emit(times, open_))
            remaining -= times.shape[0]
        return TickBatch.concat(parts)

    def _emit(self, times: np.ndarray, open_: np.ndarray) -> TickBatch:
        m, n = open_.shape
        normals = self._rng_norm.standard_normal((m, n + 1))
        unif = self._rng_unif.random((m, n))
        jumps = self._rng_jump.standard_normal((m, n))
        z = self.beta * normals[:, :1] + self.idio * normals[:, 1:]

        t = np.broadcast_to(times[:, None], (m, n))
        seen = np.maximum.accumulate(np.where(open_, t, _NO_TIME), axis=0)
        prev_t = np.maximum(np.vstack([self._last_t, seen[:-1]]), self._last_t)
        prev_open = np.vstack([self._prev_open, open_[:-1]])
        reopen = open_ & ~prev_open
        elapsed = (t - prev_t).astype(np.float64)
        tau_ms = np.where(reopen, self.dt + self.gap_vol_mult**2 * np.maximum(elapsed - self.dt, 0),
                          elapsed)
        tau = np.where(open_, tau_ms, 0.0) / MS_PER_YEAR
        p_jump = np.where(reopen, self.gap_jump_prob, self.jump_prob)
        s_jump = np.where(reopen, self.gap_jump_size, self.jump_size)
        ret = -0.5 * self.vol**2 * tau + self.vol * np.sqrt(tau) * z
        ret += np.where(unif < p_jump, s_jump * jumps, 0.0)
        log_mid = self._log_mid + np.cumsum(np.where(open_, ret, 0.0), axis=0)

        self._log_mid = log_mid[-1].copy()
        self._last_t = np.maximum(seen[-1], self._last_t)
        self._prev_open = open_[-1].copy()
        self._clock = int(times[-1])

        rows, cols = np.nonzero(open_)  # time order, then symbol order
        mid = np.exp(log_mid[rows, cols])
        scale = self.scale[cols]
        bid, ask = _on_grid(mid, scale, mid * self.spread_bps[cols] / 1e4)
        return TickBatch.from_arrays(
            symbol=self.symbol_index[cols], time_msc=times[rows], bid=bid, ask=ask,
            flags=np.full(rows.shape[0], FLAG_QUOTE, dtype=np.int32),
        )

    def batches(self, batch_ticks: int = 1_000, n_batches: int | None = None,
                speed: float | None = None) -> Iterator[TickBatch]:
        """``n_batches`` batches (forever if None), paced at ``speed`` x real time if given."""
        def gen() -> Iterator[TickBatch]:
            i = 0
            while n_batches is None or i < n_batches:
                yield self.next_batch(batch_ticks)
                i += 1
        return paced(gen(), speed)

    def run(self, sink: Callable[[TickBatch], object], n_batches: int,
            batch_ticks: int = 1_000) -> int:
        """Feed ``n_batches`` batches to ``sink`` as fast as possible; returns the tick count."""
        total = 0
        for b in self.batches(batch_ticks, n_batches):
            sink(b)
            total += len(b)
        return total


# ---------------------------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------------------------


def _parse_time_msc(text: str) -> int:
    """``time`` column: epoch seconds (int or float) or an ISO 8601 datetime (naive = UTC)."""
    try:
        return round(float(text) * 1000)
    except ValueError:
        d = dt.datetime.fromisoformat(text.strip())
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        return round(d.timestamp() * 1000)


class ReplayFeed:
    """Replays recorded ticks in time order (ties keep file order)."""

    def __init__(self, ticks: TickBatch) -> None:
        self.ticks = ticks.sorted_by_time()
        self._pos = 0

    def __len__(self) -> int:
        return len(self.ticks)

    @property
    def remaining(self) -> int:
        return len(self.ticks) - self._pos

    @property
    def exhausted(self) -> bool:
        return self._pos >= len(self.ticks)

    def rewind(self) -> None:
        self._pos = 0

    def next_batch(self, n_ticks: int) -> TickBatch:
        """The next ``n_ticks`` ticks (fewer at the end; empty when exhausted)."""
        b = self.ticks.take(slice(self._pos, self._pos + int(n_ticks)))
        self._pos += len(b)
        return b

    def batches(self, batch_ticks: int = 1_000, speed: float | None = None,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[TickBatch]:
        """The rest of the replay in batches, at ``speed`` x real time (None: flat out)."""
        def gen() -> Iterator[TickBatch]:
            while not self.exhausted:
                yield self.next_batch(batch_ticks)
        return paced(gen(), speed, clock, sleep)

    @staticmethod
    def merge(feeds: Iterable[ReplayFeed]) -> ReplayFeed:
        return ReplayFeed(TickBatch.concat([f.ticks for f in feeds]))

    @classmethod
    def from_tick_csv(cls, path: str | Path,
                      symbols: Mapping[str, int] | Sequence[str] | None = None) -> ReplayFeed:
        """Ticks from a CSV with a header: ``time_msc`` or ``time``, ``symbol``, ``bid``,
        ``ask``, optional ``last``, ``volume``, ``volume_real``, ``flags``.

        ``symbols`` maps names to indices (a sequence means name -> position); without it the
        ``symbol`` column must hold integer indices.
        """
        if symbols is not None and not isinstance(symbols, Mapping):
            symbols = {name: i for i, name in enumerate(symbols)}
        cols: dict[str, list] = {k: [] for k in ("symbol", "time_msc", "bid", "ask", "last",
                                                 "volume", "volume_real", "flags")}
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = {h.strip().lower(): h for h in reader.fieldnames or []}
            tcol = header.get("time_msc") or header.get("time")
            missing = [c for c in ("symbol", "bid", "ask") if c not in header]
            if tcol is None or missing:
                raise ValueError(f"{path}: need time or time_msc, symbol, bid, ask columns")
            for line, row in enumerate(reader, start=2):
                try:
                    name = row[header["symbol"]].strip()
                    sym = symbols[name] if symbols is not None else int(name)
                    t = (int(row[tcol]) if "time_msc" in header else _parse_time_msc(row[tcol]))
                    cols["symbol"].append(sym)
                    cols["time_msc"].append(t)
                    for c in ("bid", "ask", "last", "volume_real"):
                        v = row.get(header.get(c, ""), "") or ""
                        cols[c].append(float(v) if v.strip() else 0.0)
                    v = row.get(header.get("volume", ""), "") or ""
                    cols["volume"].append(int(float(v)) if v.strip() else 0)
                    fl = row.get(header.get("flags", ""), "") or ""
                    cols["flags"].append(int(fl) if fl.strip() else -1)
                except (KeyError, ValueError) as e:
                    raise ValueError(f"{path}:{line}: bad tick row ({e})") from e
        flags = np.array(cols.pop("flags"), dtype=np.int64)
        last, volume = np.array(cols["last"]), np.array(cols["volume"], dtype=np.int64)
        default = (FLAG_QUOTE | np.where(last != 0, int(TickFlag.LAST), 0)
                   | np.where(volume != 0, int(TickFlag.VOLUME), 0))
        flags = np.where(flags < 0, default, flags)
        return cls(TickBatch.from_arrays(**cols, flags=flags))

    @classmethod
    def from_bar_csv(
        cls,
        path: str | Path,
        symbol: int,
        digits: int = 2,
        spread_bps: float = 10.0,
        session: int = Session.US_REGULAR,
        start: dt.date | None = None,
        end: dt.date | None = None,
        calendar: SessionCalendar | None = None,
    ) -> ReplayFeed:
        """Daily bars (``Date,Open,High,Low,Close[,Adj Close],Volume``) as four ticks a day.

        Ticks: Open at the session open, then the extreme nearer the open (Low first when
        ``Open - Low < High - Open``; on a tie, Low first for a rising bar), then the other
        extreme, at 1/3 and 2/3 of the session, and Close one minute before the close. Each
        price is the bid (MT5 bars are bid bars) rounded to ``10**-digits``; the ask is
        ``spread_bps`` above it, at least one point. ``volume`` is split evenly over the four
        ticks (the remainder on Close). Rows with missing numbers (``null``) are skipped; days
        the calendar calls closed keep 09:30-16:00 New York. ``start``/``end`` are inclusive.
        """
        cal = calendar or default_calendar()
        days, ohlc, vols = [], [], []
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                r = {k.strip().lower(): (v or "").strip() for k, v in row.items()}
                try:
                    day = dt.date.fromisoformat(r["date"])
                    o, h, lo, c = (float(r[k]) for k in ("open", "high", "low", "close"))
                    vol = int(float(r.get("volume") or 0))
                except (KeyError, ValueError):
                    continue
                if not all(map(math.isfinite, (o, h, lo, c))):
                    continue
                if (start and day < start) or (end and day > end):
                    continue
                days.append(day)
                ohlc.append((o, h, lo, c))
                vols.append(vol)
        if not days:
            return cls(TickBatch.empty())
        p = np.array(ohlc)
        o, h, lo, c = p.T
        low_first = ((o - lo) < (h - o)) | (((o - lo) == (h - o)) & (c >= o))
        path_px = np.column_stack([o, np.where(low_first, lo, h), np.where(low_first, h, lo), c])
        times = np.empty((len(days), 4), dtype=np.int64)
        for i, day in enumerate(days):
            hours = cal.hours(session, day) or cal.hours(Session.US_REGULAR, day) or (
                int(dt.datetime.combine(day, dt.time(9, 30), NEW_YORK).timestamp() * 1000),
                int(dt.datetime.combine(day, dt.time(16), NEW_YORK).timestamp() * 1000))
            t0, t1 = hours
            times[i] = (t0, t0 + (t1 - t0) // 3, t0 + 2 * (t1 - t0) // 3, t1 - 60_000)
        v = np.array(vols, dtype=np.int64)
        volume = np.repeat((v // 4)[:, None], 4, axis=1)
        volume[:, 3] += v - 4 * (v // 4)
        scale = 10.0**digits
        bid = np.maximum(np.rint(path_px.ravel() * scale), 1.0)
        ask = bid + np.maximum(np.rint(bid * spread_bps / 1e4), 1.0)
        flat = times.ravel()
        return cls(TickBatch.from_arrays(
            symbol=np.full(flat.shape[0], symbol, dtype=np.int32), time_msc=flat,
            bid=bid / scale, ask=ask / scale, last=bid / scale, volume=volume.ravel(),
        ))


# ---------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------


class PushSource:
    """Thread-safe tick queue: producers :meth:`post`, the engine :meth:`drain` s.

    Ticks come out in the order they were posted. Values are not checked here; that is the
    job of :class:`~cfd.feed.hygiene.PriceHygiene`.
    """

    def __init__(self, clock_msc: Callable[[], int] | None = None) -> None:
        self._clock = clock_msc or (lambda: time.time_ns() // 1_000_000)
        self._cond = threading.Condition()
        self._rows: list[tuple] = []
        self._chunks: list[TickBatch] = []
        self._count = 0

    def __len__(self) -> int:
        with self._cond:
            return self._count

    def post(self, symbol: int, bid: float, ask: float, time_msc: int | None = None,
             last: float = 0.0, volume: int = 0, volume_real: float = 0.0,
             flags: int | None = None) -> None:
        """Queue one tick; ``time_msc`` defaults to now, ``flags`` to BID|ASK (+LAST, VOLUME)."""
        if flags is None:
            flags = FLAG_QUOTE | (int(TickFlag.LAST) if last else 0) | (
                int(TickFlag.VOLUME) if volume else 0)
        row = (int(symbol), int(self._clock() if time_msc is None else time_msc), float(bid),
               float(ask), float(last), int(volume), float(volume_real), int(flags))
        with self._cond:
            self._rows.append(row)
            self._count += 1
            self._cond.notify_all()

    def post_batch(self, batch: TickBatch) -> None:
        with self._cond:
            self._flush_rows()
            self._chunks.append(batch)
            self._count += len(batch)
            self._cond.notify_all()

    def _flush_rows(self) -> None:
        if self._rows:
            cols = list(zip(*self._rows, strict=True))
            self._chunks.append(TickBatch.from_arrays(*cols))
            self._rows = []

    def drain(self, max_ticks: int | None = None) -> TickBatch:
        """Take (up to ``max_ticks`` of) the queued ticks, oldest first."""
        with self._cond:
            self._flush_rows()
            out = TickBatch.concat(self._chunks)
            self._chunks = []
            if max_ticks is not None and len(out) > max_ticks:
                self._chunks = [out.take(slice(max_ticks, None))]
                out = out.take(slice(0, max_ticks))
            self._count -= len(out)
            return out

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a tick is queued (True) or ``timeout`` seconds pass (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count > 0, timeout)
