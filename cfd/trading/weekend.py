"""Weekend and holiday margin: higher margin rates while a market's long closure nears.

A stock cannot be closed while its market is shut, and the price it reopens at may be far
from the last one (the gap). From ``lead_ms`` before the last close before a closure longer
than ``min_gap_ms`` (a weekend, a holiday) until the next open, a symbol's margin rates
(initial and maintenance) are multiplied by its multiplier (``WeekendSchedule``).

The engine never reads a clock: the server's clock computes what the schedule says at its
time (:meth:`WeekendMargin.proposal`) and submits a :class:`MarginSchedule` command when that
differs from the state; the command is journaled, so replay gives the same margins. On the
switch the symbol table's ``k_margin`` / ``k_margin_maint`` are reloaded from the spec and
scaled (the kernels are unchanged), every account is recomputed and the levels checked.

Warning: from ``warn_ms`` before the switch, the symbol is *upcoming*; when the command
first marks it so, every holder whose margin level at the higher rates would be at or below
its margin-call level gets a ``margin_call_warning`` event.

Policy for accounts that fall below stop-out only because of the schedule: they are stopped
out like any other account, when the higher margin takes effect (the market is still open
then, ``lead_ms`` before the close; the warning came ``warn_ms`` earlier). A broker that
would rather keep such positions over the closure takes the risk of the gap it exists to
cover.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cfd import commands as C
from cfd.constants import Retcode
from cfd.errors import Rejected
from cfd.instruments import sessions
from cfd.kernels.formulas import RULE_MT5_MONEY, margin_level
from cfd.kernels.margin import recompute_account
from cfd.money import MINOR_SCALE
from cfd.result import Result
from cfd.trading import margin_tiers

if TYPE_CHECKING:
    from cfd.engine import Engine

HOUR_MS = 3_600_000
_LOOKBACK_MS = 6 * 24 * HOUR_MS  # the last close before a time: at most this far back


@dataclass(frozen=True)
class WeekendSchedule:
    multiplier: Decimal = Decimal(2)
    lead_ms: int = 2 * HOUR_MS  # in force from this long before the last close
    warn_ms: int = 24 * HOUR_MS  # warnings this long before it comes into force
    min_gap_ms: int = 24 * HOUR_MS  # closures longer than this (not the overnight one)
    symbols: dict[str, Decimal] = field(default_factory=dict)  # per symbol (1: exempt)

    def multiplier_of(self, name: str) -> Decimal:
        return self.symbols.get(name, self.multiplier)


@C.register
@dataclass(frozen=True)
class MarginSchedule(C.Command):
    """The clock: the symbols whose weekend/holiday margin is in force (``active``) and
    those whose higher margin comes within the warning time (``upcoming``)."""

    kind: ClassVar[str] = "margin_schedule"
    active: tuple[str, ...] = ()
    upcoming: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, payload: bytes) -> MarginSchedule:
        cmd = super().from_payload(payload)
        return cls(time_msc=cmd.time_msc, actor=cmd.actor, active=tuple(cmd.active),
                   upcoming=tuple(cmd.upcoming))


class WeekendMargin:
    """The engine stage holding which symbols are under the schedule."""

    def __init__(self, eng: Engine, schedule: WeekendSchedule) -> None:
        self.eng = eng
        self.schedule = schedule
        self.active = np.zeros(0, dtype=np.bool_)
        self.upcoming = np.zeros(0, dtype=np.bool_)
        eng.register(MarginSchedule, self.command)

    def _sized(self) -> None:
        n = len(self.eng.symbols)
        if len(self.active) < n:
            self.active = np.r_[self.active, np.zeros(n - len(self.active), dtype=np.bool_)]
            self.upcoming = np.r_[self.upcoming,
                                  np.zeros(n - len(self.upcoming), dtype=np.bool_)]

    # ------------------------------------------------------------------ the clock's side
    def window(self, sym: int, time_msc: int) -> tuple[bool, bool]:
        """``(in force, upcoming)`` for ``sym`` at ``time_msc`` by the session calendar."""
        eng = self.eng
        kind = int(eng.symbols.cols.session[sym])
        if kind == sessions.Session.ALWAYS \
                or self.schedule.multiplier_of(eng.symbols.specs[sym].name) == 1:
            return False, False
        cal = sessions.default_calendar()
        sch = self.schedule
        t = int(time_msc)
        k = sessions.Session(kind)
        open_, _ = cal._current_or_next(k, t)
        if open_ > t:  # closed: in force until the next open if this closure is long
            last_close = _last_close(cal, kind, t)
            if last_close is None or open_ - last_close > sch.min_gap_ms:
                return True, True
        probe = t  # the coming closes, as long as they are within the warning time
        while True:
            _, close = cal._current_or_next(k, probe)
            if close - sch.lead_ms - sch.warn_ms > t:
                return False, False
            if cal.next_open(kind, close) - close > sch.min_gap_ms:
                return t >= close - sch.lead_ms, True
            probe = close

    def proposal(self, time_msc: int) -> MarginSchedule | None:
        """The command the clock should submit at ``time_msc`` (None: nothing changes)."""
        self._sized()
        names = self.eng.symbols.names()
        act, up = [], []
        for s in range(len(names)):
            a, u = self.window(s, time_msc)
            if a:
                act.append(names[s])
            if u and not a:
                up.append(names[s])
        cur_a = [names[s] for s in np.flatnonzero(self.active[: len(names)])]
        cur_u = [names[s] for s in np.flatnonzero(self.upcoming[: len(names)])]
        if (act, up) == (cur_a, cur_u):
            return None
        return MarginSchedule(time_msc=0, actor="clock", active=tuple(act), upcoming=tuple(up))

    # ------------------------------------------------------------------ the engine's side
    def command(self, cmd: MarginSchedule) -> Result:
        eng = self.eng
        self._sized()
        idx: list[list[int]] = []
        for names in (cmd.active, cmd.upcoming):
            if not isinstance(names, tuple):
                raise Rejected(Retcode.INVALID, "active and upcoming must be lists of symbols")
            got = []
            for name in names:
                s = eng.symbols.get(name) if isinstance(name, str) else None
                if s is None:
                    raise Rejected(Retcode.INVALID, f"unknown symbol {name!r}")
                got.append(s)
            idx.append(got)
        n = len(eng.symbols)
        active = np.zeros(n, dtype=np.bool_)
        active[idx[0]] = True
        upcoming = np.zeros(n, dtype=np.bool_)
        upcoming[idx[1]] = True
        upcoming &= ~active
        if (active == self.active[:n]).all() and (upcoming == self.upcoming[:n]).all():
            raise Rejected(Retcode.NO_CHANGES, "the margin schedule is already in this state")
        events: list[dict] = []
        warn = upcoming & ~self.upcoming[:n] & ~active
        if warn.any():
            events.extend(self._warnings(np.flatnonzero(warn)))
        switched = np.flatnonzero(active != self.active[:n])
        self.active, self.upcoming = active, upcoming
        self.rescale(switched)
        if len(switched):
            ev = {"kind": "margin_schedule", "time_msc": eng.now_msc, "actor": cmd.actor,
                  "active": [eng.symbols.specs[s].name for s in np.flatnonzero(active)]}
            eng._effects.events.append(ev)
            events.append(ev)
            eng.recompute_all()
            ac = eng.accounts.cols
            events.extend(eng._check_levels(np.flatnonzero(ac.margin[: len(eng.accounts)] > 0)))
        return Result(Retcode.DONE, f"{int(active.sum())} symbols under the weekend margin, "
                      f"{int(upcoming.sum())} upcoming", None, events)

    def rescale(self, syms: Any) -> None:
        """Reload the margin factors of ``syms`` from their specs, scaled while in force
        (also after a symbol's spec changes)."""
        self._sized()
        eng = self.eng
        sc = eng.symbols.cols
        for s in (int(x) for x in syms):
            eng.symbols.replace(s, eng.symbols.specs[s])
            if self.active[s]:
                m = float(self.schedule.multiplier_of(eng.symbols.specs[s].name))
                sc.k_margin[s] *= m
                sc.k_margin_maint[s] *= m

    def multiplier(self, sym: int, upcoming: bool = True) -> Decimal:
        """The multiplier in force on ``sym`` (or about to be, with ``upcoming``)."""
        self._sized()
        on = self.active[sym] or (upcoming and self.upcoming[sym])
        return self.schedule.multiplier_of(self.eng.symbols.specs[sym].name) if on \
            else Decimal(1)

    def _warnings(self, syms: np.ndarray) -> list[dict]:
        """``margin_call_warning`` for holders of ``syms`` that the higher rates would put at
        or below their margin-call level (nothing changes)."""
        eng = self.eng
        sc, ac, pc = eng.symbols.cols, eng.accounts.cols, eng.positions.cols
        k_m, k_mm = sc.k_margin.copy(), sc.k_margin_maint.copy()
        for s in syms.tolist():
            m = float(self.schedule.multiplier_of(eng.symbols.specs[s].name))
            k_m[s] *= m
            k_mm[s] *= m
        idx = eng.positions.by_acc
        out = []
        for a in eng.holders(syms).tolist():
            _, margin, _ = recompute_account(a, idx.off, idx.cnt, idx.pool, pc.sym, pc.volume,
                                             pc.price_open, sc.bid, sc.ask, sc.k_profit, k_m,
                                             k_mm, sc.calc_mode, margin_tiers.tier_sets(eng),
                                             int(ac.leverage[a]))
            equity_c, _, _ = eng.accounts.figures(a)
            margin_c = int(np.rint(margin * MINOR_SCALE))
            eq, mg = equity_c / MINOR_SCALE, margin_c / MINOR_SCALE
            level = margin_level(eq, mg)
            hit = (equity_c <= int(np.rint(float(ac.so_call[a]) * MINOR_SCALE))
                   if int(ac.so_rule[a]) == RULE_MT5_MONEY
                   else mg > 0 and level <= float(ac.so_call[a]))
            if hit:
                ev = {"kind": "margin_call_warning", "login": int(ac.login[a]),
                      "time_msc": eng.now_msc, "equity": eq, "margin_scheduled": mg,
                      "margin_level_scheduled": level,
                      "symbols": [eng.symbols.specs[s].name for s in syms.tolist()]}
                eng._effects.events.append(ev)
                out.append(ev)
        return out

    # ------------------------------------------------------------------ state
    def canonical_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        self._sized()
        n = len(self.eng.symbols)
        yield "weekend.active", self.active[:n]
        yield "weekend.upcoming", self.upcoming[:n]

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        self._sized()
        return {"weekend.active": self.active.copy(),
                "weekend.upcoming": self.upcoming.copy()}, {}

    def restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.active = np.asarray(arrays.get("weekend.active", self.active), dtype=np.bool_)
        self.upcoming = np.asarray(arrays.get("weekend.upcoming", self.upcoming),
                                   dtype=np.bool_)
        self._sized()


def _last_close(cal: sessions.SessionCalendar, kind: int, t: int) -> int | None:
    """The close of the last session that ended at or before ``t`` (None: none within
    ``_LOOKBACK_MS``)."""
    k = sessions.Session(kind)
    probe, last = t - _LOOKBACK_MS, None
    while True:
        o, c = cal._current_or_next(k, probe)
        if c > t or o > t:
            return last
        last, probe = c, c
