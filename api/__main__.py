"""``cfd-server`` / ``python -m api``: run the HTTP API.

``--demo``: its own SQLite database ``cfd-demo.sqlite`` in the current directory (created
if missing), the synthetic feed over the default stock catalogue (24/7 unless ``--sessions
us``), demo accounts whose logins and API keys are printed (and kept with the database), on
127.0.0.1:8000. Without ``--demo`` the settings come from ``CFD_*`` environment variables and
``cfd-server.env`` (see :class:`api.settings.Settings`); default secrets are refused, and so
is a missing or empty database: ``cfd-server init`` (or ``--init``) creates the store.

Every refusal at start-up is one line on stderr and a non-zero exit (2: settings, 3: the
store, 4: the port). ``cfd-server import-history FILE.csv
--symbol NVDA`` imports historical bars or ticks (see :mod:`cfd.marketdata.importer`).
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["import-history"]:
        from cfd.marketdata.importer import main as import_history

        return import_history(args_in[1:])
    p = argparse.ArgumentParser(prog="cfd-server", description=__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", default="serve",
                   choices=["serve", "init", "writer", "gateway", "standby"],
                   help="serve (default); init: create the store and exit; writer, gateway, "
                        "standby: one process of a writer with gateways (see api.procs)")
    p.add_argument("--init", action="store_true", help="create the store if there is none")
    p.add_argument("--demo", action="store_true", help="demo server (SQLite in the cwd)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--sessions", choices=["us", "always"], help="market hours (demo: always)")
    p.add_argument("--feed", choices=["synthetic", "push", "none"], help="price source")
    p.add_argument("--database-url", help="store URL (default sqlite:///./cfd.sqlite)")
    p.add_argument("--in-memory", action="store_true", help="no store (state is lost)")
    p.add_argument("--settings", help="settings file (default ./cfd-server.env)")
    p.add_argument("--link", default="tcp://127.0.0.1:5555",
                   help="writer/standby: where gateways send requests")
    p.add_argument("--events", default="tcp://127.0.0.1:5556",
                   help="writer/standby: where it publishes events; gateway: where to "
                        "subscribe (comma-separated)")
    p.add_argument("--writer", default="tcp://127.0.0.1:5555",
                   help="gateway: the writer's and standbys' --link (comma-separated)")
    p.add_argument("--http", action="store_true",
                   help="writer/standby: serve the HTTP API on --port as well")
    p.add_argument("--gateways", type=int, default=0,
                   help="serve: also start N gateway processes on the ports after --port")
    p.add_argument("--lease-ttl", type=float, default=2.0,
                   help="standby: seconds without a heartbeat before it takes over")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("cfd").setLevel(logging.INFO)

    from api.server import build
    from api.settings import load_settings

    overrides = {k: v for k, v in {
        "demo": args.demo or None, "host": args.host, "port": args.port,
        "sessions": args.sessions, "feed": args.feed, "database_url": args.database_url,
        "in_memory": args.in_memory or None, "init": args.init or None}.items()
        if v is not None}
    if args.command == "init":
        return _init(args.settings, overrides)
    if args.command == "gateway":  # limits only: the keys come from the writer
        overrides.setdefault("demo", True)
    try:
        settings = load_settings(args.settings, **overrides)
    except ValidationError as exc:
        for err in exc.errors():
            print(f"cfd-server: {err['msg']}", file=sys.stderr)
        return 2
    serving = args.command in ("serve", "gateway") or args.http
    busy = port_problem(settings.host, settings.port) if serving else None
    if busy is not None:  # before any database file is made
        print(f"cfd-server: {busy}", file=sys.stderr)
        return 4
    if args.command != "serve":
        return _process(args, settings)
    try:
        rt = build(settings)
    except Exception as exc:
        return _refused(exc)
    if rt.demo is not None:
        print(f"CFD demo server on http://{settings.host}:{settings.port}  "
              f"(docs: /docs, metrics: /metrics)")
        print(f"  admin key: {rt.demo['admin_key']}")
        for a in rt.demo["accounts"]:
            print(f"  login {a['login']}  api key {a['api_key']}  ({a['name']})")
        print("  python: import api.mt5 as mt5; mt5.initialize()  # uses the first account")
        sys.stdout.flush()
    if args.gateways > 0:
        from api.procs import run_demo_with_gateways

        return run_demo_with_gateways(settings, rt, args.gateways)

    import uvicorn

    try:
        # no access log (not even filtered calls per request): requests are counted and
        # timed in /metrics
        uvicorn.run(rt.app, host=settings.host, port=settings.port, log_level="warning",
                    access_log=False)
    finally:
        rt.close()
    return 0


def _process(args: argparse.Namespace, settings: object) -> int:
    """``writer``, ``gateway``, ``standby`` (see :mod:`api.procs`)."""
    from api import procs

    if args.command == "gateway":
        return procs.run_gateway(settings, args.writer.split(","),  # type: ignore[arg-type]
                                 args.events.split(","))
    try:
        if args.command == "writer":
            return procs.run_writer(settings, args.link, args.events,  # type: ignore[arg-type]
                                    args.http)
        return procs.run_standby(settings, args.link, args.events,  # type: ignore[arg-type]
                                 args.lease_ttl, args.http)
    except Exception as exc:
        return _refused(exc)


def _refused(exc: Exception) -> int:
    """A start-up failure the store explains in one line (exit 3); anything else raises."""
    from cfd.store.startup import one_line

    line = one_line(exc)
    if line is None:
        raise exc
    print(f"cfd-server: {line}", file=sys.stderr)
    return 3


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (None if it can)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:
        return f"cannot resolve the bind address {host!r}: {exc}"
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((host, port))
        except OSError as exc:
            return (f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server "
                    "on that port? choose another with --port)")
    return None


def _init(settings_file: str | None, overrides: dict) -> int:
    """``cfd-server init``: create (or upgrade) the store and exit."""
    from api.settings import load_settings
    from cfd.store import Store, startup

    try:  # the admin key is not needed to create a store
        url = load_settings(settings_file, **{**overrides, "demo": True}).database_url
        url = startup.preflight(url, create=True)
        store = Store.open(url)
        try:
            seq = store.head_seq
        finally:
            store.close()
    except Exception as exc:
        line = startup.one_line(exc)
        if line is None:
            raise
        print(f"cfd-server: {line}", file=sys.stderr)
        return 3
    print(f"store ready at {store.url} (journal head seq {seq})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
