"""The service's feed loop: synthetic ticks in, markets opened and closed by session.

Every ``interval_ms`` the loop (1) opens or closes markets whose session state changed
(``SetMarket``, actor ``sessions``): in ``always`` mode every market is open, in ``us`` mode
each symbol follows its NYSE session; (2) in ``synthetic`` mode, takes one step of
:class:`cfd.feed.SyntheticFeed` and submits the quotes of open markets as one ``Ticks``
command (actor ``feed``), waiting for it so ticks never pile up behind trades.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from api.service import EngineService
from cfd import commands as C
from cfd.engine import Engine
from cfd.feed import SyntheticFeed
from cfd.instruments import sessions
from cfd.instruments.spec import SESSION_KINDS

log = logging.getLogger("cfd.api.feed")


class FeedLoop:
    def __init__(self, service: EngineService, feed: str = "synthetic",
                 session_mode: str = "always", interval_ms: int = 1000, seed: int = 7) -> None:
        self.service = service
        self.mode = feed
        self.session_mode = session_mode
        self.interval = interval_ms / 1000.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.synthetic: SyntheticFeed | None = None
        if feed == "synthetic":
            self.synthetic = service.read(lambda eng: _synthetic(eng, interval_ms, seed))

    def start(self) -> None:
        self.step()
        self._thread = threading.Thread(target=self._run, name="cfd-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:
                log.exception("feed step failed")
                if self.service.failed is not None:
                    return

    def step(self) -> None:
        now = self.service.clock()
        open_now = self.service.read(lambda eng: self._sync(eng, now))
        if self.synthetic is None:
            return
        batch = self.synthetic.next_batch(1)
        keep = open_now[batch.symbol]
        if not keep.any():
            return
        cmd = C.Ticks(time_msc=0, actor="feed",
                      symbols=tuple(int(s) for s in batch.symbol[keep]),
                      bid=tuple(float(b) for b in batch.bid[keep]),
                      ask=tuple(float(a) for a in batch.ask[keep]))
        self.service.submit(cmd).result(timeout=30)

    def _sync(self, eng: Engine, now: int) -> np.ndarray:
        """Submit SetMarket for markets whose session state changed; the open mask."""
        n = len(eng.symbols)
        if self.session_mode == "always":
            want = np.ones(n, dtype=bool)
        else:
            want = np.array([sessions.is_open(SESSION_KINDS.index(s.session), now)
                             for s in eng.symbols.specs], dtype=bool)
        have = eng.symbols.cols.market_open[:n].astype(bool)
        for flag in (True, False):
            changed = np.nonzero((want == flag) & (have != flag))[0]
            if len(changed):
                names = tuple(eng.symbols.specs[i].name for i in changed)
                self.service.submit(C.SetMarket(time_msc=0, actor="sessions", symbols=names,
                                                market_open=flag))
        return want


def _synthetic(eng: Engine, interval_ms: int, seed: int) -> SyntheticFeed:
    sc = eng.symbols.cols
    n = len(eng.symbols)
    start = [((int(sc.bid[i]) + int(sc.ask[i])) / 2e6) if sc.has_quote[i]
             else float(eng.symbols.specs[i].reference_price) for i in range(n)]
    return SyntheticFeed([s.name for s in eng.symbols.specs], start, seed=seed,
                         tick_interval_ms=interval_ms,
                         digits=[s.digits for s in eng.symbols.specs], vol_annual=0.35,
                         spread_bps=4.0, symbol_index=np.arange(n, dtype=np.int32))
