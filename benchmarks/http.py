"""order_send over HTTP on loopback, durable before acknowledged (issue: MT5 HTTP API).

Starts ``python -m api --demo`` (SQLite in a temporary directory, synthetic feed) in a
subprocess, creates one account per client through the admin API, then measures from this
process with a lean keep-alive HTTP/1.1 client (asyncio streams, no client library):

1. saturation: ``--clients`` concurrent clients sending market orders as fast as answered;
2. the same against a no-op endpoint on the same server (``GET /v1/version``, authenticated),
   so the ratio order_send / no-op is reported;
3. latency at a fixed offered rate (``--rate``, open loop): p50 / p99 / max.

    python -m benchmarks.http --clients 32 --seconds 10 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.r, self.w = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        assert self.w is not None and self.r is not None
        self.w.write((f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                      ).encode() + body)
        status_line = await self.r.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        data = await self.r.readexactly(length) if length else b""
        return status, data

    def close(self) -> None:
        if self.w is not None:
            self.w.close()


def start_server(port: int, workdir: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "api", "--demo", "--port", str(port)],
                            cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited: " + (proc.stdout.read() if proc.stdout
                                                        else "")) from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


async def setup(port: int, n_clients: int) -> tuple[list[dict], dict]:
    anon = Conn("127.0.0.1", port, {})
    await anon.open()
    _, data = await anon.request("GET", "/demo/credentials")
    admin_key = json.loads(data)["admin_key"]
    anon.close()
    admin = Conn("127.0.0.1", port, {"Authorization": f"Bearer {admin_key}"})
    await admin.open()
    creds = []
    for i in range(n_clients):
        st, data = await admin.request("POST", "/admin/accounts", json.dumps(
            {"name": f"bench{i}", "group": "demo\\usdt", "leverage": 1}).encode())
        assert st == 200, data
        c = json.loads(data)
        st, data = await admin.request("POST", f"/admin/accounts/{c['login']}/deposit",
                                       json.dumps({"amount": "1000000.00"}).encode())
        assert st == 200, data
        creds.append(c)
    admin.close()
    probe = Conn("127.0.0.1", port, {"X-CFD-Login": str(creds[0]["login"]),
                                     "Authorization": f"Bearer {creds[0]['api_key']}"})
    await probe.open()
    tick = {}
    for _ in range(100):
        st, data = await probe.request("GET", "/v1/symbol_info_tick/AAPL")
        if st == 200:
            tick = json.loads(data)
            if tick.get("ask"):
                break
        await asyncio.sleep(0.1)
    probe.close()
    return creds, tick


def order_body(i: int, tick: dict) -> bytes:
    buy = i % 2 == 0
    return json.dumps({"action": 1, "symbol": "AAPL", "volume": 0.1, "type": 0 if buy else 1,
                       "price": tick["ask"] if buy else tick["bid"], "deviation": 100000,
                       "type_filling": 2, "comment": "bench"}).encode()


async def saturate(port: int, creds: list[dict], tick: dict, seconds: float, noop: bool
                   ) -> dict:
    conns = [Conn("127.0.0.1", port, {"X-CFD-Login": str(c["login"]),
                                      "Authorization": f"Bearer {c['api_key']}"})
             for c in creds]
    await asyncio.gather(*(c.open() for c in conns))
    lat: list[float] = []
    codes: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def worker(k: int, conn: Conn) -> None:
        i = k
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            if noop:
                st, data = await conn.request("GET", "/v1/version")
                code = st
            else:
                st, data = await conn.request("POST", "/v1/order_send", order_body(i, tick))
                code = json.loads(data).get("retcode", st) if st == 200 else st
            lat.append(time.perf_counter() - t0)
            codes[code] = codes.get(code, 0) + 1
            i += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k, c) for k, c in enumerate(conns)))
    dt = time.perf_counter() - t0
    for c in conns:
        c.close()
    a = np.array(lat)
    return {"requests": len(lat), "per_s": round(len(lat) / dt, 1), "codes": codes,
            "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2),
            "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 2)}


async def paced(port: int, creds: list[dict], tick: dict, rate: float, seconds: float) -> dict:
    conns = [Conn("127.0.0.1", port, {"X-CFD-Login": str(c["login"]),
                                      "Authorization": f"Bearer {c['api_key']}"})
             for c in creds]
    await asyncio.gather(*(c.open() for c in conns))
    free: asyncio.Queue[Conn] = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    lat: list[float] = []
    codes: dict[int, int] = {}
    n = int(rate * seconds)
    start = time.perf_counter()

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        conn = await free.get()
        try:
            st, data = await conn.request("POST", "/v1/order_send", order_body(i, tick))
        finally:
            free.put_nowait(conn)
        lat.append(time.perf_counter() - due)  # from the scheduled send: no coordinated omission
        code = json.loads(data).get("retcode", st) if st == 200 else st
        codes[code] = codes.get(code, 0) + 1

    await asyncio.gather(*(one(i) for i in range(n)))
    dt = time.perf_counter() - start
    for c in conns:
        c.close()
    a = np.array(lat)
    return {"offered_per_s": rate, "achieved_per_s": round(n / dt, 1), "codes": codes,
            "p50_ms": round(float(np.percentile(a, 50)) * 1e3, 2),
            "p99_ms": round(float(np.percentile(a, 99)) * 1e3, 2),
            "max_ms": round(float(a.max()) * 1e3, 2)}


def run(clients: int = 32, seconds: float = 10.0, rate: float = 500.0) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, tmp)
        try:
            async def go() -> dict:
                creds, tick = await setup(port, clients)
                out = {"clients": clients, "seconds": seconds}
                await saturate(port, creds, tick, 1.0, noop=False)  # warm-up
                out["order_send"] = await saturate(port, creds, tick, seconds, noop=False)
                out["noop"] = await saturate(port, creds, tick, seconds, noop=True)
                out["ratio"] = round(out["order_send"]["per_s"] / out["noop"]["per_s"], 3)
                out["paced"] = await paced(port, creds, tick, rate, seconds)
                return out

            return asyncio.run(go())
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.http", description=__doc__)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = run(args.clients, args.seconds, args.rate)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        o, n, pc = out["order_send"], out["noop"], out["paced"]
        print(f"order_send, {args.clients} clients: {o['per_s']:,}/s  p50 {o['p50_ms']} ms  "
              f"p99 {o['p99_ms']} ms  retcodes {o['codes']}")
        print(f"no-op (GET /v1/version), same server: {n['per_s']:,}/s  -> ratio "
              f"{out['ratio']}")
        print(f"paced {pc['offered_per_s']:.0f}/s: achieved {pc['achieved_per_s']}/s  "
              f"p50 {pc['p50_ms']} ms  p99 {pc['p99_ms']} ms  max {pc['max_ms']} ms  "
              f"retcodes {pc['codes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
