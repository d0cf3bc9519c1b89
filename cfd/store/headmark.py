"""The acknowledged journal head, kept where a lost ``-wal`` file cannot take it along.

A SQLite writer's committed batches live in ``<db>-wal`` until a checkpoint copies them into
the database file; if that file is deleted after a crash, the database opens fine, its
``store_meta`` head moves back with the journal, and every check passes, with acknowledged
commands gone. So after each commit the writer also records ``seq hash`` in
``<db>.head`` (one fixed-size record rewritten in place; no fsync: it survives a crash
of the process, and is never ahead of what was committed). At start-up a journal head
behind the recorded one, or a different hash at the same seq, is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from cfd.store.errors import StoreCorrupted

_RECORD = 96  # bytes: "<seq> <64 hex>\n" padded with spaces


class HeadMark:
    """The ``<db>.head`` file of one SQLite store (open for the writer's lifetime)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def read(self) -> tuple[int, str] | None:
        raw = os.pread(self._fd, _RECORD, 0).decode("ascii", "replace").split()
        if len(raw) != 2 or not raw[0].isdigit():
            return None
        return int(raw[0]), raw[1]

    def record(self, seq: int, hash_: str) -> None:
        os.pwrite(self._fd, f"{seq} {hash_}\n".ljust(_RECORD).encode("ascii"), 0)

    def check(self, head_seq: int, head_hash: str) -> None:
        """Refuse a journal whose head is behind, or differs from, the recorded one."""
        mark = self.read()
        if mark is None:
            return
        seq, hash_ = mark
        if seq > head_seq:
            raise StoreCorrupted(
                f"the journal ends at seq {head_seq}, but seq {seq} was acknowledged "
                f"(recorded in {self.path}): committed transactions are missing (a deleted "
                "or damaged -wal file, or an older copy of the database). If you restored a "
                f"backup on purpose, delete {self.path.name} and start again", head_seq + 1)
        if seq == head_seq and hash_ != head_hash:
            raise StoreCorrupted(
                f"the journal head at seq {seq} is not the one acknowledged (recorded in "
                f"{self.path}): this is another database under the same name. If you "
                f"replaced it on purpose, delete {self.path.name} and start again", seq)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def open_mark(db_file: Path | None, head_seq: int, head_hash: str) -> HeadMark | None:
    """The checked head mark of a SQLite file store (None for other stores)."""
    if db_file is None:
        return None
    mark = HeadMark(db_file.with_name(db_file.name + ".head"))
    try:
        mark.check(head_seq, head_hash)
    except BaseException:
        mark.close()
        raise
    mark.record(head_seq, head_hash)
    return mark
