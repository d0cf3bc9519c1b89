"""API keys: generated at random, stored only as salted scrypt hashes, never logged.

Clients send ``X-CFD-Login: <login>`` and ``Authorization: Bearer <api key>``; risk officers
send ``Authorization: Bearer <admin key>`` (named identities, the name is the command's
``actor`` in the journal). A verified key is remembered by its keyed digest so the scrypt cost
(~tens of ms) is paid once per key and process, not per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}


def new_key() -> str:
    return secrets.token_urlsafe(32)


def hash_key(key: str, salt: bytes | None = None) -> tuple[str, str]:
    """``(salt hex, scrypt hash hex)`` of a key."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, **_SCRYPT)
    return salt.hex(), digest.hex()


@dataclass(frozen=True)
class Client:
    login: int


@dataclass(frozen=True)
class Admin:
    name: str


class KeyRing:
    """Hashes of client keys (by login) and admin keys (by name)."""

    def __init__(self) -> None:
        self._clients: dict[int, tuple[str, str]] = {}
        self._admins: dict[str, tuple[str, str]] = {}
        self._pepper = secrets.token_bytes(32)  # per process: keys the verified-key cache
        self._ok: dict[bytes, Client | Admin] = {}
        self._lock = threading.Lock()

    def _mark(self, key: str, scope: str) -> bytes:
        return hmac.new(self._pepper, f"{scope}\x00{key}".encode(), hashlib.sha256).digest()

    def set_client(self, login: int, salt_hex: str, hash_hex: str) -> None:
        with self._lock:
            self._clients[int(login)] = (salt_hex, hash_hex)
            self._ok = {k: v for k, v in self._ok.items()
                        if not (isinstance(v, Client) and v.login == login)}

    def add_admin(self, name: str, key: str) -> None:
        with self._lock:
            self._admins[name] = hash_key(key)

    def has_client(self, login: int) -> bool:
        return int(login) in self._clients

    def cached_client(self, login: int, key: str) -> Client | None:
        """The client if this key was verified before (cheap: no scrypt)."""
        hit = self._ok.get(self._mark(key, f"c{login}"))
        return hit if isinstance(hit, Client) else None

    def cached_admin(self, key: str) -> Admin | None:
        hit = self._ok.get(self._mark(key, "admin"))
        return hit if isinstance(hit, Admin) else None

    def client(self, login: int, key: str) -> Client | None:
        mark = self._mark(key, f"c{login}")
        hit = self._ok.get(mark)
        if hit is not None:
            return hit  # type: ignore[return-value]
        stored = self._clients.get(int(login))
        if stored is None or not _matches(key, stored):
            return None
        who = Client(int(login))
        with self._lock:
            self._ok[mark] = who
        return who

    def admin(self, key: str) -> Admin | None:
        mark = self._mark(key, "admin")
        hit = self._ok.get(mark)
        if hit is not None:
            return hit  # type: ignore[return-value]
        for name, stored in list(self._admins.items()):
            if _matches(key, stored):
                who = Admin(name)
                with self._lock:
                    self._ok[mark] = who
                return who
        return None


def _matches(key: str, stored: tuple[str, str]) -> bool:
    salt_hex, hash_hex = stored
    _, got = hash_key(key, bytes.fromhex(salt_hex))
    return hmac.compare_digest(got, hash_hex)
