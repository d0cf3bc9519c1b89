"""order_send over HTTP on loopback, durable before acknowledged (the MT5 HTTP API).

Starts ``python -m api --demo`` (SQLite in a temporary directory, synthetic feed) in a
subprocess, creates one account per client through the admin API, then measures from this
process with a lean keep-alive HTTP/1.1 client (asyncio streams, no client library):

1. saturation: ``--clients`` concurrent clients sending market orders as fast as answered;
2. the same against a no-op endpoint on the same server (``GET /v1/version``, authenticated),
   so the ratio order_send / no-op is reported;
3. latency at a fixed offered rate (``--rate``, open loop): p50 / p99 / max.

Beside each phase it reports the CPU the server process used (cores, from /proc) and, after
the server stopped, checks in its SQLite journal that every order the server answered with a
result is there (durable before acknowledged). ``--repeat N`` runs it all N times, each on a
fresh server, and reports the median and the range of each figure.

    python -m benchmarks.http --clients 32 --seconds 10 --rate 500 --repeat 3

``--gateways N``: the server also starts N gateway processes (``cfd-server --demo
--gateways N``: api.gateway, api.link); order_send and the no-op are measured through the
gateways (clients spread over them), and order_send once more on the writer's own port (the
single-process figure, in the same run). The cores are those of the writer and its
gateways together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from api.procs import free_port


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


def start_server(port: int, workdir: str, gateways: int = 0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "api", "--demo", "--port", str(port)]
    if gateways:
        cmd += ["--gateways", str(gateways)]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    waiting = [port + i for i in range(gateways + 1)]
    while time.time() < deadline and waiting:
        try:
            with socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5):
                waiting.pop(0)
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited") from None
            time.sleep(0.2)
    if not waiting:
        return proc
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def free_ports(n: int) -> int:
    """A port with the ``n - 1`` after it free too (the demo's gateways take those)."""
    for _ in range(100):
        port = free_port()
        if port + n > 65535:
            continue
        try:
            for i in range(1, n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + i))
        except OSError:
            continue
        return port
    raise RuntimeError("no free ports")


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc; empty elsewhere)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float | None:
    """CPU seconds all processes on the machine spent busy so far (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used during a phase by the server process, by this (client) process and by
    everything else on the machine (a noisy neighbour shows there)."""

    def __init__(self, server_pid: int) -> None:
        self.pids = [server_pid, *children(server_pid)]  # the writer and its gateways
        self.t0 = time.perf_counter()
        self.s0 = self._server()
        self.w0 = cpu_seconds(server_pid)
        self.c0 = time.process_time()
        self.m0 = busy_seconds()

    def _server(self) -> float | None:
        got = [cpu_seconds(p) for p in self.pids]
        return None if None in got else sum(got)  # type: ignore[arg-type]

    def cores(self) -> dict:
        dt = time.perf_counter() - self.t0
        s1, m1 = self._server(), busy_seconds()
        server = None if s1 is None or self.s0 is None else (s1 - self.s0) / dt
        client = (time.process_time() - self.c0) / dt
        other = None
        if server is not None and m1 is not None and self.m0 is not None:
            other = max(0.0, (m1 - self.m0) / dt - server - client)
        w1 = cpu_seconds(self.pids[0])
        writer = None if w1 is None or self.w0 is None else round((w1 - self.w0) / dt, 2)
        return {"server_cores": None if server is None else round(server, 2),
                "writer_cores": writer,
                "client_cores": round(client, 2),
                "other_cores": None if other is None else round(other, 2)}


def journaled_orders(db: str) -> int:
    """order_send commands in the store's journal (read after the server stopped)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT count(*) FROM journal WHERE kind = 'order_send'"
                            ).fetchone()[0]


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


def _conns(ports: int | list[int], creds: list[dict]) -> list[Conn]:
    """One connection per client, spread over ``ports``."""
    ports = [ports] if isinstance(ports, int) else ports
    return [Conn("127.0.0.1", ports[i % len(ports)],
                 {"X-CFD-Login": str(c["login"]), "Authorization": f"Bearer {c['api_key']}"})
            for i, c in enumerate(creds)]


async def saturate(port: int | list[int], creds: list[dict], tick: dict, seconds: float,
                   noop: bool) -> dict:
    conns = _conns(port, creds)
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


async def paced(port: int | list[int], creds: list[dict], tick: dict, rate: float,
                seconds: float) -> dict:
    conns = _conns(port, creds)
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


def _answered(*phases: dict) -> int:
    """Orders the writer answered (every retcode but the rate limit's, which the service
    gives itself without journaling; no request ids here, so no retries)."""
    return sum(n for ph in phases for code, n in ph["codes"].items()
               if code != 10024 and code >= 10000)


def run(clients: int = 32, seconds: float = 10.0, rate: float = 500.0,
        gateways: int = 0) -> dict:
    port = free_ports(gateways + 1)
    front = [port + 1 + i for i in range(gateways)] or [port]
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, tmp, gateways)
        try:
            async def go() -> dict:
                creds, tick = await setup(port, clients)
                if gateways:  # the gateways heard of the new keys (api.link's key topic)
                    await asyncio.sleep(0.5)
                out: dict = {"clients": clients, "seconds": seconds, "gateways": gateways}
                out["warmup"] = await saturate(front, creds, tick, 1.0, noop=False)
                phases = [("order_send", False, front), ("noop", True, front)]
                if gateways:
                    phases.append(("single", False, [port]))
                for name, noop, ports in phases:
                    cpu = CpuMeter(proc.pid)
                    out[name] = await saturate(ports, creds, tick, seconds, noop=noop)
                    out[name].update(cpu.cores())
                out["ratio"] = round(out["order_send"]["per_s"] / out["noop"]["per_s"], 3)
                cpu = CpuMeter(proc.pid)
                out["paced"] = await paced(front, creds, tick, rate, seconds)
                out["paced"].update(cpu.cores())
                return out

            out = asyncio.run(go())
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        answered = _answered(out["warmup"], out["order_send"], out["paced"],
                             *([out["single"]] if gateways else []))
        journaled = journaled_orders(os.path.join(tmp, "cfd-demo.sqlite"))
        out["durable"] = {"answered": answered, "journaled": journaled,
                          "ok": journaled == answered}
        return out


def _line(out: dict, clients: int) -> list[str]:
    o, n, pc, d = out["order_send"], out["noop"], out["paced"], out["durable"]
    g = out.get("gateways") or 0
    via = f" through {g} gateways" if g else ""
    single = []
    if g:
        s1 = out["single"]
        single = [f"order_send on the writer's own port (single process), same run: "
                  f"{s1['per_s']:,}/s  p50 {s1['p50_ms']} ms  p99 {s1['p99_ms']} ms  "
                  f"cores: server {s1['server_cores']}"]
    return single + [
        f"order_send{via}, {clients} clients: {o['per_s']:,}/s  p50 {o['p50_ms']} ms  "
        f"p99 {o['p99_ms']} ms  retcodes {o['codes']}  cores: server {o['server_cores']}, "
        f"client {o['client_cores']}, other {o['other_cores']}"
        + (f" (writer process {o['writer_cores']})" if g else ""),
        f"no-op (GET /v1/version){via}: {n['per_s']:,}/s  -> ratio "
        f"{out['ratio']}  cores: server {n['server_cores']}, client {n['client_cores']}, "
        f"other {n['other_cores']}" + (f" (writer process {n['writer_cores']})" if g else ""),
        f"paced {pc['offered_per_s']:.0f}/s: achieved {pc['achieved_per_s']}/s  "
        f"p50 {pc['p50_ms']} ms  p99 {pc['p99_ms']} ms  max {pc['max_ms']} ms  "
        f"retcodes {pc['codes']}  cores: server {pc['server_cores']}, "
        f"client {pc['client_cores']}, other {pc['other_cores']}",
        f"journal: {d['journaled']:,} order_send commands for {d['answered']:,} answered "
        f"orders ({'all durable' if d['ok'] else 'MISMATCH'})",
    ]


def summary(runs: list[dict]) -> dict:
    """Median and range of each headline figure over the runs."""
    figures = {
        "order_send_per_s": [r["order_send"]["per_s"] for r in runs],
        "single_per_s": [r["single"]["per_s"] for r in runs if "single" in r],
        "noop_per_s": [r["noop"]["per_s"] for r in runs],
        "ratio": [r["ratio"] for r in runs],
        "paced_p50_ms": [r["paced"]["p50_ms"] for r in runs],
        "paced_p99_ms": [r["paced"]["p99_ms"] for r in runs],
        "paced_max_ms": [r["paced"]["max_ms"] for r in runs],
        "server_cores_order_send": [r["order_send"]["server_cores"] for r in runs],
        "other_cores_paced": [r["paced"]["other_cores"] for r in runs],
    }
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
            for k, v in figures.items() if v and None not in v}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.http", description=__doc__)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--repeat", type=int, default=1, help="runs, each on a fresh server")
    p.add_argument("--gateways", type=int, default=0,
                   help="measure through N gateway processes (and the writer alone)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    runs = []
    for i in range(max(1, args.repeat)):
        out = run(args.clients, args.seconds, args.rate, args.gateways)
        runs.append(out)
        if not args.json:
            if args.repeat > 1:
                print(f"run {i + 1} of {args.repeat}")
            print("\n".join(_line(out, args.clients)), flush=True)
    if args.json:
        print(json.dumps(runs[0] if len(runs) == 1 else
                         {"runs": runs, "summary": summary(runs)}, indent=2))
    elif len(runs) > 1:
        print(f"over {len(runs)} runs: median [min - max]")
        for k, v in summary(runs).items():
            print(f"  {k}: {v['median']} [{v['min']} - {v['max']}]")
    return 0 if all(r["durable"]["ok"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
