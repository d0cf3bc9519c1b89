"""The trading day's end: the rollover command, as one stage of the writer.

``Rollover(date)`` closes New York trading date ``date``, in this order:

  1. check the date: after the last rollover, its rollover time (17:00 New York by default)
     reached by the command's time; the dates skipped since the last rollover are closed in
     order first (a server that was down charges each night once, never twice);
  2. expire DAY orders (pending orders' expiry stage at the command's time);
  3. charge the nights' financing of every open position (``cfd.trading.financing``, the
     numba kernel ``cfd.kernels.financing.swap_charges``): posted at once between each client
     and the broker's financing account, accrued on the position (MT5's default; shown in
     ``positions_get`` and realised on the closing deal's ``swap``) or, for groups that book
     daily, shown as a balance deal;
  4. apply the corporate actions effective at the next session (``cfd.trading.corporate``:
     dividends, splits, ticker changes, delistings), once;
  5. stop-out and margin call for the accounts the charges moved.

The ledger moves when the swap is charged, so equity, margin level and every risk figure
see it at once. A client's MT5 balance is its ledger balance less the swap still accrued on
its open positions (``TradingDay.accrued``): the accrued part reaches the balance figure on the
closing deal, as MT5 shows it.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from cfd import commands as C
from cfd.accounts.ledger import FINANCING, PostingKind, client_ledger
from cfd.constants import DealEntry, DealReason, DealType, Retcode
from cfd.errors import Rejected
from cfd.kernels import financing as K
from cfd.kernels.sweep import apply_postings
from cfd.trading import financing as F

if TYPE_CHECKING:
    from cfd.engine import Engine, Result

LOG_KEEP = 30  # rollovers kept for the risk officer's report


@dataclass
class Charges:
    """One date's charges: per position slot and per account (minor units, + to client)."""

    day: dt.date
    amount: np.ndarray  # per slot
    per_account: np.ndarray  # per account
    factors: F.Factors
    group_of: np.ndarray  # account -> group index
    groups: list[str]


class TradingDay:
    def __init__(self, eng: Engine) -> None:
        self.eng = eng
        self.rolled_through = 0  # ordinal of the last trading date rolled (0: none)
        self.benchmarks: dict[str, list[tuple[int, str]]] = {}
        self.log: deque[dict] = deque(maxlen=LOG_KEEP)
        self.rollover_at = dt.time(17, 0)

    # ------------------------------------------------------------------ commands
    def rollover(self, cmd: C.Rollover) -> Result:
        from cfd.engine import Result

        eng = self.eng
        try:
            day = F.parse_date(cmd.date)
        except ValueError as exc:
            raise Rejected(Retcode.INVALID, str(exc)) from None
        if day.toordinal() <= self.rolled_through:
            raise Rejected(Retcode.INVALID, f"trading date {day} is already rolled (last "
                           f"rollover {dt.date.fromordinal(self.rolled_through)})")
        cut = F.cutoff_msc(day, self.rollover_at)
        if int(cmd.time_msc) < cut:
            raise Rejected(Retcode.INVALID, f"trading date {day} has not closed yet: its "
                           f"rollover is at {self.rollover_at:%H:%M} New York")
        first = day if not self.rolled_through else \
            dt.date.fromordinal(self.rolled_through + 1)
        if (day - first).days >= F._MAX_CATCH_UP_DAYS:
            raise Rejected(Retcode.INVALID, f"trading date {day} is more than "
                           f"{F._MAX_CATCH_UP_DAYS} days after the last rollover {first}")
        events: list[dict] = []
        # 2. DAY orders expire (the pending-order stage at the command's time)
        eng.pending.expire(events)
        touched = np.zeros(len(eng.accounts), dtype=np.bool_)
        summaries = []
        actions: list[dict] = []
        d = first
        while d <= day:
            # 3. the nights' financing
            ch = self.charges(d)
            if ch is not None:
                summaries.append(self._book(ch, touched))
            # 4. the corporate actions effective at the next session
            actions.extend(eng.corporate.apply_due(d, touched))
            self.rolled_through = d.toordinal()
            d += dt.timedelta(days=1)
        total = {"kind": "rollover", "date": str(day), "from": str(first),
                 "time_msc": eng.now_msc, "actor": cmd.actor,
                 "charged": sum(s["charged"] for s in summaries),
                 "paid": sum(s["paid"] for s in summaries),
                 "positions": sum(s["positions"] for s in summaries),
                 "corporate_actions": [a["id"] for a in actions]}
        eng._effects.events.append(total)
        events.extend(actions)
        events.append(total)
        # 5. stop-out and margin calls where the charges moved an account (its floating
        # profit and margin are unchanged: only its balance moved)
        events.extend(eng._check_levels(np.nonzero(touched)[0].astype(np.int64)))
        return Result(Retcode.DONE, f"rolled {first} .. {day}: financing charged "
                      f"{total['charged'] / 100:,.2f}, paid {total['paid'] / 100:,.2f} USDT "
                      f"on {total['positions']} positions", total, events)

    def set_benchmark(self, cmd: C.SetBenchmark) -> Result:
        from cfd.engine import Result

        name = cmd.name
        if not isinstance(name, str) or not name or len(name) > 16 \
                or not name.replace("_", "").isalnum():
            raise Rejected(Retcode.INVALID, f"benchmark name {name!r} must be 1-16 letters, "
                                            f"digits or '_'")
        try:
            day = F.parse_date(cmd.date)
            rate = Decimal(str(cmd.rate))
        except (ValueError, InvalidOperation):
            raise Rejected(Retcode.INVALID, f"benchmark fixing needs a date YYYY-MM-DD and a "
                           f"rate in percent, got {cmd.date!r} and {cmd.rate!r}") from None
        if not rate.is_finite() or not Decimal(-20) <= rate <= Decimal(100):
            raise Rejected(Retcode.INVALID, f"benchmark rate {cmd.rate!r} must be a percent "
                                            f"between -20 and 100")
        if day.toordinal() <= self.rolled_through:
            raise Rejected(Retcode.INVALID, f"trading date {day} is already rolled: a fixing "
                                            f"cannot change a charged night")
        fixings = [f for f in self.benchmarks.get(name, []) if f[0] != day.toordinal()]
        fixings.append((day.toordinal(), str(rate)))
        fixings.sort()
        self.benchmarks[name] = fixings
        ev = {"kind": "set_benchmark", "name": name, "date": str(day), "rate": str(rate),
              "actor": cmd.actor, "time_msc": self.eng.now_msc}
        self.eng._effects.events.append(ev)
        return Result(Retcode.DONE, f"{name} {rate}% from {day}", ev)

    # ------------------------------------------------------------------ charges
    def charges(self, day: dt.date) -> Charges | None:
        """The charges the rollover of ``day`` makes on the current book (nothing booked);
        None when no symbol charges that date."""
        eng = self.eng
        groups = sorted(eng.config.groups)
        fac = F.charge_factors(eng, day, groups)
        if not fac.nights.any():
            return None
        n_acc = len(eng.accounts)
        group_of = eng.accounts.group_index(groups)
        pc, sc = eng.positions.cols, eng.symbols.cols
        n = pc.size
        amount = np.zeros(n, dtype=np.int64)
        over = np.zeros(n, dtype=np.bool_)
        per_acc = np.zeros(max(n_acc, 1), dtype=np.int64)
        n_over = K.swap_charges(n, pc.active, pc.acc, pc.sym, pc.volume, pc.price_open,
                                group_of, fac.base, sc.bid, sc.ask, fac.k_num, fac.k_den,
                                amount, over, per_acc)
        big = list(np.nonzero(over)[0]) if n_over else []
        if fac.exact:  # factors beyond int64: those positions too, with Python integers
            sel = np.zeros(n, dtype=np.bool_)
            for (g, s, side) in fac.exact:
                sel |= (pc.active[:n] & (pc.sym[:n] == s) & (group_of[pc.acc[:n]] == g)
                        & ((pc.volume[:n] < 0) == bool(side)))
            big = sorted(set(big) | set(np.nonzero(sel)[0].tolist()))
        for p in big:
            p = int(p)
            s, v = int(pc.sym[p]), int(pc.volume[p])
            side, g = (0 if v > 0 else 1), int(group_of[pc.acc[p]])
            f = fac.exact.get((g, s, side))
            if f is None:
                f = Fraction(int(fac.k_num[g, s, side]), int(fac.k_den[g, s, side]))
            base = {K.BASE_ONE: 1, K.BASE_OPEN: int(pc.price_open[p])}.get(
                int(fac.base[s]), int(sc.bid[s]) + int(sc.ask[s]))
            amt = F.charge_exact(f, base, v)
            per_acc[pc.acc[p]] += amt - amount[p]
            amount[p] = amt
        return Charges(day, amount, per_acc[:n_acc], fac, group_of, groups)

    def _book(self, ch: Charges, touched: np.ndarray) -> dict:
        """Post the charges of one date and accrue (or book) them; the date's summary."""
        eng = self.eng
        pc, ac = eng.positions.cols, eng.accounts.cols
        daily = np.array([eng.config.groups[g].swap_daily for g in ch.groups], dtype=np.bool_)
        n = len(ch.amount)
        acc_daily = daily[ch.group_of] if len(ch.group_of) else np.zeros(0, np.bool_)
        accrue = (ch.amount != 0) & ~acc_daily[pc.acc[:n]] if n else np.zeros(0, np.bool_)
        pc.swap[:n][accrue] += ch.amount[accrue]
        accs = np.nonzero(ch.per_account)[0].astype(np.int64)
        amounts = ch.per_account[accs]
        touched[accs] = True
        label = f"swap {ch.day}"
        deals = np.zeros(len(accs), dtype=np.int64)
        for i in np.nonzero(acc_daily[accs])[0].tolist():
            deals[i] = self._balance_deal(int(accs[i]), int(amounts[i]), label)
        led = eng.ledger
        client = client_ledger(0) + 2 * accs
        src = np.where(amounts > 0, FINANCING, client)
        dst = np.where(amounts > 0, client, FINANCING)
        i0 = led.post_many(eng.now_msc, src, dst, np.abs(amounts), PostingKind.SWAP, deals,
                           label)
        apply_postings(led.balance, src, dst, np.abs(amounts))
        ac.balance[accs] = led.balance[client]
        if eng.collect_effects:
            eff = eng._effects
            eff.postings.extend(led.rows(i0, led.postings.size, ac.login))
            eng._collect_accounts(accs)
        summary = self._summary(ch)
        self.log.append(summary)
        return summary

    def _balance_deal(self, a: int, amount: int, comment: str) -> int:
        """A swap booked to the balance (groups with ``swap_daily``): an MT5 CHARGE deal
        (positive: paid to the client)."""
        eng = self.eng
        ticket = eng._deal_ticket()
        eng.deals.append(comment, ticket=ticket, order=0, acc=a, sym=-1,
                         time_msc=eng.now_msc, type=DealType.CHARGE, entry=DealEntry.IN,
                         magic=0, position_id=0, reason=DealReason.CLIENT, volume=0, price=0,
                         commission=0, swap=amount, profit=0, fee=0)
        if eng.collect_effects:
            eng._effects.deals.append(eng.deal_row(len(eng.deals) - 1))
        return ticket

    def _summary(self, ch: Charges) -> dict:
        """Financing of one date by symbol and group: charged to clients (income of the
        broker, > 0) and paid to them (expense, > 0), in minor units."""
        eng = self.eng
        pc = eng.positions.cols
        n = len(ch.amount)
        n_g = len(ch.groups)
        size = len(eng.symbols) * n_g
        count = np.zeros(size, np.int64)
        charged = np.zeros(size, np.int64)
        paid = np.zeros(size, np.int64)
        K.charge_totals(ch.amount, pc.sym[:n], pc.acc[:n], ch.group_of, n_g, count, charged,
                        paid)
        rows = []
        for u in np.nonzero(count)[0].tolist():
            s, g = divmod(u, n_g)
            rows.append({"symbol": eng.symbols.specs[s].name, "group": ch.groups[g],
                         "nights": int(ch.factors.nights[s]), "positions": int(count[u]),
                         "charged": int(charged[u]), "paid": int(paid[u])})
        return {"date": str(ch.day), "positions": int(count.sum()),
                "charged": int(charged.sum()), "paid": int(paid.sum()), "by": rows}

    # ------------------------------------------------------------------ queries
    def next_date(self, time_msc: int) -> dt.date | None:
        """The next trading date to roll at ``time_msc`` (None: nothing due yet)."""
        due = F.trading_date(time_msc, self.rollover_at)
        if not self.rolled_through:
            return due
        nxt = dt.date.fromordinal(self.rolled_through + 1)
        return due if nxt <= due else None

    def projection(self, day: dt.date | None = None) -> dict:
        """The next rollover's charges on the current book, nothing booked."""
        if day is None:
            day = dt.date.fromordinal(self.rolled_through + 1) if self.rolled_through else \
                F.trading_date(self.eng.now_msc, self.rollover_at)
        ch = self.charges(day)
        if ch is None:
            return {"date": str(day), "positions": 0, "charged": 0, "paid": 0, "by": []}
        return self._summary(ch)

    def report(self) -> dict:
        """The last rollovers, the next one's projection, the benchmark fixings and the
        financing account's balance (minor units; ``charged`` to clients, ``paid`` to
        them)."""
        return {
            "rolled_through": str(dt.date.fromordinal(self.rolled_through))
            if self.rolled_through else None,
            "last": list(self.log),
            "next": self.projection(),
            "benchmarks": {k: [{"date": str(dt.date.fromordinal(o)), "rate": r}
                               for o, r in v] for k, v in self.benchmarks.items()},
            "financing_account": int(self.eng.ledger.balance[FINANCING]),
        }

    def accrued(self, a: int) -> int:
        """Swap accrued on account ``a``'s open positions (minor units, + owed to it)."""
        eng = self.eng
        idx = eng.positions.by_acc
        if a >= idx.n_groups:
            return 0
        slots = idx.pool[idx.off[a]: idx.off[a] + idx.cnt[a]]
        return int(eng.positions.cols.swap[slots].sum())

    def symbol_rates(self, s: int, group: str | None = None) -> tuple[float, float]:
        """``(swap_long, swap_short)`` in force for the next rollover, as ``symbol_info``
        shows them (the benchmark-plus-markup rates of ``group``, default the first)."""
        eng = self.eng
        spec = eng.symbols.specs[s]
        g = eng.config.groups[group or next(iter(eng.config.groups))]
        day = dt.date.fromordinal(self.rolled_through + 1) if self.rolled_through else \
            F.trading_date(eng.now_msc, self.rollover_at)
        bench = F.benchmark_on(self.benchmarks, spec.swap_benchmark, day) \
            if spec.swap_benchmark else None
        lo, sh = F.effective_rates(spec, g, bench)
        return float(lo), float(sh)

    # ------------------------------------------------------------------ state
    def canonical_arrays(self):
        yield "day.rolled_through", np.array([self.rolled_through], dtype=np.int64)
        text = repr(sorted(self.benchmarks.items())).encode()
        yield "day.benchmarks", np.frombuffer(text, dtype=np.uint8)

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"trading_day": {"rolled_through": self.rolled_through,
                                    "benchmarks": {k: [list(f) for f in v]
                                                   for k, v in self.benchmarks.items()},
                                    "log": list(self.log)}}

    def restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        state = meta.get("trading_day") or {}
        self.rolled_through = int(state.get("rolled_through", 0))
        self.benchmarks = {k: [(int(o), str(r)) for o, r in v]
                           for k, v in state.get("benchmarks", {}).items()}
        self.log = deque(state.get("log", []), maxlen=LOG_KEEP)
