"""Idempotent order_send: a request id names one request, and only that one.

A retry with the same ``X-Request-Id`` and the same body returns the first result; the same
id with a different body is refused (HTTP 409), as payment APIs refuse a reused idempotency
key, instead of silently answering with the result of another order. The body is compared
by the sha256 of its canonical JSON (keys sorted), kept beside the stored result.
"""

from __future__ import annotations

import hashlib

import orjson


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


def claim(hashes: dict[tuple[int, int], str], key: tuple[int, int], request: dict) -> None:
    """Record ``request`` as the one of ``key``, or raise if another one was recorded."""
    digest = request_hash(request)
    seen = hashes.setdefault(key, digest)
    if seen != digest:
        raise RequestIdReused(key[1])
