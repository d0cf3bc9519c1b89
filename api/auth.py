"""API keys: generated at random, stored only as salted scrypt hashes, never logged.

Clients send ``X-CFD-Login: <login>`` and ``Authorization: Bearer <api key>``; risk officers
send ``Authorization: Bearer <admin key>`` (named identities, the name is the command's
``actor`` in the journal). A verified key is remembered by its keyed digest so the scrypt cost
(~tens of ms) is paid once per key and process, not per request. A login without a key is
checked against a dummy hash, so it costs what a wrong key costs.

:class:`Authenticator` is the one place that turns headers into a :class:`Client` or an
:class:`Admin`, behind the login throttle (:mod:`api.throttle`); it also issues the
short-lived single-use tokens a browser's WebSocket uses in place of headers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from api.throttle import AuthRefused, LoginThrottle

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
        # what an unknown login's key is checked against (same cost as a wrong key)
        self._dummy = hash_key(secrets.token_urlsafe(32))

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

    def export(self) -> dict:
        """The stored hashes (no keys): what a gateway needs to authenticate (api.link)."""
        with self._lock:
            return {"clients": {str(k): list(v) for k, v in self._clients.items()},
                    "admins": {k: list(v) for k, v in self._admins.items()}}

    def load(self, hashes: dict) -> None:
        """Take the hashes :meth:`export` gave (a gateway's copy of the writer's key ring).

        The writer's admin keys replace this ring's (an admin key the writer no longer has,
        e.g. after a restart with another ``CFD_ADMIN_KEY``, stops working here too), and
        every verified key whose hash changed or went is forgotten."""
        clients = {int(login): (salt, digest)
                   for login, (salt, digest) in hashes.get("clients", {}).items()}
        admins = {name: (salt, digest)
                  for name, (salt, digest) in hashes.get("admins", {}).items()}
        with self._lock:
            changed = {lg for lg, v in clients.items() if self._clients.get(lg) != v}
            self._clients.update(clients)
            gone = {n for n, v in self._admins.items() if admins.get(n) != v}
            self._admins = admins
            self._ok = {k: v for k, v in self._ok.items()
                        if not (isinstance(v, Client) and v.login in changed)
                        and not (isinstance(v, Admin) and v.name in gone)}

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
        if not _matches(key, stored or self._dummy) or stored is None:
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


MAX_LOGIN = 2**63 - 1


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (at most 512 characters)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 512:
        return None
    return token.strip()


def parse_login(raw: str | bytes | None) -> int | None:
    """An account number from a header: ASCII digits only (not "1001\u00b2"), in range."""
    if raw is None:
        return None
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    text = text.strip()
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    login = int(text)
    return login if 0 < login <= MAX_LOGIN else None


class Authenticator:
    """Headers (or a WebSocket token) to an identity, throttled; raises :class:`AuthRefused`.

    Order of checks: the client address's lockout, then a key verified before (no scrypt),
    then the login's lockout, then one bounded scrypt check. A key already verified on this
    server keeps working while someone else's wrong guesses lock its login out.
    """

    def __init__(self, keys: KeyRing, throttle: LoginThrottle | None = None, *,
                 token_ttl_s: float = 60.0, max_tokens: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = keys
        self.throttle = throttle or LoginThrottle()
        self.token_ttl_s = token_ttl_s
        self.max_tokens = max_tokens
        self.clock = clock
        self._tokens: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._tokens_lock = threading.Lock()

    async def client(self, raw_login: str | bytes | None, authorization: str | None,
                     address: str) -> Client:
        key = bearer(authorization)
        if key is None or raw_login is None:
            raise AuthRefused(401, "send X-CFD-Login and Authorization: Bearer <api key>")
        login = parse_login(raw_login)
        if login is None:
            raise AuthRefused(401, "X-CFD-Login must be an account number (ASCII digits)")
        self.throttle.check_address(address)
        who = self.keys.cached_client(login, key)
        if who is not None:
            return who
        self.throttle.check_login(str(login))
        found = await self.throttle.bounded(lambda: self.keys.client(login, key))
        if not isinstance(found, Client):
            self.throttle.failed(str(login), address)
            raise AuthRefused(401, "unknown login or wrong API key")
        self.throttle.succeeded(str(login))
        return found

    async def admin(self, authorization: str | None, address: str) -> Admin:
        key = bearer(authorization)
        if key is None:
            raise AuthRefused(401, "admin endpoints need Authorization: Bearer <admin key>")
        self.throttle.check_address(address)
        who = self.keys.cached_admin(key)
        if who is not None:
            return who
        found = await self.throttle.bounded(lambda: self.keys.admin(key))
        if not isinstance(found, Admin):
            self.throttle.failed(None, address)
            raise AuthRefused(401, "admin endpoints need Authorization: Bearer <admin key>")
        return found

    # -- WebSocket tokens ----------------------------------------------------------------

    def issue_token(self, login: int) -> str:
        """A random single-use token for ``login``, valid ``token_ttl_s`` seconds."""
        token = secrets.token_urlsafe(24)
        now = self.clock()
        with self._tokens_lock:
            while self._tokens:  # drop the expired (oldest first), then any over the bound
                _, (_, until) = next(iter(self._tokens.items()))
                if until > now and len(self._tokens) < self.max_tokens:
                    break
                self._tokens.popitem(last=False)
            self._tokens[token] = (login, now + self.token_ttl_s)
        return token

    def redeem(self, token: str | None) -> Client | None:
        """The client of a valid token, which is used up; None if unknown or expired."""
        if not token or len(token) > 64:
            return None
        with self._tokens_lock:
            found = self._tokens.pop(token, None)
        if found is None or found[1] <= self.clock():
            return None
        return Client(found[0])
