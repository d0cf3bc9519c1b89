"""An access gateway: HTTP and WebSockets in front of the one writer.

A gateway holds no engine. It terminates HTTP and WebSockets, authenticates (a copy of the
writer's key ring: hashes only, kept current by the writer's events), bounds and validates
requests (:class:`api.limits.EdgeGuard`), rate-limits trade requests per account, answers
``order_send`` through its own fast path (:mod:`api.fastpath`), and forwards it to the
writer as one small message; the streams (``/ws/ticks``, ``/ws/account``, ``/v1/ws_token``)
are its own, fed by the writer's event stream. Every other HTTP request is forwarded as it
came and answered by the writer's own app (its reads see the engine between batches,
exactly as a single process does). The writer stays the only place state changes:
durable-before-acknowledged, idempotency (the writer's request-id results) and per-account
isolation are the writer's, unchanged. See :mod:`api.link` for the channel.

    cfd-server gateway --writer tcp://127.0.0.1:5555 --events tcp://127.0.0.1:5556 --port 8001
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from typing import Any

import orjson
import zmq
import zmq.asyncio
from fastapi import FastAPI

from api import schemas as S
from api.auth import Authenticator, KeyRing
from api.fastpath import RETRY_HEADERS, OrderSendFastPath
from api.limits import EdgeGuard, answer
from api.link import TOPIC_KEYS, TOPIC_STREAM, WriterClient, WriterUnavailable
from api.metrics import Metrics
from api.routers import mt5, streams
from api.service import LocalAnswers, RateLimiter, Retryable, _Subscriber, fan_out
from api.settings import Settings
from api.throttle import LoginThrottle

log = logging.getLogger("cfd.api.gateway")

_LOCAL_PATHS = ("/v1/ws_token", "/v1/version", "/health", "/metrics")
#: answered by a gateway from the store's query tables when it has the store (read-only)
_HISTORY_PATHS = ("/v1/history_orders_total", "/v1/history_orders_get",
                  "/v1/history_deals_total", "/v1/history_deals_get")


class _Answered:
    """The (login, request id) pairs this gateway answered lately: their retries skip the
    rate limit (the writer answers them from its results, at no cost)."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: collections.OrderedDict[tuple[int, int], None] = collections.OrderedDict()
        self._size = size

    def done(self, key: tuple[int, int]) -> bool:
        return key in self._seen

    def add(self, key: tuple[int, int]) -> None:
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)


class RemoteService(LocalAnswers):
    """What the fast path, the stream routes and the app need of a service, with the
    writer behind :class:`api.link.WriterClient`."""

    def __init__(self, writer: WriterClient, events: list[str], rate: RateLimiter,
                 metrics: Metrics | None = None) -> None:
        self.writer = writer
        self.events = list(events)
        self.rate = rate
        self.metrics = metrics or Metrics()
        self.keys = KeyRing()
        self.results = _Answered()
        self.failed: BaseException | None = None
        self.reader: Any = None  # a read-only Store: history reads are answered here
        self._symbols: set[str] = set()
        self._subs: set[_Subscriber] = set()
        self._sub_sock: Any = None
        self._tasks: list[asyncio.Task] = []
        self._lock = threading.Lock()
        writer.on_switch.append(self.refresh)
        writer.on_lost.append(self._look_again)
        self._looking: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect the event stream, then take the key ring and symbols from the writer
        (if none answers yet, they come when one does)."""
        ctx = zmq.asyncio.Context.instance()
        s = self._sub_sock = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SUBSCRIBE, TOPIC_KEYS)
        for e in self.events:
            s.connect(e)
        self._tasks.append(asyncio.ensure_future(self._listen()))
        if not await self._connect(tries=12):  # serve anyway; keep looking meanwhile
            self._look_again()

    def _look_again(self) -> None:
        """Look for the writer in the background until one answers (its keys with it)."""
        if self._looking is None or self._looking.done():
            self._looking = asyncio.ensure_future(self._connect())
            self._tasks.append(self._looking)

    async def _connect(self, tries: int = 0) -> bool:
        """Find the writer and take its key ring (``tries`` of 0.25 s; 0: until found)."""
        n = 0
        while True:
            try:
                await self.writer.find()  # a writer new to it: its keys first (refresh)
                return True
            except WriterUnavailable:
                n += 1
                if tries and n >= tries:
                    return False
                await asyncio.sleep(0.25)

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        for t in self._tasks:
            t.cancel()
        if self._sub_sock is not None:
            self._sub_sock.close(0)
        self.writer.close()

    async def refresh(self, at: int | None = None) -> None:
        """The writer's key hashes and symbols (at start and after a new writer took over;
        ``at``: the address of the writer just found)."""
        self.keys.load(orjson.loads(await self.writer.request(b"keys", at=at)))
        self._symbols = set(orjson.loads(await self.writer.request(b"symbols", at=at)))

    async def _listen(self) -> None:
        while True:
            topic, body = await self._sub_sock.recv_multipart()
            data = orjson.loads(body)
            if topic == TOPIC_KEYS:
                for login, salt, digest in data:
                    self.keys.set_client(login, salt, digest)
            elif topic == TOPIC_STREAM:
                ticks, acct = data
                with self._lock:
                    subs = list(self._subs)
                fan_out(subs, ticks, acct)

    # ------------------------------------------------------------------ what routes use
    async def order_send(self, login: int, request: dict, request_id: int) -> dict:
        out = orjson.loads(await self.writer.request(
            b"send", orjson.dumps([login, request, request_id])))
        if request_id:
            self.results.add((login, request_id))
        return out

    def known_symbols(self) -> set[str]:
        return self._symbols

    def subscribe(self, login: int | None, symbols: set[str] | None,
                  queue_size: int = 10_000) -> _Subscriber:
        sub = _Subscriber(asyncio.get_running_loop(), login, symbols, queue_size)
        with self._lock:
            self._subs.add(sub)
            first = len(self._subs) == 1
        if first and self._sub_sock is not None:
            self._sub_sock.setsockopt(zmq.SUBSCRIBE, TOPIC_STREAM)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)
            last = not self._subs
        if last and self._sub_sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sub_sock.setsockopt(zmq.UNSUBSCRIBE, TOPIC_STREAM)


class Forward:
    """Pure ASGI, innermost: the gateway's own routes (streams, ``/health``) run here;
    every other HTTP request goes to the writer as it came."""

    def __init__(self, local: Any, service: RemoteService) -> None:
        self.local = local
        self.service = service
        self.paths = set(_LOCAL_PATHS)
        if service.reader is not None:
            self.paths.update(_HISTORY_PATHS)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.paths:
            await self.local(scope, receive, send)
            return
        body = b""
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            body += msg.get("body", b"")
            if not msg.get("more_body", False):
                break
        client = scope.get("client")
        req = {"method": scope["method"], "path": scope["path"],
               "query": scope.get("query_string", b"").decode("latin-1"),
               "headers": [(k.decode("latin-1"), v.decode("latin-1"))
                           for k, v in scope["headers"]],
               "body": body.decode("latin-1"), "client": client[0] if client else None}
        try:
            out = orjson.loads(await self.service.writer.request(b"http", orjson.dumps(req)))
        except Retryable as exc:
            self.service.metrics.writer_unavailable.inc()
            await answer(send, 503, str(exc), RETRY_HEADERS)
            return
        await send({"type": "http.response.start", "status": out["status"],
                    "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                                for k, v in out["headers"]]})
        await send({"type": "http.response.body", "body": out["body"].encode("latin-1")})


def create_gateway(writers: list[str], events: list[str], settings: Settings | None = None,
                   timeout_s: float = 5.0, database_url: str | None = None
                   ) -> tuple[Any, RemoteService]:
    """The gateway's ASGI app and its service (started by the app's lifespan).

    ``database_url``: the writer's store, opened read-only: the gateway answers history
    reads from its query tables itself (committed before any answer: it sees every
    acknowledged trade)."""
    st = settings or Settings(demo=True, in_memory=True, _env_file=None)  # type: ignore[call-arg]
    svc = RemoteService(WriterClient(writers, timeout_s),
                        events, RateLimiter(st.rate_limit_per_s, st.rate_limit_burst))
    if database_url:
        from cfd.store import Store

        svc.reader = Store.open(database_url, read_only=True)
    auth = Authenticator(svc.keys, LoginThrottle(
        login_failures=st.login_failures, address_failures=st.address_failures,
        base_s=st.lockout_base_s, max_s=st.lockout_max_s, concurrency=st.auth_concurrency,
        queue=st.auth_queue), token_ttl_s=st.ws_token_ttl_s)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> Any:
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    from api.app import MeasureRequests, WsLimits, add_metrics_route, app_options, store_busy
    from cfd.store.errors import StoreBusy

    local = FastAPI(title="CFD engine gateway", openapi_url=None, docs_url=None,
                    redoc_url=None, lifespan=lifespan, **app_options())
    local.add_exception_handler(StoreBusy, store_busy)
    local.state.service = svc
    local.state.auth = auth

    local.state.ws_limits = WsLimits(st.ws_max_connections, st.ws_max_symbols, st.ws_queue)
    local.include_router(streams.router)
    local.add_api_route("/v1/version", mt5.version, response_model=S.Version)  # constant
    for path in _HISTORY_PATHS:  # routed here only with a store (Forward.paths)
        route = next(r for r in mt5.router.routes if getattr(r, "path", None) == path)
        local.router.routes.append(route)

    # the gateway's own requests (forwarded ones under one label: the writer counts them
    # by route); the writer's figures are on the writer's /metrics
    add_metrics_route(local, svc.metrics, auth, st.metrics_key)

    @local.get("/health")
    async def health() -> dict:
        try:
            await svc.writer.find() if svc.writer.current is None else None
        except WriterUnavailable as exc:
            return {"ok": False, "gateway": True, "writer": None, "detail": str(exc)}
        return {"ok": True, "gateway": True,
                "writer": svc.writer.endpoints[svc.writer.current or 0]}

    app: Any = Forward(local, svc)
    app = OrderSendFastPath(app, service=svc)  # type: ignore[arg-type]
    app = EdgeGuard(app, auth=auth, max_body=st.max_body_bytes,
                    max_trade_body=st.max_trade_body_bytes, max_depth=st.max_json_depth,
                    max_keys=st.max_json_keys)
    app = MeasureRequests(app, svc.metrics, unmatched="(forwarded)")
    return _Lifespan(app, local), svc


class _Lifespan:
    """Hand lifespan events to the local app (its startup connects the service)."""

    def __init__(self, app: Any, local: Any) -> None:
        self.app, self.local = app, local

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.local(scope, receive, send)
        else:
            await self.app(scope, receive, send)
