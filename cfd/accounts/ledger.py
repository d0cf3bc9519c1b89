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
from cfd.soa import Columns

EXTERNAL_CASH = 0  # money outside the system: deposits come from here
BROKER_PL = 1  # the broker's trading result (it is the clients' counterparty) and fees
INSURANCE_FUND = 2  # covers negative balances after stop-out
BROKER_CREDIT = 3  # credit granted to clients
N_HOUSE = 4
HOUSE_CODES = ("external_cash", "broker_pl", "insurance_fund", "broker_credit")


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


POSTING_COLUMNS = {
    "id": np.int64,
    "time_msc": np.int64,
    "src": np.int32,
    "dst": np.int32,
    "amount": np.int64,
    "kind": np.int8,
    "deal": np.int64,
}


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

    def ensure_clients(self, n_clients: int) -> None:
        need = N_HOUSE + 2 * n_clients
        if need > len(self.balance):
            new = np.zeros(max(need, 2 * len(self.balance)), dtype=np.int64)
            new[: len(self.balance)] = self.balance
            self.balance = new
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

    def total(self) -> int:
        """Sum over all ledger accounts: zero, always."""
        return int(self.balance[: self.n_accounts].sum())

    def rederive(self) -> np.ndarray:
        """Balances recomputed from the postings alone (for verification)."""
        p = self.postings
        n = p.size
        bal = np.zeros(self.n_accounts, dtype=np.int64)
        np.subtract.at(bal, p.src[:n], p.amount[:n])
        np.add.at(bal, p.dst[:n], p.amount[:n])
        return bal

    def code(self, ledger_id: int, logins: np.ndarray) -> str:
        if ledger_id < N_HOUSE:
            return HOUSE_CODES[ledger_id]
        acc, is_credit = divmod(ledger_id - N_HOUSE, 2)
        return f"{'client_credit' if is_credit else 'client'}:{int(logins[acc])}"

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
