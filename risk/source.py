"""Where the book comes from and where actions go.

* a running server (default): ``GET /admin/snapshot`` (an ``.npz`` of the engine's snapshot
  arrays plus the meta dict, JSON in the uint8 array ``__meta__``), rebuilt with
  ``Engine.from_snapshot`` into a private copy; actions are admin API calls;
* a database (``--db URL``): opened read-only, the engine recovered from the latest snapshot
  plus the journal after it (``cfd.store.runner.recover``);
* a snapshot file (``--snapshot FILE.npz``, the same format as the endpoint).

The server is ``CFD_SERVER`` (default ``http://127.0.0.1:8000``), the admin key
``CFD_ADMIN_KEY``, else the demo server's ``GET /demo/credentials`` (loopback only).
"""

from __future__ import annotations

import getpass
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

DEFAULT_SERVER = "http://127.0.0.1:8000"


class SourceError(RuntimeError):
    """The book or the server could not be reached or read; the message says how to fix it."""


def encode_npz(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    payload = dict(arrays)
    payload["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buf, **payload)
    return buf.getvalue()


def decode_npz(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "__meta__" not in arrays:
        raise SourceError("the snapshot has no __meta__ array: not an engine snapshot")
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    return arrays, meta


def officer_name() -> str:
    return os.environ.get("CFD_OFFICER") or getpass.getuser()


class AdminClient:
    """The admin endpoints of a running server, with the officer's identity on each call
    (the server journals actions under the admin key's identity; ``X-Officer`` names the
    person at the keyboard)."""

    def __init__(self, base_url: str, key: str | None = None, officer: str | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.officer = officer or officer_name()
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)
        self._key = key or os.environ.get("CFD_ADMIN_KEY") or None

    def close(self) -> None:
        self._http.close()

    @property
    def key(self) -> str:
        if not self._key:
            try:
                r = self._http.get("/demo/credentials")
            except httpx.HTTPError as exc:
                raise SourceError(f"cannot reach {self.base_url} ({exc}); start the server "
                                  "or set CFD_SERVER") from None
            if r.status_code != 200:
                raise SourceError(f"no admin key: set CFD_ADMIN_KEY (the server at "
                                  f"{self.base_url} gives no demo credentials: HTTP "
                                  f"{r.status_code})")
            self._key = str(r.json()["admin_key"])
        return self._key

    def _call(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        return self._send(method, path, body)

    def _send(self, method: str, path: str, body: dict | bytes | None = None,
              content_type: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", "X-Officer": self.officer}
        kw: dict[str, Any] = {"json": body}
        if isinstance(body, bytes):
            headers["Content-Type"] = content_type or "application/octet-stream"
            kw = {"content": body}
        try:
            r = self._http.request(method, path, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise SourceError(f"{method} {self.base_url}{path} failed: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json()
            except ValueError:
                detail = r.text[:300]
            raise SourceError(f"{method} {path}: HTTP {r.status_code}: {detail}")
        return r

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return decode_npz(self._call("GET", "/admin/snapshot").content)

    def halt(self, symbol: str) -> Any:
        return self._call("POST", f"/admin/symbols/{symbol}/halt").json()

    def resume(self, symbol: str) -> Any:
        return self._call("POST", f"/admin/symbols/{symbol}/resume").json()

    def set_symbol(self, symbol: str, changes: dict[str, Any]) -> Any:
        return self._call("PATCH", f"/admin/symbols/{symbol}", changes).json()

    def stop_out(self, login: int) -> Any:
        return self._call("POST", f"/admin/accounts/{login}/stop_out").json()

    def set_exposure_limit(self, symbol: str, lots: str) -> Any:
        if lots:
            return self._call("PUT", f"/admin/exposure_limits/{symbol}", {"lots": lots}).json()
        return self._call("DELETE", f"/admin/exposure_limits/{symbol}").json()

    def set_group(self, group: str, changes: dict[str, Any]) -> Any:
        return self._call("POST", "/admin/groups", {"group": group, "changes": changes}).json()

    def set_levels(self, body: dict[str, Any]) -> Any:
        return self._call("POST", "/admin/levels", body).json()

    def topup(self, amount: str) -> Any:
        return self._call("POST", "/admin/insurance/topup", {"amount": amount}).json()

    def rollover(self, date: str) -> Any:
        return self._call("POST", "/admin/rollover", {"date": date}).json()

    def add_action(self, fields: dict[str, Any]) -> Any:
        return self._call("POST", "/admin/corporate_actions", fields).json()

    def cancel_action(self, action_id: int) -> Any:
        return self._call("DELETE", f"/admin/corporate_actions/{action_id}").json()

    def import_actions(self, raw: bytes, suffix: str) -> Any:
        kind = "application/json" if suffix == ".json" else "text/csv"
        r = self._send("POST", "/admin/corporate_actions/import", raw, kind)
        return r.json()

    def insurance(self) -> Any:
        return self._call("GET", "/admin/insurance").json()


@dataclass
class Source:
    server: str | None = None
    db: str | None = None
    snapshot: Path | None = None
    key: str | None = None
    officer: str | None = None
    transport: httpx.BaseTransport | None = None  # tests
    db_head: tuple[int, str] | None = None  # the journal head the book was loaded at

    @property
    def url(self) -> str:
        return self.server or os.environ.get("CFD_SERVER") or DEFAULT_SERVER

    def describe(self) -> str:
        if self.db:
            return f"database {self.db} (read-only)"
        if self.snapshot:
            return f"snapshot file {self.snapshot}"
        return f"server {self.url}"

    def admin(self) -> AdminClient:
        if self.db or self.snapshot:
            raise SourceError("actions go through a running server's admin API: drop --db / "
                              "--snapshot (and set CFD_SERVER if needed)")
        return AdminClient(self.url, self.key, self.officer, self.transport)

    def load(self) -> tuple[Any, dict[str, np.ndarray] | None, dict[str, Any] | None]:
        """A private engine copy of the book, and the raw snapshot arrays and meta when
        there are any (for the ledger history and the hash check)."""
        from cfd.engine import Engine

        if self.db:
            return self._from_db(), None, None
        if self.snapshot:
            try:
                blob = Path(self.snapshot).read_bytes()
            except OSError as exc:
                raise SourceError(f"cannot read {self.snapshot}: {exc}") from None
            arrays, meta = decode_npz(blob)
        else:
            client = self.admin()
            try:
                arrays, meta = client.snapshot()
            finally:
                client.close()
        return Engine.from_snapshot(arrays, meta), arrays, meta

    def _from_db(self) -> Any:
        from cfd.store import Store
        from cfd.store.runner import recover

        try:
            store = Store.open(self.db, read_only=True)
        except Exception as exc:  # noqa: BLE001 - any driver error: say which database
            raise SourceError(f"cannot open {self.db} read-only: {exc}") from None
        try:
            # one consistent view beside a running writer: the journal up to this head
            self.db_head = store.pin()
            return recover(store)
        finally:
            store.close()

    def open_store(self) -> Any:
        """The database read-only, pinned to the head the book was loaded at (so a clean
        replay is compared with the same journal, whatever a running server adds)."""
        from cfd.store import Store

        if not self.db:
            raise SourceError("a clean replay needs the database: pass --db URL")
        store = Store.open(self.db, read_only=True)
        store.pin(self.db_head)
        return store
