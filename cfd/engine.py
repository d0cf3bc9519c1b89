"""The single writer: applies commands in order, one readable pipeline.

Every state change is a command (``cfd.commands``); :meth:`Engine.apply` applies one and
returns a :class:`Result` (an MT5 retcode, a comment, records) with the events it caused. A
refused command changes nothing. The state after N commands is a pure function of those N
commands (:meth:`Engine.state_hash`).

Per tick batch, in this order (as MT5 servers do):
  1. accept or reject ticks, update bid/ask arrays, mark changed symbols;
  2. recompute equity and margin incrementally for positions of changed symbols;
  3. expire pending orders, trigger SL/TP, activate pending orders (``cfd.trading.orders``
     hooks ``on_prices``); gaps fill at the market; a fill re-derives its account;
  4. stop-out sweep for accounts at or below their stop-out level; margin-call flags;
  5. deals -> ledger postings -> effects (the store journals them as one batch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from cfd import commands as C
from cfd.accounts.book import AccountGroup, AccountTable
from cfd.accounts.ledger import (
    BROKER_CREDIT,
    BROKER_PL,
    EXTERNAL_CASH,
    INSURANCE_FUND,
    N_HOUSE,
    Ledger,
    PostingKind,
    client_credit_ledger,
    client_ledger,
)
from cfd.constants import (
    DealEntry,
    DealReason,
    DealType,
    MarginMode,
    OrderState,
    OrderType,
    Retcode,
    TradeAction,
)
from cfd.effects import Effects
from cfd.errors import Rejected, SpecError
from cfd.feed.hygiene import PriceHygiene
from cfd.feed.ticks import TickBatch
from cfd.instruments.registry import SymbolTable
from cfd.instruments.sessions import default_calendar
from cfd.instruments.spec import SymbolSpec, load_catalogue
from cfd.kernels.formulas import margin_level, position_margin
from cfd.kernels.margin import (
    apply_states,
    margin_calls,
    pack_moves,
    recompute_account,
    recompute_all,
    stop_out_hits,
    tick_update,
    tick_update_accounts,
)
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE
from cfd.trading import market
from cfd.trading.history import DEAL_COLUMNS, ORDER_COLUMNS, RecordLog
from cfd.trading.orders import PendingOrders
from cfd.trading.positions import PositionTable
from cfd.trading.request import (
    OrderCheckResult,
    OrderSendResult,
    RequestFormatError,
    TradeRequest,
    describe,
)

FIRST_ORDER_TICKET = 10_000_001
FIRST_DEAL_TICKET = 50_000_001


@dataclass
class Result:
    """What a command returns: an MT5 retcode, a comment and records, plus events."""

    retcode: int
    comment: str = ""
    data: Any = None
    events: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.retcode in (Retcode.DONE, Retcode.PLACED, Retcode.CHECK_OK)


@dataclass
class EngineConfig:
    currency: str = "USDT"
    company: str = "CFD Engine"
    server: str = "CFD-Demo"
    stale_after_ms: int = 0  # 0: quotes never go stale
    outlier_pct: float = 10.0  # a jump beyond this needs confirmation before stop-outs
    confirm_ticks: int = 2  # further ticks that confirm an outlier
    sessions: bool = False  # follow each symbol's trading session (else always open)
    conflate_ticks: bool = False  # mark only each symbol's last tick of a batch
    record_ticks: bool = True
    groups: dict[str, AccountGroup] = field(default_factory=lambda: {
        "demo\\usdt": AccountGroup(),
        "demo\\netting": AccountGroup(name="demo\\netting",
                                      margin_mode=MarginMode.RETAIL_NETTING),
        "retail\\esma": AccountGroup(name="retail\\esma", esma=True, margin_call=100.0,
                                     stop_out=50.0),
    })


class Engine:
    def __init__(self, specs: list[SymbolSpec] | None = None,
                 rates: dict[str, Decimal] | None = None,
                 config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.symbols = SymbolTable(load_catalogue() if specs is None else specs, rates)
        self.accounts = AccountTable()
        self.ledger = Ledger()
        self.positions = PositionTable()
        self.positions.by_sym.ensure_groups(len(self.symbols))
        self.deals = RecordLog(DEAL_COLUMNS)
        self.orders = RecordLog(ORDER_COLUMNS)
        self.closed_tickets: dict[int, int] = {}  # closed position ticket -> account index
        self.next_order = FIRST_ORDER_TICKET
        self.next_deal = FIRST_DEAL_TICKET
        self.seq = 0
        self.now_msc = 0
        self.rejected_ticks = 0
        self.hygiene = self._new_hygiene(len(self.symbols))
        self.calendar = default_calendar() if self.config.sessions else None
        self._effects = Effects()
        self.collect_effects = True  # False while replaying a journal: rows already stored
        self.extensions: list[Any] = []
        self.extensions.append(PendingOrders(self))  # pending orders and SL/TP
        self._handlers: dict[type, Callable[[Any], Result]] = {
            C.CreateAccount: self._create_account,
            C.Deposit: self._deposit,
            C.Withdraw: self._withdraw,
            C.AdjustCredit: self._credit,
            C.SendOrder: self._order_send,
            C.Ticks: self._ticks,
            C.TickBatchCommand: self._tick_batch,
            C.SetSymbol: self._set_symbol,
            C.SetMarket: self._set_market,
            C.TopUpInsurance: self._insurance_topup,
            C.ForceStopOut: self._force_stop_out,
            C.SetAccountLevels: self._set_levels,
        }
        # stop-out sweep: the numba kernel with bulk booking; ``_stop_out_python`` is the
        # reference (same state hash)
        self.stop_out: Callable[[np.ndarray, bool], list[dict]] = self._stop_out_kernel
        # periodic check: on tick commands whose sequence number is a multiple of this, a full
        # recompute is compared with the incremental state and re-anchors it (0: never);
        # it depends only on the sequence number, so a replay checks at the same commands
        self.recheck_every = 10_000
        self._checked_seq = -1
        self.drift = 0.0  # largest difference the last check found (account currency)
        self._mark = np.zeros(1024, dtype=np.bool_)  # scratch of the incremental kernel
        # account states of the last whole-book walk (kernels.margin STATE_*, -1: untouched)
        self._states: np.ndarray | None = None
        self._touches = 0  # accounts re-derived so far (tells when ``_states`` went stale)
        # a tick moving this share of a book of at least this many positions is walked by
        # account (see ``incremental``)
        self.bulk_tick_share = 0.25
        self.bulk_tick_min = 100_000

    # ------------------------------------------------------------------ commands
    def apply(self, cmd: C.Command) -> Result:
        """Apply one command. A :class:`Rejected` command changes nothing."""
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise TypeError(f"no handler for command {type(cmd).__name__}")
        self.seq += 1
        self.now_msc = max(self.now_msc, int(cmd.time_msc))
        opened = self._follow_sessions() if self.calendar is not None else None
        try:
            result = handler(cmd)
        except Rejected as exc:
            data = None
            if isinstance(cmd, C.SendOrder):
                data = self._send_result(exc.retcode, exc.comment, cmd)
            result = Result(exc.retcode, exc.comment, data)
        if opened is not None and len(opened):
            result.events.extend(self._markets_opened(opened))
        return result

    def register(self, cmd_type: type, handler: Callable[[Any], Result]) -> None:
        self._handlers[cmd_type] = handler

    def take_effects(self) -> Effects:
        eff, self._effects = self._effects, Effects()
        return eff

    # ------------------------------------------------------------------ accounts & money
    def _acc(self, login: int) -> int:
        i = self.accounts.find(int(login))
        if i is None:
            raise Rejected(Retcode.INVALID, f"unknown account {login}")
        return i

    def _create_account(self, cmd: C.CreateAccount) -> Result:
        if not isinstance(cmd.login, int) or cmd.login <= 0:
            raise Rejected(Retcode.INVALID, f"login {cmd.login!r} must be a positive integer")
        if self.accounts.find(cmd.login) is not None:
            raise Rejected(Retcode.INVALID, f"account {cmd.login} already exists")
        group = self.config.groups.get(cmd.group)
        if group is None:
            raise Rejected(Retcode.INVALID, f"unknown account group {cmd.group!r}")
        if not isinstance(cmd.leverage, int) or not 1 <= cmd.leverage <= 1000:
            raise Rejected(Retcode.INVALID, f"leverage {cmd.leverage!r} must be 1..1000")
        a = self.accounts.add(cmd.login, cmd.name, group, cmd.leverage, cmd.trade_mode)
        self.ledger.ensure_clients(len(self.accounts))
        self.positions.by_acc.ensure_groups(len(self.accounts))
        self._touch_account(a)
        return Result(Retcode.DONE, f"account {cmd.login} created", self.account_info(cmd.login))

    def _amount(self, amount: Any) -> int:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise Rejected(Retcode.INVALID, f"amount {amount!r} must be an integer of minor "
                                            f"units")
        if amount <= 0:
            raise Rejected(Retcode.INVALID, f"amount {amount} must be greater than zero")
        if amount > 10**15:
            raise Rejected(Retcode.INVALID, f"amount {amount} is out of range")
        return amount

    def _balance_deal(self, a: int, dtype: int, amount: int, comment: str) -> int:
        ticket = self._deal_ticket()
        self.deals.append(comment, ticket=ticket, order=0, acc=a, sym=-1,
                          time_msc=self.now_msc, type=dtype, entry=DealEntry.IN, magic=0,
                          position_id=0, reason=DealReason.CLIENT, volume=0, price=0,
                          commission=0, swap=0, profit=amount, fee=0)
        if self.collect_effects:
            self._effects.deals.append(self.deal_row(len(self.deals) - 1))
        return ticket

    def _deposit(self, cmd: C.Deposit) -> Result:
        a = self._acc(cmd.login)
        amount = self._amount(cmd.amount)
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
        used = float(ac.margin[a]) + float(ac.margin_orders[a])
        free_after = self.accounts.equity(a) - amount / MINOR_SCALE - used
        if free_after < 0:
            free = self.accounts.equity(a) - used
            raise Rejected(Retcode.NO_MONEY, f"withdrawal {market.fmt(amount)} would leave "
                           f"free margin below zero (free margin "
                           f"{market.fmt(free * MINOR_SCALE)})")
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
        used = float(ac.margin[a]) + float(ac.margin_orders[a])
        if amt < 0 and self.accounts.equity(a) + amt / MINOR_SCALE < used:
            raise Rejected(Retcode.NO_MONEY, "removing the credit would leave free margin "
                                             "below zero")
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
        self._post_signed(BROKER_PL, INSURANCE_FUND, amt, PostingKind.INSURANCE_TOPUP, 0,
                          cmd.actor)
        self._effects.events.append({"kind": "insurance_topup", "amount": amt,
                                     "actor": cmd.actor, "time_msc": self.now_msc})
        return Result(Retcode.DONE, f"insurance fund {market.fmt(self.insurance_fund)}")

    @property
    def insurance_fund(self) -> int:
        return int(self.ledger.balance[INSURANCE_FUND])

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

    # ------------------------------------------------------------------ trading
    def _send_result(self, retcode: int, comment: str, cmd: C.SendOrder, deal: int = 0,
                     order: int = 0, volume: float = 0.0, price: float = 0.0,
                     req: TradeRequest | None = None) -> OrderSendResult:
        if req is None:
            try:
                req = TradeRequest.from_dict(cmd.request)
            except RequestFormatError:
                req = TradeRequest()
        bid = ask = 0.0
        sym = self.symbols.get(req.symbol)
        if sym is not None and self.symbols.cols.has_quote[sym]:
            bid = int(self.symbols.cols.bid[sym]) / PRICE_SCALE
            ask = int(self.symbols.cols.ask[sym]) / PRICE_SCALE
        return OrderSendResult(retcode=int(retcode), deal=deal, order=order, volume=volume,
                               price=price, bid=bid, ask=ask,
                               comment=comment or describe(retcode),
                               request_id=cmd.request_id, request=req)

    def parse_request(self, request: dict) -> TradeRequest:
        try:
            return TradeRequest.from_dict(request)
        except RequestFormatError as exc:
            raise Rejected(Retcode.INVALID, str(exc)) from None

    def _order_send(self, cmd: C.SendOrder) -> Result:
        a = self._acc(cmd.login)
        req = self.parse_request(cmd.request)
        plan = self._plan(a, req)
        if plan is None:
            for ext in self.extensions:
                res = ext.order_send(a, req, cmd)
                if res is not None:
                    return res
            raise Rejected(Retcode.INVALID, f"trade action {req.action} is not supported")
        order, deal = self.execute(plan, reason=cmd.reason, comment=req.comment)
        volume = plan.volume / VOLUME_SCALE
        res = self._send_result(Retcode.DONE, "Request executed", cmd, deal=deal, order=order,
                                volume=volume, price=plan.legs[0].price / PRICE_SCALE,
                                req=req)
        return Result(Retcode.DONE, res.comment, res)

    def _plan(self, a: int, req: TradeRequest) -> market.Plan | None:
        """The deals of a DEAL or CLOSE_BY request (None for actions of the extensions)."""
        if req.action == TradeAction.DEAL:
            return market.plan_deal(self, a, req)
        if req.action == TradeAction.CLOSE_BY:
            return self._plan_close_by(a, req)
        return None

    def _plan_close_by(self, a: int, req: TradeRequest) -> market.Plan:
        pc = self.positions.cols
        if int(self.accounts.cols.margin_mode[a]) != MarginMode.RETAIL_HEDGING:
            raise Rejected(Retcode.INVALID, "close by is only for hedging accounts")
        if not req.position or not req.position_by:
            raise Rejected(Retcode.INVALID, "close by needs position and position_by")
        if req.position == req.position_by:
            raise Rejected(Retcode.INVALID, "a position cannot be closed by itself")
        p = market.find_position(self, a, req.position)
        q = market.find_position(self, a, req.position_by, "position_by")
        s = int(pc.sym[p])
        if int(pc.sym[q]) != s:
            raise Rejected(Retcode.INVALID, f"positions #{req.position} and "
                           f"#{req.position_by} are in different symbols")
        vp, vq = int(pc.volume[p]), int(pc.volume[q])
        if (vp > 0) == (vq > 0):
            raise Rejected(Retcode.INVALID, "close by needs opposite positions")
        market.check_request_text(req)
        spec = self.symbols.specs[s]
        sc = self.symbols.cols
        if spec.trade_mode == 0 or sc.halted[s]:
            raise Rejected(Retcode.TRADE_DISABLED, f"trading in {spec.name} is disabled")
        if not sc.market_open[s]:
            raise Rejected(Retcode.MARKET_CLOSED, f"the market for {spec.name} is closed")
        vol = min(abs(vp), abs(vq))
        price = int(pc.price_open[q])
        plan = market.Plan(acc=a, sym=s, request=req, order_type=OrderType.CLOSE_BY, volume=vol,
                           price=price)
        for slot, v, px in ((p, vp, price), (q, vq, price)):
            closed = vol if v > 0 else -vol
            profit = market.realised_profit(self, s, closed, int(pc.price_open[slot]), px)
            plan.legs.append(market.Leg(
                "close_by", slot, 1 if v > 0 else 0, DealEntry.OUT_BY, vol, px,
                closed_volume=closed, profit=profit, new_volume=v - closed,
                new_price=int(pc.price_open[slot]),
                commission=market.commission_minor(self, s, vol)))
        market.project(self, plan)
        return plan

    def _order_ticket(self) -> int:
        t = self.next_order
        self.next_order += 1
        return t

    def _deal_ticket(self) -> int:
        t = self.next_deal
        self.next_deal += 1
        return t

    def execute(self, plan: market.Plan, reason: int, comment: str, order: int = 0,
                deal_reason: int | None = None) -> tuple[int, int]:
        """Apply a validated plan: order, deals, positions, ledger postings. Returns
        ``(order ticket, last deal ticket)``."""
        pos = self.positions
        pc = pos.cols
        a, s = plan.acc, plan.sym
        req = plan.request
        order = order or self._order_ticket()
        t = self.now_msc
        deal = 0
        position_id = 0
        by_id = 0
        d_reason = reason if deal_reason is None else deal_reason
        for leg in plan.legs:
            deal = self._deal_ticket()
            if leg.slot < 0:
                p = pos.open(a, s, leg.new_volume, leg.new_price, order, t, plan.sl, plan.tp,
                             req.magic, min(reason, 3), comment)
                if self.collect_effects:
                    self._effects.position_upsert(self.position_row(p))
            else:
                p = leg.slot
            position_id = int(pc.identifier[p])
            if leg.action == "close_by" and by_id == 0:
                by_id = int(pc.identifier[plan.legs[1].slot])
            self.deals.append(
                comment, ticket=deal, order=order, acc=a, sym=s, time_msc=t,
                type=leg.deal_type, entry=leg.entry, magic=req.magic, position_id=position_id,
                reason=d_reason, volume=leg.volume, price=leg.price, commission=-leg.commission,
                swap=0, profit=leg.profit, fee=0)
            if self.collect_effects:
                self._effects.deals.append(self.deal_row(len(self.deals) - 1))
            self._book(a, leg.profit, PostingKind.PROFIT, deal)
            self._book(a, -leg.commission, PostingKind.COMMISSION, deal)
            if leg.slot >= 0:
                self._update_position(p, leg, plan, order, t)
        if plan.order_type == OrderType.CLOSE_BY:
            position_id = int(pc.identifier[plan.legs[0].slot]) if pc.active[plan.legs[0].slot] \
                else self.deals.cols.position_id[len(self.deals) - 2]
        self.orders.append(
            comment, ticket=order, acc=a, sym=s, time_setup_msc=t, time_done_msc=t,
            time_expiration=0, type=plan.order_type, type_time=0, type_filling=req.type_filling,
            state=OrderState.FILLED, magic=req.magic, position_id=position_id,
            position_by_id=by_id, reason=reason, volume_initial=plan.volume, volume_current=0,
            price_open=plan.legs[0].price, sl=plan.sl, tp=plan.tp,
            price_current=plan.legs[0].price, price_stoplimit=0)
        if self.collect_effects:
            self._effects.orders[order] = self.order_row(len(self.orders) - 1)
        self._touch_account(a)
        return order, deal

    def _book(self, a: int, amount: int, kind: PostingKind, deal: int) -> None:
        """Signed amount to the client from the broker (negative: to the broker)."""
        self._post_signed(BROKER_PL, client_ledger(a), amount, kind, deal)

    def _update_position(self, p: int, leg: market.Leg, plan: market.Plan, order: int,
                         t: int) -> None:
        pos = self.positions
        pc = pos.cols
        if leg.new_volume == 0:
            ticket = int(pc.ticket[p])
            self.closed_tickets[ticket] = int(pc.acc[p])
            pos.close(p)
            self._effects.position_closed(ticket)
            return
        old_ticket = int(pc.ticket[p])
        pos.set_volume(p, leg.new_volume, leg.new_price)
        pc.time_update_msc[p] = t
        if leg.action in (market.ADD, market.REVERSE):
            pos.mark_stops(int(pc.sym[p]))
            if plan.sl or leg.action == market.REVERSE:
                pc.sl[p] = plan.sl
            if plan.tp or leg.action == market.REVERSE:
                pc.tp[p] = plan.tp
        if leg.action == market.REVERSE:
            pos.retick(p, order)
            self.closed_tickets[old_ticket] = int(pc.acc[p])
            self._effects.position_closed(old_ticket)
        if self.collect_effects:
            self._effects.position_upsert(self.position_row(p))

    def _touch_account(self, a: int) -> None:
        """Re-derive one account's floating profit and margin from its positions."""
        self._touches += 1
        ac = self.accounts.cols
        sc = self.symbols.cols
        pc = self.positions.cols
        idx = self.positions.by_acc
        pr, m, mm = recompute_account(a, idx.off, idx.cnt, idx.pool, pc.sym, pc.volume,
                                      pc.price_open, sc.bid, sc.ask, sc.k_profit, sc.k_margin,
                                      sc.k_margin_maint, sc.calc_mode, int(ac.leverage[a]))
        ac.profit[a], ac.margin[a], ac.margin_maint[a] = pr, m, mm
        if self.collect_effects:
            self._effects.accounts[int(ac.login[a])] = self.account_row(a)

    # ------------------------------------------------------------------ queries
    def order_check(self, login: int, request: dict) -> OrderCheckResult:
        """MT5's order_check: the account as it would be after the trade; retcode 0 "Done"
        when the request would pass. Changes nothing."""
        try:
            req = TradeRequest.from_dict(request)
        except RequestFormatError as exc:
            return OrderCheckResult(Retcode.INVALID, comment=str(exc))
        try:
            a = self._acc(login)
            plan = self._plan(a, req)
            if plan is None:
                for ext in self.extensions:
                    res = ext.order_check(a, req)
                    if res is not None:
                        return res
                raise Rejected(Retcode.INVALID, f"trade action {req.action} is not supported")
        except Rejected as exc:
            info = self.account_info(login) if self.accounts.find(login) is not None else {}
            return OrderCheckResult(
                int(exc.retcode), balance=info.get("balance", 0.0),
                equity=info.get("equity", 0.0), profit=info.get("profit", 0.0),
                margin=info.get("margin", 0.0), margin_free=info.get("margin_free", 0.0),
                margin_level=info.get("margin_level", 0.0), comment=exc.comment, request=req)
        return self._check_result(a, plan, req)

    def _check_result(self, a: int, plan: market.Plan, req: TradeRequest) -> OrderCheckResult:
        credit = int(self.accounts.cols.credit[a])
        profit_c = round_half_even_float(plan.profit_after)
        equity_c = plan.balance_after + credit + profit_c
        margin = round(plan.margin_after, 2)
        return OrderCheckResult(
            Retcode.CHECK_OK, balance=plan.balance_after / MINOR_SCALE,
            equity=equity_c / MINOR_SCALE, profit=profit_c / MINOR_SCALE, margin=margin,
            margin_free=round(equity_c / MINOR_SCALE - margin, 2),
            margin_level=margin_level(equity_c / MINOR_SCALE, margin), comment="Done",
            request=req)

    def account_info(self, login: int) -> dict:
        """MT5 AccountInfo fields, in order."""
        a = self._acc(login)
        ac = self.accounts.cols
        g = self.config.groups[self.accounts.groups[a]]
        balance, credit = int(ac.balance[a]), int(ac.credit[a])
        profit_c = round_half_even_float(float(ac.profit[a]))
        equity_c = balance + credit + profit_c
        margin = round(float(ac.margin[a]), 2)
        equity = equity_c / MINOR_SCALE
        return {
            "login": int(ac.login[a]), "trade_mode": int(ac.trade_mode[a]),
            "leverage": int(ac.leverage[a]), "limit_orders": g.limit_orders,
            "margin_so_mode": int(ac.so_mode[a]), "trade_allowed": bool(ac.trade_allowed[a]),
            "trade_expert": True, "margin_mode": int(ac.margin_mode[a]), "currency_digits": 2,
            "fifo_close": False, "balance": balance / MINOR_SCALE,
            "credit": credit / MINOR_SCALE, "profit": profit_c / MINOR_SCALE,
            "equity": equity, "margin": margin, "margin_free": round(equity - margin, 2),
            "margin_level": margin_level(equity, margin),
            "margin_so_call": float(ac.so_call[a]), "margin_so_so": float(ac.so_so[a]),
            "margin_initial": round(float(ac.margin_orders[a]), 2),
            "margin_maintenance": round(float(ac.margin_maint[a]), 2),
            "assets": 0.0, "liabilities": 0.0, "commission_blocked": 0.0,
            "name": self.accounts.names[a], "server": self.config.server,
            "currency": self.config.currency, "company": self.config.company,
        }

    def order_calc_margin(self, order_type: int, symbol: str, volume: float, price: float,
                          login: int | None = None) -> float:
        """MT5's order_calc_margin: margin in account currency for ``volume`` lots at
        ``price``, ignoring open positions (CFDLEVERAGE uses the account's leverage)."""
        s, vol, px = self._calc_args(order_type, symbol, volume, price, "price")
        sc = self.symbols.cols
        lev = int(self.accounts.cols.leverage[self._acc(login)]) if login is not None else 1
        return round(position_margin(int(sc.calc_mode[s]), vol, px, float(sc.k_margin[s]),
                                     lev), 2)

    def order_calc_profit(self, order_type: int, symbol: str, volume: float, price_open: float,
                          price_close: float) -> float:
        """MT5's order_calc_profit: ``(close - open) * contract_size * lots`` for a BUY,
        negated for a SELL, converted into the account currency, rounded to cents exactly."""
        if order_type not in (OrderType.BUY, OrderType.SELL):
            raise Rejected(Retcode.INVALID, "order_calc_profit takes ORDER_TYPE_BUY or SELL")
        s, vol, po = self._calc_args(order_type, symbol, volume, price_open, "price_open")
        _, _, pc = self._calc_args(order_type, symbol, volume, price_close, "price_close")
        signed = vol if order_type == OrderType.BUY else -vol
        return market.realised_profit(self, s, signed, po, pc) / MINOR_SCALE

    def _calc_args(self, order_type: int, symbol: str, volume: float, price: float,
                   what: str) -> tuple[int, int, int]:
        if not isinstance(order_type, int) or not 0 <= order_type <= 7:
            raise Rejected(Retcode.INVALID, f"order type {order_type!r} is not 0..7")
        s = market.symbol_index(self, symbol)
        if not isinstance(volume, (int, float)) or not math.isfinite(volume) or volume <= 0:
            raise Rejected(Retcode.INVALID_VOLUME, f"volume {volume!r} must be a positive "
                                                   f"finite number")
        if volume > float(self.symbols.specs[s].volume_max):
            raise Rejected(Retcode.INVALID_VOLUME, f"volume {volume!r} exceeds the maximum")
        if not isinstance(price, (int, float)) or not math.isfinite(price) or price <= 0 \
                or price > 1e9:
            raise Rejected(Retcode.INVALID_PRICE, f"{what} {price!r} must be a positive "
                                                  f"finite number")
        vol = market.to_units(volume, VOLUME_SCALE)
        px = market.to_units(price, PRICE_SCALE)
        return s, vol, px

    def was_position(self, acc: int, ticket: int) -> bool:
        return self.closed_tickets.get(ticket) == acc

    def is_stale(self, sym: int) -> bool:
        limit = self.config.stale_after_ms
        if not limit:
            return False
        return self.now_msc - int(self.symbols.cols.tick_msc[sym]) > limit

    def is_unconfirmed(self, sym: int) -> bool:
        return not bool(self.symbols.cols.confirmed[sym])

    # ------------------------------------------------------------------ rows (effects)
    def account_row(self, a: int) -> dict:
        ac = self.accounts.cols
        return {
            "login": int(ac.login[a]), "name": self.accounts.names[a],
            "group": self.accounts.groups[a], "leverage": int(ac.leverage[a]),
            "margin_mode": int(ac.margin_mode[a]), "margin_so_mode": int(ac.so_mode[a]),
            "margin_so_call": float(ac.so_call[a]), "margin_so_so": float(ac.so_so[a]),
            "balance": int(ac.balance[a]), "credit": int(ac.credit[a]),
            "currency": self.config.currency, "trade_mode": int(ac.trade_mode[a]),
            "updated_msc": self.now_msc,
        }

    def position_row(self, p: int) -> dict:
        pc = self.positions.cols
        v = int(pc.volume[p])
        return {
            "ticket": int(pc.ticket[p]), "login": int(self.accounts.cols.login[pc.acc[p]]),
            "symbol": self.symbols.specs[pc.sym[p]].name, "time_msc": int(pc.time_msc[p]),
            "time_update_msc": int(pc.time_update_msc[p]), "type": 0 if v > 0 else 1,
            "magic": int(pc.magic[p]), "identifier": int(pc.identifier[p]),
            "reason": int(pc.reason[p]), "volume": abs(v), "price_open": int(pc.price_open[p]),
            "sl": int(pc.sl[p]), "tp": int(pc.tp[p]), "swap": int(pc.swap[p]),
            "comment": self.positions.comments[p],
            "external_id": self.positions.external_ids[p],
        }

    def deal_row(self, i: int) -> dict:
        c = self.deals.cols
        s = int(c.sym[i])
        return {
            "ticket": int(c.ticket[i]), "order": int(c.order[i]),
            "login": int(self.accounts.cols.login[c.acc[i]]),
            "symbol": self.symbols.specs[s].name if s >= 0 else "",
            "time_msc": int(c.time_msc[i]), "type": int(c.type[i]), "entry": int(c.entry[i]),
            "magic": int(c.magic[i]), "position_id": int(c.position_id[i]),
            "reason": int(c.reason[i]), "volume": int(c.volume[i]), "price": int(c.price[i]),
            "commission": int(c.commission[i]), "swap": int(c.swap[i]),
            "profit": int(c.profit[i]), "fee": int(c.fee[i]),
            "comment": self.deals.comments[i], "external_id": "",
        }

    def order_row(self, i: int) -> dict:
        c = self.orders.cols
        row = {k: int(getattr(c, k)[i]) for k in ORDER_COLUMNS if k not in ("acc", "sym")}
        row["login"] = int(self.accounts.cols.login[c.acc[i]])
        row["symbol"] = self.symbols.specs[int(c.sym[i])].name
        row["comment"] = self.orders.comments[i]
        row["external_id"] = ""
        return row

    # ------------------------------------------------------------------ prices
    def _new_hygiene(self, n: int) -> PriceHygiene:
        cfg = self.config
        return PriceHygiene(max(n, 1), outlier_pct=cfg.outlier_pct,
                            stale_after_ms=cfg.stale_after_ms or 2**62,
                            confirm_ticks=cfg.confirm_ticks)

    def _grow_hygiene(self) -> None:
        old = self.hygiene.snapshot()
        self.hygiene = self._new_hygiene(len(self.symbols))
        new = self.hygiene.snapshot()
        for k, v in old.items():
            if np.ndim(v) == 0:
                new[k] = v
            else:
                new[k][: len(v)] = v
        self.hygiene.restore(new)

    def _ticks(self, cmd: C.Ticks) -> Result:
        n = len(cmd.symbols)
        if not (len(cmd.bid) == n and len(cmd.ask) == n):
            raise Rejected(Retcode.INVALID, "symbols, bid and ask must have the same length")
        if any(isinstance(s, bool) or not isinstance(s, int) for s in cmd.symbols):
            raise Rejected(Retcode.INVALID, "symbol indices must be integers")
        try:
            batch = TickBatch.from_arrays(np.asarray(cmd.symbols, dtype=np.int64),
                                          np.full(n, cmd.time_msc, dtype=np.int64),
                                          np.asarray(cmd.bid, dtype=np.float64),
                                          np.asarray(cmd.ask, dtype=np.float64))
        except (TypeError, ValueError, OverflowError) as exc:
            raise Rejected(Retcode.INVALID, f"bad tick batch: {exc}") from None
        return self.on_ticks(batch)

    def _tick_batch(self, cmd: C.TickBatchCommand) -> Result:
        return self.on_ticks(cmd.batch)

    def on_ticks(self, batch: TickBatch) -> Result:
        """Stage 1 of the tick pipeline: price hygiene, then mark accepted quotes.

        A batch is processed in rounds in which each symbol appears at most once (its 1st
        accepted tick, then its 2nd, ...), so that every accepted tick of a symbol runs the
        rest of the pipeline (triggers, recompute, stop-out) in order, as tick-by-tick
        processing would."""
        sc = self.symbols.cols
        res = self.hygiene.screen(batch)
        idx = np.nonzero(res.accepted)[0]
        sym = batch.symbol[idx].astype(np.int64)
        pt = self.symbols.point_array()[sym]
        bid_u = np.rint(batch.bid[idx] * PRICE_SCALE / pt).astype(np.int64) * pt
        ask_u = np.rint(batch.ask[idx] * PRICE_SCALE / pt).astype(np.int64) * pt
        ok = (bid_u > 0) & (bid_u <= ask_u) & (batch.ask[idx] <= 1e9)
        idx, sym, bid_u, ask_u = idx[ok], sym[ok], bid_u[ok], ask_u[ok]
        if self.config.record_ticks and len(idx):  # as columns: no object per tick
            self._effects.ticks.append(TickBatch(
                sym.astype(np.int32), batch.time_msc[idx], bid_u / PRICE_SCALE,
                ask_u / PRICE_SCALE, batch.last[idx], batch.volume[idx],
                batch.volume_real[idx], batch.flags[idx]))
            self._effects.tick_names = self.symbols.names()
        rejected = len(batch) - len(idx)
        self.rejected_ticks += rejected
        n_sym = len(self.symbols)
        sc.confirmed[:n_sym] = res.confirmed[:n_sym]
        events: list[dict] = []
        moved = 0
        rounds = _rounds(sym)
        if self.config.conflate_ticks and len(rounds) > 1:
            rounds = [_last_per_symbol(sym)]
        for r in rounds:
            s_r = sym[r].astype(np.int32)
            old_bid, old_ask = sc.bid[s_r], sc.ask[s_r]
            sc.bid[s_r], sc.ask[s_r] = bid_u[r], ask_u[r]
            sc.tick_msc[s_r] = batch.time_msc[idx[r]]
            moved += len(r)
            events.extend(self.on_prices(s_r, old_bid, old_ask))
        return Result(Retcode.DONE, f"{moved} quotes marked, {rejected} ticks rejected",
                      {"accepted": len(idx), "rejected": rejected}, events)

    def _quote(self, s: int, bid: float, ask: float) -> tuple[int, int] | None:
        """A screened tick's bid/ask snapped to the symbol's point grid."""
        if not (0 < bid <= ask <= 1e9):
            return None
        pt = self.symbols.point_units(s)
        b = int(round(bid * PRICE_SCALE / pt)) * pt
        k = int(round(ask * PRICE_SCALE / pt)) * pt
        if b <= 0 or b > k:
            return None
        return b, k

    def _follow_sessions(self) -> np.ndarray:
        """Open and close markets by their sessions at the command's time; returns the
        symbols that have just opened."""
        sc = self.symbols.cols
        n = len(self.symbols)
        was = sc.market_open[:n].copy()
        sc.session_open[:n] = self.calendar.open_mask(sc.session[:n], self.now_msc)
        sc.market_open[:n] = sc.session_open[:n] & sc.admin_open[:n]
        return np.nonzero(sc.market_open[:n] & ~was)[0]

    def holders(self, syms: Any) -> np.ndarray:
        """Accounts holding a position in any of ``syms`` (unique, ascending)."""
        pos = self.positions
        parts = [pos.cols.acc[pos.of_symbol(int(s))] for s in syms]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def _markets_opened(self, syms: Any) -> list[dict]:
        """A stop-out left waiting by a closed or halted market proceeds when it opens."""
        return self._check_levels(self.holders(syms))

    def on_prices(self, syms: np.ndarray, old_bid: np.ndarray, old_ask: np.ndarray
                  ) -> list[dict]:
        """Stages 2-4 of the tick pipeline for the symbols ``syms`` (int32, each once) whose
        quotes changed from ``old_bid`` / ``old_ask``."""
        sc = self.symbols.cols
        events: list[dict] = []
        if len(syms) == 0:
            return events
        first = ~sc.has_quote[syms]
        sc.has_quote[syms] = True
        # 3. incremental recompute (before the triggers, so that a fill re-derives its
        # account at the new prices once and the increment is not applied twice)
        touched = self.incremental(syms, old_bid, old_ask, first)
        states, touches = self._states, self._touches
        # 2. pending orders and SL/TP (extensions)
        for ext in self.extensions:
            events.extend(ext.on_prices(syms))
        if (self.recheck_every and self.seq % self.recheck_every == 0
                and self._checked_seq != self.seq):
            self._checked_seq = self.seq  # once per command, not per round of a batch
            self.check_recompute()
            states = None
        if self._touches != touches:
            states = None  # a fill or a close changed accounts after the walk judged them
        # 4. stop-out sweep and margin-call flags; no stop-out on an unconfirmed outlier
        unconfirmed = syms[~sc.confirmed[syms]]
        if len(unconfirmed) and len(touched):
            touched = np.setdiff1d(touched, self.holders(unconfirmed))
            states = None
        events.extend(self._check_levels(touched, states=states))
        return events

    def incremental(self, syms: np.ndarray, old_bid: np.ndarray, old_ask: np.ndarray,
                    first: np.ndarray | None = None) -> np.ndarray:
        """Incremental recompute for moved symbols; returns the touched account indices
        (ascending).

        Walks the moved symbols' positions (``tick_update``); when they hold a large part of
        a large book (``bulk_tick_share`` of at least ``bulk_tick_min`` positions), walks the
        whole book by account instead, in parallel (``tick_update_accounts``): same figures,
        fewer scattered writes."""
        ac, sc = self.accounts.cols, self.symbols.cols
        idx = self.positions.by_sym
        n_pos = len(self.positions)
        self._states = None
        if first is not None and first.any():
            old_bid = np.where(first, sc.bid[syms], old_bid)
            old_ask = np.where(first, sc.ask[syms], old_ask)
        n_acc = len(self.accounts)
        n_moved = int(idx.cnt[syms].sum())
        if n_pos >= self.bulk_tick_min and n_moved >= self.bulk_tick_share * n_pos:
            moves = pack_moves(len(self.symbols), syms, old_bid, old_ask, sc.bid, sc.ask,
                               sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode)
            pc, bi = self.positions.cols, self.positions.by_acc
            state = np.empty(max(n_acc, 1), dtype=np.int8)
            tick_update_accounts(n_acc, bi.off, bi.cnt, bi.pool, pc.sym, pc.volume, moves,
                                 float(MINOR_SCALE), ac.balance, ac.credit, ac.so_rule, ac.so_so,
                                 ac.so_call, ac.profit, ac.margin, ac.margin_maint, state)
            self._states = state[:n_acc]
            return np.nonzero(self._states >= 0)[0]
        if len(self._mark) < n_acc:
            self._mark = np.zeros(max(n_acc, 2 * len(self._mark)), dtype=np.bool_)
        seg_acc, seg_vol = self.positions.symbol_ordered()
        out = np.empty(max(min(n_moved, n_acc), 1), dtype=np.int64)
        n = tick_update(syms, old_bid, old_ask, idx.off, idx.cnt, seg_acc, seg_vol, sc.bid,
                        sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode,
                        ac.profit, ac.margin, ac.margin_maint, self._mark, out)
        return np.sort(out[:n])

    def recompute_all(self) -> None:
        """Full recompute of every account (the periodic check re-anchors the incremental
        state)."""
        ac, sc, pc = self.accounts.cols, self.symbols.cols, self.positions.cols
        idx = self.positions.by_acc
        n = len(self.accounts)
        recompute_all(n, idx.off, idx.cnt, idx.pool, pc.sym, pc.volume, pc.price_open, sc.bid,
                      sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode,
                      ac.leverage, ac.profit, ac.margin, ac.margin_maint)

    def check_recompute(self) -> float:
        """Compare a full recompute with the incremental state and re-anchor to it; returns
        the largest difference (profit, margin or maintenance margin of any account, in
        account currency), kept in ``self.drift``; above 1e-6 it is reported as an event."""
        ac = self.accounts.cols
        n = len(self.accounts)
        before = [ac.profit[:n].copy(), ac.margin[:n].copy(), ac.margin_maint[:n].copy()]
        self.recompute_all()
        after = [ac.profit[:n], ac.margin[:n], ac.margin_maint[:n]]
        self.drift = max((float(np.max(np.abs(x - y), initial=0.0))
                          for x, y in zip(before, after, strict=True)), default=0.0)
        if self.drift > 1e-6:
            self._effects.events.append({"kind": "recompute_drift", "drift": self.drift,
                                         "seq": self.seq, "time_msc": self.now_msc})
        return self.drift

    def _check_levels(self, accs: np.ndarray, force: bool = False,
                      states: np.ndarray | None = None) -> list[dict]:
        """Stage 4: stop-out for the given accounts at or below their level (all of them
        when ``force``), then margin-call flags, an event on each crossing. ``states`` may
        give every account's state as the whole-book walk found it (-1 for those not in
        ``accs``)."""
        accs = np.asarray(accs, dtype=np.int64)
        if len(accs) == 0:
            return []
        ac = self.accounts.cols
        out = np.empty(len(accs), dtype=np.int64)
        if states is not None and not force:
            # the walk's states hold for the accounts not stopped out; those stopped out are
            # judged again after their sweep
            early = np.empty(len(accs), dtype=np.int64)
            n_hit, n_raised = apply_states(states, ac.mc_flag, out, early)
            hit = out[:n_hit].copy()
        elif force:
            hit = accs
        else:
            hit = out[:stop_out_hits(accs, float(MINOR_SCALE), ac.balance, ac.credit, ac.profit,
                                     ac.margin, ac.so_rule, ac.so_so, out)].copy()
        events: list[dict] = []
        if len(hit):
            self._remove_pending(hit)
            events.extend(self.stop_out(hit, force))
        if states is not None and not force:
            k = margin_calls(hit, float(MINOR_SCALE), ac.balance, ac.credit, ac.profit,
                             ac.margin, ac.so_rule, ac.so_call, ac.mc_flag, out)
            raised = early[:n_raised]
            if k:
                raised = np.sort(np.concatenate([raised, out[:k]]))
        else:
            raised = out[:margin_calls(accs, float(MINOR_SCALE), ac.balance, ac.credit,
                                       ac.profit, ac.margin, ac.so_rule, ac.so_call, ac.mc_flag,
                                       out)]
        for a in raised.tolist():
            e, mg = self.accounts.equity(a), float(ac.margin[a])
            ev = {"kind": "margin_call", "login": int(ac.login[a]), "time_msc": self.now_msc,
                  "equity": round(e, 2), "margin": round(mg, 2),
                  "margin_level": margin_level(e, mg)}
            events.append(ev)
            self._effects.events.append(ev)
        return events

    def _remove_pending(self, accs: np.ndarray) -> None:
        """Stop-out, first step: remove the pending orders (they reserve margin); their
        cancellations are events of the extension."""
        for ext in self.extensions:
            cancel = getattr(ext, "cancel_account", None)
            if cancel is None:
                continue
            for a in accs.tolist():
                if cancel(a, comment="stop out"):
                    self._touch_account(a)

    def _stop_out_python(self, accs: np.ndarray, force: bool = False) -> list[dict]:
        from cfd.trading.stopout import sweep_python

        return sweep_python(self, accs, force)

    def _stop_out_kernel(self, accs: np.ndarray, force: bool = False) -> list[dict]:
        from cfd.trading.stopout import sweep_kernel

        return sweep_kernel(self, accs, force)

    # ------------------------------------------------------------------ admin
    def _set_symbol(self, cmd: C.SetSymbol) -> Result:
        i = self.symbols.get(cmd.name)
        try:
            if i is None:
                spec = SymbolSpec.from_dict({"name": cmd.name, **cmd.changes})
                i = self.symbols.add(spec)
                self.positions.by_sym.ensure_groups(len(self.symbols))
                self._grow_hygiene()
            else:
                spec = self.symbols.specs[i].with_changes(**cmd.changes)
                self.symbols.replace(i, spec)
        except (SpecError, TypeError) as exc:
            raise Rejected(Retcode.INVALID, str(exc)) from None
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
            i = self.symbols.get(name)
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
            self._effects.accounts[int(ac.login[a])] = self.account_row(a)
        self._effects.events.append({"kind": "set_levels", "login": cmd.login,
                                     "group": cmd.group, "margin_call": call, "stop_out": so,
                                     "stop_out_end": cmd.stop_out_end, "actor": cmd.actor,
                                     "time_msc": self.now_msc})
        events = self._check_levels(np.array(targets, dtype=np.int64))
        return Result(Retcode.DONE, f"levels set on {len(targets)} accounts", None, events)

    # ------------------------------------------------------------------ state
    def state_hash(self) -> str:
        """Digest of the canonical state (everything booked; not re-derived floats)."""
        from cfd.snapshot import state_hash

        return state_hash(self)

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        from cfd.snapshot import take

        return take(self)

    @classmethod
    def from_snapshot(cls, arrays: dict[str, np.ndarray], meta: dict,
                      config: EngineConfig | None = None) -> Engine:
        from cfd.snapshot import restore

        return restore(cls, arrays, meta, config)

    def ledger_total(self) -> int:
        return self.ledger.total()


def _rounds(sym: np.ndarray) -> list[np.ndarray]:
    """Split tick positions into rounds where each symbol occurs at most once, keeping the
    ticks' order: round k holds the k-th tick of every symbol that has one."""
    n = len(sym)
    if n == 0:
        return []
    order = np.argsort(sym, kind="stable")
    s_sorted = sym[order]
    starts = np.r_[0, np.nonzero(s_sorted[1:] != s_sorted[:-1])[0] + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    if rank.max() == 0:
        return [np.arange(n)]
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(1, rank.max() + 1))
    return np.split(by_rank, bounds)


def _last_per_symbol(sym: np.ndarray) -> np.ndarray:
    """Positions of each symbol's last tick, in the order of those ticks."""
    rev = sym[::-1]
    _, first = np.unique(rev, return_index=True)
    return np.sort(len(sym) - 1 - first)


def round_half_even_float(x: float) -> int:
    """A re-derived float amount (floating profit) -> minor units, for display only."""
    return int(np.round(x * MINOR_SCALE))


def to_json(obj: Any) -> str:
    return json.dumps(obj, default=str)
