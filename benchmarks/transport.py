"""The gateway <-> writer channel, measured: ZeroMQ (DEALER/ROUTER, no broker) against NATS
(request/reply through a NATS server, nats-py) on this machine.

An echo responder runs in a process of its own (as the writer does) and answers each
request with a reply of the size of an order_send result; this process sends requests of
the size of an order_send message, from ``--inflight`` concurrent requesters on one event
loop (as a gateway does), for ``--seconds``. Reported per transport: requests a second, the
CPU both ends used per request, and p50 / p99 latency; then once more with one request in
flight (pure round-trip latency).

    python -m benchmarks.transport --seconds 5 --inflight 64
    python -m benchmarks.transport --nats nats://127.0.0.1:4222   # NATS needs its server

NATS is skipped (and said so) when nats-py is not installed or no server answers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import time

import numpy as np

from api.procs import free_port

REQUEST = b"x" * 160   # [login, request dict, request id] as JSON
REPLY = b"y" * 420     # an OrderSendResult as JSON


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


# ---------------------------------------------------------------------- responders
def zmq_responder(addr: str, ready: mp.Event) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.bind(addr)
    ready.set()
    while True:
        ident, rid, _body = s.recv_multipart()
        s.send_multipart([ident, rid, REPLY])


def zmq_batch_responder(addr: str, ready: mp.Event) -> None:
    """Requests come in batches (one message of many); each batch is answered by one."""
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.bind(addr)
    ready.set()
    while True:
        frames = s.recv_multipart()
        ident, rids = frames[0], frames[1]
        n = len(rids) // 8
        s.send_multipart([ident, rids, *([REPLY] * n)])


def nats_responder(url: str, ready: mp.Event) -> None:
    import nats

    async def go() -> None:
        nc = await nats.connect(url)

        async def cb(msg: object) -> None:
            await msg.respond(REPLY)  # type: ignore[attr-defined]

        await nc.subscribe("cfd.bench", cb=cb)
        await nc.flush()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(go())


# ---------------------------------------------------------------------- requesters
async def _drive(send: object, inflight: int, seconds: float) -> dict:
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await send()  # type: ignore[operator]
            lat.append(time.perf_counter() - t0)

    c0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    dt = time.perf_counter() - t0
    a = np.array(lat)
    return {"per_s": round(len(lat) / dt), "client_us_cpu": round((_cpu() - c0) / len(lat)
                                                                   * 1e6, 1),
            "p50_us": round(float(np.percentile(a, 50)) * 1e6),
            "p99_us": round(float(np.percentile(a, 99)) * 1e6), "n": len(lat)}


async def zmq_client(addr: str, inflight: int, seconds: float) -> dict:
    import zmq
    import zmq.asyncio

    ctx = zmq.asyncio.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(addr)
    pending: dict[bytes, asyncio.Future] = {}
    counter = [0]

    async def reader() -> None:
        while True:
            rid, _body = await s.recv_multipart()
            fut = pending.pop(rid, None)
            if fut is not None:
                fut.set_result(None)

    task = asyncio.ensure_future(reader())

    async def send() -> None:
        counter[0] += 1
        rid = counter[0].to_bytes(8, "big")
        fut = asyncio.get_running_loop().create_future()
        pending[rid] = fut
        await s.send_multipart([rid, REQUEST])
        await fut

    await send()  # connected
    out = await _drive(send, inflight, seconds)
    task.cancel()
    ctx.destroy(0)
    return out


async def zmq_batch_client(addr: str, inflight: int, seconds: float) -> dict:
    """As :func:`zmq_client`, but what the requesters send in one turn of the event loop
    goes as one message (the way a NATS client buffers its writes)."""
    import zmq
    import zmq.asyncio

    ctx = zmq.asyncio.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(addr)
    pending: dict[bytes, asyncio.Future] = {}
    queued: list[tuple[bytes, bytes]] = []
    counter = [0]
    loop = asyncio.get_running_loop()

    async def reader() -> None:
        while True:
            frames = await s.recv_multipart()
            rids = frames[0]
            for i in range(len(rids) // 8):
                fut = pending.pop(rids[8 * i:8 * i + 8], None)
                if fut is not None:
                    fut.set_result(None)

    task = asyncio.ensure_future(reader())

    def flush() -> None:
        batch = queued[:]
        queued.clear()
        s.send_multipart([b"".join(r for r, _ in batch), *(b for _, b in batch)])

    async def send() -> None:
        counter[0] += 1
        rid = counter[0].to_bytes(8, "big")
        fut = loop.create_future()
        pending[rid] = fut
        if not queued:
            loop.call_soon(flush)
        queued.append((rid, REQUEST))
        await fut

    await send()
    out = await _drive(send, inflight, seconds)
    task.cancel()
    ctx.destroy(0)
    return out


async def nats_client(url: str, inflight: int, seconds: float) -> dict:
    import nats

    nc = await nats.connect(url)

    async def send() -> None:
        await nc.request("cfd.bench", REQUEST, timeout=5)

    await send()
    out = await _drive(send, inflight, seconds)
    await nc.close()
    return out


def _measure(name: str, target: object, arg: str, client: object, inflight: int,
             seconds: float) -> dict:
    ready = mp.Event()
    proc = mp.Process(target=target, args=(arg, ready), daemon=True)
    proc.start()
    try:
        if not ready.wait(10):
            raise RuntimeError(f"{name}: the responder did not start")
        pid_cpu0 = _proc_cpu(proc.pid)
        out = asyncio.run(client(arg, inflight, seconds))  # type: ignore[operator]
        server = _proc_cpu(proc.pid) - pid_cpu0
        out["server_us_cpu"] = round(server / out["n"] * 1e6, 1)
        one = asyncio.run(client(arg, 1, min(2.0, seconds)))  # type: ignore[operator]
        out["one_inflight_p50_us"] = one["p50_us"]
    finally:
        proc.terminate()
        proc.join(5)
    return out


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nats_available(url: str) -> str | None:
    """Why NATS cannot be measured here (None if it can)."""
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed (pip install nats-py)"
    host, _, port = url.rsplit("/", 1)[-1].partition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 4222)), timeout=1):
            return None
    except OSError as exc:
        return f"no NATS server at {url}: {exc}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.transport", description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--inflight", type=int, default=64)
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = p.parse_args(argv)
    runs = [("zeromq", zmq_responder, f"tcp://127.0.0.1:{free_port()}", zmq_client),
            ("zeromq, batched", zmq_batch_responder, f"tcp://127.0.0.1:{free_port()}",
             zmq_batch_client)]
    why = nats_available(args.nats)
    if why is None:
        runs.append(("nats", nats_responder, args.nats, nats_client))
    else:
        print(f"nats: skipped ({why})")
    for name, target, arg, client in runs:
        out = _measure(name, target, arg, client, args.inflight, args.seconds)
        print(f"{name:15s} {args.inflight} in flight: {out['per_s']:,} req/s  p50 "
              f"{out['p50_us']} us  p99 {out['p99_us']} us  cpu per request: client "
              f"{out['client_us_cpu']} us, responder {out['server_us_cpu']} us; one in "
              f"flight: p50 {out['one_inflight_p50_us']} us", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
