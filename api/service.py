"""The engine service: one writer thread owns the Engine; everything else submits commands.

HTTP handlers put commands on a queue and await their results. The writer drains the queue
in batches: it stamps each command's ``time_msc`` and hands the batch to the store's own
apply -> journal -> snapshot loop (:class:`cfd.store.runner.DurableEngine`, in memory when
there is no store), which commits it in ONE transaction (group commit); only then are the
futures resolved, so a result is durable before anyone sees it. Queries take the same lock
as the writer, so they see a state between batches, never half a batch. If the engine halts
or the store fails, the service stops taking commands and ``failed`` says why.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from api import idempotency
from api.auth import KeyRing
from api.metrics import Metrics
from cfd import commands as C
from cfd.constants import Retcode
from cfd.engine import Engine, Result
from cfd.store.runner import DurableEngine
from cfd.trading.request import (
    OrderCheckResult,
    OrderSendResult,
    RequestFormatError,
    TradeRequest,
)

log = logging.getLogger("cfd.api")

def now_msc() -> int:
    return time.time_ns() // 1_000_000


class Retryable(RuntimeError):
    """The command may not have reached the writer, or its answer was lost: retry it (with
    its X-Request-Id, a retry of an executed order returns the first result)."""


class ServiceStopped(RuntimeError):
    """The writer is not running (stopped, or halted after a store failure)."""


@dataclasses.dataclass
class _Item:
    cmd: C.Command | None
    future: cf.Future | None  # None: an awaiting coroutine's (``waiter`` only)
    events: list[dict] = dataclasses.field(default_factory=list)  # journaled if ok
    after: Callable[[Result], None] | None = None  # run after the commit if ok
    waiter: asyncio.Future | None = None  # an awaiting coroutine's future, on ``loop``
    loop: asyncio.AbstractEventLoop | None = None


class RateLimiter:
    """Token bucket per account: ``rate`` requests a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, login: int) -> bool:
        t = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(login, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            if tokens < 1.0:
                self._buckets[login] = (tokens, t)
                return False
            self._buckets[login] = (tokens - 1.0, t)
            return True


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop, login: int | None,
                 symbols: set[str] | None, queue_size: int = 10_000) -> None:
        self.loop = loop
        self.login = login
        self.symbols = symbols
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0

    def put(self, msg: dict) -> None:
        def _put() -> None:
            try:
                self.queue.put_nowait(msg)
            except asyncio.QueueFull:
                self.dropped += 1
        with contextlib.suppress(RuntimeError):  # the loop closed
            self.loop.call_soon_threadsafe(_put)


class LocalAnswers:
    """The results a service answers itself, never journaled (the engine's service and a
    gateway's): a rate limit (10024) and an internal error (10011)."""

    def too_many(self, body: dict, request_id: int = 0, check: bool = False) -> dict:
        return _local_result(Retcode.TOO_MANY_REQUESTS, "Too frequent requests", body,
                             request_id, check)

    def error_result(self, body: dict, request_id: int = 0, check: bool = False) -> dict:
        return _local_result(Retcode.ERROR, "Request processing error", body, request_id,
                             check)


class EngineService(LocalAnswers):
    """Owns the engine (and the durable store, when there is one)."""

    def __init__(self, engine: Engine, *, durable: Any = None, metrics: Metrics | None = None,
                 keys: KeyRing | None = None, batch_max: int = 1024,
                 rate_limit: RateLimiter | None = None,
                 clock: Callable[[], int] = now_msc) -> None:
        self.engine = engine
        self.durable = durable  # cfd.store.runner.DurableEngine or None (in memory)
        self.store = durable.store if durable is not None else None
        # the writer's loop: the durable engine's, or the same loop without a store
        self.runner: DurableEngine = durable if durable is not None else DurableEngine(
            None, engine)
        self.metrics = metrics or Metrics()
        self.keys = keys or KeyRing()
        self.batch_max = batch_max
        self.rate = rate_limit or RateLimiter(200.0, 400)
        self.clock = clock
        self.lock = threading.RLock()
        self.market: Any = None  # cfd.marketdata.TickRecorder: stores accepted ticks
        # (login, request id) -> the first result: recent ones here, the rest in the store
        self.results = idempotency.Results(complete_after=clock())
        self._inflight: dict[tuple[int, int], cf.Future] = {}
        self._q: queue.Queue[_Item | None] = queue.Queue()
        self._subs: set[_Subscriber] = set()
        self._subs_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_t = 0
        self.failed: BaseException | None = None
        self._next_login = 0
        self.reader: Any = None  # a read-only Store, when there is a store
        self._hidden: dict[int, set[str]] = {}
        self._counters: dict[tuple[str, bool], Any] = {}
        #: called with each committed batch's effects on the writer thread (api.link hands
        #: them to its own thread, which publishes them to the gateways)
        self.listeners: list[Callable[[Any], None]] = []
        #: seconds between lease heartbeats while no batch comes (0: none); a store whose
        #: heartbeat finds the lease taken stops the service (api.link, cfd.store.lease)
        self.heartbeat_s = 0.0

    @property
    def snapshot_every(self) -> int:
        """Commands between snapshots (0: none); the runner takes them."""
        return self.runner.snapshot_every or 0

    @snapshot_every.setter
    def snapshot_every(self, n: int) -> None:
        self.runner.snapshot_every = n

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cfd-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        if self.durable is not None:
            self.durable.close()
            self.durable = None

    # ------------------------------------------------------------------ commands
    def submit(self, cmd: C.Command, events: list[dict] | None = None,
               after: Callable[[Result], None] | None = None) -> cf.Future:
        fut: cf.Future = cf.Future()
        self._put(_Item(cmd, fut, events or [], after))
        return fut

    def _put(self, item: _Item) -> cf.Future | None:
        if self.failed is not None or self._thread is None:
            why = f"after a store failure: {self.failed!r}" if self.failed else "(stopped)"
            exc = ServiceStopped(f"the engine service is not running {why}")
            if item.future is not None:
                item.future.set_exception(exc)
            if item.waiter is not None:
                item.waiter.set_exception(exc)
            return item.future
        self._q.put(item)
        return item.future

    def submit_events(self, events: list[dict],
                      after: Callable[[Result], None] | None = None) -> cf.Future:
        """Record events (no engine command) in the next batch's transaction."""
        fut: cf.Future = cf.Future()
        self._put(_Item(None, fut, events, after))
        return fut

    async def call(self, cmd: C.Command, events: list[dict] | None = None,
                   after: Callable[[Result], None] | None = None) -> Result:
        """Submit and await the result. The writer wakes each event loop once per batch (see
        :meth:`_settle`), not once per command."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()  # no thread-safe future: the loop is woken per batch
        self._put(_Item(cmd, None, events or [], after, waiter, loop))
        return await waiter  # raises at once if the service is not running

    def send_soon(self, login: int, request: dict) -> asyncio.Future:
        """order_send without a request id, as a future of its Result on the running loop
        (no coroutine: what :meth:`order_send` does for it, for api.link's batches)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._put(_Item(C.SendOrder(time_msc=0, actor=f"client:{login}", login=login,
                                    request=request, request_id=0), None, [], None, waiter,
                        loop))
        return waiter

    def call_sync(self, cmd: C.Command, timeout: float = 30.0, **kw: Any) -> Result:
        return self.submit(cmd, **kw).result(timeout)

    def known_symbols(self) -> set[str]:
        return self.read(lambda eng: set(eng.symbols.index))

    def read(self, fn: Callable[[Engine], Any]) -> Any:
        """Run a query on a consistent engine state (between batches)."""
        with self.lock:
            return fn(self.engine)

    def next_login(self) -> int:
        with self.lock:
            n = len(self.engine.accounts)
            top = int(self.engine.accounts.cols.login[:n].max()) if n else 1000
            self._next_login = max(self._next_login, top) + 1
            return self._next_login

    def hidden_symbols(self, login: int) -> set[str]:
        return self._hidden.get(login, set())

    def select_symbol(self, login: int, symbol: str, enable: bool) -> None:
        """symbol_select: the account's Market Watch (a terminal setting, not journaled)."""
        hidden = self._hidden.setdefault(login, set())
        if enable:
            hidden.discard(symbol)
        else:
            hidden.add(symbol)

    # ------------------------------------------------------------------ idempotent order_send
    async def order_send(self, login: int, request: dict, request_id: int) -> dict:
        """Send a trade request; a request id seen within the retention window returns the
        first result (looked up in the store when the recent cache cannot vouch for it)."""
        key = (login, request_id)
        if request_id:
            now = self.clock()
            found = None
            if (self.results.get(key, now) is None and self.reader is not None
                    and self.results.needs_store(now)):
                found = await asyncio.to_thread(self._stored_result, key, now)
            entry = self.results.claim(key, request, now, found)  # or RequestIdReused
            if entry.result is not None:
                return entry.result
            pending = self._inflight.get(key)
            if pending is not None:
                return await asyncio.wrap_future(pending)
        cmd = C.SendOrder(time_msc=0, actor=f"client:{login}", login=login, request=request,
                          request_id=request_id)
        if not request_id:  # nobody can wait on it: no in-flight entry
            return send_result_dict(await self.call(cmd))
        outer: cf.Future = cf.Future()
        self._inflight[key] = outer
        try:
            res = await self.call(cmd)
            out = send_result_dict(res)
            outer.set_result(out)
            return out
        except BaseException as exc:
            self.results.forget(key)  # nothing recorded under this id
            outer.set_exception(exc)
            raise
        finally:
            self._inflight.pop(key, None)

    def _stored_result(self, key: tuple[int, int], now: int) -> idempotency.Entry | None:
        data = self.reader.order_result(key[0], key[1], self.results.since(now))
        return None if data is None else idempotency.from_event(data)

    # ------------------------------------------------------------------ the writer
    def _run(self) -> None:
        beat = time.monotonic()
        while True:
            if self.heartbeat_s and time.monotonic() - beat >= self.heartbeat_s:
                # also under a stream of batches (refused commands commit nothing)
                self._heartbeat()
                beat = time.monotonic()
            try:
                item = self._q.get(timeout=self.heartbeat_s or None)
            except queue.Empty:
                continue
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.batch_max:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self._run_batch(batch)
            except BaseException as exc:  # the engine halted or the store failed
                log.exception("batch failed; the engine stops taking commands")
                self.failed = exc
                self._settle([(it, exc) for it in batch])
            if self.runner.staged_pending and self.failed is None:
                self._index_staged()  # (a bulk booking's: between batches, and while idle)
            if stop:
                return

    def _index_staged(self) -> None:
        """Write staged history rows into their tables (``cfd.store.staging``), a
        transaction at a time under the lock, until none is left or a command waits; a
        failure stops the service, as a failed batch does."""
        try:
            while self.runner.staged_pending:
                with self.lock:
                    self.runner.index_staged()
                    self.metrics.history_staged.set(int(self.runner.staged_pending))
                if not self._q.empty():
                    return
        except BaseException as exc:
            log.exception("writing staged history rows failed; the engine stops taking "
                          "commands")
            self.failed = exc

    def _heartbeat(self) -> None:
        """Tell the store this writer lives; a lease taken over stops the service."""
        if self.failed is not None or self.store is None:
            return
        try:
            with self.lock:
                self.store.heartbeat()
        except BaseException as exc:
            log.error("lease heartbeat failed; the engine stops taking commands: %s", exc)
            self.failed = exc

    def _run_batch(self, batch: list[_Item]) -> None:
        m = self.metrics
        t_start = time.perf_counter()
        with self.lock:
            items = [it for it in batch if it.cmd is not None]
            cmds = []
            for it in items:
                t = max(self.clock(), self._last_t)
                self._last_t = t
                cmds.append(it.cmd if it.cmd.time_msc else it.cmd.stamped(t))

            def extra_events(cmds: Any, results: list[Result]) -> list[dict]:
                """Events stored with the batch: those of event-only items, those of
                accepted commands, and each order_send result under its request id."""
                extra = [e for it in batch if it.cmd is None for e in it.events]
                for it, cmd, res in zip(items, cmds, results, strict=True):
                    if isinstance(cmd, C.SendOrder) and cmd.request_id and res.data is not None:
                        extra.append({"kind": "order_result", "login": cmd.login,
                                      "time_msc": cmd.time_msc, "request_id": cmd.request_id,
                                      "result": send_result_dict(res),
                                      "request_sha256": idempotency.request_hash(cmd.request)})
                    if res.ok:
                        extra.extend(it.events)
                return extra

            results = self.runner.submit(cmds, extra_events)
            effects = self.runner.last_effects
            for cmd, res in zip(cmds, results, strict=True):
                self._command_counter(cmd.kind, res.ok).inc()
            for e in effects.events:
                if e.get("kind") == "order_result":
                    self.results.record((e["login"], e["request_id"]), e["time_msc"],
                                        e.get("request_sha256"), e["result"])
            done: list[tuple[_Item, Result]] = [
                (it, Result(Retcode.DONE, "recorded")) for it in batch if it.cmd is None]
            done += list(zip(items, results, strict=True))
            for it, res in done:
                if res.ok and it.after is not None:
                    it.after(res)
            m.rejected_ticks.set(self.engine.rejected_ticks)
            m.history_staged.set(int(self.runner.staged_pending))
        m.cycle.observe(time.perf_counter() - t_start)
        m.batch_size.observe(len(batch))
        self._settle(done)
        self._publish(effects)

    def _command_counter(self, kind: str, ok: bool) -> Any:
        """The ``cfd_engine_commands`` series of (kind, ok), looked up once."""
        series = self._counters.get((kind, ok))
        if series is None:
            series = self._counters[(kind, ok)] = self.metrics.commands.labels(kind, str(ok))
        return series

    @staticmethod
    def _settle(outcomes: list[tuple[_Item, Any]]) -> None:
        """Answer a batch: results or exceptions into the items' futures, and one wake-up
        per event loop for the coroutines awaiting them."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Any]]] = {}
        for it, out in outcomes:
            if it.future is not None and not it.future.done():
                if isinstance(out, BaseException):
                    it.future.set_exception(out)
                else:
                    it.future.set_result(out)
            if it.waiter is not None and it.loop is not None:
                by_loop.setdefault(it.loop, []).append((it, out))
        for loop, group in by_loop.items():
            # a closed loop (RuntimeError) has nobody waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, group)

    # ------------------------------------------------------------------ streams
    def subscribe(self, login: int | None, symbols: set[str] | None,
                  queue_size: int = 10_000) -> _Subscriber:
        sub = _Subscriber(asyncio.get_running_loop(), login, symbols, queue_size)
        with self._subs_lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._subs_lock:
            self._subs.discard(sub)

    def _publish(self, effects: Any) -> None:
        from api import bars

        if effects.ticks and self.market is not None:
            self.market.record(effects.ticks, effects.tick_names)
        for ev in effects.events:
            if self.market is not None and ev.get("kind") in ("split", "ticker_change"):
                self.market.corporate_action(bars.corporate_action(ev))
            if ev.get("kind") == "stop_out":
                self.metrics.stop_outs.inc()
            elif ev.get("kind") == "margin_call":
                self.metrics.margin_calls.inc()
        with self._subs_lock:
            subs = list(self._subs)
        if subs:
            fan_out(subs, *render(effects, any(s.symbols is not None for s in subs),
                                  any(s.login is not None for s in subs)))
        for listener in self.listeners:
            listener(effects)


def render(effects: Any, ticks: bool = True, accounts: bool = True
           ) -> tuple[list[dict], list[tuple[int, dict]]]:
    """A batch's stream messages: every tick (``{"event": "tick", "symbol": ...}``) and the
    account messages as ``(login, message)``: deals, order changes, margin calls and
    stop-outs (each kind only if asked for). Subscribers take their share
    (:func:`fan_out`); gateways get them as they are (api.link)."""
    from api import bars, records

    tick_msgs = list(bars.tick_events(effects.ticks, effects.tick_names,
                                      set(effects.tick_names))) \
        if ticks and effects.ticks else []
    acct: list[tuple[int, dict]] = []
    if not accounts:
        return tick_msgs, acct
    for d in effects.deal_rows():
        acct.append((d["login"], {"event": "deal", **records.deal(d)}))
    for o in effects.order_rows():
        acct.append((o["login"], {"event": "order", **records.order(o)}))
    for ev in effects.events:
        if ev.get("login") is not None and ev.get("kind") in ("margin_call", "stop_out"):
            acct.append((ev["login"], {"event": ev["kind"],
                                       **{k: v for k, v in ev.items() if k != "kind"}}))
    return tick_msgs, acct


def fan_out(subs: Any, ticks: list[dict], acct: list[tuple[int, dict]]) -> None:
    """Each subscriber's share of a batch's messages (see :func:`render`)."""
    for sub in subs:
        if sub.symbols is not None:
            for msg in ticks:
                if msg["symbol"] in sub.symbols:
                    sub.put(msg)
        if sub.login is not None:
            for login, msg in acct:
                if login == sub.login:
                    sub.put(msg)


def _local_result(retcode: int, comment: str, body: dict, request_id: int,
                  check: bool) -> dict:
    """A result the service answers itself (rate limit, internal error), never journaled."""
    try:
        req = TradeRequest.from_dict(body)
    except RequestFormatError:
        req = TradeRequest()
    if check:
        return OrderCheckResult(int(retcode), comment=comment, request=req).to_dict()
    return OrderSendResult(int(retcode), comment=comment, request_id=request_id,
                           request=req).to_dict()


def _wake(group: list[tuple[_Item, Any]]) -> None:
    """On the event loop: settle the waiters of one batch."""
    for it, out in group:
        w = it.waiter
        if w is None or w.done():
            continue
        if isinstance(out, BaseException):
            w.set_exception(out)
        else:
            w.set_result(out)


def send_result_dict(res: Result) -> dict:
    """OrderSendResult as a JSON-ready dict (whatever the engine put in ``data``)."""
    data = res.data
    if data is None:
        return {"retcode": int(res.retcode), "comment": res.comment}
    if hasattr(data, "to_dict"):
        return data.to_dict()
    return dict(data)
