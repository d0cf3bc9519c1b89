"""The tick recorder: accepted ticks to the market-data store, off the writer's thread.

The writer hands each batch's accepted ticks over as columns (:meth:`TickRecorder.record`
only puts them on a queue); a background thread, every ``flush_ms`` (or ``flush_ticks``
ticks), groups them by symbol once, folds them into the day's statistics per symbol
(bid/ask highs and lows, the day's first bid, for ``symbol_info``) and stores them in one
transaction: a chunk per symbol and the M1 bars they update. All of it on columns: no
object and no record per tick. Readers call :meth:`sync` first to see every
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

from cfd.feed.ticks import TickBatch
from cfd.kernels.tickstore import fold_day, gather, group_order
from cfd.marketdata.bars import m1_by_symbol
from cfd.marketdata.store import MarketData, chunks_by_symbol

log = logging.getLogger("cfd.marketdata")


_ZEROS: dict[np.dtype, np.ndarray] = {}


def _zeros(n: int, dtype: np.dtype) -> np.ndarray:
    """``n`` zeros of ``dtype``: a read-only view of one buffer kept per dtype (a quote
    feed's last and volumes are zero in every flush)."""
    z = _ZEROS.get(dtype)
    if z is None or len(z) < n:
        z = _ZEROS[dtype] = np.zeros(max(n, 2 * len(z) if z is not None else 0), dtype)
        z.setflags(write=False)
    return z[:n]


def _grouped(batches: list[TickBatch]) -> TickBatch:
    """The batches' ticks in one batch grouped by symbol (each symbol's in arrival order);
    all-zero columns (a quote feed's last and volumes) are not gathered. The grouping and
    gathering run without the GIL."""
    sym = np.concatenate([b.symbol for b in batches])
    order = group_order(sym)
    cols = {"symbol": gather(sym, order)}
    for name in TickBatch.__dataclass_fields__:
        if name == "symbol":
            continue
        parts = [getattr(b, name) for b in batches]
        if name in ("last", "volume", "volume_real") and not any(p.any() for p in parts):
            cols[name] = _zeros(len(sym), parts[0].dtype)
        else:
            cols[name] = gather(np.concatenate(parts), order)
    return TickBatch(**cols)


def _warm() -> None:
    """Run a flush's kernels once on two ticks (numba compiles them, or loads them from
    its cache, on first use)."""
    b = TickBatch.from_arrays([0, 0], [0, 1], [1.0, 1.01], [1.01, 1.02])
    g = _grouped([b])
    DayStats().fold(g, ("X",))
    chunks_by_symbol(("X",), g, np.array([0.01]))
    m1_by_symbol(("X",), g, np.array([0.01]))


class DayStats:
    """Per symbol index: the UTC day of its last tick, that day's first bid and its bid and
    ask highs and lows (symbol_info's bidhigh, bidlow, askhigh, asklow, price_change)."""

    _FIELDS = ("first_bid", "bidhigh", "bidlow", "askhigh", "asklow")

    def __init__(self) -> None:
        self.names: tuple[str, ...] = ()
        self.index: dict[str, int] = {}
        self.day = np.full(0, -1, np.int64)
        self.cols = {k: np.zeros(0) for k in self._FIELDS}

    def get(self, name: str) -> dict[str, float] | None:
        i = self.index.get(name)
        if i is None or i >= len(self.day) or self.day[i] < 0:
            return None
        return {"day": int(self.day[i]), **{k: float(v[i]) for k, v in self.cols.items()}}

    def fold(self, ticks: Any, names: tuple[str, ...]) -> None:
        """Fold ticks (columns grouped by ascending symbol index, each symbol's in time
        order) into the statistics."""
        if names is not self.names:
            self.names, self.index = names, {n: i for i, n in enumerate(names)}
        n = len(names)
        if len(self.day) < n:
            grow = n - len(self.day)
            self.day = np.r_[self.day, np.full(grow, -1, np.int64)]
            self.cols = {k: np.r_[v, np.zeros(grow)] for k, v in self.cols.items()}
        c = self.cols
        fold_day(ticks.symbol, ticks.time_msc, ticks.bid, ticks.ask, self.day, c["first_bid"],
                 c["bidhigh"], c["bidlow"], c["askhigh"], c["asklow"])


class TickRecorder:
    """Queue in, batched writes out (one daemon thread)."""

    def __init__(self, store: MarketData, point_of: Callable[[str], float], *,
                 flush_ms: int = 5000, flush_ticks: int = 1_000_000) -> None:
        self.store = store
        self.point_of = point_of
        self.flush_s = flush_ms / 1000
        self.flush_ticks = flush_ticks
        self.day = DayStats()
        self.failed: BaseException | None = None
        self.stored = 0
        self.cpu_s = 0.0  # CPU time the recorder thread spent storing
        self._q: queue.Queue[Any] = queue.Queue()
        self._pending: list[TickBatch] = []
        self._names: tuple[str, ...] = ()
        self._n = 0
        _warm()  # compile (or load) the flush's kernels here, not in the first sync()
        self._thread = threading.Thread(target=self._run, name="cfd-ticks", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ writer side
    def record(self, batches: Sequence[Any], names: Sequence[str]) -> None:
        """Hand over accepted ticks (``TickBatch`` columns; ``names``: symbol index ->
        name, indices never reused). Cheap: the work happens on the recorder's thread."""
        if batches:
            self._q.put((list(batches), tuple(names)))

    def corporate_action(self, fn: Callable[[MarketData], Any]) -> None:
        """Run ``fn(store)`` on the recorder's thread after the ticks handed over before it
        are stored (a split rescales them, a ticker change renames them)."""
        self._q.put(("store", fn))

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until every tick handed over before this call is stored; False if that
        took longer than ``timeout`` seconds (or the recorder stopped): readers then read
        what is stored."""
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        self._q.put(done)
        if done.wait(timeout):
            return True
        log.warning("the tick recorder is more than %s s behind", timeout)
        return False

    def close(self) -> None:
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout=30)
        self.store.close()

    # ------------------------------------------------------------------ recorder thread
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug here must not hang readers: sync() sees it dead
            log.exception("the tick recorder stopped")
            self.failed = exc

    def _loop(self) -> None:
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
            if isinstance(item, tuple) and item[0] == "store":
                self._flush()
                try:
                    item[1](self.store)
                except Exception as exc:  # noqa: BLE001 - kept for health, as a flush's
                    self.failed = exc
                continue
            if item != "flush":
                if not self._n:
                    first = time.monotonic()
                batches, names = item
                if len(names) >= len(self._names):
                    self._names = names
                self._pending.extend(batches)
                self._n += sum(len(b) for b in batches)
                if self._n < self.flush_ticks and time.monotonic() - first < self.flush_s:
                    continue
            self._flush()

    def _flush(self) -> None:
        if not self._n:
            return
        pending, self._pending, self._n = self._pending, [], 0
        cpu = time.thread_time()
        try:
            ticks = _grouped(pending)
            self.day.fold(ticks, self._names)
            points = np.array([self.point_of(n) for n in self._names])
            self.store.write_ticks(chunks_by_symbol(self._names, ticks, points),
                                   m1_by_symbol(self._names, ticks, points))
            self.stored += len(ticks)
        except Exception as exc:  # keep recording; the journal still has the ticks
            log.exception("storing ticks failed")
            self.failed = exc
        self.cpu_s += time.thread_time() - cpu
