"""Assemble a server: store + recovered engine + service + feed (+ demo accounts)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from api import auth, bars
from api.app import create_app
from api.feed import FeedLoop
from api.metrics import Metrics
from api.service import EngineService, RateLimiter
from api.settings import Settings
from cfd import commands as C
from cfd.engine import Engine
from cfd.money import money_minor
from cfd.store.schema import resolve_url

log = logging.getLogger("cfd.api")


@dataclass
class Runtime:
    settings: Settings
    service: EngineService
    feed: FeedLoop | None = None
    demo: dict | None = None
    app: FastAPI = field(init=False)

    def close(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None
        self.service.stop()
        if self.service.market is not None:
            self.service.market.close()
        if self.service.reader is not None:
            self.service.reader.close()
            self.service.reader = None


def build(settings: Settings, engine: Engine | None = None) -> Runtime:
    """Open the store (unless ``in_memory``), recover, start the writer, feed and demo."""
    keys = auth.KeyRing()
    for name, key in settings.admins().items():
        keys.add_admin(name, key)
    durable = None
    reader = None
    if not settings.in_memory:
        from cfd.store import Store
        from cfd.store.runner import open_durable

        durable = open_durable(settings.database_url, snapshot_every=None)
        reader = Store.open(settings.database_url, read_only=True)
        engine = durable.engine
    svc = EngineService(engine or Engine(), durable=durable, metrics=Metrics(), keys=keys,
                        batch_max=settings.batch_max,
                        rate_limit=RateLimiter(settings.rate_limit_per_s,
                                               settings.rate_limit_burst))
    svc.snapshot_every = settings.snapshot_every
    svc.reader = reader
    svc.market = bars.open_recorder(None if settings.in_memory else settings.database_url
                                    or resolve_url(None), settings.marketdata_url,
                                    _point_of(svc.engine))
    if reader is not None:
        _load_events(svc, reader)
    svc.start()
    rt = Runtime(settings, svc)
    if settings.demo:
        rt.demo = _demo_accounts(svc, settings)
        bars.demo_history(svc, dt.datetime.fromtimestamp(svc.clock() / 1000, dt.UTC).date())
    if settings.feed != "none":
        rt.feed = FeedLoop(svc, settings.feed, settings.sessions, settings.feed_interval_ms,
                           settings.feed_seed)
        rt.feed.start()
    rt.app = create_app(svc, rt.demo)
    return rt


def _point_of(engine: Engine) -> Any:
    def point(name: str) -> float:
        i = engine.symbols.get(name)
        return 0.0 if i is None else float(engine.symbols.specs[i].point)
    return point


def _load_events(svc: EngineService, store: Any) -> None:
    """API key hashes and idempotent order results, from the store's events table."""
    after = 0
    while True:
        rows = store.events(after_id=after, limit=5000)
        if not rows:
            return
        for r in rows:
            data = r.get("data") or {}
            if r["kind"] == "api_key":
                svc.keys.set_client(int(data["login"]), data["salt"], data["hash"])
            elif r["kind"] == "order_result":
                svc.results[(int(data["login"]), int(data["request_id"]))] = data["result"]
        after = rows[-1]["id"]


def _demo_accounts(svc: EngineService, settings: Settings) -> dict:
    """Create the demo accounts on a fresh store (or reuse the first ones) with new keys."""
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
        key = auth.new_key()
        salt, digest = auth.hash_key(key)
        svc.submit_events([{"kind": "api_key", "login": login, "salt": salt, "hash": digest,
                            "actor": "demo", "time_msc": svc.clock()}],
                          lambda _r, lg=login, s=salt, d=digest: svc.keys.set_client(lg, s, d)
                          ).result(30)
        accounts.append({"login": login, "api_key": key, "name": name})
    admin_key = next(iter(settings.admins().values()))
    return {"admin_key": admin_key, "accounts": accounts}
