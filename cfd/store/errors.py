"""What can go wrong with a store, each error saying what to do about it."""

# The names read as states ("StoreCorrupted", "StoreLocked"), as the store's API names them.
# ruff: noqa: N818

from __future__ import annotations

from cfd.errors import CfdError


class StoreError(CfdError):
    """Base class of the store's errors."""


class StoreCorrupted(StoreError):
    """The journal, its head or a snapshot is not what was written. Never repaired silently."""

    def __init__(self, problem: str, seq: int | None = None) -> None:
        self.problem = problem
        self.seq = seq
        where = f" at journal seq {seq}" if seq is not None else ""
        super().__init__(
            f"store corrupted{where}: {problem}. Do not start the engine on this store: restore "
            "the database from a backup, then run Store.verify() (the risk CLI's verify) to "
            "check it before starting."
        )


class StoreLocked(StoreError):
    """Another engine holds the store's writer lease."""


class StoreLeaseLost(StoreError):
    """This process's writer lease was taken over, or the journal head moved under it."""


class SnapshotSchemaMismatch(StoreError):
    """A snapshot was written by another version of the state layout."""


class StoreSchemaMismatch(StoreError):
    """The database's schema revision is not the one this code expects."""


class StoreBusy(StoreError):
    """A read waited too long for the writer to write staged history rows (retry)."""


class StoreReadOnly(StoreError):
    """A write was attempted through a store opened read-only."""


class RecoveryMismatch(StoreError):
    """Recovery rebuilt a state whose hash differs from the one recorded by the live run."""
