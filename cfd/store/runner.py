"""The engine made durable: group commit in, recovery out.

::

    store = Store.open()
    durable = DurableEngine(store, recover(store), snapshot_every=100_000)
    results = durable.submit(commands)   # applied, journaled, committed: now acknowledge

:func:`recover` loads the latest snapshot (checking that the state rebuilt from it hashes to
what the live engine recorded), then replays the journal after it. :func:`verify_replay`
replays the whole journal from an empty engine and checks the hash at every snapshot.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from time import perf_counter
from typing import Any

from cfd.store import staging, verify
from cfd.store.errors import RecoveryMismatch, StoreError
from cfd.store.journal import JournalEntry
from cfd.store.store import Store

_DRAIN_EVERY = 10_000  # replayed commands between dropping the engine's collected effects
HISTORY_WINDOW = 10_000  # history rows of each kind an engine with a store keeps in memory

#: ``extra_events(commands, results)``: event rows to store with a batch (see ``submit``).
ExtraEvents = Callable[[Sequence[Any], list[Any]], list[dict]]


def _engine_api() -> tuple[Callable[[], Any], Callable[[Any, Any], Any],
                           Callable[[str, bytes], Any], int]:
    """The real engine's constructor, from_snapshot, command decoder and state version."""
    from cfd import commands, engine, snapshot

    return (engine.Engine, engine.Engine.from_snapshot, commands.decode,
            snapshot.SCHEMA_VERSION)


def payload_of(cmd: Any) -> bytes:
    """The journal bytes of ``cmd`` (``cmd.to_payload()``)."""
    return cmd.to_payload()


class EngineApi:
    """How the runner builds engines and decodes commands (the real engine by default;
    tests pass fakes)."""

    def __init__(self, new: Callable[[], Any] | None = None,
                 from_snapshot: Callable[[Any, Any], Any] | None = None,
                 decode: Callable[[str, bytes], Any] | None = None,
                 schema_version: int | None = None) -> None:
        if new is None or from_snapshot is None or decode is None or schema_version is None:
            d_new, d_from, d_decode, d_version = _engine_api()
            new = new or d_new
            from_snapshot = from_snapshot or d_from
            decode = decode or d_decode
            schema_version = d_version if schema_version is None else schema_version
        self.new = new
        self.from_snapshot = from_snapshot
        self.decode = decode
        self.schema_version = schema_version


class DurableEngine:
    """One writer: applies command batches, journals them with their effects, then returns.

    ``submit`` returns only after the batch's transaction is committed (group commit), so
    every result it returns may be acknowledged. A command the engine refused
    (``result.refused``) changed nothing and is not journaled. If the engine halts (an
    exception inside a command) or the store fails, the engine in memory may be ahead of
    the durable state: this object then refuses further work (:attr:`failed` says why),
    and the process must restart and :func:`recover`.

    ``store=None`` runs the same loop in memory (nothing journaled, no snapshots).
    """

    def __init__(self, store: Store | None, engine: Any, *,
                 snapshot_every: int | None = None,
                 api: EngineApi | None = None,
                 history_window: int | None = HISTORY_WINDOW) -> None:
        self.store = store
        self.engine = engine
        # history rows (deals, orders, postings) kept in memory once durable: the engine
        # trims older ones after each committed batch and reads them from the store
        # (None: keep all)
        self.history_window = history_window if store is not None else None
        self._durable: deque[tuple[Future[list[Any]], Any]] = deque()
        if store is not None and hasattr(engine, "history_source"):
            engine.history_source = store
        self.snapshot_every = snapshot_every
        self._schema_version = (api.schema_version if api is not None
                                else _engine_api()[3])
        self._since_snapshot = 0
        self._failed: BaseException | None = None
        self._held_marks: Any = None  # history kept while staged rows wait (see submit)
        self.last_effects: Any = None  # the effects of the last batch ``submit`` committed
        self._writer: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        #: wall seconds spent applying commands and in the store (for benchmarks)
        self.engine_seconds = 0.0
        self.store_seconds = 0.0

    @property
    def head_seq(self) -> int:
        return self.store.head_seq if self.store is not None else int(self.engine.seq)

    @property
    def failed(self) -> BaseException | None:
        """Why this writer stopped (None while it runs)."""
        return self._failed

    def _check(self) -> None:
        if self._failed is not None:
            raise StoreError(
                "this engine stopped after a failed batch (its memory is ahead of the "
                f"store): restart the process to recover ({self._failed!r})")

    def _apply(self, commands: Sequence[Any], extra_events: ExtraEvents | None = None
               ) -> tuple[list[Any], list[JournalEntry], Any]:
        t0 = perf_counter()
        apply = self.engine.apply
        results = [apply(cmd) for cmd in commands]
        entries = [JournalEntry(cmd.kind, payload_of(cmd), int(cmd.time_msc),
                                str(cmd.actor or ""))
                   for cmd, res in zip(commands, results, strict=True)
                   if not getattr(res, "refused", False)]
        effects = self.engine.take_effects()
        if extra_events is not None:
            effects.events.extend(extra_events(commands, results))
        self.engine_seconds += perf_counter() - t0
        return results, entries, effects

    def submit(self, commands: Sequence[Any], extra_events: ExtraEvents | None = None
               ) -> list[Any]:
        """Apply ``commands`` in order, commit them as one batch, return their results.

        ``extra_events(commands, results)`` may add event rows to the batch's transaction
        (they are stored with it, not journaled)."""
        self.flush()
        self._check()
        try:
            results, entries, effects = self._apply(commands, extra_events)
            marks = self._marks()
            if self.store is not None and (entries or not effects.is_empty()):
                t1 = perf_counter()
                self.store.append_batch(entries, effects)
                self.store_seconds += perf_counter() - t1
        except BaseException as exc:
            self._failed = exc
            raise
        self.last_effects = effects
        if marks is not None:
            if self.staged_pending:  # rows the engine holds that are not yet in the tables
                self._held_marks = marks
            else:
                self._held_marks = None
                self.engine.trim_history(marks, self.history_window)
        self._after_batch(len(entries))
        return results

    @property
    def staged_pending(self) -> bool:
        """Whether a batch staged history rows not yet written into their tables
        (:mod:`cfd.store.staging`): call :meth:`index_staged` between batches."""
        return self.store is not None and self.store.staged_pending

    def index_staged(self, max_rows: int | None = staging.INDEX_ROWS) -> int:
        """Write up to about ``max_rows`` staged history rows into their tables (None:
        all); once none is left, the history :meth:`submit` kept meanwhile is trimmed.
        On the thread that calls :meth:`submit`, between its batches."""
        if self.store is None:
            return 0
        try:
            n = self.store.index_staged(max_rows)
        except BaseException as exc:
            if self._failed is None:
                self._failed = exc
            raise
        if not self.store.staged_pending and self._held_marks is not None:
            marks, self._held_marks = self._held_marks, None
            self.engine.trim_history(marks, self.history_window)
        return n

    def submit_async(self, commands: Sequence[Any], depth: int = 2) -> Future[list[Any]]:
        """Pipelined group commit: apply ``commands`` now, commit them in the journal
        writer thread while the caller forms and applies the next batch.

        The future's results may be acknowledged once it is done (their batch is committed).
        Batches commit in submission order; at most ``depth`` wait for the writer (then this
        call blocks). If a batch fails to commit, it and every later batch fail (their
        futures raise) and the engine refuses further work: restart and recover.
        """
        self._check()
        if self._writer is None:
            self._queue = queue.Queue(maxsize=max(1, depth))
            self._writer = threading.Thread(target=self._write_loop, name="journal-writer",
                                            daemon=True)
            self._writer.start()
        if self.store is None:
            raise StoreError("submit_async needs a store")
        fut: Future[list[Any]] = Future()
        self._trim_committed()
        try:
            results, entries, effects = self._apply(commands)
        except BaseException as exc:
            self._failed = exc
            raise
        marks = self._marks()
        if marks is not None:
            self._durable.append((fut, marks))
        self._queue.put((entries, effects, results, fut))
        self._after_batch(len(entries), flush=True)
        return fut

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            entries, effects, results, fut = item
            try:
                if self._failed is not None:
                    raise StoreError(f"an earlier batch failed to commit ({self._failed!r})")
                t1 = perf_counter()
                self.store.append_batch(entries, effects)
                self.store_seconds += perf_counter() - t1
            except BaseException as exc:
                if self._failed is None:
                    self._failed = exc
                fut.set_exception(exc)
            else:
                fut.set_result(results)
                self._index_between()
            finally:
                self._queue.task_done()

    def _index_between(self) -> None:
        """The writer thread, after a committed batch: a transaction of staged history rows
        (if any), then more while no batch waits."""
        try:
            while self.store.staged_pending and self._failed is None:
                self.store.index_staged(staging.INDEX_ROWS)
                if not self._queue.empty():
                    return
        except BaseException as exc:  # (the next batch fails with it)
            if self._failed is None:
                self._failed = exc

    def flush(self) -> None:
        """Wait until every batch handed to :meth:`submit_async` is committed (or failed)."""
        if self._writer is not None:
            self._queue.join()
        self._trim_committed()

    def _marks(self) -> Any:
        """The engine's history marks now, if it trims its history (else None)."""
        if self.history_window is None or not hasattr(self.engine, "trim_history"):
            return None
        return self.engine.history_marks()

    def _trim_committed(self) -> None:
        """Trim the engine's history up to the last committed batch of
        :meth:`submit_async` (runs on the caller's thread, between batches)."""
        marks = None
        if self.staged_pending:  # (trimmed once the staged rows are in their tables)
            return
        while self._durable and self._durable[0][0].done():
            fut, m = self._durable.popleft()
            if fut.exception() is None:
                marks = m
        if marks is not None and self._failed is None:
            self.engine.trim_history(marks, self.history_window)

    def _after_batch(self, n: int, flush: bool = False) -> None:
        self._since_snapshot += n
        if (self.store is not None and self.snapshot_every
                and self._since_snapshot >= self.snapshot_every):
            if flush:
                self.flush()
            if self._failed is None:
                self.snapshot_now()

    def submit_one(self, command: Any) -> Any:
        return self.submit([command])[0]

    def snapshot_now(self) -> int:
        """Snapshot the engine at the current journal head; returns the snapshot id."""
        self.flush()
        if self._failed is not None:
            raise StoreError("no snapshot of an engine that is ahead of its store")
        if self.store is None:
            raise StoreError("no snapshot without a store")
        arrays, meta = _take_snapshot(self.engine)
        if isinstance(meta, dict):  # ties the snapshot to its journal (cfd.store.verify)
            meta = {**meta, verify.JOURNAL_HASH: self.store.head()[1]}
        state_hash = meta.get("state_hash") if isinstance(meta, dict) else None
        snap_id = self.store.save_snapshot(self.store.head_seq, arrays, meta,
                                           state_hash or self.engine.state_hash(),
                                           self._schema_version)
        self._since_snapshot = 0
        return snap_id

    def close(self) -> None:
        """Commit what is in flight, stop the writer thread, write any staged history rows
        into their tables (so readers of the store need no writer), close the store."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        if self.store is not None:
            try:
                if self._failed is None and self.store.staged_pending:
                    self.store.index_staged()
            finally:
                self.store.close()


def state_hash_of(engine: Any) -> str:
    """``engine.state_hash()`` (for the real engine: the same digest, without copies)."""
    from cfd.engine import Engine

    if isinstance(engine, Engine) and type(engine).state_hash is Engine.state_hash:
        from cfd.snapshot import state_hash

        return state_hash(engine)
    return engine.state_hash()


def _take_snapshot(engine: Any) -> tuple[Any, Any]:
    """``engine.snapshot()``; for the real engine, views instead of copies (the arrays are
    stored before the engine applies anything else)."""
    from cfd.engine import Engine

    if isinstance(engine, Engine) and type(engine).snapshot is Engine.snapshot:
        from cfd.snapshot import take

        return take(engine, copy=False)
    return engine.snapshot()


def replay(engine: Any, entries: Iterable[JournalEntry], decode: Callable[[str, bytes], Any]
           ) -> int:
    """Apply journaled commands to ``engine``; returns the last seq (0 if none).

    Effect rows are not built while replaying (they are in the query tables already)."""
    return _replay(engine, ((e.seq, e.kind, e.payload) for e in entries), decode)


def _replay(engine: Any, rows: Iterable[tuple[Any, ...]],
            decode: Callable[[str, bytes], Any]) -> int:
    """Replay ``(seq, kind, payload, ...)`` rows. The cyclic garbage collector is paused
    meanwhile (replay makes millions of short-lived objects and few cycles; the scans of a
    big engine's heap would cost more than the replay's own work)."""
    last = 0
    collecting = getattr(engine, "collect_effects", None)
    if collecting is not None:
        engine.collect_effects = False
    gc_was = gc.isenabled()
    gc.disable()
    apply = engine.apply
    try:
        for n, row in enumerate(rows, 1):
            apply(decode(row[1], row[2]))
            last = row[0]
            if n % _DRAIN_EVERY == 0:
                _drain(engine)
    finally:
        if gc_was:
            gc.enable()
        if collecting is not None:
            engine.collect_effects = collecting
    _drain(engine)
    return last


def _drain(engine: Any) -> None:
    """Drop what a replayed engine collected that the store already holds: the effect rows
    and, beyond the window, the history rows (every replayed command is journaled)."""
    engine.take_effects()
    if hasattr(engine, "trim_history"):
        engine.trim_history(engine.history_marks(), HISTORY_WINDOW)


def recover(store: Store, api: EngineApi | None = None, *, freeze_gc: bool = False) -> Any:
    """The engine at the store's journal head: latest snapshot + replay of the rest.

    ``freeze_gc``: move everything alive after recovery into the GC's permanent generation
    (``gc.freeze()``): the engine process's writer does this once at start-up, so the
    collector never rescans the recovered heap (cycles in it are then never collected: do
    not use it where engines are recovered and dropped repeatedly).

    Raises :class:`RecoveryMismatch` if the state rebuilt from the snapshot does not hash to
    the value the live engine recorded, :class:`StoreCorrupted` on a damaged journal.
    """
    api = api or EngineApi()
    snap = store.latest_snapshot(api.schema_version)
    chain = verify.snapshot_chain_hash(snap)
    if snap is None:
        engine, after = api.new(), 0
    else:
        after, recorded = snap.seq, snap.state_hash
        engine = api.from_snapshot(snap.arrays, snap.meta)
        snap = None  # the engine holds its own copies: let the loaded arrays go
        got = state_hash_of(engine)
        if got != recorded:
            raise RecoveryMismatch(
                f"the state rebuilt from the snapshot at seq {after} hashes to {got}, but "
                f"the live engine recorded {recorded}. The snapshot (or the engine's "
                "snapshot code) is faulty: start-up stopped. Drop the snapshots "
                "(Store.drop_snapshots()) to recover by replaying the whole journal, and "
                "report this as a bug.")
    # the whole chain is checked from the first row, the rows after the snapshot replayed
    _replay(engine, ((r[0], r[2], r[4]) for r in verify.rows_after(store, after, chain)),
            api.decode)
    if freeze_gc:
        gc.collect()
        gc.freeze()  # the recovered state lives as long as the process: no GC rescans
    return engine


def verify_replay(store: Store, api: EngineApi | None = None) -> dict[str, Any]:
    """Replay the whole journal on a fresh engine, checking the hash at every snapshot.

    Returns ``{"head_seq", "state_hash", "snapshots_checked"}``; raises
    :class:`RecoveryMismatch` naming the first snapshot seq where replay diverges.
    """
    api = api or EngineApi()
    engine = api.new()
    checkpoints = sorted((s["seq"], s["state_hash"]) for s in store.snapshot_list())
    checked = 0

    def check(seq: int) -> None:
        nonlocal checked
        while checked < len(checkpoints) and checkpoints[checked][0] <= seq:
            snap_seq, recorded = checkpoints[checked]
            got = engine.state_hash()
            if got != recorded:
                raise RecoveryMismatch(
                    f"replaying the journal to seq {snap_seq} gives state hash {got}, but the "
                    f"live engine recorded {recorded} there: replay is not deterministic (an "
                    "engine bug), or the journal/snapshot was altered. Run Store.verify().")
            checked += 1

    check(0)
    for n, e in enumerate(store.read_journal(0), 1):
        engine.apply(api.decode(e.kind, e.payload))
        if n % _DRAIN_EVERY == 0:
            _drain(engine)
        if checked < len(checkpoints) and checkpoints[checked][0] == e.seq:
            check(e.seq)
    engine.take_effects()
    return {"head_seq": store.head_seq, "state_hash": engine.state_hash(),
            "snapshots_checked": checked, "engine": engine}


def open_durable(url: str | None = None, *, snapshot_every: int | None = 100_000,
                 api: EngineApi | None = None, freeze_gc: bool = True,
                 history_window: int | None = HISTORY_WINDOW) -> DurableEngine:
    """Open the store for writing, recover the engine, and wrap it."""
    store = Store.open(url)
    try:
        api = api or EngineApi()
        engine = recover(store, api, freeze_gc=freeze_gc)
    except BaseException:
        store.close()
        raise
    return DurableEngine(store, engine, snapshot_every=snapshot_every, api=api,
                         history_window=history_window)
