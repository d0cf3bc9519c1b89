"""Journal entries and the hash chain that makes tampering, gaps and truncation visible.

``hash(n) = sha256(hash(n-1) || seq || time_msc || kind || actor || payload)`` with every
field length-prefixed (big-endian), and ``hash(0)`` 32 zero bytes (:data:`GENESIS_HASH`).
The store keeps the head (last seq and its hash) in ``store_meta``, written in the same
transaction as the rows, so a missing tail is as visible as an edited row.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

GENESIS_HASH = "0" * 64

_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled command. ``seq`` and ``hash`` are set by the store on append."""

    kind: str
    payload: bytes
    time_msc: int
    actor: str = ""
    seq: int = 0
    hash: str = ""


def chain_hash(prev_hash: str, seq: int, time_msc: int, kind: str, actor: str,
               payload: bytes) -> str:
    """The hex sha256 linking one row to the previous one (see the module docstring)."""
    k, a = kind.encode(), actor.encode()
    return hashlib.sha256(b"".join((
        bytes.fromhex(prev_hash), _I64.pack(seq), _I64.pack(time_msc),
        _U32.pack(len(k)), k, _U32.pack(len(a)), a, _U32.pack(len(payload)), payload,
    ))).hexdigest()
