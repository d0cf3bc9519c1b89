"""Administrative commands of the engine: accounts, symbols, markets, forced stop-outs and
account levels (each one journaled like any other command).
"""

from __future__ import annotations

import math
from dataclasses import replace
from decimal import Decimal

import numpy as np

from cfd import commands as C
from cfd.accounts import group_rules, rules
from cfd.constants import (
    Retcode,
)
from cfd.errors import Rejected, SpecError
from cfd.instruments.registry import SymbolTable
from cfd.instruments.spec import SymbolSpec
from cfd.money import VOLUME_SCALE
from cfd.result import Result


class AdminHandlers:
    """Handlers of :class:`cfd.engine.Engine` for the broker's commands."""

    def _create_account(self, cmd: C.CreateAccount) -> Result:
        if isinstance(cmd.login, bool) or not isinstance(cmd.login, int) \
                or not 0 < cmd.login < 2**63:
            raise Rejected(Retcode.INVALID, f"login {cmd.login!r} must be a positive integer")
        if self.accounts.find(cmd.login) is not None:
            raise Rejected(Retcode.INVALID, f"account {cmd.login} already exists")
        group = self.config.groups.get(cmd.group)
        if group is None:
            raise Rejected(Retcode.INVALID, f"unknown account group {cmd.group!r}")
        if not isinstance(cmd.leverage, int) or not 1 <= cmd.leverage <= 1000:
            raise Rejected(Retcode.INVALID, f"leverage {cmd.leverage!r} must be 1..1000")
        category, country = rules.category_code(cmd.category), rules.country_code(cmd.country)
        rules.check_client(group, category, country)
        a = self.accounts.add(cmd.login, cmd.name, group, cmd.leverage, cmd.trade_mode,
                              category, country)
        self.ledger.ensure_clients(len(self.accounts))
        self.positions.by_acc.ensure_groups(len(self.accounts))
        self._touch_account(a)
        return Result(Retcode.DONE, f"account {cmd.login} created", self.account_info(cmd.login))

    def _set_client(self, cmd: C.SetClient) -> Result:
        a = self._acc(cmd.login)
        ac = self.accounts.cols
        category = int(ac.category[a]) if cmd.category is None \
            else rules.category_code(cmd.category)
        country = int(ac.country[a]) if cmd.country is None \
            else rules.country_code(cmd.country)
        rules.check_client(self.config.groups[self.accounts.groups[a]], category, country)
        if (category, country) == (int(ac.category[a]), int(ac.country[a])):
            raise Rejected(Retcode.NO_CHANGES, f"account {cmd.login} already has these "
                                               f"client settings")
        ac.category[a], ac.country[a] = category, country
        ac.so_rule[a] = self.config.groups[self.accounts.groups[a]].rule_for(category)
        self._collect_account(a, force=True)
        self._effects.events.append({"kind": "set_client", "login": cmd.login,
                                     "category": rules.CATEGORIES[category],
                                     "country": rules.country_name(country),
                                     "actor": cmd.actor, "time_msc": self.now_msc})
        return Result(Retcode.DONE, f"account {cmd.login}: {rules.CATEGORIES[category]}, "
                      f"{rules.country_name(country) or 'no country'}",
                      self.account_info(cmd.login))

    def _set_exposure_limit(self, cmd: C.SetExposureLimit) -> Result:
        """The book-wide cap of the clients' net volume in a symbol (lots; "" removes it).
        Orders already in the book stay; the cap refuses those that take the net beyond
        it, further in that direction."""
        if not isinstance(cmd.symbol, str) or self.symbols.get(cmd.symbol) is None:
            raise Rejected(Retcode.INVALID, f"unknown symbol {cmd.symbol!r}")
        limits = dict(self.config.exposure_limits)
        if cmd.lots in ("", None):
            if cmd.symbol not in limits:
                raise Rejected(Retcode.NO_CHANGES, f"{cmd.symbol} has no exposure limit")
            del limits[cmd.symbol]
        else:
            try:
                lots = Decimal(str(cmd.lots))
            except ArithmeticError:
                lots = Decimal(-1)
            if not lots.is_finite() or lots < 0 or (lots * VOLUME_SCALE) % 1:
                raise Rejected(Retcode.INVALID, f"exposure limit {cmd.lots!r} is not a "
                                                f"volume in lots (>= 0, on the volume grid)")
            if limits.get(cmd.symbol) == lots:
                raise Rejected(Retcode.NO_CHANGES, f"{cmd.symbol} already has this limit")
            limits[cmd.symbol] = lots
        # a config of its own: engines may have been built from one shared config
        self.config = replace(self.config, exposure_limits=limits)
        text = str(limits[cmd.symbol]) if cmd.symbol in limits else ""
        self._effects.events.append({"kind": "set_exposure_limit", "symbol": cmd.symbol,
                                     "lots": text, "actor": cmd.actor,
                                     "time_msc": self.now_msc})
        return Result(Retcode.DONE, f"{cmd.symbol}: exposure limit "
                      f"{text + ' lots' if text else 'removed'}",
                      {k: str(v) for k, v in limits.items()})

    def _set_group(self, cmd: C.SetGroup) -> Result:
        """Create an account group or change its settings (``cfd.accounts.group_rules``)."""
        old = self.config.groups.get(cmd.group) if isinstance(cmd.group, str) else None
        group = group_rules.changed_group(old, cmd.group, cmd.changes)
        if old is not None and group == old:
            raise Rejected(Retcode.NO_CHANGES, f"group {cmd.group} already has these settings")
        members = np.array([a for a, g in enumerate(self.accounts.groups) if g == cmd.group],
                           dtype=np.int64)
        if old is not None and group.margin_mode != old.margin_mode:
            busy = [a for a in members.tolist() if self._holds_anything(a)]
            if busy:
                raise Rejected(Retcode.INVALID, f"group {cmd.group}: the margin mode changes "
                               f"only while its accounts hold no positions or orders "
                               f"(account {int(self.accounts.cols.login[busy[0]])} does)")
        groups = dict(self.config.groups)
        groups[cmd.group] = group
        # a config of its own: engines may have been built from one shared config
        self.config = replace(self.config, groups=groups)
        self.groups_set.add(cmd.group)
        ac = self.accounts.cols
        mode = old is None or group.margin_mode != old.margin_mode
        levels = old is None or bool(group_rules.STOP_OUT_FIELDS & set(cmd.changes))
        for a in members.tolist() if mode or levels else ():  # their rows change
            if mode:
                ac.margin_mode[a] = group.margin_mode
            if levels:
                ac.so_mode[a] = group.so_mode
                ac.so_rule[a] = group.rule_for(int(ac.category[a]))
                ac.so_call[a], ac.so_so[a] = group.margin_call, group.stop_out
                ac.so_end[a] = group.stop_out_end
            self._collect_account(a, force=True)
        nonconforming = []
        for a in members.tolist():
            try:
                rules.check_client(group, int(ac.category[a]), int(ac.country[a]))
            except Rejected:
                nonconforming.append(int(ac.login[a]))
        settings = group_rules.to_dict(group)
        self._effects.events.append({"kind": "set_group", "group": cmd.group,
                                     "changes": {k: str(v) for k, v in cmd.changes.items()},
                                     "actor": cmd.actor, "time_msc": self.now_msc})
        self.recompute_all()  # tiers and rates in force at once
        events = self._check_levels(members)
        off = f", {len(nonconforming)} no longer meeting its rules" if nonconforming else ""
        done = "created" if old is None else "updated"
        return Result(Retcode.DONE, f"group {cmd.group} {done} ({len(members)} accounts{off})",
                      {"group": cmd.group, "settings": settings,
                       "accounts": len(members), "nonconforming": nonconforming}, events)

    def _holds_anything(self, a: int) -> bool:
        """Whether account ``a`` holds a position or a pending order."""
        return any(a < idx.n_groups and idx.cnt[a] > 0
                   for idx in (self.positions.by_acc, self.pending.by_acc))

    def _set_symbol(self, cmd: C.SetSymbol) -> Result:
        if not isinstance(cmd.name, str) or not isinstance(cmd.changes, dict) \
                or "name" in cmd.changes:
            raise Rejected(Retcode.INVALID, "give a symbol name and a dict of changes (a "
                                            "symbol is not renamed)")
        i = self.symbols.get(cmd.name)
        try:
            if i is None:
                spec = SymbolSpec.from_dict({"name": cmd.name, **cmd.changes})
            else:
                spec = self.symbols.specs[i].with_changes(**cmd.changes)
            # derive the table's figures on a scratch table first: a spec whose figures
            # do not fit (a contract size of 1e308) is refused before anything changes
            SymbolTable([spec], self.symbols.rates)
        except (SpecError, TypeError, ValueError, ArithmeticError) as exc:
            raise Rejected(Retcode.INVALID, str(exc)) from None
        if i is None:
            i = self.symbols.add(spec)
            self.positions.by_sym.ensure_groups(len(self.symbols))
            self._grow_hygiene()
        else:
            self.symbols.replace(i, spec)
        self.weekend.rescale([i])  # the weekend margin stays in force on the new rates
        self._effects.symbols[spec.name] = spec.to_dict()
        self._effects.events.append({"kind": "set_symbol", "symbol": spec.name,
                                     "changes": {k: str(v) for k, v in cmd.changes.items()},
                                     "actor": cmd.actor, "time_msc": self.now_msc})
        self.recompute_all()
        touched = np.nonzero(self.accounts.cols.margin[: len(self.accounts)] > 0)[0]
        events = self._check_levels(touched)
        return Result(Retcode.DONE, f"symbol {spec.name} updated", spec.to_dict(), events)

    def _set_market(self, cmd: C.SetMarket) -> Result:
        sc = self.symbols.cols
        idx = []
        for name in cmd.symbols:
            i = self.symbols.get(name) if isinstance(name, str) else None
            if i is None:
                raise Rejected(Retcode.INVALID, f"unknown symbol {name!r}")
            idx.append(i)
        for i in idx:
            if cmd.market_open is not None:
                sc.admin_open[i] = bool(cmd.market_open)
                sc.market_open[i] = sc.admin_open[i] and sc.session_open[i]
            if cmd.halted is not None:
                sc.halted[i] = bool(cmd.halted)
        self._effects.events.append({"kind": "set_market", "symbols": list(cmd.symbols),
                                     "market_open": cmd.market_open, "halted": cmd.halted,
                                     "actor": cmd.actor, "time_msc": self.now_msc})
        events: list[dict] = []
        if cmd.market_open or cmd.halted is False:
            events = self._markets_opened(idx)
        return Result(Retcode.DONE, f"{len(idx)} symbols updated", None, events)

    def _force_stop_out(self, cmd: C.ForceStopOut) -> Result:
        a = self._acc(cmd.login)
        events = self._check_levels(np.array([a], dtype=np.int64), force=True)
        self._effects.events.append({"kind": "force_stop_out", "login": cmd.login,
                                     "actor": cmd.actor, "time_msc": self.now_msc})
        return Result(Retcode.DONE, f"account {cmd.login} liquidated", None, events)

    def _set_levels(self, cmd: C.SetAccountLevels) -> Result:
        ac = self.accounts.cols
        if cmd.login:
            targets = [self._acc(cmd.login)]
        elif cmd.group:
            targets = [i for i, g in enumerate(self.accounts.groups) if g == cmd.group]
            if cmd.group not in self.config.groups:
                raise Rejected(Retcode.INVALID, f"unknown account group {cmd.group!r}")
        else:
            raise Rejected(Retcode.INVALID, "give a login or a group")
        for v in (cmd.margin_call, cmd.stop_out, cmd.stop_out_end):
            if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v < 0):
                raise Rejected(Retcode.INVALID, f"level {v!r} must be a finite number >= 0")
        call = cmd.margin_call
        so = cmd.stop_out
        for a in targets:
            new_call = float(ac.so_call[a]) if call is None else float(call)
            new_so = float(ac.so_so[a]) if so is None else float(so)
            if new_so > new_call:
                raise Rejected(Retcode.INVALID, f"stop-out level {new_so} is above the "
                               f"margin-call level {new_call}")
        for a in targets:
            if call is not None:
                ac.so_call[a] = call
            if so is not None:
                ac.so_so[a] = so
            if cmd.stop_out_end is not None:
                ac.so_end[a] = cmd.stop_out_end
            self._collect_account(a, force=True)
        self._effects.events.append({"kind": "set_levels", "login": cmd.login,
                                     "group": cmd.group, "margin_call": call, "stop_out": so,
                                     "stop_out_end": cmd.stop_out_end, "actor": cmd.actor,
                                     "time_msc": self.now_msc})
        events = self._check_levels(np.array(targets, dtype=np.int64))
        return Result(Retcode.DONE, f"levels set on {len(targets)} accounts", None, events)
