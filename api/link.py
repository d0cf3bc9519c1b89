"""The channel between gateways and the writer, over ZeroMQ (no broker).

* Requests: each gateway holds a DEALER per writer address; the writer (and a standby once it
  took over) binds a ROUTER. The requests a gateway's event loop makes in one turn go as ONE
  message ``[deadline_msc, ids, ops, body...]`` (ids: 8 bytes each; ops space-separated),
  and the answers the writer has ready in one turn of its loop go back to that gateway as one
  ``[ids, statuses, body...]`` (bodies JSON): per order, the channel costs a few
  microseconds, not a message (``python -m benchmarks.transport``). Ops: ``ping`` (is this
  the writer? and its lease owner), ``keys`` (the key ring's hashes), ``symbols``, ``send``
  (order_send for a login, with its request id: the writer's own idempotent path,
  :meth:`EngineService.order_send`),
  ``http`` (any other HTTP request, run by the writer's own app, so the answer is the
  single-process answer). Statuses: ``ok``, ``reused`` (409), ``retry`` (the writer does not
  run: a standby that has not taken over, a writer fenced or stopped). A request whose
  deadline passed before the writer read it is dropped unread (its gateway answered 503
  already; a retry with the same request id is safe).
* Events: the writer binds an XPUB; gateways SUB. Topic ``k``: API key changes (every
  gateway), topic ``s``: the stream messages (ticks, deals, orders, margin calls,
  stop-outs: :func:`api.service.render`), subscribed by a gateway while it has WebSocket
  subscribers. The writer renders the stream only while some gateway subscribes to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from typing import Any

import orjson
import zmq
import zmq.asyncio

from api.idempotency import RequestIdReused
from api.service import EngineService, Retryable, render, send_result_dict

log = logging.getLogger("cfd.api.link")

OK, REUSED, RETRY = b"ok", b"reused", b"retry"
TOPIC_KEYS, TOPIC_STREAM = b"k", b"s"


def now_msc() -> int:
    return time.time_ns() // 1_000_000


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


class WriterLink:
    """The writer's end: a ROUTER for requests, an XPUB for events, on a thread of its own
    with its own event loop (the service's writer thread wakes it once per batch)."""

    def __init__(self, service: EngineService, app: Any, bind: str, publish: str,
                 owner: str | None = None) -> None:
        self.service = service
        self.app = app
        self.bind, self.publish = bind, publish
        self.owner = owner or uuid.uuid4().hex  # names this writer to the gateways
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stream = False  # some gateway subscribes to the stream topic
        self._pub: Any = None
        self._error: BaseException | None = None
        self._out: dict[bytes, list[tuple[bytes, bytes, bytes]]] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="cfd-link", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        self.service.listeners.append(self._on_batch)

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.service.listeners.remove(self._on_batch)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        ctx = zmq.asyncio.Context()
        try:
            router = ctx.socket(zmq.ROUTER)
            router.setsockopt(zmq.LINGER, 0)
            router.bind(self.bind)
            pub = self._pub = ctx.socket(zmq.XPUB)
            pub.setsockopt(zmq.LINGER, 0)
            pub.bind(self.publish)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            ctx.destroy(0)
            return
        self._ready.set()
        tasks = [loop.create_task(self._serve(router)), loop.create_task(self._watch(pub))]
        try:
            loop.run_forever()
        finally:
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            ctx.destroy(0)
            loop.close()

    # ------------------------------------------------------------------ requests
    async def _serve(self, router: Any) -> None:
        while True:
            frames = await router.recv_multipart(copy=True)
            if len(frames) < 5:
                continue
            ident, deadline, rids, ops = frames[:4]
            bodies = frames[4:]
            ops_list = ops.split(b" ")
            if len(rids) != 8 * len(bodies) or len(ops_list) != len(bodies):
                continue
            if int(deadline or 0) and now_msc() > int(deadline):
                continue  # its gateway gave up on it: never execute it late
            for i, body in enumerate(bodies):
                rid, op = rids[8 * i:8 * i + 8], ops_list[i]
                if op == b"send" and self.writing():
                    login, request, request_id = orjson.loads(body)
                    if not request_id:  # the common case, without a task per order
                        self.service.send_soon(login, request).add_done_callback(
                            functools.partial(self._sent, router, ident, rid))
                        continue
                asyncio.ensure_future(self._answer(router, ident, rid, op, body))

    def _sent(self, router: Any, ident: bytes, rid: bytes, fut: asyncio.Future) -> None:
        exc = fut.exception()
        if exc is None:
            self._queue_reply(router, ident, rid, OK, dumps(send_result_dict(fut.result())))
        else:
            self._queue_reply(router, ident, rid, RETRY,
                              dumps(f"the writer could not run it: {exc}"))

    async def _answer(self, router: Any, ident: bytes, rid: bytes, op: bytes,
                      body: bytes) -> None:
        try:
            status, out = await self._handle(op, body)
        except RequestIdReused as exc:
            status, out = REUSED, dumps(str(exc))
        except Exception as exc:
            status, out = RETRY, dumps(f"the writer could not run it: {exc}")
        self._queue_reply(router, ident, rid, status, out)

    def _queue_reply(self, router: Any, ident: bytes, rid: bytes, status: bytes,
                     out: bytes) -> None:
        queued = self._out.get(ident)
        if queued is None:
            queued = self._out[ident] = []
            asyncio.get_running_loop().call_soon(self._flush, router, ident)
        queued.append((rid, status, out))

    def _flush(self, router: Any, ident: bytes) -> None:
        """The answers ready in this turn of the loop, to one gateway, as one message."""
        batch = self._out.pop(ident, [])
        if batch:
            with contextlib.suppress(zmq.ZMQError):
                router.send_multipart([ident, b"".join(r for r, _, _ in batch),
                                       b" ".join(st for _, st, _ in batch),
                                       *(out for _, _, out in batch)], flags=zmq.NOBLOCK)

    @property
    def streaming(self) -> bool:
        """Does some gateway subscribe to the stream (ticks, deals, ...)?"""
        return self._stream

    def writing(self) -> bool:
        svc = self.service
        return svc.failed is None and svc._thread is not None

    async def _handle(self, op: bytes, body: bytes) -> tuple[bytes, bytes]:
        svc = self.service
        if op == b"ping":
            return OK, dumps({"writer": self.writing(), "owner": self.owner})
        if not self.writing():
            return RETRY, dumps(f"not the writer: {svc.failed!r}" if svc.failed
                                else "not the writer")
        if op == b"send":
            login, request, rid = orjson.loads(body)
            return OK, dumps(await svc.order_send(login, request, rid))
        if op == b"http":
            return OK, await self._http(orjson.loads(body))
        if op == b"keys":
            return OK, dumps(svc.keys.export())
        if op == b"symbols":
            return OK, dumps(sorted(svc.known_symbols()))
        raise ValueError(f"unknown op {op[:16]!r}")

    async def _http(self, req: dict) -> bytes:
        """Run one HTTP request through the writer's own app; the answer as
        ``{"status", "headers", "body"}`` (body latin-1 text)."""
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": req["method"], "scheme": "http", "path": req["path"],
                 "raw_path": req["path"].encode(), "root_path": "",
                 "query_string": req["query"].encode("latin-1"),
                 "headers": [(k.encode("latin-1"), v.encode("latin-1"))
                             for k, v in req["headers"]],
                 "client": (req.get("client") or "gateway", 0), "server": ("writer", 0)}
        body = req["body"].encode("latin-1")
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        out: dict = {"status": 500, "headers": [], "body": ""}
        chunks: list[bytes] = []

        async def send(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                out["status"] = msg["status"]
                out["headers"] = [(k.decode("latin-1"), v.decode("latin-1"))
                                  for k, v in msg.get("headers", [])]
            elif msg["type"] == "http.response.body":
                chunks.append(msg.get("body", b""))

        await self.app(scope, receive, send)
        out["body"] = b"".join(chunks).decode("latin-1")
        return dumps(out)

    # ------------------------------------------------------------------ events
    async def _watch(self, pub: Any) -> None:
        """XPUB subscriptions: is the stream topic wanted? (first subscribe, last leave)"""
        while True:
            msg = await pub.recv()
            if msg[1:] == TOPIC_STREAM:
                self._stream = msg[:1] == b"\x01"

    def _on_batch(self, effects: Any) -> None:
        """On the writer thread: hand the batch to the link's loop (rendered there)."""
        keys = [e for e in effects.events if e.get("kind") == "api_key"]
        if not keys and not (self._stream and (effects.ticks or effects.deals or effects.orders
                                               or effects.blocks or effects.events)):
            return
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._send_batch, effects, keys)

    def _send_batch(self, effects: Any, keys: list[dict]) -> None:
        pub = self._pub
        if keys:
            pub.send_multipart([TOPIC_KEYS, dumps([[int(e["login"]), e["salt"], e["hash"]]
                                                   for e in keys])])
        if self._stream:
            ticks, acct = render(effects)
            if ticks or acct:
                pub.send_multipart([TOPIC_STREAM, dumps([ticks, acct])])


class WriterUnavailable(Retryable):
    """No writer answered in time (a takeover may be under way): retry."""


class WriterClient:
    """A gateway's end: DEALER sockets to the writer candidates, used from one event loop.

    Requests go to the address that last said it is the writer; on a timeout or a ``retry``
    answer the client asks every address (``ping``) and follows the one that answers as
    writer. Until one does, requests fail with :class:`WriterUnavailable` (503, retry).
    """

    def __init__(self, endpoints: list[str], timeout_s: float = 5.0,
                 ping_timeout_s: float = 0.5) -> None:
        self.endpoints = list(endpoints)
        self.timeout_s = timeout_s
        self.ping_timeout_s = ping_timeout_s
        self.current: int | None = None
        self.owner = ""
        self._last: tuple[int, str] | None = None  # the writer found last (index, owner)
        #: ``await fn(index)`` for a newly found writer, before requests go to it
        self.on_switch: list[Any] = []
        self.on_lost: list[Any] = []  # functions called when the writer stopped answering
        self._ctx: Any = None
        self._socks: list[Any] = []
        self._readers: list[asyncio.Task] = []
        self._pending: dict[bytes, asyncio.Future] = {}
        self._queued: list[list[tuple[bytes, bytes, bytes]]] = []
        self._next = 0
        self._finding: asyncio.Future | None = None

    def _open(self) -> None:
        if self._ctx is not None:
            return
        self._ctx = zmq.asyncio.Context()
        for i in range(len(self.endpoints)):
            self._socks.append(self._dealer(i))
            self._queued.append([])
            self._readers.append(asyncio.ensure_future(self._read(i)))

    def _dealer(self, i: int) -> Any:
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for an address not connected
        s.connect(self.endpoints[i])
        return s

    def _reset(self, i: int) -> None:
        """Drop what is queued for a silent address (a frozen writer must never get a
        backlog of old requests when it wakes)."""
        self._queued[i] = []
        self._readers[i].cancel()
        self._socks[i].close(0)
        self._socks[i] = self._dealer(i)
        self._readers[i] = asyncio.ensure_future(self._read(i))

    async def _read(self, i: int) -> None:
        sock = self._socks[i]
        while True:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError:
                return
            if len(frames) < 3:
                continue
            rids, statuses = frames[0], frames[1].split(b" ")
            for k, body in enumerate(frames[2:]):
                fut = self._pending.pop(rids[8 * k:8 * k + 8], None)
                if fut is not None and not fut.done():
                    fut.set_result((statuses[k], body))

    def _flush(self, i: int) -> None:
        """What the requesters queued in this turn of the loop goes as one message."""
        batch, self._queued[i] = self._queued[i], []
        if not batch:
            return
        deadline = now_msc() + int(self.timeout_s * 1000)
        try:  # not connected (zmq.IMMEDIATE) or full: their requests fail at once
            sent = self._socks[i].send_multipart(
                [b"%d" % deadline, b"".join(r for r, _, _ in batch),
                 b" ".join(op for _, op, _ in batch), *(b for _, _, b in batch)],
                flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            self._unsent([r for r, _, _ in batch])
            return
        if isinstance(sent, asyncio.Future):
            sent.add_done_callback(
                lambda f: self._unsent([r for r, _, _ in batch])
                if f.cancelled() or f.exception() is not None else None)

    def _unsent(self, rids: list[bytes]) -> None:
        for rid in rids:
            fut = self._pending.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_exception(TimeoutError("not sent: the address is not connected"))

    async def _ask(self, i: int, op: bytes, body: bytes, timeout: float
                   ) -> tuple[bytes, bytes]:
        self._next += 1
        rid = self._next.to_bytes(8, "big")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[rid] = fut
        if not self._queued[i]:
            loop.call_soon(self._flush, i)
        self._queued[i].append((rid, op, body))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)

    async def request(self, op: bytes, body: bytes = b"", at: int | None = None) -> bytes:
        """The writer's answer body; raises WriterUnavailable, RequestIdReused. ``at``: ask
        that address (by index) rather than the current writer's."""
        self._open()
        i = self.current if at is None else at
        if i is None:
            i = await self.find()
        try:
            status, out = await self._ask(i, op, body, self.timeout_s)
        except TimeoutError:
            self._lost(i)
            raise WriterUnavailable(f"the writer at {self.endpoints[i]} did not answer in "
                                    f"{self.timeout_s:g} s; retry") from None
        if status == OK:
            return out
        if status == REUSED:
            raise RequestIdReused(orjson.loads(out))
        self._lost(i)
        raise WriterUnavailable(f"the writer at {self.endpoints[i]} is not taking commands "
                                f"({orjson.loads(out)}); retry")

    def _lost(self, i: int) -> None:
        if self.current == i:
            self.current = None
            self._reset(i)
            for fn in self.on_lost:
                fn()

    async def find(self) -> int:
        """The index of the address that answers as the writer (asks all at once)."""
        self._open()
        if self._finding is None or self._finding.done():
            self._finding = asyncio.ensure_future(self._probe())
        return await asyncio.shield(self._finding)

    async def _probe(self) -> int:
        async def ping(i: int) -> tuple[int, dict | None]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.ping_timeout_s
            while True:  # not connected yet: the send fails at once; try until the deadline
                try:
                    status, out = await self._ask(i, b"ping", b"",
                                                  max(0.01, deadline - loop.time()))
                    return i, orjson.loads(out) if status == OK else None
                except TimeoutError:
                    if loop.time() >= deadline:
                        self._reset(i)
                        return i, None
                    await asyncio.sleep(0.02)

        answers = await asyncio.gather(*(ping(i) for i in range(len(self.endpoints))))
        for i, info in answers:
            if info and info.get("writer"):
                found = (i, info.get("owner", ""))
                if found != self._last:  # a new writer: catch up before use
                    for fn in self.on_switch:
                        await fn(i)
                self._last = found
                self.current, self.owner = found
                return i
        raise WriterUnavailable("no writer answers at " + ", ".join(self.endpoints)
                                + " (a takeover may be under way); retry")

    def close(self) -> None:
        for t in self._readers:
            t.cancel()
        if self._ctx is not None:
            self._ctx.destroy(0)
            self._ctx = None
        self._socks, self._readers, self._queued = [], [], []
