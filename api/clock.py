"""The server's clock proposes rollovers and the weekend margin schedule; the journal decides
that they happened.

Every ``interval_s`` the loop asks the engine which trading date is due
(``TradingDay.next_date`` at the service's clock: the last New York date whose rollover
time has passed and is not rolled yet) and submits one ``Rollover`` command for it (actor
``clock``). A date already rolled is never proposed; were it proposed twice (a restart
between two checks, clock skew), the engine refuses the second and nothing changes.
"""

from __future__ import annotations

import logging
import threading

from api.service import EngineService
from cfd import commands as C

log = logging.getLogger("cfd.api.clock")


class RolloverClock:
    def __init__(self, service: EngineService, interval_s: float = 30.0) -> None:
        self.service = service
        self.interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cfd-rollover", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                self.step()
                self.schedule_step()
            except Exception:
                log.exception("rollover check failed")
                if self.service.failed is not None:
                    return
            if self._stop.wait(self.interval):
                return

    def step(self) -> str | None:
        """Submit the due rollover, if any; its result comment (None: nothing due)."""
        now = self.service.clock()
        due = self.service.read(lambda eng: eng.day.next_date(now))
        if due is None:
            return None
        res = self.service.call_sync(C.Rollover(time_msc=0, actor="clock", date=str(due)),
                                     timeout=120)
        log.info("rollover %s: %s", due, res.comment)
        return res.comment


    def schedule_step(self) -> str | None:
        """Submit the weekend/holiday margin schedule when it differs from the engine's
        (``WeekendMargin.proposal`` at the service's clock); its result comment."""
        now = self.service.clock()
        cmd = self.service.read(lambda eng: eng.weekend.proposal(now))
        if cmd is None:
            return None
        res = self.service.call_sync(cmd, timeout=120)
        log.info("margin schedule %s / upcoming %s: %s", cmd.active, cmd.upcoming,
                 res.comment)
        return res.comment


def seed_demo_benchmark(service: EngineService, name: str = "SOFR", rate: str = "4.33",
                        date: str = "2020-01-01") -> None:
    """The demo's benchmark fixing (a labelled example rate), once per database."""
    if service.read(lambda eng: name in eng.day.benchmarks):
        return
    service.call_sync(C.SetBenchmark(time_msc=0, actor="demo", name=name, date=date,
                                     rate=rate))
