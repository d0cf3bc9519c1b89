"""The tick recorder: accepted ticks to the market-data store, off the writer's thread.

The writer hands each batch's accepted ticks over as columns (:meth:`TickRecorder.record`
only puts them on a queue); a background thread folds them into the day's statistics per
symbol (bid/ask highs and lows, the day's first bid, for ``symbol_info``) as they come, and
every ``flush_ms`` (or ``flush_ticks`` ticks) stores them in one transaction: a compressed
chunk per symbol and the M1 bars they update. Readers call :meth:`sync` first to see every
tick handed over so far.

The journal stays the source of truth: ticks recorded but not yet flushed when the process
dies are missing from history (at most ``flush_ms`` of them), not from the engine's state.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cfd.marketdata.bars import TICK_DTYPE, m1_from_ticks
from cfd.marketdata.store import MarketData, split_by_symbol

log = logging.getLogger("cfd.marketdata")


def as_ticks(batch: Any) -> np.ndarray:
    """A ``TickBatch`` (columns) as ``TICK_DTYPE`` records."""
    out = np.empty(len(batch.symbol), TICK_DTYPE)
    out["time_msc"] = batch.time_msc
    out["time"] = batch.time_msc // 1000
    out["bid"], out["ask"], out["last"] = batch.bid, batch.ask, batch.last
    out["volume"], out["flags"] = batch.volume, batch.flags
    out["volume_real"] = batch.volume_real
    return out


class TickRecorder:
    """Queue in, batched writes out (one daemon thread)."""

    def __init__(self, store: MarketData, point_of: Callable[[str], float], *,
                 flush_ms: int = 1000, flush_ticks: int = 500_000) -> None:
        self.store = store
        self.point_of = point_of
        self.flush_s = flush_ms / 1000
        self.flush_ticks = flush_ticks
        self.day: dict[str, dict[str, float]] = {}
        self.failed: BaseException | None = None
        self.stored = 0
        self._q: queue.Queue[Any] = queue.Queue()
        self._pending: list[tuple[np.ndarray, np.ndarray, tuple[str, ...]]] = []
        self._n = 0
        self._thread = threading.Thread(target=self._run, name="cfd-ticks", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ writer side
    def record(self, batches: Sequence[Any], names: Sequence[str]) -> None:
        """Hand over accepted ticks (``TickBatch`` columns; ``names``: symbol index ->
        name). Cheap: the work happens on the recorder's thread."""
        if batches:
            self._q.put((list(batches), tuple(names)))

    def sync(self, timeout: float = 30.0) -> None:
        """Return once every tick handed over before this call is stored."""
        done = threading.Event()
        self._q.put(done)
        if not done.wait(timeout):
            raise TimeoutError("the tick recorder did not catch up")

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout=30)
        self.store.close()

    # ------------------------------------------------------------------ recorder thread
    def _run(self) -> None:
        first = 0.0
        while True:
            wait = self.flush_s - (time.monotonic() - first) if self._n else None
            try:
                item = self._q.get(timeout=max(wait, 0.0) if wait is not None else None)
            except queue.Empty:
                item = "flush"
            if item is None:
                self._flush()
                return
            if isinstance(item, threading.Event):
                self._flush()
                item.set()
                continue
            if item != "flush":
                if not self._n:
                    first = time.monotonic()
                batches, names = item
                for b in batches:
                    sym = np.asarray(b.symbol)
                    ticks = as_ticks(b)
                    self._pending.append((sym, ticks, names))
                    self._n += len(sym)
                    self._fold_day(sym, ticks, names)
                if self._n < self.flush_ticks and time.monotonic() - first < self.flush_s:
                    continue
            self._flush()

    def _fold_day(self, sym: np.ndarray, ticks: np.ndarray, names: tuple[str, ...]) -> None:
        for s in np.unique(sym).tolist():
            tk = ticks[sym == s]
            name = names[s]
            day = int(tk["time_msc"][-1]) // 86_400_000
            d = self.day.get(name)
            if d is None or d["day"] != day:
                tk = tk[tk["time_msc"] // 86_400_000 == day]
                d = self.day[name] = {"day": day, "first_bid": float(tk["bid"][0]),
                                      "bidhigh": -np.inf, "bidlow": np.inf,
                                      "askhigh": -np.inf, "asklow": np.inf}
            d["bidhigh"] = max(d["bidhigh"], float(tk["bid"].max()))
            d["bidlow"] = min(d["bidlow"], float(tk["bid"].min()))
            d["askhigh"] = max(d["askhigh"], float(tk["ask"].max()))
            d["asklow"] = min(d["asklow"], float(tk["ask"].min()))

    def _flush(self) -> None:
        if not self._n:
            return
        pending, self._pending, self._n = self._pending, [], 0
        try:
            by_name: dict[str, list[np.ndarray]] = {}
            for sym, ticks, names in pending:
                for name, tk in split_by_symbol(names, sym, ticks).items():
                    by_name.setdefault(name, []).append(tk)
            ticks_of = {k: np.concatenate(v) if len(v) > 1 else v[0]
                        for k, v in by_name.items()}
            ticks_of = {k: v[np.argsort(v["time_msc"], kind="stable")]
                        for k, v in ticks_of.items()}
            m1 = {k: m1_from_ticks(v, self.point_of(k)) for k, v in ticks_of.items()}
            self.store.write_ticks(ticks_of, m1)
            self.stored += sum(len(v) for v in ticks_of.values())
        except Exception as exc:  # keep recording; the journal still has the ticks
            log.exception("storing ticks failed")
            self.failed = exc
