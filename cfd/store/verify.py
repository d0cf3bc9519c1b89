"""Whole-chain verification at start-up.

Recovery used to read the journal only after the latest snapshot, trusting the rows before
it: a flipped byte or an edited deposit there went unnoticed until ``cfd-risk verify``.
Now start-up reads the whole journal once: rows up to the snapshot are only hashed (no
command is decoded or applied, so this is fast next to a replay), the rows after it are
replayed, and the row at the snapshot's seq must carry the chain hash that the snapshot
recorded when it was taken (``meta["journal_hash"]``), which ties the snapshot to the very
journal it was taken from. The first bad row is named by its seq (:class:`StoreCorrupted`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cfd.store.errors import StoreCorrupted

#: The snapshot meta key holding the journal's chain hash at the snapshot's seq.
JOURNAL_HASH = "journal_hash"


def snapshot_chain_hash(snap: Any) -> str | None:
    """The chain hash a snapshot recorded (None for one taken before it was recorded)."""
    meta = getattr(snap, "meta", None)
    return meta.get(JOURNAL_HASH) if isinstance(meta, dict) else None


def rows_after(store: Any, after: int, chain_hash: str | None
               ) -> Iterator[tuple[int, int, str, str, bytes, str]]:
    """The journal rows after seq ``after``, having checked the whole hash chain from the
    first row (``store.journal_rows(0)`` checks each row against the one before it) and,
    at ``after``, the snapshot's recorded ``chain_hash``."""
    for row in store.journal_rows(0):
        seq = row[0]
        if seq < after:
            continue
        if seq == after:
            if chain_hash is not None and row[5] != chain_hash:
                raise StoreCorrupted(
                    "the journal row at the snapshot's seq does not carry the chain hash the "
                    "snapshot recorded (the journal was rewritten, or the snapshot belongs "
                    "to another journal)", seq)
            continue
        yield row
