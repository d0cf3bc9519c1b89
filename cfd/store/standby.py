"""A hot standby: an engine that follows the writer's journal and takes over when its lease
lapses.

::

    sb = Standby(url)                   # latest snapshot + journal replay, read-only
    while not sb.lapsed():
        sb.follow()                     # apply what the writer journaled since
        time.sleep(sb.poll_s)
    durable = sb.take_over()            # fence the old writer, take the lease, catch up

:meth:`follow` applies the new journal rows (checked against the hash chain) in replay mode
and, at every snapshot the writer recorded, compares its state hash with the writer's: the
standby's state is the writer's, hash for hash. :meth:`lapsed` watches the lease row: a
heartbeat (or head) that has not moved for ``ttl_s`` by this process's own clock, or no
holder at all. :meth:`take_over` ends the old writer's sessions (PostgreSQL:
:func:`cfd.store.lease.end_sessions`), opens the store for writing (the advisory lock and
a new lease token: the old writer is fenced, :mod:`cfd.store.lease`), replays the rows the
old writer committed meanwhile, and returns the writer (:class:`DurableEngine`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from cfd.store import lease
from cfd.store.errors import RecoveryMismatch, StoreLocked
from cfd.store.runner import DurableEngine, EngineApi, recover, state_hash_of
from cfd.store.store import Store

log = logging.getLogger("cfd.store.standby")

_DRAIN_EVERY = 10_000


class Standby:
    def __init__(self, url: str, *, ttl_s: float = 2.0, poll_s: float = 0.05,
                 api: EngineApi | None = None) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.api = api or EngineApi()
        start = Store.open(url, read_only=True)
        try:
            self.seq, _ = start.pin()  # recover exactly to this head
            self.engine = recover(start, self.api)
        finally:
            start.close()
        self.tail = Store.open(url, read_only=True)
        self.checked = 0  # the last snapshot seq whose hash was compared
        self.hashes_checked = 0
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = time.monotonic()
        self.lease: dict[str, Any] | None = None
        #: set by take_over: seconds from the lapse being noticed to writing, and the
        #: state hash at the head it took over at
        self.takeover_s: float | None = None
        self.first_hash: str | None = None

    def follow(self, store: Store | None = None) -> int:
        """Apply the journal rows after :attr:`seq`; returns how many."""
        src = store or self.tail
        if store is None:
            self.tail.pin()  # read to the head as it is now (the writer moves it meanwhile)
        want = {s["seq"]: s["state_hash"] for s in src.snapshot_list()
                if s["seq"] > self.checked}
        eng = self.engine
        decode = self.api.decode
        collecting = getattr(eng, "collect_effects", None)
        if collecting is not None:
            eng.collect_effects = False
        n = 0
        try:
            for seq, _t, kind, _a, payload, _h in src.journal_rows(self.seq):
                eng.apply(decode(kind, payload))
                self.seq = seq
                n += 1
                if n % _DRAIN_EVERY == 0:
                    eng.take_effects()
                if seq in want:
                    self._check(seq, want[seq])
        finally:
            if collecting is not None:
                eng.collect_effects = collecting
            eng.take_effects()
        for p in want:  # snapshots at or below where it started (before it followed)
            if p <= self.seq:
                self.checked = max(self.checked, p)
        return n

    def _check(self, seq: int, recorded: str) -> None:
        got = state_hash_of(self.engine)
        if got != recorded:
            raise RecoveryMismatch(
                f"the standby's state at seq {seq} hashes to {got}, the writer recorded "
                f"{recorded}: the standby stops (it must never take over from a different "
                "state)")
        self.checked = seq
        self.hashes_checked += 1

    def lapsed(self) -> bool:
        """Is the writer gone? (its lease row unchanged for ``ttl_s``, or no holder)"""
        row = lease.read(self.tail.engine)
        self.lease = row
        if row is None:
            return False
        now = time.monotonic()
        key = (row["lease_owner"], row["lease_heartbeat_msc"], row["head_seq"])
        if key != self._seen:
            self._seen, self._seen_at = key, now
        return row["lease_owner"] is None or now - self._seen_at >= self.ttl_s

    def take_over(self, *, snapshot_every: int | None = None, wait_s: float = 10.0
                  ) -> DurableEngine:
        """Fence the old writer, take the lease, catch up to the head, become the writer."""
        t0 = time.monotonic()
        old = (self.lease or {}).get("lease_owner") or ""
        deadline = t0 + wait_s
        while True:
            lease.end_sessions(self.tail.engine, old)
            try:
                store = Store.open(self.url)
                break
            except StoreLocked:  # the ended sessions' locks go a moment later
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            self.follow(store)  # what the old writer committed before it was fenced
            if self.seq != store.head_seq:
                raise RecoveryMismatch(f"the standby reached seq {self.seq}, the journal head "
                                       f"is {store.head_seq}")
            self.first_hash = state_hash_of(self.engine)
        except BaseException:
            store.close()
            raise
        self.tail.close()
        self.takeover_s = time.monotonic() - self._seen_at
        log.warning("took over as writer at seq %d (old lease %s): %.2f s after the lease's "
                    "last change", self.seq, old or "none", self.takeover_s)
        return DurableEngine(store, self.engine, snapshot_every=snapshot_every,
                             api=self.api)

    def close(self) -> None:
        self.tail.close()


def run(url: str, *, ttl_s: float = 2.0, poll_s: float = 0.05,
        snapshot_every: int | None = None, stop: Any = None
        ) -> tuple[DurableEngine | None, Standby]:
    """Follow until the writer's lease lapses, then take over (the writer, and the standby
    with its figures); no writer if ``stop()`` said so first."""
    sb = Standby(url, ttl_s=ttl_s, poll_s=poll_s)
    try:
        while stop is None or not stop():
            sb.follow()
            if sb.lapsed():
                return sb.take_over(snapshot_every=snapshot_every), sb
            time.sleep(poll_s)
    except BaseException:
        sb.close()
        raise
    sb.close()
    return None, sb
