"""``cfd-server`` / ``python -m api``: run the HTTP API.

``--demo``: embedded SQLite in the current directory, the synthetic feed over the default
stock catalogue (24/7 unless ``--sessions us``), demo accounts whose logins and API keys are
printed, on 127.0.0.1:8000. Without ``--demo`` the settings come from ``CFD_*`` environment
variables and ``cfd-server.env`` (see :class:`api.settings.Settings`); default secrets are
refused. ``cfd-server import-history FILE.csv --symbol NVDA`` imports historical bars or
ticks (see :mod:`cfd.marketdata.importer`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["import-history"]:
        from cfd.marketdata.importer import main as import_history

        return import_history(args_in[1:])
    p = argparse.ArgumentParser(prog="cfd-server", description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", action="store_true", help="demo server (SQLite in the cwd)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--sessions", choices=["us", "always"], help="market hours (demo: always)")
    p.add_argument("--feed", choices=["synthetic", "push", "none"], help="price source")
    p.add_argument("--database-url", help="store URL (default sqlite:///./cfd.sqlite)")
    p.add_argument("--in-memory", action="store_true", help="no store (state is lost)")
    p.add_argument("--settings", help="settings file (default ./cfd-server.env)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("cfd").setLevel(logging.INFO)

    from api.server import build
    from api.settings import load_settings

    overrides = {k: v for k, v in {
        "demo": args.demo or None, "host": args.host, "port": args.port,
        "sessions": args.sessions, "feed": args.feed, "database_url": args.database_url,
        "in_memory": args.in_memory or None}.items() if v is not None}
    try:
        settings = load_settings(args.settings, **overrides)
    except ValidationError as exc:
        for err in exc.errors():
            print(f"cfd-server: {err['msg']}", file=sys.stderr)
        return 2
    rt = build(settings)
    if rt.demo is not None:
        print(f"CFD demo server on http://{settings.host}:{settings.port}  "
              f"(docs: /docs, metrics: /metrics)")
        print(f"  admin key: {rt.demo['admin_key']}")
        for a in rt.demo["accounts"]:
            print(f"  login {a['login']}  api key {a['api_key']}  ({a['name']})")
        print("  python: import api.mt5 as mt5; mt5.initialize()  # uses the first account")
        sys.stdout.flush()

    import uvicorn

    try:
        # no access log (not even filtered calls per request): requests are counted and
        # timed in /metrics
        uvicorn.run(rt.app, host=settings.host, port=settings.port, log_level="warning",
                    access_log=False)
    finally:
        rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
