"""Read-only questions to the engine (MT5's account_info, order_check, order_calc_margin,
order_calc_profit) and the rows it hands to the store; nothing here changes state.
"""

from __future__ import annotations

import math

import numpy as np

from cfd.accounts import rules
from cfd.accounts.book import minor
from cfd.constants import (
    OrderType,
    Retcode,
)
from cfd.errors import Rejected
from cfd.kernels.formulas import margin_level
from cfd.money import MINOR_SCALE, PRICE_SCALE, VOLUME_SCALE
from cfd.trading import margin_tiers, market
from cfd.trading.history import DEAL_COLUMNS, ORDER_COLUMNS, deal_record, order_record
from cfd.trading.request import (
    OrderCheckResult,
    RequestFormatError,
    TradeRequest,
)


def round_half_even_float(x: float) -> int:
    """A re-derived float amount (floating profit, margin) -> minor units: the one rule of
    ``formulas.float_to_minor`` (``cfd.accounts.book.minor``)."""
    return minor(x)


class EngineQueries:
    """Queries of :class:`cfd.engine.Engine`."""

    def account_info(self, login: int) -> dict:
        """MT5 AccountInfo fields, in order."""
        a = self._acc(login)
        ac = self.accounts.cols
        g = self.config.groups[self.accounts.groups[a]]
        # MT5's balance leaves out the swap accrued on open positions (already in the
        # ledger); profit counts it, so equity is the ledger balance + credit + floating
        accrued = self.day.accrued(a)
        balance, credit = int(ac.balance[a]) - accrued, int(ac.credit[a])
        equity_c, margin_c, orders_c = self.accounts.figures(a)
        profit_c = equity_c - balance - credit
        margin = margin_c / MINOR_SCALE
        equity = equity_c / MINOR_SCALE
        return {
            "login": int(ac.login[a]), "trade_mode": int(ac.trade_mode[a]),
            "leverage": int(ac.leverage[a]), "limit_orders": g.limit_orders,
            "margin_so_mode": int(ac.so_mode[a]), "trade_allowed": bool(ac.trade_allowed[a]),
            "trade_expert": True, "margin_mode": int(ac.margin_mode[a]), "currency_digits": 2,
            "fifo_close": False, "balance": balance / MINOR_SCALE,
            "credit": credit / MINOR_SCALE, "profit": profit_c / MINOR_SCALE,
            "equity": equity, "margin": margin,
            "margin_free": (equity_c - margin_c - orders_c) / MINOR_SCALE,
            "margin_level": margin_level(equity, margin),
            "margin_so_call": float(ac.so_call[a]), "margin_so_so": float(ac.so_so[a]),
            "margin_initial": orders_c / MINOR_SCALE,
            "margin_maintenance": minor(float(ac.margin_maint[a])) / MINOR_SCALE,
            "assets": 0.0, "liabilities": 0.0, "commission_blocked": 0.0,
            "name": self.accounts.names[a], "server": self.config.server,
            "currency": self.config.currency, "company": self.config.company,
            # after MT5's fields (api.mt5._records.ACCOUNT_INFO_EXTRA)
            "category": rules.CATEGORIES[int(ac.category[a])],
            "country": rules.country_name(int(ac.country[a])),
        }

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
                res = self.pending.order_check(a, req)
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
        equity_c, margin_c, orders_c = market.figures_after(self, plan)
        profit_c = equity_c - plan.balance_after - int(self.accounts.cols.credit[a])
        margin = margin_c / MINOR_SCALE
        return OrderCheckResult(
            Retcode.CHECK_OK, balance=plan.balance_after / MINOR_SCALE,
            equity=equity_c / MINOR_SCALE, profit=profit_c / MINOR_SCALE, margin=margin,
            margin_free=(equity_c - margin_c - orders_c) / MINOR_SCALE,
            margin_level=margin_level(equity_c / MINOR_SCALE, margin), comment="Done",
            request=req, commission=sum(leg.commission for leg in plan.legs) / MINOR_SCALE,
            fee=sum(leg.fee for leg in plan.legs) / MINOR_SCALE)

    def order_calc_margin(self, order_type: int, symbol: str, volume: float, price: float,
                          login: int) -> float:
        """MT5's order_calc_margin for the account ``login``: the margin ``volume`` lots
        opened (or a pending order placed) at ``price`` will hold, ignoring open positions:
        the position margin at that price with the account's leverage (CFDLEVERAGE),
        rounded to the cent by the rule of every margin figure (``formulas.float_to_minor``);
        a tiered symbol's brackets apply to ``volume`` (``margin_tiers.order_margin``).
        """
        a = self._acc(login)
        s, vol, px = self._calc_args(order_type, symbol, volume, price, "price")
        return minor(margin_tiers.order_margin(self, a, s, vol, px)) / MINOR_SCALE

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

    def account_rows(self, accs: np.ndarray) -> list[dict]:
        """``account_row(a)`` for many accounts, built column-wise (bulk bookings)."""
        ac = self.accounts.cols
        names, groups = self.accounts.names, self.accounts.groups
        cur, now = self.config.currency, self.now_msc
        cols = [getattr(ac, k)[accs].tolist() for k in (
            "login", "leverage", "margin_mode", "so_mode", "so_call", "so_so", "balance",
            "credit", "trade_mode")]
        return [{"login": lg, "name": names[a], "group": groups[a], "leverage": lev,
                 "margin_mode": mm, "margin_so_mode": sm, "margin_so_call": call,
                 "margin_so_so": so, "balance": bal, "credit": cr, "currency": cur,
                 "trade_mode": tm, "updated_msc": now}
                for a, lg, lev, mm, sm, call, so, bal, cr, tm in zip(
                    accs.tolist(), *cols, strict=True)]

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

    def deal_rows(self, i0: int, i1: int) -> list[dict]:
        """``deal_row(i)`` for deals ``i0 .. i1 - 1``, built column-wise (bulk bookings)."""
        c = self.deals.cols
        sl = slice(i0, i1)
        names = [s.name for s in self.symbols.specs]
        logins = self.accounts.cols.login[c.acc[sl]].tolist()
        cols = [getattr(c, k)[sl].tolist() for k in DEAL_COLUMNS]
        return [deal_record(v, lg, names[v[3]] if v[3] >= 0 else "", text)
                for v, lg, text in zip(zip(*cols, strict=True), logins,
                                       self.deals.comments[i0:i1], strict=True)]

    def deal_row(self, i: int) -> dict:
        c = self.deals.cols
        s = int(c.sym[i])
        return deal_record(tuple(int(getattr(c, k)[i]) for k in DEAL_COLUMNS),
                           int(self.accounts.cols.login[c.acc[i]]),
                           self.symbols.specs[s].name if s >= 0 else "",
                           self.deals.comments[i])

    def order_row(self, i: int) -> dict:
        c = self.orders.cols
        return order_record(tuple(int(getattr(c, k)[i]) for k in ORDER_COLUMNS),
                            int(self.accounts.cols.login[c.acc[i]]),
                            self.symbols.specs[int(c.sym[i])].name, self.orders.comments[i])
