"""Pending orders and stops: the engine's pending-order book (``Engine.pending``).

Requests: TRADE_ACTION_PENDING (BUY/SELL LIMIT, STOP, STOP LIMIT), MODIFY, REMOVE, and SLTP
on positions (validation in :mod:`cfd.trading.orders_check`).

Active pending orders live here, in struct-of-arrays slots indexed by account and by symbol
(MT5's ``orders_get``); an order that leaves the book (FILLED, CANCELED, EXPIRED) is appended to
``Engine.orders``, the history (MT5's ``history_orders_get``). Every change emits the order's
row (``Effects.orders``, upsert by ticket).

Margin: each order reserves the position margin of its volume at its fill price; the sum per
account is ``accounts.cols.margin_orders`` (MT5's ``margin_initial``), released when the order
leaves the book. A placement that would leave ``equity - margin - margin_orders`` below zero is
NO_MONEY.

Per tick batch (``on_prices``, stage 3 of the pipeline: after the incremental recompute,
before the stop-out sweep), in MT5's order:

1. expirations (``expire_msc <= Engine.now_msc``), by ticket;
2. SL/TP of positions in the moved symbols, by position ticket: closed at the market with deal
   reason SL (4) / TP (5);
3. pending activations in the moved symbols, by order ticket: filled at the market (a gap
   fills at the current price, not at the order price) through the same plan/execute path as
   market orders. A STOP LIMIT becomes its LIMIT order (same ticket, price = stoplimit), which
   can fill from the next batch on. An activation the account cannot take (not enough money,
   trade mode) cancels the order (state CANCELED, retcode 10041 REJECT_CANCEL in the event).

Orders and positions are only triggered in symbols whose market is open and not halted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from cfd.accounts.book import minor
from cfd.constants import (
    DealReason,
    OrderFilling,
    OrderReason,
    OrderState,
    OrderType,
    Retcode,
    SymbolTradeExecution,
    TradeAction,
)
from cfd.errors import Rejected
from cfd.kernels.formulas import margin_level
from cfd.kernels.triggers import FIRE_ORDER, FIRE_SL, scan_triggers
from cfd.kernels.triggers_reference import scan_reference
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE
from cfd.soa import Columns
from cfd.trading import market
from cfd.trading import orders_check as chk
from cfd.trading.commission import deal_charges
from cfd.trading.history import ORDER_COLUMNS
from cfd.trading.request import OrderCheckResult, TradeRequest
from cfd.trading.segments import SegmentedIndex

if TYPE_CHECKING:
    from cfd.commands import SendOrder
    from cfd.engine import Engine, Result

NEVER = int(np.iinfo(np.int64).max)
PENDING_COLUMNS = {
    **ORDER_COLUMNS,
    "active": np.bool_,
    "expire_msc": np.int64,  # 0: never (GTC)
    "margin": np.float64,  # reserved margin (re-derived from the order's terms)
    "acc_place": np.int32,
    "sym_place": np.int32,
}
_CANONICAL = (*ORDER_COLUMNS, "expire_msc")
#: one entry of a firing sequence: (FIRE_* kind, slot, fill price, ticket)
Fire = tuple[int, int, int, int]


class PendingOrders:
    """The engine extension for pending orders, SL/TP and their triggers."""

    def __init__(self, eng: Engine, capacity: int = 1024) -> None:
        self.eng = eng
        self.cols = Columns(PENDING_COLUMNS, capacity)
        self.by_acc = SegmentedIndex(0, capacity)
        self.by_sym = SegmentedIndex(0, capacity)
        self.by_ticket: dict[int, int] = {}
        self.free: list[int] = []
        self.comments: list[str] = []
        self.next_expiry = NEVER
        # per symbol: conservative price bounds inside which nothing can fire (see
        # kernels.triggers.scan_triggers); recomputed when dirty
        self.pos_bounds = np.zeros((0, 4), dtype=np.int64)
        self.ord_bounds = np.zeros((0, 4), dtype=np.int64)
        self.ord_dirty = np.ones(0, dtype=np.bool_)
        self.scan: Callable[[np.ndarray], list[Fire]] = self.scan_kernel

    def __len__(self) -> int:
        return len(self.by_ticket)

    # ------------------------------------------------------------------ book
    def _add(self, acc: int, terms: chk.OrderTerms, req: TradeRequest, reason: int) -> int:
        eng = self.eng
        c = self.cols
        slot = self.free.pop() if self.free else c.append_row()
        if slot >= len(self.comments):
            self.comments.extend([""] * (slot + 1 - len(self.comments)))
        ticket = eng._order_ticket()
        sc = eng.symbols.cols
        fields = dict(
            ticket=ticket, acc=acc, sym=terms.sym, time_setup_msc=eng.now_msc, time_done_msc=0,
            time_expiration=terms.expiration, type=terms.type, type_time=terms.type_time,
            type_filling=terms.type_filling, state=OrderState.PLACED, magic=req.magic,
            position_id=0, position_by_id=0, reason=reason, volume_initial=terms.volume,
            volume_current=terms.volume, price_open=terms.price, sl=terms.sl, tp=terms.tp,
            price_current=int(sc.ask[terms.sym] if terms.is_buy else sc.bid[terms.sym]),
            price_stoplimit=terms.stoplimit, active=True, expire_msc=terms.expire_msc,
            margin=terms.margin)
        for k, v in fields.items():
            getattr(c, k)[slot] = v
        self.comments[slot] = req.comment
        self.by_acc.ensure_groups(len(eng.accounts))
        self.by_sym.ensure_groups(len(eng.symbols))
        c.acc_place[slot] = self.by_acc.add(acc, slot)
        c.sym_place[slot] = self.by_sym.add(terms.sym, slot)
        self.by_ticket[ticket] = slot
        self._mark(terms.sym)
        if terms.expire_msc:
            self.next_expiry = min(self.next_expiry, terms.expire_msc)
        self._reserve(acc)
        self._emit(slot)
        return slot

    def _remove(self, slot: int) -> None:
        c = self.cols
        acc = int(c.acc[slot])
        moved = self.by_acc.remove(acc, int(c.acc_place[slot]))
        if moved >= 0:
            c.acc_place[moved] = c.acc_place[slot]
        moved = self.by_sym.remove(int(c.sym[slot]), int(c.sym_place[slot]))
        if moved >= 0:
            c.sym_place[moved] = c.sym_place[slot]
        del self.by_ticket[int(c.ticket[slot])]
        c.active[slot] = False
        c.margin[slot] = 0.0
        self.free.append(slot)
        self._reserve(acc)

    def _reserve(self, acc: int) -> None:
        """Re-derive the account's reserved margin (fsum: exact, independent of order)."""
        slots = self.by_acc.items(acc) if acc < self.by_acc.n_groups else []
        self.eng.accounts.cols.margin_orders[acc] = math.fsum(self.cols.margin[slots])

    def _terms(self, slot: int) -> chk.OrderTerms:
        c = self.cols
        return chk.OrderTerms(int(c.sym[slot]), int(c.type[slot]), int(c.volume_current[slot]),
                              int(c.price_open[slot]), int(c.price_stoplimit[slot]),
                              int(c.sl[slot]), int(c.tp[slot]), int(c.type_time[slot]),
                              int(c.type_filling[slot]), int(c.expire_msc[slot]),
                              int(c.time_expiration[slot]), float(c.margin[slot]))

    def find(self, acc: int, ticket: int) -> int:
        """The slot of the account's active order ``ticket``, or INVALID (another account's
        order is "not found" too)."""
        slot = self.by_ticket.get(ticket)
        if slot is not None and int(self.cols.acc[slot]) == acc:
            return slot
        state = self._finished_state(acc, ticket)
        if state is not None:
            raise Rejected(Retcode.INVALID, f"order #{ticket} is no longer pending "
                                            f"({OrderState(state).name})")
        raise Rejected(Retcode.INVALID, f"order #{ticket} not found on this account")

    def _finished_state(self, acc: int, ticket: int) -> int | None:
        """The state of the account's order ``ticket`` in the history: from the rows held,
        else (trimmed) from the engine's history source."""
        log = self.eng.orders
        done = log.by_ticket.get(ticket)
        if done is not None:
            return int(log.cols.state[done]) if int(log.cols.acc[done]) == acc else None
        src = self.eng.history_source
        if src is None or log.base == 0 or ticket >= self.eng.next_order:
            return None
        return src.finished_order_state(int(self.eng.accounts.cols.login[acc]), ticket)

    def row(self, slot: int) -> dict:
        """The order as ``Effects.orders`` rows it (the shape of ``Engine.order_row``)."""
        c = self.cols
        row = {k: int(getattr(c, k)[slot]) for k in ORDER_COLUMNS if k not in ("acc", "sym")}
        row["login"] = int(self.eng.accounts.cols.login[c.acc[slot]])
        row["symbol"] = self.eng.symbols.specs[int(c.sym[slot])].name
        row["comment"] = self.comments[slot]
        row["external_id"] = ""
        return row

    def orders_of(self, acc: int) -> list[dict]:
        """The account's active pending orders, by ticket (MT5 ``orders_get``)."""
        if acc >= self.by_acc.n_groups:
            return []
        slots = sorted(self.by_acc.items(acc).tolist(), key=lambda s: int(self.cols.ticket[s]))
        return [self.row(s) for s in slots]

    def _emit(self, slot: int) -> None:
        if self.eng.collect_effects:
            self.eng._effects.orders[int(self.cols.ticket[slot])] = self.row(slot)

    def _emit_done(self, i: int) -> None:
        """Effects row of history row ``i`` (an order that left the book)."""
        eng = self.eng
        if eng.collect_effects:
            eng._effects.orders[int(eng.orders.cols.ticket[i])] = eng.order_row(i)

    def _publish(self, ev: dict, events: list[dict] | None) -> None:
        if events is not None:
            events.append(ev)
        if self.eng.collect_effects:
            self.eng._effects.events.append(ev)

    def _finish(self, slot: int, state: int) -> int:
        """Move an order to the history with ``state`` (CANCELED, EXPIRED); returns its
        history row."""
        eng = self.eng
        c = self.cols
        fields = {k: int(getattr(c, k)[slot]) for k in ORDER_COLUMNS}
        fields.update(state=state, time_done_msc=eng.now_msc)
        comment = self.comments[slot]
        self._remove(slot)
        i = eng.orders.append(comment, **fields)
        self._emit_done(i)
        return i

    def cancel_account(self, acc: int, comment: str = "") -> list[int]:
        """Cancel all pending orders of an account (the stop-out removes margin-reserving
        orders first); returns their tickets."""
        if acc >= self.by_acc.n_groups:
            return []
        slots = sorted(self.by_acc.items(acc).tolist(), key=lambda s: int(self.cols.ticket[s]))
        tickets = []
        for s in slots:
            tickets.append(int(self.cols.ticket[s]))
            self._finish(s, OrderState.CANCELED)
            self._event("order_canceled", s, comment=comment)
        return tickets

    # ------------------------------------------------------------------ requests
    def order_send(self, acc: int, req: TradeRequest, cmd: SendOrder) -> Result | None:
        from cfd.engine import Result

        eng = self.eng
        action = req.action
        if action == TradeAction.PENDING:
            terms = chk.check_pending(eng, acc, req, self._count(acc))
            slot = self._add(acc, terms, req, cmd.reason)
            ticket = int(self.cols.ticket[slot])
            res = eng._send_result(Retcode.PLACED, "Request executed", cmd, order=ticket,
                                   volume=terms.volume / VOLUME_SCALE,
                                   price=terms.price / PRICE_SCALE)
            return Result(Retcode.PLACED, res.comment, res)
        if action == TradeAction.MODIFY:
            slot = self.find(acc, req.order)
            new = chk.check_modify(eng, acc, req, self._terms(slot))
            self._modify(slot, new)
            res = eng._send_result(Retcode.DONE, "Request executed", cmd, order=req.order,
                                   volume=new.volume / VOLUME_SCALE,
                                   price=new.price / PRICE_SCALE)
            return Result(Retcode.DONE, res.comment, res)
        if action == TradeAction.REMOVE:
            slot = self.find(acc, req.order)
            market.check_market(eng, acc, int(self.cols.sym[slot]))
            self._finish(slot, OrderState.CANCELED)
            res = eng._send_result(Retcode.DONE, "Request executed", cmd, order=req.order)
            return Result(Retcode.DONE, res.comment, res)
        if action == TradeAction.SLTP:
            p, sl, tp = chk.check_sltp(eng, acc, req)
            pc = eng.positions.cols
            pc.sl[p], pc.tp[p] = sl, tp
            eng.positions.mark_stops(int(pc.sym[p]))
            pc.time_update_msc[p] = eng.now_msc
            res = eng._send_result(Retcode.DONE, "Request executed", cmd)
            return Result(Retcode.DONE, res.comment, res)
        return None

    def order_check(self, acc: int, req: TradeRequest) -> OrderCheckResult | None:
        eng = self.eng
        extra = 0.0
        charges = (0, 0)
        if req.action == TradeAction.PENDING:
            terms = chk.check_pending(eng, acc, req, self._count(acc))
            extra = terms.margin
            charges = deal_charges(eng, acc, terms.sym, terms.volume, 0, terms.price)
        elif req.action == TradeAction.MODIFY:
            slot = self.find(acc, req.order)
            old = self._terms(slot)
            extra = chk.check_modify(eng, acc, req, old).margin - old.margin
        elif req.action == TradeAction.REMOVE:
            slot = self.find(acc, req.order)
            market.check_market(eng, acc, int(self.cols.sym[slot]))
            extra = -float(self.cols.margin[slot])
        elif req.action == TradeAction.SLTP:
            chk.check_sltp(eng, acc, req)
        else:
            return None
        info = eng.account_info(int(eng.accounts.cols.login[acc]))
        equity_c, margin_c, _ = eng.accounts.figures(acc)
        # the margin with what the pending orders would hold after the request
        margin_c += minor(float(eng.accounts.cols.margin_orders[acc]) + extra)
        margin, eq = margin_c / MINOR_SCALE, equity_c / MINOR_SCALE
        return OrderCheckResult(Retcode.CHECK_OK, balance=info["balance"], equity=eq,
                                profit=info["profit"], margin=margin,
                                margin_free=(equity_c - margin_c) / MINOR_SCALE,
                                margin_level=margin_level(eq, margin), comment="Done",
                                request=req, commission=charges[0] / MINOR_SCALE,
                                fee=charges[1] / MINOR_SCALE)

    def _count(self, acc: int) -> int:
        return int(self.by_acc.cnt[acc]) if acc < self.by_acc.n_groups else 0

    def _modify(self, slot: int, new: chk.OrderTerms) -> None:
        c = self.cols
        c.price_open[slot], c.price_stoplimit[slot] = new.price, new.stoplimit
        self._mark(int(c.sym[slot]))
        c.sl[slot], c.tp[slot] = new.sl, new.tp
        c.type_time[slot], c.expire_msc[slot] = new.type_time, new.expire_msc
        c.time_expiration[slot], c.margin[slot] = new.expiration, new.margin
        if new.expire_msc:
            self.next_expiry = min(self.next_expiry, new.expire_msc)
        self._reserve(int(c.acc[slot]))
        self._emit(slot)

    # ------------------------------------------------------------------ triggers
    def on_prices(self, syms: np.ndarray) -> list[dict]:
        """Stage 3 of the tick pipeline: expirations, SL/TP, activations."""
        eng = self.eng
        events: list[dict] = []
        if eng.now_msc >= self.next_expiry:
            self._expire(events)
        sc = eng.symbols.cols
        syms = np.asarray(syms, dtype=np.int32)
        # an unconfirmed outlier triggers nothing: like a stop-out, SL/TP and activations
        # wait until further ticks (or a second source) confirm the price
        live = syms[sc.market_open[syms] & ~sc.halted[syms] & sc.confirmed[syms]]
        if len(live) == 0:
            return events
        for kind, item, price, ticket in self.scan(live):
            if kind == FIRE_ORDER:
                self._activate(item, ticket, price, events)
            else:
                self._stop(kind, item, ticket, price, events)
        return events

    def _mark(self, sym: int) -> None:
        """Orders of ``sym`` changed: its trigger bounds must be recomputed."""
        if sym < len(self.ord_dirty):
            self.ord_dirty[sym] = True

    def _bounds(self, n: int) -> None:
        if len(self.ord_dirty) < n:
            self.pos_bounds = np.zeros((n, 4), dtype=np.int64)
            self.ord_bounds = np.zeros((n, 4), dtype=np.int64)
            self.ord_dirty = np.ones(n, dtype=np.bool_)
            self.eng.positions.stops_dirty_for(n)[:n] = True

    def scan_kernel(self, syms: np.ndarray) -> list[Fire]:
        """The firing sequence for the moved symbols ``syms``, by the numba kernel."""
        eng = self.eng
        sc, pc, c = eng.symbols.cols, eng.positions.cols, self.cols
        n = len(eng.symbols)
        self.by_sym.ensure_groups(n)
        self._bounds(n)
        bounds = (eng.positions.stops_dirty_for(n), self.pos_bounds, self.ord_dirty,
                  self.ord_bounds)
        return fire_sequence(syms, sc.bid, sc.ask, eng.positions.by_sym, pc.volume, pc.sl,
                             pc.tp, pc.ticket, self.by_sym, c.type, c.price_open, c.ticket,
                             bounds)

    def scan_reference(self, syms: np.ndarray) -> list[Fire]:
        """The same sequence by the plain reference (a flat scan of every row)."""
        eng = self.eng
        sc, pc, c = eng.symbols.cols, eng.positions.cols, self.cols
        positions = [(p, pc.ticket[p], pc.sym[p], pc.volume[p], pc.sl[p], pc.tp[p])
                     for p in range(pc.size) if pc.active[p]]
        orders = [(i, c.ticket[i], c.sym[i], c.type[i], c.price_open[i])
                  for i in range(c.size) if c.active[i]]
        return scan_reference(syms, sc.bid, sc.ask, positions, orders)

    def expire(self, events: list[dict]) -> None:
        """Expire the orders whose time has come (on ticks, and DAY orders at the
        rollover)."""
        self._expire(events)

    def _expire(self, events: list[dict]) -> None:
        c = self.cols
        n = c.size
        now = self.eng.now_msc
        e = c.expire_msc[:n]
        live = c.active[:n] & (e > 0)
        hit = np.nonzero(live & (e <= now))[0]
        for s in hit[np.argsort(c.ticket[hit], kind="stable")]:
            s = int(s)
            self._finish(s, OrderState.EXPIRED)
            self._event("order_expired", s, events)
        rest = c.active[:n] & (e > 0)
        self.next_expiry = int(e[rest].min()) if rest.any() else NEVER

    def _event(self, kind: str, slot: int, events: list[dict] | None = None, **extra: Any
               ) -> dict:
        c = self.cols
        ev = {"kind": kind, "login": int(self.eng.accounts.cols.login[c.acc[slot]]),
              "symbol": self.eng.symbols.specs[int(c.sym[slot])].name,
              "order": int(c.ticket[slot]), "type": int(c.type[slot]),
              "time_msc": self.eng.now_msc, **extra}
        self._publish(ev, events)
        return ev

    def _stop(self, kind: int, p: int, ticket: int, price: int, events: list[dict]) -> None:
        """Close a position whose SL or TP was reached, at the market ``price``."""
        eng = self.eng
        pc = eng.positions.cols
        if not pc.active[p] or int(pc.ticket[p]) != ticket:
            return
        a, s, v = int(pc.acc[p]), int(pc.sym[p]), int(pc.volume[p])
        spec = eng.symbols.specs[s]
        is_sl = kind == FIRE_SL
        level = int(pc.sl[p] if is_sl else pc.tp[p])
        comment = f"[{'sl' if is_sl else 'tp'} {market.price_text(level, spec.digits)}]"
        side = 1 if v > 0 else 0  # a long closes with a SELL, a short with a BUY
        req = TradeRequest(action=TradeAction.DEAL, symbol=spec.name, volume=abs(v) / VOLUME_SCALE,
                           type=side, position=ticket, magic=int(pc.magic[p]), comment=comment,
                           type_filling=OrderFilling.RETURN)
        plan = market.Plan(acc=a, sym=s, request=req, order_type=side, volume=abs(v),
                           price=price)
        leg = market._closing_leg(eng, p, market.CLOSE, side, abs(v), price)
        market.charge_leg(eng, a, s, leg)
        plan.legs.append(leg)
        reason = OrderReason.SL if is_sl else OrderReason.TP
        order, deal = eng.execute(plan, reason=reason, comment=comment,
                                  deal_reason=DealReason.SL if is_sl else DealReason.TP)
        ev = {"kind": "sl" if is_sl else "tp", "login": int(eng.accounts.cols.login[a]),
              "symbol": spec.name, "position": ticket, "order": order, "deal": deal,
              "level": level, "price": price, "profit": leg.profit, "time_msc": eng.now_msc}
        self._publish(ev, events)

    def _activate(self, slot: int, ticket: int, price: int, events: list[dict]) -> None:
        """A pending order reached its price: fill it at the market ``price`` (a STOP LIMIT
        places its LIMIT order instead)."""
        eng = self.eng
        c = self.cols
        if not c.active[slot] or int(c.ticket[slot]) != ticket:
            return
        otype = int(c.type[slot])
        if otype in chk.STOP_LIMITS:
            c.type[slot] = OrderType.BUY_LIMIT if otype % 2 == 0 else OrderType.SELL_LIMIT
            c.price_open[slot] = c.price_stoplimit[slot]
            self._mark(int(c.sym[slot]))
            c.price_stoplimit[slot] = 0
            c.price_current[slot] = price
            self._emit(slot)
            self._event("stop_limit_activated", slot, events, price=price,
                        limit=int(c.price_open[slot]))
            return
        a, s = int(c.acc[slot]), int(c.sym[slot])
        terms = self._terms(slot)
        fields = {k: int(getattr(c, k)[slot]) for k in ORDER_COLUMNS}
        comment = self.comments[slot]
        reason = int(c.reason[slot])
        self._remove(slot)  # releases the reserved margin before the money check
        eng._touch_account(a)  # equity at the batch's prices for the money check
        try:
            plan = market.plan_deal(eng, a, self._fill_request(s, terms, fields, comment, price))
        except Rejected as exc:
            fields.update(state=OrderState.CANCELED, time_done_msc=eng.now_msc,
                          price_current=price)
            i = eng.orders.append(comment, **fields)
            self._emit_done(i)
            ev = {"kind": "order_canceled", "login": int(eng.accounts.cols.login[a]),
                  "symbol": eng.symbols.specs[s].name, "order": ticket, "type": terms.type,
                  "time_msc": eng.now_msc, "retcode": int(Retcode.REJECT_CANCEL),
                  "cause": int(exc.retcode), "comment": exc.comment}
            self._publish(ev, events)
            return
        plan.order_type = terms.type
        plan.sl, plan.tp = terms.sl, terms.tp
        order, deal = eng.execute(plan, reason=reason, comment=comment, order=ticket)
        i = eng.orders.by_ticket[ticket]
        h = eng.orders.cols
        for k in ("time_setup_msc", "time_expiration", "type_time", "type_filling",
                  "price_open", "price_stoplimit", "reason"):
            getattr(h, k)[i] = fields[k]
        h.price_current[i] = price
        self._emit_done(i)
        ev = {"kind": "order_filled", "login": int(eng.accounts.cols.login[a]),
              "symbol": eng.symbols.specs[s].name, "order": ticket, "type": terms.type,
              "deal": deal, "order_price": terms.price, "price": plan.legs[0].price,
              "volume": terms.volume, "time_msc": eng.now_msc}
        self._publish(ev, events)

    def _fill_request(self, s: int, terms: chk.OrderTerms, fields: dict, comment: str,
                      price: int) -> TradeRequest:
        """A market request equivalent to the order's fill, with a filling type the symbol's
        execution mode takes (the order's own filling is kept in its record)."""
        spec = self.eng.symbols.specs[s]
        filling = OrderFilling.RETURN
        if spec.execution_mode == SymbolTradeExecution.MARKET:
            filling = OrderFilling.FOK if spec.filling_mode & 1 else OrderFilling.IOC
        return TradeRequest(action=TradeAction.DEAL, symbol=spec.name,
                            volume=terms.volume / VOLUME_SCALE, price=price / PRICE_SCALE,
                            type=0 if terms.is_buy else 1, type_filling=filling,
                            magic=fields["magic"], comment=comment)

    # ------------------------------------------------------------------ state
    def canonical_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        c = self.cols
        active = np.nonzero(c.active[: c.size])[0]
        order = active[np.argsort(c.ticket[active], kind="stable")]
        for k in _CANONICAL:
            yield f"pending.{k}", getattr(c, k)[order]
        text = "\x00".join(self.comments[int(s)] for s in order)
        yield "pending.comments", np.frombuffer(text.encode(), dtype=np.uint8)

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = self.cols.dump("pending")
        meta = {"pending_orders": {"free": list(self.free),
                                   "comments": self.comments[: self.cols.size]}}
        return arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        if "pending.ticket" not in arrays:
            return
        eng = self.eng
        c = self.cols
        c.load(arrays, "pending")
        saved = meta.get("pending_orders", {})
        self.comments = list(saved.get("comments", [""] * c.size))
        self.free = [int(x) for x in saved.get("free", [])]
        self.by_acc = SegmentedIndex(len(eng.accounts), max(c.capacity, 16))
        self.by_sym = SegmentedIndex(len(eng.symbols), max(c.capacity, 16))
        self.by_ticket = {}
        for s in np.nonzero(c.active[: c.size])[0].tolist():
            c.acc_place[s] = self.by_acc.add(int(c.acc[s]), s)
            c.sym_place[s] = self.by_sym.add(int(c.sym[s]), s)
            self.by_ticket[int(c.ticket[s])] = s
        eng.accounts.cols.margin_orders[: len(eng.accounts)] = 0.0
        for a in np.unique(c.acc[: c.size][c.active[: c.size]]).tolist():
            self._reserve(a)
        live = c.active[: c.size] & (c.expire_msc[: c.size] > 0)
        self.next_expiry = int(c.expire_msc[: c.size][live].min()) if live.any() else NEVER


def fire_sequence(syms: np.ndarray, bid: np.ndarray, ask: np.ndarray, pos_index: SegmentedIndex,
                  pos_vol: np.ndarray, pos_sl: np.ndarray, pos_tp: np.ndarray,
                  pos_ticket: np.ndarray, ord_index: SegmentedIndex, ord_type: np.ndarray,
                  ord_price: np.ndarray, ord_ticket: np.ndarray,
                  bounds: tuple | None = None) -> list[Fire]:
    """Run the trigger kernel over the moved symbols and put what fires in MT5's sequence:
    SL/TP by position ticket, then activations by order ticket. ``bounds`` (dirty flags and
    per-symbol price bounds for positions and orders) lets the kernel skip symbols whose
    price is inside the bounds; without it every position and order is visited."""
    syms = np.ascontiguousarray(syms, dtype=np.int32)
    bound = int(pos_index.cnt[syms].sum()) + int(ord_index.cnt[syms].sum())
    if bound == 0:
        return []
    if bounds is None:
        n_sym = len(bid)
        bounds = (np.ones(n_sym, np.bool_), np.zeros((n_sym, 4), np.int64),
                  np.ones(n_sym, np.bool_), np.zeros((n_sym, 4), np.int64))
    kind = np.empty(bound, dtype=np.int8)
    item = np.empty(bound, dtype=np.int64)
    price = np.empty(bound, dtype=np.int64)
    n = scan_triggers(syms, bid, ask, pos_index.off, pos_index.cnt, pos_index.pool, pos_vol,
                      pos_sl, pos_tp, ord_index.off, ord_index.cnt, ord_index.pool, ord_type,
                      ord_price, *bounds, kind, item, price)
    kind, item, price = kind[:n], item[:n], price[:n]
    is_order = kind == FIRE_ORDER
    tickets = np.empty(n, dtype=np.int64)
    tickets[is_order] = ord_ticket[item[is_order]]
    tickets[~is_order] = pos_ticket[item[~is_order]]
    seq = np.lexsort((tickets, is_order))
    return [(int(kind[j]), int(item[j]), int(price[j]), int(tickets[j])) for j in seq]
