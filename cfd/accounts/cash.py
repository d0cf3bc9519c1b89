"""Money commands of the engine: deposit, withdrawal, credit and insurance top-up, and the
ledger postings every booked amount goes through (one posting between two ledger accounts;
the client's balance and credit mirror their ledger accounts).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cfd import commands as C
from cfd.accounts.ledger import (
    BROKER_CREDIT,
    BROKER_PL,
    EXTERNAL_CASH,
    INSURANCE_FUND,
    N_HOUSE,
    PostingKind,
    client_credit_ledger,
    client_ledger,
)
from cfd.constants import (
    DealEntry,
    DealReason,
    DealType,
    Retcode,
)
from cfd.errors import Rejected
from cfd.result import Result
from cfd.trading import market


class CashHandlers:
    """Handlers of :class:`cfd.engine.Engine` for money moved in or out of an account."""

    def _amount(self, amount: Any) -> int:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise Rejected(Retcode.INVALID, f"amount {amount!r} must be an integer of minor "
                                            f"units")
        if amount <= 0:
            raise Rejected(Retcode.INVALID, f"amount {amount} must be greater than zero")
        if amount > 10**15:
            raise Rejected(Retcode.INVALID, f"amount {amount} is out of range")
        return amount

    def _deposit(self, cmd: C.Deposit) -> Result:
        a = self._acc(cmd.login)
        amount = self._amount(cmd.amount)
        self.ledger.check([(EXTERNAL_CASH, client_ledger(a), amount)])
        deal = self._balance_deal(a, DealType.BALANCE, amount, cmd.comment or "deposit")
        self._post(EXTERNAL_CASH, client_ledger(a), amount, PostingKind.DEPOSIT, deal,
                   cmd.comment)
        self._after_money(a)
        return Result(Retcode.DONE, f"deposit {market.fmt(amount)}", {"deal": deal})

    def _withdraw(self, cmd: C.Withdraw) -> Result:
        a = self._acc(cmd.login)
        amount = self._amount(cmd.amount)
        ac = self.accounts.cols
        if amount > int(ac.balance[a]):
            raise Rejected(Retcode.NO_MONEY, f"withdrawal {market.fmt(amount)} exceeds the "
                           f"balance {market.fmt(int(ac.balance[a]))}")
        free = self.accounts.free_margin(a)  # minor units, as account_info shows it
        if free - amount < 0:
            raise Rejected(Retcode.NO_MONEY, f"withdrawal {market.fmt(amount)} would leave "
                           f"free margin below zero (free margin {market.fmt(free)})")
        self.ledger.check([(client_ledger(a), EXTERNAL_CASH, amount)])
        deal = self._balance_deal(a, DealType.BALANCE, -amount, cmd.comment or "withdrawal")
        self._post(client_ledger(a), EXTERNAL_CASH, amount, PostingKind.WITHDRAWAL, deal,
                   cmd.comment)
        self._after_money(a)
        return Result(Retcode.DONE, f"withdrawal {market.fmt(amount)}", {"deal": deal})

    def _credit(self, cmd: C.AdjustCredit) -> Result:
        a = self._acc(cmd.login)
        amt = cmd.amount
        if isinstance(amt, bool) or not isinstance(amt, int) or amt == 0 or abs(amt) > 10**15:
            raise Rejected(Retcode.INVALID, f"credit amount {amt!r} must be a non-zero integer")
        ac = self.accounts.cols
        if int(ac.credit[a]) + amt < 0:
            raise Rejected(Retcode.NO_MONEY, f"credit {market.fmt(int(ac.credit[a]))} cannot "
                           f"be reduced by {market.fmt(-amt)}")
        free = self.accounts.free_margin(a)
        if amt < 0 and free + amt < 0:
            raise Rejected(Retcode.NO_MONEY, f"removing {market.fmt(-amt)} of credit would "
                           f"leave free margin below zero (free margin {market.fmt(free)})")
        self.ledger.check([(BROKER_CREDIT, client_credit_ledger(a), amt)])
        deal = self._balance_deal(a, DealType.CREDIT, amt, cmd.comment or "credit")
        self._post_signed(BROKER_CREDIT, client_credit_ledger(a), amt, PostingKind.CREDIT,
                          deal, cmd.comment)
        self._after_money(a)
        return Result(Retcode.DONE, f"credit {market.fmt(amt)}", {"deal": deal})

    def _insurance_topup(self, cmd: C.TopUpInsurance) -> Result:
        amt = cmd.amount
        if isinstance(amt, bool) or not isinstance(amt, int) or amt == 0 or abs(amt) > 10**15:
            raise Rejected(Retcode.INVALID, f"amount {amt!r} must be a non-zero integer")
        if amt < 0 and int(self.ledger.balance[INSURANCE_FUND]) + amt < 0:
            raise Rejected(Retcode.NO_MONEY, "the insurance fund holds less than that")
        self.ledger.check([(BROKER_PL, INSURANCE_FUND, amt)])
        self._post_signed(BROKER_PL, INSURANCE_FUND, amt, PostingKind.INSURANCE_TOPUP, 0,
                          cmd.actor)
        self._effects.events.append({"kind": "insurance_topup", "amount": amt,
                                     "actor": cmd.actor, "time_msc": self.now_msc})
        return Result(Retcode.DONE, f"insurance fund {market.fmt(self.insurance_fund)}")

    @property
    def insurance_fund(self) -> int:
        return int(self.ledger.balance[INSURANCE_FUND])

    def _balance_deal(self, a: int, dtype: int, amount: int, comment: str) -> int:
        ticket = self._deal_ticket()
        self.deals.append(comment, ticket=ticket, order=0, acc=a, sym=-1,
                          time_msc=self.now_msc, type=dtype, entry=DealEntry.IN, magic=0,
                          position_id=0, reason=DealReason.CLIENT, volume=0, price=0,
                          commission=0, swap=0, profit=amount, fee=0)
        if self.collect_effects:
            self._effects.deals.append(self.deal_row(len(self.deals) - 1))
        return ticket

    def _post(self, src: int, dst: int, amount: int, kind: PostingKind, deal: int = 0,
              comment: str = "") -> None:
        if amount == 0:
            return
        self.ledger.post(self.now_msc, src, dst, amount, kind, deal, comment)
        if self.collect_effects:
            self._effects.postings.append(self.ledger.row(self.ledger.postings.size - 1,
                                                          self.accounts.cols.login))
        ac = self.accounts.cols
        for lid in (src, dst):
            if lid >= N_HOUSE:  # a client's balance or credit: mirror it on the account
                a, is_credit = divmod(lid - N_HOUSE, 2)
                (ac.credit if is_credit else ac.balance)[a] = self.ledger.balance[lid]

    def _post_signed(self, frm: int, to: int, amount: int, kind: PostingKind, deal: int = 0,
                     comment: str = "") -> None:
        """Move a signed amount from ``frm`` to ``to`` (negative: the other way)."""
        if amount > 0:
            self._post(frm, to, amount, kind, deal, comment)
        elif amount < 0:
            self._post(to, frm, -amount, kind, deal, comment)

    def _after_money(self, a: int) -> None:
        self._touch_account(a)
        self._check_levels(np.array([a], dtype=np.int64))
