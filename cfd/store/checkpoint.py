"""SQLite: the writer's WAL checkpoints run beside it, not inside its commits.

With SQLite's automatic checkpoint, the connection whose commit takes the ``-wal`` file
past ``wal_autocheckpoint`` pages copies the whole file back into the database (and syncs
it) before that commit returns: a batch that wrote 170 MB (a stop-out cascade on a 10M
book) waited a few hundred milliseconds for a copy its durability does not need (the WAL
is synced at the commit). The writer's connections here checkpoint on their own only far
later (:data:`BACKSTOP_PAGES`); after each commit this thread is woken and runs a
``PASSIVE`` checkpoint on a connection of its own (one at most every :data:`MIN_GAP_S`),
which never blocks the writer or a reader. Its work is the copy SQLite would have done;
nothing committed depends on it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

BACKSTOP_PAGES = 65_536  # the writer's own automatic checkpoint: if this thread falls behind
MIN_GAP_S = 0.5  # seconds between two checkpoints of this thread


class Checkpointer:
    """One daemon thread checkpointing the WAL of the database at ``path``."""

    def __init__(self, path: Path, min_gap_s: float = MIN_GAP_S) -> None:
        self.path = path
        self.min_gap_s = min_gap_s
        self.runs = 0  # checkpoints done (for tests)
        self.error: BaseException | None = None  # the last one's failure, if any
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Something was committed: checkpoint soon."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        con = None
        try:
            while True:
                self._wake.wait()
                if self._stop.is_set():
                    return
                self._wake.clear()
                try:
                    if con is None:
                        con = sqlite3.connect(self.path, isolation_level=None,
                                              check_same_thread=True)
                        con.execute("PRAGMA synchronous=FULL")
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                    self.error = None
                except sqlite3.Error as exc:  # the writer's backstop still checkpoints
                    self.error = exc
                if self._stop.wait(self.min_gap_s):
                    return
        finally:
            if con is not None:
                con.close()
