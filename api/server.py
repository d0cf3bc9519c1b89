"""Assemble a server: store + recovered engine + service + feed (+ demo accounts)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from api import auth, bars, idempotency
from api.app import create_app
from api.clock import RolloverClock, seed_demo_benchmark
from api.feed import FeedLoop
from api.metrics import Metrics
from api.service import EngineService, RateLimiter
from api.settings import Settings
from cfd import commands as C
from cfd.engine import Engine
from cfd.money import money_minor

log = logging.getLogger("cfd.api")

#: The demo's own database (in the working directory), apart from a server's cfd.sqlite.
DEMO_DATABASE = "sqlite:///./cfd-demo.sqlite"
#: Events kind of a demo key kept in plain text with the demo's database (demo only).
DEMO_KEY = "demo_key"


@dataclass
class Runtime:
    settings: Settings
    service: EngineService
    feed: FeedLoop | None = None
    clock: RolloverClock | None = None
    demo: dict | None = None
    app: FastAPI = field(init=False)

    def close(self) -> None:
        if self.clock is not None:
            self.clock.stop()
            self.clock = None
        if self.feed is not None:
            self.feed.stop()
            self.feed = None
        self.service.stop()
        if self.service.market is not None:
            self.service.market.close()
        if self.service.reader is not None:
            self.service.reader.close()
            self.service.reader = None


def build(settings: Settings, engine: Engine | None = None, durable: Any = None) -> Runtime:
    """Open the store (unless ``in_memory``), recover, start the writer, feed and demo.

    ``durable``: a store already open for writing with its engine (a standby that took over:
    :mod:`cfd.store.standby`) instead of opening and recovering one."""
    keys = auth.KeyRing()
    for name, key in settings.admins().items():
        keys.add_admin(name, key)
    reader = None
    url = None
    if durable is not None:
        from cfd.store import Store

        url = settings.database_url
        reader = Store.open(url, read_only=True)
        engine = durable.engine
    elif not settings.in_memory:
        from cfd.store import Store, startup
        from cfd.store.runner import open_durable

        # the demo keeps its own database; a real server refuses a missing one unless told
        url = settings.database_url or (DEMO_DATABASE if settings.demo else None)
        url = startup.preflight(url, create=settings.init or settings.demo)
        durable = open_durable(url, snapshot_every=None)
        try:
            reader = Store.open(url, read_only=True)
        except BaseException:
            durable.close()
            raise
        engine = durable.engine
    svc = EngineService(engine or Engine(), durable=durable, metrics=Metrics(), keys=keys,
                        batch_max=settings.batch_max,
                        rate_limit=RateLimiter(settings.rate_limit_per_s,
                                               settings.rate_limit_burst))
    svc.snapshot_every = settings.snapshot_every
    svc.results = idempotency.Results(int(settings.idempotency_window_s * 1000),
                                      settings.idempotency_cache, complete_after=svc.clock())
    svc.reader = reader
    kept: dict = {}
    svc.market = bars.open_recorder(url, settings.marketdata_url, _point_of(svc.engine))
    if reader is not None:
        kept = _load_events(svc, reader)
    svc.start()
    rt = Runtime(settings, svc)
    if settings.demo:
        rt.demo = _demo_accounts(svc, settings, kept)
        seed_demo_benchmark(svc)
        bars.demo_history(svc, dt.datetime.fromtimestamp(svc.clock() / 1000, dt.UTC).date())
    if settings.rollover_clock:
        rt.clock = RolloverClock(svc, settings.rollover_check_s)
        rt.clock.start()
    if settings.feed != "none":
        rt.feed = FeedLoop(svc, settings.feed, settings.sessions, settings.feed_interval_ms,
                           settings.feed_seed)
        rt.feed.start()
    rt.app = create_app(svc, rt.demo, settings)
    return rt


def _point_of(engine: Engine) -> Any:
    def point(name: str) -> float:
        i = engine.symbols.get(name)
        return 0.0 if i is None else float(engine.symbols.specs[i].point)
    return point


_START_KINDS = (DEMO_KEY, "api_key")  # the events start-up reads


def _load_events(svc: EngineService, store: Any) -> dict:
    """API key hashes from the store's events table; returns the demo's kept keys
    (``{"admin": key, login: key, ...}``). Idempotent order results stay in the store: the
    service looks one up when a retry asks for it (:mod:`api.idempotency`)."""
    after = 0
    kept: dict = {}
    while True:
        rows = store.events(after_id=after, limit=5000, kinds=_START_KINDS)
        if not rows:
            return kept
        for r in rows:
            data = r.get("data") or {}
            if r["kind"] == DEMO_KEY:
                kept[data.get("who") or int(data["login"])] = data["key"]
            elif r["kind"] == "api_key":
                svc.keys.set_client(int(data["login"]), data["salt"], data["hash"])
        after = rows[-1]["id"]


def _demo_accounts(svc: EngineService, settings: Settings, kept: dict) -> dict:
    """Create the demo accounts on a fresh store (or reuse the first ones). Their keys are
    kept with the demo's database (a demo's scripts keep working across restarts): a kept
    key that still verifies is reused, else a new one is made and kept. An admin key the
    settings made up is kept the same way."""
    admin_key = _demo_admin_key(svc, settings, kept)
    names = ["Demo trader (hedging)", "Demo trader 2 (hedging)", "Demo trader (netting)"]
    existing = svc.read(lambda eng: [(int(eng.accounts.cols.login[i]), eng.accounts.names[i])
                                     for i in range(len(eng.accounts))])
    accounts = []
    for i in range(settings.demo_accounts):
        if i < len(existing):
            login, name = existing[i]
        else:
            login = 1001 + i
            name = names[i] if i < len(names) else f"Demo trader {i + 1}"
            group = "demo\\netting" if i == 2 else "demo\\usdt"
            res = svc.call_sync(C.CreateAccount(time_msc=0, actor="demo", login=login,
                                                name=name, group=group, leverage=100))
            if not res.ok:
                raise RuntimeError(f"demo account {login}: {res.comment}")
            svc.call_sync(C.Deposit(time_msc=0, actor="demo", login=login,
                                    amount=money_minor(settings.demo_deposit),
                                    comment="demo deposit"))
        key = kept.get(login)
        if key is None or svc.keys.client(login, key) is None:
            key = auth.new_key()
            salt, digest = auth.hash_key(key)
            svc.submit_events([{"kind": "api_key", "login": login, "salt": salt,
                                "hash": digest, "actor": "demo", "time_msc": svc.clock()},
                               {"kind": DEMO_KEY, "login": login, "key": key,
                                "actor": "demo", "time_msc": svc.clock()}],
                              lambda _r, lg=login, s=salt, d=digest: svc.keys.set_client(
                                  lg, s, d)).result(30)
        accounts.append({"login": login, "api_key": key, "name": name})
    return {"admin_key": admin_key, "accounts": accounts}


def _demo_admin_key(svc: EngineService, settings: Settings, kept: dict) -> str:
    if not settings.admin_key_generated:
        return next(iter(settings.admins().values()))
    key = kept.get("admin")
    if key is None:
        key = settings.admin_key
        if svc.durable is not None:
            svc.submit_events([{"kind": DEMO_KEY, "who": "admin", "key": key,
                                "actor": "demo", "time_msc": svc.clock()}]).result(30)
    settings.admin_key = key
    svc.keys.add_admin(settings.admin_name, key)
    return key
