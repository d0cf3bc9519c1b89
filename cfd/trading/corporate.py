"""Corporate actions: a calendar the broker keeps, applied by the rollover.

Kinds (each added, amended or cancelled by a journaled ``CorporateAction`` command with its
actor, refused with a clear message when it cannot be right):

* ``dividend`` -- ``amount`` per share in ``currency``: on the ex-date each long is credited
  ``lots x contract_size x amount`` (less its group's ``dividend_withholding``, booked as a
  separate TAX deal) and each short is debited the gross; MT5 deals DIVIDEND (15) and TAX (17).
* ``split`` -- ``ratio`` ``"n:m"`` (10:1 forward, 1:10 reverse): volumes x n/m on the volume
  grid, open prices x m/n on the price grid, the rest settled in cash so that no position's
  profit moves (``cfd.kernels.corporate``), SL/TP and pending orders rescaled (or removed,
  group settings), the quote and the price-hygiene reference rescaled so
  that the first tick after the split is an ordinary tick. A position a reverse split leaves
  below the minimum volume is closed at the price before the split. Deals carry reason SPLIT.
* ``ticker`` -- the symbol is renamed ``new_symbol`` (FB -> META); positions, orders and
  history stay with the instrument.
* ``delist`` -- close-only from the ex-date; at ``settle_date`` every position is closed at the
  admin's ``last_price`` and the symbol is disabled.

An action dated ``X`` (its ex-date, or a delisting's settlement date) takes effect at the
rollover of the last session day of its symbol before ``X`` -- the rollover before the
ex-date's session -- once: the calendar records that it was applied, and replays reach the
same state.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from cfd import commands as C
from cfd.accounts.ledger import CORPORATE_ACTIONS, TAX_WITHHELD, PostingKind, client_ledger
from cfd.constants import (
    DealEntry,
    DealReason,
    DealType,
    OrderReason,
    OrderState,
    Retcode,
    SymbolTradeMode,
)
from cfd.errors import Rejected, SpecError
from cfd.kernels import corporate as K
from cfd.kernels.sweep import apply_postings
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE, div_round_half_even
from cfd.trading import financing as F
from cfd.trading import market
from cfd.trading.corporate_fields import parse_ratio, positive_decimal

if TYPE_CHECKING:
    from cfd.engine import Engine, Result

KINDS = ("dividend", "split", "ticker", "delist")
_FIELDS = {"dividend": {"amount", "currency"}, "split": {"ratio"}, "ticker": {"new_symbol"},
           "delist": {"settle_date", "last_price"}}
_COMMON = {"kind", "symbol", "ex_date", "note"}
PENDING, CLOSE_ONLY, APPLIED, CANCELLED = "pending", "close_only", "applied", "cancelled"


class CorporateActions:
    """The calendar (``actions``: id -> dict, JSON-able) and the stage that applies it."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng
        self.actions: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    # ------------------------------------------------------------------ the command
    def command(self, cmd: C.CorporateAction) -> Result:
        from cfd.engine import Result

        op = cmd.op
        if op == "add":
            action = self._checked(dict(cmd.fields), None, cmd.time_msc)
            action.update(id=self.next_id, status=PENDING, actor=cmd.actor,
                          added_msc=self.eng.now_msc, history=[])
            self.actions[self.next_id] = action
            self.next_id += 1
        elif op in ("amend", "cancel"):
            old = self.actions.get(cmd.id) if isinstance(cmd.id, int) else None
            if old is None:
                raise Rejected(Retcode.INVALID, f"unknown corporate action {cmd.id!r}")
            if old["status"] not in (PENDING, CLOSE_ONLY) or (
                    old["status"] == CLOSE_ONLY and (op == "cancel" or set(cmd.fields)
                                                     - {"settle_date", "last_price"})):
                raise Rejected(Retcode.INVALID, f"corporate action {cmd.id} is "
                               f"{old['status']}: it can no longer be {op}ed")
            if op == "cancel":
                action = {**old, "status": CANCELLED}
            else:
                fields = {k: v for k, v in old.items() if k in _COMMON | _FIELDS[old["kind"]]}
                fields.update(cmd.fields)
                action = {**old, **self._checked(fields, old, cmd.time_msc)}
            action["history"] = [*old["history"], {"op": op, "actor": cmd.actor,
                                                   "time_msc": self.eng.now_msc,
                                                   "fields": dict(cmd.fields)}]
            self.actions[cmd.id] = action
        else:
            raise Rejected(Retcode.INVALID, f"op {op!r} must be add, amend or cancel")
        ev = {"kind": "corporate_action", "op": op, "actor": cmd.actor,
              "time_msc": self.eng.now_msc, "action": _public(action)}
        self.eng._effects.events.append(ev)
        return Result(Retcode.DONE, f"corporate action {action['id']} {op}: "
                      f"{describe(action)}", _public(action))

    def _checked(self, f: dict[str, Any], old: dict | None, time_msc: int) -> dict[str, Any]:
        """The action's fields, normalised, or Rejected naming the problem."""
        try:
            return self._normalise(f, old, time_msc)
        except (ValueError, TypeError, SpecError) as exc:
            raise Rejected(Retcode.INVALID, str(exc)) from None

    def _normalise(self, f: dict[str, Any], old: dict | None, time_msc: int) -> dict[str, Any]:
        eng = self.eng
        kind = f.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} must be one of {', '.join(KINDS)}")
        unknown = set(f) - _COMMON - _FIELDS[kind]
        if unknown:
            raise ValueError(f"{kind} takes no field {sorted(unknown)[0]!r}")
        if old is not None and (kind != old["kind"] or f.get("symbol") != old["symbol"]):
            raise ValueError("an amendment cannot change the kind or the symbol: cancel and "
                             "add a new action")
        name = f.get("symbol")
        sym = eng.symbols.get(name) if isinstance(name, str) else None
        if sym is None:
            raise ValueError(f"unknown symbol {name!r}")
        ex = F.parse_date(f.get("ex_date"))
        out: dict[str, Any] = {"kind": kind, "symbol": name, "sym": sym, "ex_date": str(ex),
                               "note": str(f.get("note", ""))[:200]}
        if old is None or old["status"] == PENDING:
            self._check_future(sym, ex, time_msc, "ex-date")
        if kind == "dividend":
            out["amount"] = str(positive_decimal(f.get("amount"), "dividend amount"))
            cur = f.get("currency") or eng.symbols.specs[sym].currency_profit
            if cur not in eng.symbols.rates:
                raise ValueError(f"dividend in {cur}: no conversion rate into "
                                 f"{eng.config.currency} is configured")
            out["currency"] = cur
        elif kind == "split":
            n, m = parse_ratio(f.get("ratio"))
            out["ratio"] = f"{n}:{m}"
        elif kind == "ticker":
            new = f.get("new_symbol")
            spec = eng.symbols.specs[sym]
            replace(spec, name=new, path="")  # validates the name
            if eng.symbols.get(new) is not None:
                raise ValueError(f"symbol {new!r} already exists")
            out["new_symbol"] = new
        else:
            settle = f.get("settle_date") or ""
            if settle:
                sd = F.parse_date(settle)
                if sd <= ex:
                    raise ValueError(f"settle_date {sd} must be after the ex-date {ex}")
                self._check_future(sym, sd, time_msc, "settle_date")
                settle = str(sd)
            out["settle_date"] = settle
            last = f.get("last_price") or ""
            out["last_price"] = str(positive_decimal(last, "last_price")) if last else ""
        return out

    def _check_future(self, sym: int, day: dt.date, time_msc: int, what: str) -> None:
        today = F.trading_date(time_msc, self.eng.day.rollover_at)
        if day <= today:
            raise ValueError(f"{what} {day} is in the past (trading date {today} is closed)")
        eff = self.effect_day(sym, day)
        if eff.toordinal() <= self.eng.day.rolled_through:
            raise ValueError(f"{what} {day}: the rollover of {eff} that would apply it has "
                             f"already run")

    # ------------------------------------------------------------------ at the rollover
    def effect_day(self, sym: int, day: dt.date) -> dt.date:
        """The last session day of the symbol before ``day`` (whose rollover applies it)."""
        kind = int(self.eng.symbols.cols.session[sym])
        cal = F.default_calendar()
        d = day - dt.timedelta(days=1)
        for _ in range(15):
            if F.is_session_day(cal, kind, d):
                return d
            d -= dt.timedelta(days=1)
        return d

    def apply_due(self, day: dt.date, touched: np.ndarray) -> list[dict]:
        """Apply every action effective at the rollover of ``day``, in id order."""
        out = []
        for aid in sorted(self.actions):
            a = self.actions[aid]
            if a["status"] not in (PENDING, CLOSE_ONLY):
                continue
            key = "settle_date" if a["status"] == CLOSE_ONLY else "ex_date"
            if not a.get(key) or self.effect_day(a["sym"], F.parse_date(a[key])) != day:
                continue
            result = getattr(self, "_" + a["kind"])(a, touched)
            if result is None:
                continue
            if a["status"] == PENDING or result.get("stage") == "settled":
                a["status"] = APPLIED
            a.setdefault("results", []).append({"date": str(day), **result})
            ev = {"kind": f"corporate_{a['kind']}", "id": aid, "symbol": a["symbol"],
                  "date": str(day), "time_msc": self.eng.now_msc, **result}
            self.eng._effects.events.append(ev)
            out.append(ev)
        return out

    def _dividend(self, a: dict, touched: np.ndarray) -> dict:
        eng = self.eng
        s = a["sym"]
        slots = self._slots(s)
        pc = eng.positions.cols
        vol = pc.volume[slots]
        acc = pc.acc[slots].astype(np.int64)
        gross = self.dividend_amounts(a, vol)
        long = vol > 0
        rates = self._group_rates(lambda g: Fraction(g.dividend_withholding) / 100)
        g_of = self._group_of(acc)
        tax = np.zeros(len(slots), np.int64)
        for g, (num, den) in enumerate(rates):
            sel = long & (g_of == g)
            if num and sel.any():
                tax[sel] = _round_div(gross[sel] * num, den)
        signed = np.where(long, gross, -gross)
        pos_id = pc.identifier[slots]
        has_tax = tax > 0
        n_div, n_tax = len(slots), int(has_tax.sum())
        # deals: the dividend of each position, then the tax of each taxed long
        d_acc = np.concatenate([acc, acc[has_tax]])
        d_pos = np.concatenate([pos_id, pos_id[has_tax]])
        d_vol = np.concatenate([np.abs(vol), np.abs(vol[has_tax])])
        d_type = np.concatenate([np.full(n_div, DealType.DIVIDEND, np.int8),
                                 np.full(n_tax, DealType.TAX, np.int8)])
        d_profit = np.concatenate([signed, -tax[has_tax]])
        label = f"dividend {a['amount']} {a['symbol']}"
        tickets, i0 = self._append_deals(d_acc, s, d_type, d_pos, d_vol, 0, d_profit,
                                         DealReason.CLIENT, [label] * n_div
                                         + [f"tax on {label}"] * n_tax)
        # postings: dividends between the client and the broker's corporate-actions account,
        # the tax from the client to the tax withheld
        client = client_ledger(0) + 2 * d_acc
        house = np.where(d_type == DealType.TAX, TAX_WITHHELD, CORPORATE_ACTIONS)
        p0 = self._post(client, house, d_profit, PostingKind.CORPORATE_ACTION, tickets, label)
        touched[acc] = True
        self._emit(i0, p0, acc)
        return {"positions": n_div, "paid_to_longs": int(gross[long].sum()),
                "charged_to_shorts": int(gross[~long].sum()), "withheld": int(tax.sum()),
                "broker_net": int(gross[~long].sum() - gross[long].sum())}

    def dividend_amounts(self, a: dict, vol: np.ndarray) -> np.ndarray:
        """Gross dividend per position: |lots| x contract_size x amount, in minor units."""
        eng = self.eng
        spec = eng.symbols.specs[a["sym"]]
        k = (Fraction(Decimal(a["amount"])) * Fraction(spec.contract_size)
             * Fraction(eng.symbols.rates[a["currency"]]) * MINOR_SCALE / VOLUME_SCALE)
        out = np.zeros(len(vol), np.int64)
        status = np.zeros(len(vol), np.int8)
        if k.numerator < 2**62 and k.denominator < 2**62:
            K.per_share_amounts(vol, k.numerator, k.denominator, out, status)
        else:
            status[:] = K.OVERFLOW
        for i in np.nonzero(status)[0].tolist():
            x = k * abs(int(vol[i]))
            out[i] = div_round_half_even(x.numerator, x.denominator)
        return out

    def _split(self, a: dict, touched: np.ndarray) -> dict:
        eng = self.eng
        s = a["sym"]
        n, m = parse_ratio(a["ratio"])
        sc, pc = eng.symbols.cols, eng.positions.cols
        spec = eng.symbols.specs[s]
        pu = eng.symbols.point_units(s)
        vmin, _, step = eng.symbols.volume_limits(s)
        bid0, ask0 = int(sc.bid[s]), int(sc.ask[s])
        bid1 = _round_div(np.array([bid0 * m]), n * pu)[0] * pu
        ask1 = max(_round_div(np.array([ask0 * m]), n * pu)[0] * pu, bid1)
        # pending orders follow the share (or are removed: a group setting)
        removed, adjusted = self._split_orders(s, n, m)
        # positions a reverse split would leave below the minimum volume: closed first
        slots = self._slots(s)
        plan = self.split_plan(s, slots, n, m, bid1, ask1)
        small = np.abs(plan[0]) < vmin
        closed = 0
        for p in slots[small].tolist():
            self._close_at(p, bid0 if pc.volume[p] > 0 else ask0, DealReason.SPLIT,
                           f"split {a['ratio']}: below min volume")
            touched[pc.acc[p]] = True
            closed += 1
        keep = ~small
        slots, new_v, new_p, cash = slots[keep], plan[0][keep], plan[1][keep], plan[2][keep]
        acc = pc.acc[slots].astype(np.int64)
        pc.volume[slots] = new_v
        pc.price_open[slots] = new_p
        pc.time_update_msc[slots] = eng.now_msc
        remove_stops = self._group_flags(lambda g: g.split_remove_stops)[self._group_of(acc)]
        for col in (pc.sl, pc.tp):
            old = col[slots]
            scaled = _round_div(old * m, n * pu) * pu
            col[slots] = np.where(remove_stops | (old == 0), 0, scaled)
        eng.positions.touch_symbols(s)
        eng.positions.mark_stops(s)
        label = f"split {a['ratio']}"
        tickets, i0 = self._append_deals(acc, s, np.full(len(slots), DealType.CORRECTION,
                                                         np.int8),
                                         pc.identifier[slots], np.abs(new_v), new_p, cash,
                                         DealReason.SPLIT, [label] * len(slots))
        p0 = self._post(client_ledger(0) + 2 * acc, np.full(len(slots), CORPORATE_ACTIONS), cash,
                   PostingKind.CORPORATE_ACTION, tickets, label)
        # the quote and the price hygiene follow the share, so the next tick is ordinary
        sc.bid[s], sc.ask[s] = bid1, ask1
        eng.hygiene.rescale(s, m / n, bid1 / PRICE_SCALE, ask1 / PRICE_SCALE)
        touched[acc] = True
        eng.recompute_all()
        self._emit(i0, p0, acc)
        eng._effects.events.append({"kind": "split", "symbol": spec.name, "ratio": a["ratio"],
                                    "price_factor": m / n, "digits": spec.digits,
                                    "time_msc": eng.now_msc})
        return {"positions": int(len(slots)), "closed_below_min": closed,
                "orders_removed": removed, "orders_adjusted": adjusted,
                "cash_to_clients": int(cash[cash > 0].sum()),
                "cash_from_clients": int(-cash[cash < 0].sum())}

    def split_plan(self, s: int, slots: np.ndarray, n: int, m: int, bid1: int, ask1: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """New volumes, open prices and cash settlements of ``slots`` (nothing booked)."""
        eng = self.eng
        sc, pc = eng.symbols.cols, eng.positions.cols
        _, _, step = eng.symbols.volume_limits(s)
        vol, price = pc.volume[slots], pc.price_open[slots]
        k = eng.symbols.k_exact[s]
        out_v = np.zeros(len(slots), np.int64)
        out_p = np.zeros(len(slots), np.int64)
        out_c = np.zeros(len(slots), np.int64)
        status = np.zeros(len(slots), np.int8)
        bid0, ask0 = int(sc.bid[s]), int(sc.ask[s])
        if k.numerator < 2**62 and k.denominator < 2**62:
            K.split_positions(vol, price, n, m, step, bid0, ask0, bid1, ask1, k.numerator,
                              k.denominator, out_v, out_p, out_c, status)
        else:
            status[:] = K.OVERFLOW
        over = np.nonzero(status)[0]
        if len(over):
            ref = K.split_reference(vol[over], price[over], n, m, step, bid0, ask0, bid1,
                                    ask1, k.numerator, k.denominator)
            for i, (v, p, c) in zip(over.tolist(), ref, strict=True):
                out_v[i], out_p[i], out_c[i] = v, p, c
        return out_v, out_p, out_c

    def _ticker(self, a: dict, touched: np.ndarray) -> dict:
        eng = self.eng
        s = a["sym"]
        old = eng.symbols.specs[s]
        new = replace(old, name=a["new_symbol"], path="")
        del eng.symbols.index[old.name]
        eng.symbols.replace(s, new)
        eng.symbols.index[new.name] = s
        eng._effects.symbols[new.name] = new.to_dict()
        eng._effects.events.append({"kind": "ticker_change", "from": old.name, "to": new.name,
                                    "time_msc": eng.now_msc})
        return {"from": old.name, "to": new.name, "positions": int(len(self._slots(s)))}

    def _delist(self, a: dict, touched: np.ndarray) -> dict | None:
        eng = self.eng
        s = a["sym"]
        spec = eng.symbols.specs[s]
        if a["status"] == PENDING:
            eng.symbols.replace(s, spec.with_changes(trade_mode=SymbolTradeMode.CLOSEONLY))
            eng._effects.symbols[spec.name] = eng.symbols.specs[s].to_dict()
            a["status"] = CLOSE_ONLY
            return {"stage": "close_only", "positions": int(len(self._slots(s)))}
        if not a["last_price"]:
            eng._effects.events.append({"kind": "delisting_unsettled", "id": a["id"],
                                        "symbol": spec.name, "time_msc": eng.now_msc,
                                        "why": "no last_price set"})
            return None
        price = int(Decimal(a["last_price"]) * PRICE_SCALE)
        removed = self._cancel_orders(s, "delisting")
        slots = self._slots(s)
        for p in slots.tolist():
            touched[eng.positions.cols.acc[p]] = True
            self._close_at(p, price, DealReason.CLIENT, "delisting settlement")
        eng.symbols.replace(s, eng.symbols.specs[s].with_changes(
            trade_mode=SymbolTradeMode.DISABLED))
        eng._effects.symbols[spec.name] = eng.symbols.specs[s].to_dict()
        return {"stage": "settled", "positions": int(len(slots)), "orders_removed": removed,
                "last_price": a["last_price"]}

    # ------------------------------------------------------------------ helpers
    def _slots(self, s: int) -> np.ndarray:
        eng = self.eng
        idx = eng.positions.by_sym
        if s >= idx.n_groups:
            return np.zeros(0, np.int64)
        slots = idx.pool[idx.off[s]: idx.off[s] + idx.cnt[s]].astype(np.int64)
        return slots[np.argsort(eng.positions.cols.ticket[slots], kind="stable")]

    def _group_of(self, acc: np.ndarray) -> np.ndarray:
        return self.eng.accounts.group_index(sorted(self.eng.config.groups))[acc]

    def _group_rates(self, fn) -> list[tuple[int, int]]:
        groups = self.eng.config.groups
        return [(f.numerator, f.denominator) for f in
                (Fraction(fn(groups[g])) for g in sorted(groups))]

    def _group_flags(self, fn) -> np.ndarray:
        groups = self.eng.config.groups
        return np.array([bool(fn(groups[g])) for g in sorted(groups)], dtype=np.bool_)

    def _cancel_orders(self, s: int, why: str) -> int:
        book = self.eng.pending
        if s >= book.by_sym.n_groups:
            return 0
        slots = sorted(book.by_sym.items(s).tolist(), key=lambda x: int(book.cols.ticket[x]))
        for slot in slots:
            book._finish(slot, OrderState.CANCELED)
            book._event("order_canceled", slot, comment=why)
        return len(slots)

    def _split_orders(self, s: int, n: int, m: int) -> tuple[int, int]:
        """Pending orders in a splitting symbol: volume x n/m on the volume grid, prices x
        m/n on the point grid, the reserve re-derived; removed where the account's group
        says so (``split_remove_orders``) or the volume falls below the minimum. Returns
        ``(removed, adjusted)``."""
        from cfd.trading.orders_check import order_margin

        eng = self.eng
        book = eng.pending
        if s >= book.by_sym.n_groups:
            return 0, 0
        c = book.cols
        pu = eng.symbols.point_units(s)
        vmin, _, step = eng.symbols.volume_limits(s)
        groups = eng.config.groups
        removed = adjusted = 0
        for slot in sorted(book.by_sym.items(s).tolist(), key=lambda x: int(c.ticket[x])):
            acc = int(c.acc[slot])
            volume = (int(c.volume_current[slot]) * n // m) // step * step
            if groups[eng.accounts.groups[acc]].split_remove_orders or volume < vmin:
                book._finish(slot, OrderState.CANCELED)
                book._event("order_canceled", slot, comment="split")
                removed += 1
                continue
            c.volume_initial[slot] = (int(c.volume_initial[slot]) * n // m) // step * step
            c.volume_current[slot] = volume
            for col in (c.price_open, c.price_stoplimit, c.sl, c.tp):
                if col[slot]:
                    col[slot] = max(div_round_half_even(int(col[slot]) * m, n * pu), 1) * pu
            c.margin[slot] = order_margin(eng, acc, s, volume, book._terms(slot).fill_price)
            book._reserve(acc)
            book._mark(s)
            book._emit(slot)
            adjusted += 1
        return removed, adjusted

    def _close_at(self, p: int, price: int, reason: int, comment: str) -> None:
        eng = self.eng
        pc = eng.positions.cols
        s, v, a = int(pc.sym[p]), int(pc.volume[p]), int(pc.acc[p])
        side = 1 if v > 0 else 0
        req = market.TradeRequest(action=1, symbol=eng.symbols.specs[s].name,
                                  volume=abs(v) / VOLUME_SCALE, type=side,
                                  position=int(pc.ticket[p]), comment=comment[:31])
        plan = market.Plan(acc=a, sym=s, request=req, order_type=side, volume=abs(v),
                           price=price)
        plan.legs.append(market._closing_leg(eng, p, market.CLOSE, side, abs(v), price))
        eng.execute(plan, reason=OrderReason.CLIENT, comment=comment[:31], deal_reason=reason)

    def _append_deals(self, acc, s, dtype, pos_id, volume, price, profit, reason,
                      comments) -> tuple[np.ndarray, int]:
        """Append deals column-wise; returns their tickets and the first row."""
        eng = self.eng
        n = len(acc)
        tickets = eng.next_deal + np.arange(n, dtype=np.int64)
        eng.next_deal += n
        dl = eng.deals
        c = dl.cols
        i0 = c.size
        c.reserve(i0 + n)
        cols = dict(ticket=tickets, order=0, acc=acc, sym=s, time_msc=eng.now_msc,
                    type=dtype, entry=DealEntry.IN, magic=0, position_id=pos_id,
                    reason=int(reason), volume=volume, price=price, commission=0, swap=0,
                    profit=profit, fee=0)
        for k, v in cols.items():
            getattr(c, k)[i0:i0 + n] = v
        c.size = i0 + n
        dl.comments.extend(comments)
        if n:
            dl.by_ticket.add_run(int(tickets[0]), i0, n)
        return tickets, i0

    def _post(self, client: np.ndarray, house: np.ndarray, signed: np.ndarray, kind,
              deals: np.ndarray, comment: str) -> int:
        """Signed amounts to each client from ``house`` (negative: to the house); returns the
        row of the first posting."""
        eng = self.eng
        nz = signed != 0
        client, house, signed, deals = client[nz], house[nz], signed[nz], deals[nz]
        src = np.where(signed > 0, house, client)
        dst = np.where(signed > 0, client, house)
        amt = np.abs(signed)
        led = eng.ledger
        first = led.post_many(eng.now_msc, src, dst, amt, kind, deals, comment)
        apply_postings(led.balance, src, dst, amt)
        accs = (client - client_ledger(0)) // 2
        eng.accounts.cols.balance[accs] = led.balance[client]
        return first

    def _emit(self, deal0: int, post0: int, acc: np.ndarray) -> None:
        """The store's rows for the deals from ``deal0``, the postings from ``post0`` and
        the accounts ``acc``."""
        eng = self.eng
        if not eng.collect_effects:
            return
        eff = eng._effects
        eff.deals.extend(eng.deal_rows(deal0, len(eng.deals)))
        eff.postings.extend(eng.ledger.rows(post0, eng.ledger.postings.size,
                                            eng.accounts.cols.login))
        eng._collect_accounts(np.unique(acc))

    # ------------------------------------------------------------------ queries
    def upcoming(self) -> list[dict]:
        """Pending actions with their cash effect on the current book (nothing booked)."""
        eng = self.eng
        out = []
        for aid in sorted(self.actions):
            a = self.actions[aid]
            if a["status"] not in (PENDING, CLOSE_ONLY):
                continue
            row = _public(a)
            slots = self._slots(a["sym"])
            row["positions"] = int(len(slots))
            if a["kind"] == "dividend":
                pc = eng.positions.cols
                vol = pc.volume[slots]
                gross = self.dividend_amounts(a, vol)
                long = vol > 0
                rates = self._group_rates(lambda g: Fraction(g.dividend_withholding) / 100)
                g_of = self._group_of(pc.acc[slots].astype(np.int64))
                tax = 0
                for g, (num, den) in enumerate(rates):
                    sel = long & (g_of == g)
                    if num and sel.any():
                        tax += int(_round_div(gross[sel] * num, den).sum())
                row.update(due_to_longs=int(gross[long].sum()),
                           due_from_shorts=int(gross[~long].sum()), withholding=tax,
                           broker_net=int(gross[~long].sum() - gross[long].sum()))
            out.append(row)
        return out

    def last_applied(self, limit: int = 20) -> list[dict]:
        rows = [(r["date"], aid, r) for aid, a in self.actions.items()
                for r in a.get("results", [])]
        rows.sort(key=lambda x: (x[0], x[1]))
        return [{"id": aid, "kind": self.actions[aid]["kind"],
                 "symbol": self.actions[aid]["symbol"], **r} for _, aid, r in rows[-limit:]]

    def listing(self) -> list[dict]:
        return [_public(self.actions[k]) for k in sorted(self.actions)]

    # ------------------------------------------------------------------ state
    def canonical_arrays(self):
        import json

        text = json.dumps([self.next_id, self.actions], sort_keys=True, default=str)
        yield "corporate.actions", np.frombuffer(text.encode(), dtype=np.uint8)

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"corporate_actions": {"next_id": self.next_id,
                                          "actions": copy.deepcopy(list(self.actions.values()))}}

    def restore(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        state = meta.get("corporate_actions") or {}
        self.next_id = int(state.get("next_id", 1))
        self.actions = {int(a["id"]): copy.deepcopy(a) for a in state.get("actions", [])}


def _round_div(num: np.ndarray, den: int) -> np.ndarray:
    """``num / den`` rounded half to even, element-wise, int64 (``den > 0``)."""
    q, r = np.divmod(num, den)
    up = (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    return q + up


def _public(a: dict) -> dict:
    return {k: v for k, v in a.items() if k not in ("sym", "history")}


def describe(a: dict) -> str:
    what = {"dividend": lambda: f"dividend {a.get('amount')} {a.get('currency')}",
            "split": lambda: f"split {a.get('ratio')}",
            "ticker": lambda: f"renamed {a.get('new_symbol')}",
            "delist": lambda: "delisting"}[a["kind"]]()
    return f"{a['symbol']} {what} ex {a['ex_date']} ({a['status']})"
