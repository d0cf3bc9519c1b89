"""The single writer: applies commands in order, one readable pipeline.

Every state change is a command (``cfd.commands``); :meth:`Engine.apply` applies one and
returns a :class:`Result` (an MT5 retcode, a comment, records) with the events it caused. A
refused command changes nothing. The state after N commands is a pure function of those N
commands (:meth:`Engine.state_hash`).

A command: the clock moves to its time; with sessions on, markets open and close by their
sessions; its handler runs (ticks below; money in :mod:`cfd.accounts.cash`, trade requests in
:mod:`cfd.trading.execute`, the broker's commands in :mod:`cfd.engine_admin`); stop-outs left
waiting by a closed market proceed when it opens. Queries are in :mod:`cfd.engine_queries`.

Per tick batch, in this order (as MT5 servers do):
  1. price hygiene: accept or reject ticks, snap them to the point grid and split the batch
     into rounds (each symbol at most once per round); per round, write the new bid/ask
     (``on_ticks``);
  2. incremental recompute of equity and margin for the positions of the moved symbols
     (``incremental``);
  3. pending orders: expirations, SL/TP, activations (``PendingOrders.on_prices``); gaps fill
     at the market; a fill re-derives its account;
  4. on every ``recheck_every``-th command, a full recompute checks the incremental figures
     and re-anchors them (``check_recompute``);
  5. stop-out sweep for accounts at or below their stop-out level, then margin-call flags
     (``_check_levels``);
  6. deals -> ledger postings -> effects (the store journals them with the command).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

import numpy as np

from cfd import commands as C
from cfd.accounts.book import AccountGroup, AccountTable
from cfd.accounts.cash import CashHandlers
from cfd.accounts.ledger import INSURANCE_FUND, Ledger, client_ledger
from cfd.constants import MarginMode, Retcode
from cfd.effects import Effects
from cfd.engine_admin import AdminHandlers
from cfd.engine_queries import EngineQueries, round_half_even_float
from cfd.errors import EngineHalted, Rejected
from cfd.feed.hygiene import PriceHygiene
from cfd.feed.ticks import TickBatch, last_per_symbol, tick_rounds
from cfd.instruments.registry import SymbolTable
from cfd.instruments.sessions import default_calendar
from cfd.instruments.spec import SymbolSpec, load_catalogue
from cfd.kernels.formulas import margin_level
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
from cfd.money import MINOR_SCALE, PRICE_SCALE
from cfd.result import Result
from cfd.trading import history, margin_tiers
from cfd.trading.corporate import CorporateActions
from cfd.trading.execute import TradeHandlers
from cfd.trading.history import DEAL_COLUMNS, ORDER_COLUMNS, HistorySource, RecordLog
from cfd.trading.orders import PendingOrders
from cfd.trading.positions import PositionTable
from cfd.trading.rollover import TradingDay
from cfd.trading.weekend import WeekendMargin, WeekendSchedule

# the public surface other packages (api, risk) reach the engine through
__all__ = ["FIRST_DEAL_TICKET", "FIRST_ORDER_TICKET", "INSURANCE_FUND", "Engine",
           "EngineConfig", "EngineHalted", "Result", "client_ledger", "round_half_even_float"]

FIRST_ORDER_TICKET = 10_000_001
FIRST_DEAL_TICKET = 50_000_001
#: An account's row mark before any row of it was collected (``Engine._collect_account``).
_UNKNOWN_ROW = np.iinfo(np.int64).min


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
    # book-wide cap on the clients' net volume per symbol (lots; cfd.accounts.rules)
    exposure_limits: dict[str, Decimal] = field(default_factory=dict)
    weekend: WeekendSchedule = field(default_factory=WeekendSchedule)  # trading.weekend
    groups: dict[str, AccountGroup] = field(default_factory=lambda: {
        "demo\\usdt": AccountGroup(),
        "demo\\netting": AccountGroup(name="demo\\netting",
                                      margin_mode=MarginMode.RETAIL_NETTING),
        "retail\\esma": AccountGroup(name="retail\\esma", esma=True, margin_call=100.0,
                                     stop_out=50.0, dividend_withholding=Decimal(30),
                                     blocked_countries=frozenset({"US"}),
                                     min_margin_rate={"retail": Decimal("0.2")}),
    })


class Engine(CashHandlers, TradeHandlers, AdminHandlers, EngineQueries):
    """The writer. Handlers and queries live in the mixins named in the module docstring;
    this class holds the state, the command dispatch and the tick pipeline."""

    def __init__(self, specs: list[SymbolSpec] | None = None,
                 rates: dict[str, Decimal] | None = None,
                 config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.groups_set: set[str] = set()  # account groups created or changed by SetGroup
        self.symbols = SymbolTable(load_catalogue() if specs is None else specs, rates)
        self.accounts = AccountTable()
        self.ledger = Ledger()
        self.positions = PositionTable()
        self.positions.by_sym.ensure_groups(len(self.symbols))
        self.deals = RecordLog(DEAL_COLUMNS)
        self.orders = RecordLog(ORDER_COLUMNS)
        self.closed_tickets = history.ClosedTickets()  # closed position ticket -> account
        self.closed_trimmed = 0  # closed_tickets entries trimmed away (trading.history)
        self.history_source: HistorySource | None = None  # old rows, once trimmed: the store
        self.next_order = FIRST_ORDER_TICKET
        self.next_deal = FIRST_DEAL_TICKET
        self.seq = 0
        self.now_msc = 0
        self.rejected_ticks = 0
        self.hygiene = self._new_hygiene(len(self.symbols))
        self.calendar = default_calendar() if self.config.sessions else None
        self._effects = Effects()
        self.collect_effects = True  # False while replaying a journal: rows already stored
        self.halted: str | None = None  # why the engine stopped taking commands (see apply)
        self.pending = PendingOrders(self)  # pending orders and SL/TP (stage 3 of a tick)
        self.day = TradingDay(self)  # the rollover: financing, DAY orders (see its module)
        self.corporate = CorporateActions(self)  # dividends, splits, renames, delistings
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
            C.Rollover: self.day.rollover,
            C.SetBenchmark: self.day.set_benchmark,
            C.CorporateAction: self.corporate.command,
            C.SetClient: self._set_client,
            C.SetExposureLimit: self._set_exposure_limit,
            C.SetGroup: self._set_group,
        }
        self.weekend = WeekendMargin(self, self.config.weekend)  # weekend/holiday margin
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

    # ------------------------------------------------------------------ command dispatch
    def apply(self, cmd: C.Command) -> Result:
        """Apply one command, whole or not at all.

        An accepted command advances ``seq`` (its journal sequence number) and the clock;
        the store journals it. A refused one (:class:`Rejected`: every handler validates
        before it mutates) changes nothing, not even ``seq``, the clock or the sessions'
        state; its result says ``refused`` and it is not journaled. Any other exception may
        have left the state half-changed: the engine halts (``halted`` says why) and
        refuses every further command with :class:`EngineHalted`, so that nothing more is
        acknowledged; the process restarts and recovers from the journal."""
        if self.halted is not None:
            raise EngineHalted(self.halted)
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise TypeError(f"no handler for command {type(cmd).__name__}")
        seq, now, counters = self.seq, self.now_msc, self._counters()
        sessions = self._session_state() if self.calendar is not None else None
        try:
            time_msc = _command_time(cmd)
            self.seq += 1
            self.now_msc = max(now, time_msc)
            opened = self._follow_sessions() if sessions is not None else None
            result = handler(cmd)
            if opened is not None and len(opened):
                result.events.extend(self._markets_opened(opened))
            return result
        except Rejected as exc:
            if self._counters() != counters:
                self._halt(cmd, seq + 1, exc)
            self.seq, self.now_msc = seq, now
            if sessions is not None:
                self._session_state(sessions)
            return self._refused(cmd, exc)
        except Exception as exc:
            self._halt(cmd, seq + 1, exc)

    def _halt(self, cmd: C.Command, seq: int, exc: BaseException) -> NoReturn:
        self.halted = (f"command {seq} ({cmd.kind}) failed inside the engine "
                       f"({type(exc).__name__}: {exc}); its changes may be half-applied and "
                       "are not journaled: restart to recover from the journal")
        raise EngineHalted(self.halted) from exc

    def _counters(self) -> tuple[int, ...]:
        """Tickets and row counts that only an accepted command may advance."""
        return (self.next_order, self.next_deal, self.ledger.next_id, len(self.deals),
                len(self.orders), self.positions.cols.size, len(self.accounts),
                len(self.symbols), len(self.pending))

    def _session_state(self, restore: tuple[np.ndarray, np.ndarray] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The markets' session flags (a copy), or put ``restore`` back."""
        sc = self.symbols.cols
        n = len(self.symbols)
        if restore is not None:
            sc.session_open[:n], sc.market_open[:n] = restore
            return restore
        return sc.session_open[:n].copy(), sc.market_open[:n].copy()

    def _refused(self, cmd: C.Command, exc: Rejected) -> Result:
        data = None
        if isinstance(cmd, C.SendOrder):
            data = self._send_result(exc.retcode, exc.comment, cmd)
        return Result(exc.retcode, exc.comment, data, refused=True)

    def register(self, cmd_type: type, handler: Callable[[Any], Result]) -> None:
        self._handlers[cmd_type] = handler

    def take_effects(self) -> Effects:
        eff, self._effects = self._effects, Effects()
        return eff

    # ------------------------------------------------------------------ tick pipeline
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
        in_range = batch.ask[idx] <= 1e9  # (beyond it a price would overflow its units)
        bid_f = np.where(in_range, batch.bid[idx], 0.0)
        bid_u = np.rint(bid_f * PRICE_SCALE / pt).astype(np.int64) * pt
        ask_u = np.rint(np.where(in_range, batch.ask[idx], 0.0) * PRICE_SCALE / pt
                        ).astype(np.int64) * pt
        ok = (bid_u > 0) & (bid_u <= ask_u) & in_range
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
        rounds = tick_rounds(sym)
        if self.config.conflate_ticks and len(rounds) > 1:
            rounds = [last_per_symbol(sym)]
        for r in rounds:
            s_r = sym[r].astype(np.int32)
            old_bid, old_ask = sc.bid[s_r], sc.ask[s_r]
            sc.bid[s_r], sc.ask[s_r] = bid_u[r], ask_u[r]
            sc.tick_msc[s_r] = batch.time_msc[idx[r]]
            moved += len(r)
            events.extend(self.on_prices(s_r, old_bid, old_ask))
        return Result(Retcode.DONE, f"{moved} quotes marked, {rejected} ticks rejected",
                      {"accepted": len(idx), "rejected": rejected}, events)

    def on_prices(self, syms: np.ndarray, old_bid: np.ndarray, old_ask: np.ndarray
                  ) -> list[dict]:
        """Stages 2-5 of the tick pipeline for the symbols ``syms`` (int32, each once) whose
        quotes changed from ``old_bid`` / ``old_ask`` (stage 1 has written the new ones)."""
        sc = self.symbols.cols
        events: list[dict] = []
        if len(syms) == 0:
            return events
        first = ~sc.has_quote[syms]
        sc.has_quote[syms] = True
        # 2. incremental recompute (before the triggers, so that a fill re-derives its
        # account at the new prices once and the increment is not applied twice)
        touched = self.incremental(syms, old_bid, old_ask, first)
        states, touches = self._states, self._touches
        # 3. pending orders: expirations, SL/TP, activations; a fill re-derives its account
        events.extend(self.pending.on_prices(syms))
        # 4. the periodic full recompute checks and re-anchors the incremental figures
        if (self.recheck_every and self.seq % self.recheck_every == 0
                and self._checked_seq != self.seq):
            self._checked_seq = self.seq  # once per command, not per round of a batch
            self.check_recompute()
            states = None
        if self._touches != touches:
            states = None  # a fill or a close changed accounts after the walk judged them
        # 5. stop-out sweep and margin-call flags; no stop-out on an unconfirmed outlier
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
                               sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode,
                               margin_tiers.tier_sets(self))
            pc, bi = self.positions.cols, self.positions.by_acc
            state = np.empty(max(n_acc, 1), dtype=np.int8)
            tick_update_accounts(n_acc, bi.off, bi.cnt, bi.pool, pc.sym, pc.volume, moves,
                                 float(MINOR_SCALE), ac.balance, ac.credit, ac.so_rule, ac.so_so,
                                 ac.so_call, ac.profit, ac.margin, ac.margin_maint, state)
            self._states = state[:n_acc]
            margin_tiers.rederive_moved(self, syms, self._states)
            return np.nonzero(self._states >= 0)[0]
        if len(self._mark) < n_acc:
            self._mark = np.zeros(max(n_acc, 2 * len(self._mark)), dtype=np.bool_)
        seg_acc, seg_vol = self.positions.symbol_ordered()
        out = np.empty(max(min(n_moved, n_acc), 1), dtype=np.int64)
        n = tick_update(syms, old_bid, old_ask, idx.off, idx.cnt, seg_acc, seg_vol, sc.bid,
                        sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode,
                        margin_tiers.tier_sets(self), ac.profit, ac.margin, ac.margin_maint,
                        self._mark, out)
        margin_tiers.tick_moved(self, syms, old_bid, old_ask, seg_acc, seg_vol)
        return np.sort(out[:n])

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

    def recompute_all(self) -> None:
        """Full recompute of every account (the periodic check re-anchors the incremental
        state)."""
        ac, sc, pc = self.accounts.cols, self.symbols.cols, self.positions.cols
        idx = self.positions.by_acc
        n = len(self.accounts)
        recompute_all(n, idx.off, idx.cnt, idx.pool, pc.sym, pc.volume, pc.price_open, sc.bid,
                      sc.ask, sc.k_profit, sc.k_margin, sc.k_margin_maint, sc.calc_mode,
                      margin_tiers.tier_sets(self), ac.leverage, ac.profit, ac.margin,
                      ac.margin_maint)

    def _check_levels(self, accs: np.ndarray, force: bool = False,
                      states: np.ndarray | None = None) -> list[dict]:
        """Stage 5: stop-out for the given accounts at or below their level (all of them
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
            e, mg, _ = self.accounts.figures(a)
            e, mg = e / MINOR_SCALE, mg / MINOR_SCALE
            ev = {"kind": "margin_call", "login": int(ac.login[a]), "time_msc": self.now_msc,
                  "equity": e, "margin": mg, "margin_level": margin_level(e, mg)}
            events.append(ev)
            self._effects.events.append(ev)
        return events

    def _remove_pending(self, accs: np.ndarray) -> None:
        """Stop-out, first step: remove the pending orders (they reserve margin); their
        cancellations are events of the pending-order book."""
        for a in accs.tolist():
            if self.pending.cancel_account(a, comment="stop out"):
                self._touch_account(a)

    def _stop_out_kernel(self, accs: np.ndarray, force: bool = False) -> list[dict]:
        from cfd.trading.stopout import sweep_kernel

        return sweep_kernel(self, accs, force)

    def _stop_out_python(self, accs: np.ndarray, force: bool = False) -> list[dict]:
        from cfd.trading.stopout import sweep_python

        return sweep_python(self, accs, force)

    # ------------------------------------------------------------------ sessions and quotes
    def _follow_sessions(self) -> np.ndarray:
        """Open and close markets by their sessions at the command's time; returns the
        symbols that have just opened."""
        sc = self.symbols.cols
        n = len(self.symbols)
        was = sc.market_open[:n].copy()
        sc.session_open[:n] = self.calendar.open_mask(sc.session[:n], self.now_msc)
        sc.market_open[:n] = sc.session_open[:n] & sc.admin_open[:n]
        return np.nonzero(sc.market_open[:n] & ~was)[0]

    def _markets_opened(self, syms: Any) -> list[dict]:
        """A stop-out left waiting by a closed or halted market proceeds when it opens."""
        return self._check_levels(self.holders(syms))

    def tier_sets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The kernels' margin tier sets, each account's own (``margin_tiers.tier_sets``)."""
        return margin_tiers.tier_sets(self)

    def holders(self, syms: Any) -> np.ndarray:
        """Accounts holding a position in any of ``syms`` (unique, ascending)."""
        pos = self.positions
        parts = [pos.cols.acc[pos.of_symbol(int(s))] for s in syms]
        if not parts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def is_stale(self, sym: int) -> bool:
        limit = self.config.stale_after_ms
        if not limit:
            return False
        return self.now_msc - int(self.symbols.cols.tick_msc[sym]) > limit

    def is_unconfirmed(self, sym: int) -> bool:
        return not bool(self.symbols.cols.confirmed[sym])

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

    # ------------------------------------------------------------------ accounts
    def _acc(self, login: int) -> int:
        i = (None if isinstance(login, bool) or not isinstance(login, int)
             else self.accounts.find(login))
        if i is None:
            raise Rejected(Retcode.INVALID, f"unknown account {login}")
        return i

    def _touch_account(self, a: int) -> None:
        """Re-derive one account's floating profit and margin from its positions."""
        self._touches += 1
        ac = self.accounts.cols
        sc = self.symbols.cols
        pc = self.positions.cols
        idx = self.positions.by_acc
        pr, m, mm = recompute_account(a, idx.off, idx.cnt, idx.pool, pc.sym, pc.volume,
                                      pc.price_open, sc.bid, sc.ask, sc.k_profit, sc.k_margin,
                                      sc.k_margin_maint, sc.calc_mode,
                                      margin_tiers.tier_sets(self), int(ac.leverage[a]))
        ac.profit[a], ac.margin[a], ac.margin_maint[a] = pr, m, mm
        if self.collect_effects:
            self._collect_account(a)

    def _collect_account(self, a: int, force: bool = False) -> None:
        """Account ``a``'s store row for this batch's effects, unless the row collected
        here last holds the same balance and credit: what trades and cash change (an
        order that moves no money rewrites no account row). Its other stored fields
        change only by admin commands, which collect with ``force``; rows written in bulk
        elsewhere make the account's mark unknown (:meth:`_forget_account_rows`), so the
        next change is collected whatever it is."""
        ac = self.accounts.cols
        bal, cr = int(ac.balance[a]), int(ac.credit[a])
        marks = self.__dict__.get("_row_marks")
        if marks is None or a >= len(marks):
            grown = np.full((max(2 * a + 2, 1024), 2), _UNKNOWN_ROW, dtype=np.int64)
            if marks is not None:
                grown[:len(marks)] = marks
            marks = self._row_marks = grown
        if not force and marks[a, 0] == bal and marks[a, 1] == cr:
            return
        self._effects.accounts[int(ac.login[a])] = self.account_row(a)
        marks[a, 0], marks[a, 1] = bal, cr

    def _collect_accounts(self, accs: np.ndarray) -> None:
        """The store rows of the accounts ``accs`` for this batch's effects, built in bulk
        (bookings of many accounts at once), whatever their marks; the marks become
        unknown (:meth:`_forget_account_rows`)."""
        self._effects.accounts.update((r["login"], r) for r in self.account_rows(accs))
        self._forget_account_rows(accs)

    def _forget_account_rows(self, accs: np.ndarray) -> None:
        """The rows of ``accs`` were collected in bulk: their marks become unknown."""
        marks = self.__dict__.get("_row_marks")
        if marks is not None:
            accs = np.asarray(accs, dtype=np.int64)
            marks[accs[accs < len(marks)]] = _UNKNOWN_ROW

    def was_position(self, acc: int, ticket: int) -> bool:
        if self.closed_tickets.get(ticket) == acc:
            return True
        src = self.history_source
        return (src is not None and self.closed_trimmed > 0
                and src.closed_position_of(int(self.accounts.cols.login[acc]), ticket))

    def history_marks(self) -> history.HistoryMarks:  # rows a batch committed now covers
        return history.marks(self)

    def trim_history(self, durable: history.HistoryMarks, window: int) -> int:
        return history.trim(self, durable, window)  # rows the store holds leave memory

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


def _command_time(cmd: C.Command) -> int:
    t = cmd.time_msc
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < 2**62:
        raise Rejected(Retcode.INVALID, f"time_msc {t!r} must be an integer of milliseconds "
                                        f"since 1970")
    return t

