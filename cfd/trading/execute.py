"""Trade requests through the engine: a DEAL or CLOSE_BY request becomes a plan
(:mod:`cfd.trading.market`), a validated plan is executed (order, deals, positions, ledger
postings); the other actions go to the pending-order book (:mod:`cfd.trading.orders`).
"""

from __future__ import annotations

from cfd import commands as C
from cfd.accounts.ledger import (
    BROKER_PL,
    PostingKind,
    client_ledger,
)
from cfd.constants import (
    DealEntry,
    MarginMode,
    OrderState,
    OrderType,
    Retcode,
    TradeAction,
)
from cfd.errors import Rejected
from cfd.money import PRICE_SCALE, VOLUME_SCALE
from cfd.result import Result
from cfd.trading import market
from cfd.trading.financing import realised_share
from cfd.trading.history import deal_record, order_record
from cfd.trading.request import (
    OrderSendResult,
    RequestFormatError,
    TradeRequest,
    describe,
)


class TradeHandlers:
    """Handlers of :class:`cfd.engine.Engine` for ``order_send`` and the execution of plans."""

    def _order_send(self, cmd: C.SendOrder) -> Result:
        a = self._acc(cmd.login)
        req = self.parse_request(cmd.request)
        plan = self._plan(a, req)
        if plan is None:
            res = self.pending.order_send(a, req, cmd)
            if res is not None:
                return res
            raise Rejected(Retcode.INVALID, f"trade action {req.action} is not supported")
        order, deal = self.execute(plan, reason=cmd.reason, comment=req.comment)
        volume = plan.volume / VOLUME_SCALE
        res = self._send_result(Retcode.DONE, "Request executed", cmd, deal=deal, order=order,
                                volume=volume, price=plan.legs[0].price / PRICE_SCALE,
                                req=req)
        return Result(Retcode.DONE, res.comment, res)

    def parse_request(self, request: dict) -> TradeRequest:
        try:
            return TradeRequest.from_dict(request)
        except RequestFormatError as exc:
            raise Rejected(Retcode.INVALID, str(exc)) from None

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

    def _plan(self, a: int, req: TradeRequest) -> market.Plan | None:
        """The deals of a DEAL or CLOSE_BY request (None for the pending-order book's
        actions)."""
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
                new_price=int(pc.price_open[slot])))
        market.charge_legs(self, a, s, plan.legs)
        market.project(self, plan)
        return plan

    def execute(self, plan: market.Plan, reason: int, comment: str, order: int = 0,
                deal_reason: int | None = None) -> tuple[int, int]:
        """Apply a validated plan: order, deals, positions, ledger postings. Returns
        ``(order ticket, last deal ticket)``."""
        pos = self.positions
        pc = pos.cols
        a, s = plan.acc, plan.sym
        req = plan.request
        # the plan's postings must fit the ledger: checked before anything changes
        net = sum(leg.profit - leg.commission - leg.fee for leg in plan.legs)
        if net:
            self.ledger.check([(BROKER_PL, client_ledger(a), net)])
        order = int(order) or self._order_ticket()
        t = int(self.now_msc)
        deal = 0
        position_id = 0
        by_id = 0
        reason = int(reason)
        d_reason = reason if deal_reason is None else int(deal_reason)
        magic = int(req.magic)
        collect = self.collect_effects
        login = int(self.accounts.cols.login[a])
        name = self.symbols.specs[s].name
        for leg in plan.legs:
            deal = self._deal_ticket()
            if leg.slot < 0:
                v, po = int(leg.new_volume), int(leg.new_price)
                sl, tp, p_reason = int(plan.sl), int(plan.tp), min(reason, 3)
                p = pos.open(a, s, v, po, order, t, sl, tp, magic, p_reason, comment)
            else:
                p = leg.slot
            swap = 0
            if leg.closed_volume:  # the accrued swap of the part closed is realised
                swap = realised_share(int(pc.swap[p]), leg.closed_volume, int(pc.volume[p]))
                pc.swap[p] -= swap
            position_id = int(pc.identifier[p])
            if leg.action == "close_by" and by_id == 0:
                by_id = int(pc.identifier[plan.legs[1].slot])
            # DEAL_COLUMNS' order; the effect row is built from the same values (what
            # ``deal_row`` would read back)
            values = (deal, order, a, s, t, int(leg.deal_type), int(leg.entry), magic,
                      position_id, d_reason, int(leg.volume), int(leg.price),
                      -int(leg.commission), int(swap), int(leg.profit), -int(leg.fee))
            self.deals.append_values(comment, values)
            if collect:
                self._effects.deals.append(deal_record(values, login, name, comment))
            self._book(a, leg.profit, PostingKind.PROFIT, deal)
            self._book(a, -leg.commission, PostingKind.COMMISSION, deal)
            self._book(a, -leg.fee, PostingKind.COMMISSION, deal)
            if leg.slot >= 0:
                self._update_position(p, leg, plan, order, t)
        if plan.order_type == OrderType.CLOSE_BY:
            position_id = int(pc.identifier[plan.legs[0].slot]) if pc.active[plan.legs[0].slot] \
                else int(self.deals.cols.position_id[len(self.deals) - 2])
        # ORDER_COLUMNS' order; the effect row from the same values (as ``order_row``)
        price = int(plan.legs[0].price)
        values = (order, a, s, t, t, 0, int(plan.order_type), 0, int(req.type_filling),
                  int(OrderState.FILLED), magic, position_id, by_id, reason, int(plan.volume),
                  0, price, int(plan.sl), int(plan.tp), price, 0)
        self.orders.append_values(comment, values)
        if collect:
            self._effects.orders[order] = order_record(values, login, name, comment)
        self._touch_account(a)
        return order, deal

    def _update_position(self, p: int, leg: market.Leg, plan: market.Plan, order: int,
                         t: int) -> None:
        pos = self.positions
        pc = pos.cols
        if leg.new_volume == 0:
            ticket = int(pc.ticket[p])
            self.closed_tickets[ticket] = int(pc.acc[p])
            pos.close(p)
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

    def _book(self, a: int, amount: int, kind: PostingKind, deal: int) -> None:
        """Signed amount to the client from the broker (negative: to the broker)."""
        self._post_signed(BROKER_PL, client_ledger(a), amount, kind, deal)

    def _order_ticket(self) -> int:
        t = self.next_order
        self.next_order += 1
        return t

    def _deal_ticket(self) -> int:
        t = self.next_deal
        self.next_deal += 1
        return t
