"""Double-entry ledger in integer minor units.

Every movement is one posting of ``amount > 0`` minor units from a source ledger account to a
destination ledger account: ``balance[src] -= amount; balance[dst] += amount``. The sum over
all ledger accounts is therefore zero after any sequence of postings.

Ledger accounts: four of the broker (ids 0-3) and two per client account (its balance and
its credit). A client's MT5 ``balance`` is the balance of ``client:<login>``.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from cfd.constants import Retcode
from cfd.errors import Rejected
from cfd.soa import Columns, rows_digest, trim_columns

EXTERNAL_CASH = 0  # money outside the system: deposits come from here
BROKER_PL = 1  # the broker's trading result (it is the clients' counterparty) and fees
INSURANCE_FUND = 2  # covers negative balances after stop-out
BROKER_CREDIT = 3  # credit granted to clients
FINANCING = 4  # overnight financing (swaps): charged to clients, paid to them
CORPORATE_ACTIONS = 5  # dividends paid to and charged to clients, split cash settlements
TAX_WITHHELD = 6  # withholding tax on dividends, owed to the tax authority
RESERVED_HOUSE = 7
N_HOUSE = 8
HOUSE_CODES = ("external_cash", "broker_pl", "insurance_fund", "broker_credit", "financing",
               "corporate_actions", "tax_withheld", "reserved")


class PostingKind(IntEnum):
    DEPOSIT = 1
    WITHDRAWAL = 2
    PROFIT = 3  # realised profit or loss of a deal
    COMMISSION = 4
    CREDIT = 5
    SO_COMPENSATION = 6  # negative balance brought to zero after stop-out
    INSURANCE_TOPUP = 7
    SWAP = 8
    CORRECTION = 9
    CORPORATE_ACTION = 10  # dividends, their withholding tax, split cash settlements


POSTING_COLUMNS = {
    "id": np.int64,
    "time_msc": np.int64,
    "src": np.int32,
    "dst": np.int32,
    "amount": np.int64,
    "kind": np.int8,
    "deal": np.int64,
}

#: The posting columns the state hash covers.
HASHED_COLUMNS = ("id", "src", "dst", "amount", "kind", "deal")


def client_ledger(acc_index: int) -> int:
    return N_HOUSE + 2 * acc_index


def client_credit_ledger(acc_index: int) -> int:
    return N_HOUSE + 2 * acc_index + 1


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


class LedgerOverflow(ArithmeticError):
    """A posting would take a ledger balance out of int64 (a bug if it reaches a command's
    middle: handlers check their postings first, :meth:`Ledger.check`)."""


class Ledger:
    def __init__(self) -> None:
        self.balance = np.zeros(64, dtype=np.int64)
        self.n_accounts = N_HOUSE
        self.postings = Columns(POSTING_COLUMNS, 4096)
        self.comments: list[str] = []
        self.next_id = 1
        # postings trimmed from memory once durable (see ``trim``): how many, their
        # ``rows_digest`` and their sum per ledger account
        self.base = 0
        self.digest = np.zeros(2, dtype=np.uint64)
        self.trimmed_balance = np.zeros(64, dtype=np.int64)

    def ensure_clients(self, n_clients: int) -> None:
        need = N_HOUSE + 2 * n_clients
        if need > len(self.balance):
            new = np.zeros(max(need, 2 * len(self.balance)), dtype=np.int64)
            new[: len(self.balance)] = self.balance
            self.balance = new
            old = self.trimmed_balance
            self.trimmed_balance = np.zeros(len(new), dtype=np.int64)
            self.trimmed_balance[: len(old)] = old
        self.n_accounts = max(self.n_accounts, need)

    def check(self, moves: list[tuple[int, int, int]]) -> None:
        """Refuse (:class:`Rejected`) postings ``(src, dst, amount)`` that would take a
        ledger balance out of int64; called before a command changes anything."""
        after: dict[int, int] = {}
        for src, dst, amount in moves:
            for lid, d in ((src, -amount), (dst, amount)):
                after[lid] = after.get(lid, int(self.balance[lid])) + int(d)
        for lid, bal in after.items():
            if not _I64_MIN <= bal <= _I64_MAX:
                raise Rejected(Retcode.INVALID, f"the amount would take ledger account "
                               f"{lid} beyond the largest balance it can hold")

    def post(self, time_msc: int, src: int, dst: int, amount: int, kind: PostingKind,
             deal: int = 0, comment: str = "") -> int:
        """Record one posting; ``amount`` must be a positive int (minor units). A posting
        that would take a balance out of int64 raises :class:`LedgerOverflow` and records
        nothing (never a silent wrap)."""
        if not isinstance(amount, (int, np.integer)) or amount <= 0:
            raise ValueError(f"posting amount must be a positive integer, got {amount!r}")
        if (int(self.balance[src]) - int(amount) < _I64_MIN
                or int(self.balance[dst]) + int(amount) > _I64_MAX):
            raise LedgerOverflow(f"posting {int(amount)} from ledger account {src} to {dst} "
                                 "would overflow int64")
        p = self.postings
        i = p.append_row()
        pid = self.next_id
        self.next_id += 1
        p.id[i], p.time_msc[i], p.src[i], p.dst[i] = pid, time_msc, src, dst
        p.amount[i], p.kind[i], p.deal[i] = amount, int(kind), deal
        self.comments.append(comment)
        self.balance[src] -= amount
        self.balance[dst] += amount
        return i

    def post_many(self, time_msc: int, src: np.ndarray, dst: np.ndarray, amount: np.ndarray,
                  kind: PostingKind, deal: np.ndarray | int = 0, comment: str = "") -> int:
        """Record many postings at once (``amount > 0`` each) without moving the balances
        (the caller applies them, e.g. ``kernels.sweep.apply_postings``); returns the row
        of the first."""
        n = len(amount)
        if n and int(np.min(amount)) <= 0:
            raise ValueError("posting amounts must be positive integers")
        p = self.postings
        i0 = p.size
        p.reserve(i0 + n)
        p.id[i0:i0 + n] = self.next_id + np.arange(n, dtype=np.int64)
        p.time_msc[i0:i0 + n] = time_msc
        p.src[i0:i0 + n], p.dst[i0:i0 + n], p.amount[i0:i0 + n] = src, dst, amount
        p.kind[i0:i0 + n], p.deal[i0:i0 + n] = int(kind), deal
        p.size = i0 + n
        self.next_id += n
        self.comments.extend([comment] * n)
        return i0

    def total(self) -> int:
        """Sum over all ledger accounts: zero, always."""
        return int(self.balance[: self.n_accounts].sum())

    def rederive(self) -> np.ndarray:
        """Balances recomputed from the postings (for verification): those held, on top of
        the sums of the postings trimmed away (all of them when none was trimmed;
        ``cfd.store`` re-derives from its own table too, :meth:`Store.ledger_sums`)."""
        p = self.postings
        n = p.size
        bal = self.trimmed_balance[: self.n_accounts].copy()
        np.subtract.at(bal, p.src[:n], p.amount[:n])
        np.add.at(bal, p.dst[:n], p.amount[:n])
        return bal

    @property
    def total_postings(self) -> int:
        return self.base + self.postings.size

    def history_digest(self) -> np.ndarray:
        """``rows_digest`` of every posting ever booked (trimmed and held)."""
        p = self.postings
        held = rows_digest([getattr(p, k)[: p.size] for k in HASHED_COLUMNS], self.base)
        with np.errstate(over="ignore"):
            return self.digest + held

    def trim(self, n: int) -> None:
        """Forget the oldest ``n`` postings (durable in the store): their sums per ledger
        account and their digest stay."""
        if n <= 0:
            return
        p = self.postings
        tb = self.trimmed_balance
        np.subtract.at(tb, p.src[:n], p.amount[:n])
        np.add.at(tb, p.dst[:n], p.amount[:n])
        with np.errstate(over="ignore"):
            self.digest += rows_digest([getattr(p, k)[:n] for k in HASHED_COLUMNS], self.base)
        trim_columns(p, n)
        del self.comments[:n]
        self.base += n

    def code(self, ledger_id: int, logins: np.ndarray) -> str:
        if ledger_id < N_HOUSE:
            return HOUSE_CODES[ledger_id]
        acc, is_credit = divmod(ledger_id - N_HOUSE, 2)
        return f"{'client_credit' if is_credit else 'client'}:{int(logins[acc])}"

    def rows(self, i0: int, i1: int, logins: np.ndarray) -> list[dict]:
        """``row(i)`` for postings ``i0 .. i1 - 1``, built column-wise (bulk bookings)."""
        p = self.postings
        sl = slice(i0, i1)
        src, dst = p.src[sl].astype(np.int64), p.dst[sl].astype(np.int64)
        client = np.where(src >= N_HOUSE, src, np.where(dst >= N_HOUSE, dst, -1))
        acc = np.maximum(client - N_HOUSE, 0) // 2
        login_l = np.where(client >= 0, logins[acc], -1).tolist()

        def codes(ids: np.ndarray) -> list[str]:
            a, credit = np.divmod(np.maximum(ids - N_HOUSE, 0), 2)
            lg = logins[a].tolist()
            return [HOUSE_CODES[i] if i < N_HOUSE else
                    (f"client_credit:{g}" if c else f"client:{g}")
                    for i, g, c in zip(ids.tolist(), lg, credit.tolist(), strict=True)]

        kinds = {int(k): k.name.lower() for k in PostingKind}
        return [{"id": i, "time_msc": t, "src": s, "dst": d, "amount": a, "kind": kinds[k],
                 "login": None if lg < 0 else lg, "deal": dl or None, "comment": cm}
                for i, t, s, d, a, k, lg, dl, cm in zip(
                    p.id[sl].tolist(), p.time_msc[sl].tolist(), codes(src), codes(dst),
                    p.amount[sl].tolist(), p.kind[sl].tolist(), login_l, p.deal[sl].tolist(),
                    self.comments[i0:i1], strict=True)]

    def row(self, i: int, logins: np.ndarray) -> dict:
        p = self.postings
        src, dst = int(p.src[i]), int(p.dst[i])
        client = next((x for x in (src, dst) if x >= N_HOUSE), None)
        return {
            "id": int(p.id[i]), "time_msc": int(p.time_msc[i]),
            "src": self.code(src, logins), "dst": self.code(dst, logins),
            "amount": int(p.amount[i]), "kind": PostingKind(int(p.kind[i])).name.lower(),
            "login": int(logins[(client - N_HOUSE) // 2]) if client is not None else None,
            "deal": int(p.deal[i]) or None, "comment": self.comments[i],
        }
