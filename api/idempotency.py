"""Idempotent order_send: a request id names one request, and only that one.

A retry with the same ``X-Request-Id`` and the same body returns the first result; the same
id with a different body is refused (HTTP 409), as payment APIs refuse a reused idempotency
key, instead of silently answering with the result of another order. The body is compared
by the sha256 of its canonical JSON (keys sorted), kept beside the stored result.

Keys are honoured for a retention window (``idempotency_window_s``, 24 h by default) on the
service clock: a result older than that is forgotten, and an id reused after it is a new
request. Results are stored (``order_result`` events, indexed by login and request id) and
never all loaded: :class:`Results` keeps the recent ones in a bounded cache, and the store is
asked only about an id the cache cannot vouch for (see :meth:`Results.complete_after`).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import threading
from typing import Any

import orjson

DEFAULT_WINDOW_MS = 24 * 3600 * 1000
DEFAULT_CACHE = 100_000


class RequestIdReused(Exception):
    """``X-Request-Id`` was used before for a different request body."""

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        super().__init__(
            f"X-Request-Id {request_id} was already used for a different request: use a new "
            "id for a new order, or resend exactly the same body to get the first result")


def request_hash(request: dict) -> str:
    """sha256 hex of the request's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS
                                       | orjson.OPT_SERIALIZE_NUMPY)).hexdigest()


@dataclasses.dataclass
class Entry:
    time_msc: int  # when the request was claimed, then when its result was made
    sha256: str | None  # of the body (None: a result stored without it)
    result: dict | None = None  # None while the request is in flight


class Results:
    """The recent idempotency results, at most ``size`` of them, oldest out first.

    ``complete_after`` is the time after which every result is in the cache: the service's
    start (earlier ones are only in the store), raised to the time of each evicted entry. A
    key the cache lacks is new without asking the store when the whole window lies after it.
    """

    def __init__(self, window_ms: int = DEFAULT_WINDOW_MS, size: int = DEFAULT_CACHE,
                 complete_after: int = 0) -> None:
        self.window_ms = int(window_ms)
        self.size = int(size)
        self.complete_after = int(complete_after)
        self._d: collections.OrderedDict[tuple[int, int], Entry] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._d)

    def since(self, now_msc: int) -> int:
        """The oldest time a result still honoured at ``now_msc`` may have."""
        return now_msc - self.window_ms

    def get(self, key: tuple[int, int], now_msc: int) -> Entry | None:
        """The key's entry if it is within the window (an expired one is dropped)."""
        with self._lock:
            return self._get(key, now_msc)

    def _get(self, key: tuple[int, int], now_msc: int) -> Entry | None:
        e = self._d.get(key)
        if e is not None and e.result is not None and e.time_msc < self.since(now_msc):
            del self._d[key]
            return None
        return e

    def done(self, key: tuple[int, int]) -> dict | None:
        """The key's result if the cache holds one (any age: a cheap check, no clock)."""
        e = self._d.get(key)
        return None if e is None else e.result

    def needs_store(self, now_msc: int) -> bool:
        """Whether a key missing here may still be in the store within the window."""
        return self.since(now_msc) <= self.complete_after

    def claim(self, key: tuple[int, int], request: dict, now_msc: int,
              found: Entry | None = None) -> Entry:
        """The key's entry (the cached one, else ``found`` in the store, else a new in-flight
        one for ``request``); raises :class:`RequestIdReused` if it was another body's."""
        digest = request_hash(request)
        with self._lock:
            e = self._get(key, now_msc)
            if e is None:
                e = found if found is not None else Entry(now_msc, digest)
                self._put(key, e)
        if e.sha256 is not None and e.sha256 != digest:
            raise RequestIdReused(key[1])
        return e

    def record(self, key: tuple[int, int], time_msc: int, sha256: str | None,
               result: dict) -> None:
        """A committed result (the writer calls this after the batch is durable)."""
        with self._lock:
            self._d.pop(key, None)
            self._put(key, Entry(int(time_msc), sha256, result))

    def forget(self, key: tuple[int, int]) -> None:
        """Drop an in-flight claim that recorded nothing."""
        with self._lock:
            e = self._d.get(key)
            if e is not None and e.result is None:
                del self._d[key]

    def _put(self, key: tuple[int, int], e: Entry) -> None:
        self._d[key] = e
        while len(self._d) > self.size:
            _, old = self._d.popitem(last=False)
            self.complete_after = max(self.complete_after, old.time_msc)


def from_event(data: dict[str, Any]) -> Entry:
    """The entry of a stored ``order_result`` event."""
    return Entry(int(data["time_msc"]), data.get("request_sha256"), data["result"])
