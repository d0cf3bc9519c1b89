"""Login throttling: failed-key lockout per login and per client address, with backoff.

Every check of a key that is not already known good costs one scrypt (tens of ms of CPU), so
this module decides, before any scrypt, whether a check may run at all:

* an address or login with ``threshold`` failures in a row is locked out; each further
  failure doubles the lockout (``base_s * 2**(failures - threshold)``, at most ``max_s``);
  a success clears the login's count; a failure older than ``forget_s`` is forgotten;
* at most ``concurrency`` scrypt checks run at once and at most ``queue`` wait for one; a
  flood beyond that is answered 429 at once, so the CPU a flood can take is bounded;
* the tables hold at most ``max_entries`` logins and addresses (the oldest are dropped).

Unknown logins cost the same scrypt as wrong keys (:meth:`api.auth.KeyRing.client` checks
them against a dummy hash), so the answer time does not tell which logins exist.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


class AuthRefused(Exception):
    """An authentication answer: HTTP ``status`` (401 or 429) with ``detail`` and headers."""

    def __init__(self, status: int, detail: str, retry_after: float = 0.0) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if retry_after > 0:
            self.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class Lockout:
    """Consecutive failures by key (a login or an address) and the lockout they earned."""

    def __init__(self, threshold: int, base_s: float, max_s: float, forget_s: float,
                 max_entries: int, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.base_s = base_s
        self.max_s = max_s
        self.forget_s = forget_s
        self.max_entries = max_entries
        self.clock = clock
        self._rows: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                return 0.0
            return max(0.0, row.locked_until - self.clock())

    def failed(self, key: str) -> float:
        """Count a failure; returns the lockout it starts (0 below the threshold)."""
        now = self.clock()
        with self._lock:
            row = self._rows.pop(key, None)
            if row is None or now - row.last > self.forget_s:
                row = _Failures()
            row.count += 1
            row.last = now
            lock = 0.0
            if row.count >= self.threshold:
                lock = min(self.max_s, self.base_s * 2.0 ** (row.count - self.threshold))
                row.locked_until = now + lock
            self._rows[key] = row
            while len(self._rows) > self.max_entries:
                self._rows.popitem(last=False)
            return lock

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._rows.pop(key, None)


class LoginThrottle:
    """The lockouts (per login, per address) and the bound on concurrent key checks."""

    def __init__(self, *, login_failures: int = 5, address_failures: int = 20,
                 base_s: float = 1.0, max_s: float = 900.0, forget_s: float = 3600.0,
                 concurrency: int = 1, queue: int = 32, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logins = Lockout(login_failures, base_s, max_s, forget_s, max_entries, clock)
        self.addresses = Lockout(address_failures, base_s, max_s, forget_s, max_entries,
                                 clock)
        self.queue = queue
        self._pool = cf.ThreadPoolExecutor(max_workers=concurrency,
                                           thread_name_prefix="key-check")
        self._pending = 0
        self._pending_lock = threading.Lock()

    def check_address(self, address: str) -> None:
        wait = self.addresses.wait(address)
        if wait:
            raise AuthRefused(429, f"too many failed logins from {address}: locked for "
                                   f"{wait:.0f} s more", wait)

    def check_login(self, login: str) -> None:
        wait = self.logins.wait(login)
        if wait:
            raise AuthRefused(429, f"too many failed logins for login {login}: locked for "
                                   f"{wait:.0f} s more", wait)

    def failed(self, login: str | None, address: str) -> None:
        if login is not None:
            self.logins.failed(login)
        self.addresses.failed(address)

    def succeeded(self, login: str | None) -> None:
        if login is not None:
            self.logins.succeeded(login)

    async def bounded(self, fn: Callable[[], object]) -> object:
        """Run ``fn`` (a scrypt check) off the event loop on the key-check threads (at most
        ``concurrency`` at once); 429 when ``queue`` checks are already pending."""
        with self._pending_lock:
            if self._pending >= self.queue:
                raise AuthRefused(429, "too many logins being checked: retry shortly", 1.0)
            self._pending += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(fn))
        finally:
            with self._pending_lock:
                self._pending -= 1
