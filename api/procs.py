"""The server's processes beyond one: writer, gateway, standby (``cfd-server writer|gateway|
standby``), and the demo's writer with gateways of its own (``--gateways N``).

* ``writer``: the engine, its store and its feed, and the link (:mod:`api.link`) at
  ``--link`` (requests) and ``--events`` (event stream). ``--port``: also its own HTTP API
  (as ``serve``).
* ``gateway``: HTTP and WebSockets on ``--port`` in front of the writers at ``--writer``
  (comma-separated: the writer's and the standbys' ``--link`` addresses) and ``--events``.
* ``standby``: follows the writer's journal (PostgreSQL), takes over when the writer's
  lease lapses (``--lease-ttl`` seconds), then runs as ``writer`` at its own ``--link`` and
  ``--events``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from api.settings import Settings

log = logging.getLogger("cfd.api")

HEARTBEAT_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_writer(rt: Any, link: str, events: str, port: int | None,
                 host: str = "127.0.0.1") -> int:
    """Run the link (and, with ``port``, the HTTP API) around a built runtime, until a
    signal, or until the writer stops (fenced: a standby took over; or a store failure):
    then it exits with 5, for a supervisor to restart it (as a standby)."""
    import uvicorn

    from api.link import WriterLink

    svc = rt.service
    store = svc.store
    on_pg = store is not None and store.engine.dialect.name == "postgresql"
    svc.heartbeat_s = HEARTBEAT_S if on_pg else 0.0  # a standby watches it (PostgreSQL)
    wl = WriterLink(svc, rt.app, link, events, owner=store.owner if store is not None else "")
    stop = threading.Event()
    server = None
    if port:
        server = uvicorn.Server(uvicorn.Config(rt.app, host=host, port=port,
                                               log_level="warning", access_log=False))

    def watch() -> None:
        while not stop.wait(0.25):
            if svc.failed is not None:
                log.error("the writer stopped (%s): exiting", svc.failed)
                stop.set()
                if server is not None:
                    server.should_exit = True

    try:
        wl.start()
        print(f"cfd writer: requests at {link}, events at {events}", flush=True)
        threading.Thread(target=watch, name="cfd-watch", daemon=True).start()
        # a signal stops the writer and lets the ``finally`` below (and the caller's: the
        # demo's gateways) run; uvicorn hands a signal it caught back to this handler once
        # it has shut down, where the default one would kill the process on the spot
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if server is not None:
            server.run()
            stop.set()
        else:
            stop.wait()
    finally:
        wl.stop()
        try:
            rt.close()
        except Exception as exc:  # a fenced writer's sessions were ended by the standby
            if svc.failed is None:
                raise
            log.warning("closing after the writer stopped: %s", exc)
    return 5 if svc.failed is not None else 0


def run_writer(settings: Settings, link: str, events: str, http: bool) -> int:
    from api.server import build

    return serve_writer(build(settings), link, events, settings.port if http else None,
                        settings.host)


def run_standby(settings: Settings, link: str, events: str, ttl_s: float,
                http: bool) -> int:
    from api.server import build
    from cfd.store import standby

    url = settings.database_url
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"cfd standby: following {url}", flush=True)
    durable, sb = standby.run(url, ttl_s=ttl_s, snapshot_every=None, stop=stop.is_set)
    if durable is None:
        return 0
    print(f"cfd standby: took over as writer at seq {sb.seq} state {sb.first_hash} "
          f"{sb.takeover_s:.3f} s after the lease's last change "
          f"({sb.hashes_checked} snapshot hashes checked while following)", flush=True)
    rt = build(settings, durable=durable)
    return serve_writer(rt, link, events, settings.port if http else None, settings.host)


def run_gateway(settings: Settings, writers: list[str], events: list[str]) -> int:
    import uvicorn

    from api.gateway import create_gateway

    app, _ = create_gateway(writers, events, settings, database_url=settings.database_url)
    print(f"cfd gateway on http://{settings.host}:{settings.port} -> {', '.join(writers)}",
          flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                access_log=False, loop=os.environ.get("CFD_GATEWAY_LOOP", "auto"))
    return 0


def spawn_gateways(n: int, first_port: int, host: str, link: str, events: str,
                   database_url: str | None = None) -> list[subprocess.Popen]:
    """``n`` gateway processes on ``first_port``, ``first_port + 1``, ... (the demo's)."""
    procs = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # on Linux a gateway also ends when the demo's process dies without cleaning up (SIGKILL)
    die_with_parent = _die_with_parent if sys.platform.startswith("linux") else None
    store = ["--database-url", database_url] if database_url else []
    for i in range(n):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "api", "gateway", "--host", host,
             "--port", str(first_port + i), "--writer", link, "--events", events, *store],
            env=env, preexec_fn=die_with_parent))
    return procs


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent process dies (prctl
    PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def run_demo_with_gateways(settings: Settings, rt: Any, n: int) -> int:
    """The demo's writer (its own HTTP API on ``settings.port``) and ``n`` gateways on the
    ports after it."""
    link = f"tcp://127.0.0.1:{free_port()}"
    events = f"tcp://127.0.0.1:{free_port()}"
    store = rt.service.store
    url = None if store is None else store.engine.url.render_as_string(hide_password=False)
    procs = spawn_gateways(n, settings.port + 1, settings.host, link, events, url)
    stopping = threading.Event()

    def watch(p: subprocess.Popen, port: int) -> None:  # a gateway that ends is said so
        rc = p.wait()
        if not stopping.is_set():
            print(f"  gateway on port {port} ended (exit code {rc}); the writer and the "
                  f"other gateways go on", flush=True)

    for i, p in enumerate(procs):
        print(f"  gateway on http://{settings.host}:{settings.port + 1 + i}", flush=True)
        threading.Thread(target=watch, args=(p, settings.port + 1 + i), daemon=True).start()
    try:
        return serve_writer(rt, link, events, settings.port, settings.host)
    finally:
        stopping.set()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
