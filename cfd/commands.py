"""Commands: everything that changes the engine's state.

A command is a frozen dataclass with a ``kind``, the time it was accepted (``time_msc``,
stamped by whoever hands it to the engine, so replay needs no clock) and the ``actor`` who
issued it (a login, an admin name, a feed). ``to_payload()`` gives the bytes the journal
stores and :func:`decode` turns them back into the same command.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import orjson

from cfd.jsontext import fast_text

_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


_NAMES: dict[type, tuple[str, ...]] = {}  # a command class's field names, in order

_LONG_DIGITS = re.compile(rb"\d{19}")


def _loads(payload: bytes) -> Any:
    """JSON -> Python, through orjson (fast); payloads that orjson refuses (NaN or Infinity,
    which the standard library writes) or would read wrongly (orjson turns integers beyond
    64 bits into floats: any run of 19 digits goes the exact way) through json."""
    if _LONG_DIGITS.search(payload):
        return json.loads(payload)
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return json.loads(payload)


@dataclass(frozen=True)
class Command:
    kind: ClassVar[str] = ""
    time_msc: int
    actor: str = ""

    def to_payload(self) -> bytes:
        """Compact JSON with sorted keys. The fields are encoded as they are (no deep copy)
        when they are plain JSON values, which gives the same bytes as encoding
        ``dataclasses.asdict(self)``; anything else goes through ``asdict``."""
        names = _NAMES.get(type(self))
        if names is None:
            names = _NAMES[type(self)] = tuple(f.name for f in fields(self))
        d = {k: getattr(self, k) for k in names}
        out = fast_text(d, sort_keys=True)  # (the same bytes, where orjson's are json's)
        if out is not None:
            return out
        try:
            return _JSON.encode(d).encode()
        except TypeError:
            return _JSON.encode(asdict(self)).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Command:
        return cls(**_loads(payload))

    def stamped(self, time_msc: int) -> Command:
        """This command with ``time_msc`` set (what ``dataclasses.replace`` gives: the
        fields copied as they are, no ``__init__`` run again, about a tenth of its cost)."""
        out = object.__new__(type(self))
        d = out.__dict__
        d.update(self.__dict__)
        d["time_msc"] = time_msc
        return out


@dataclass(frozen=True)
class CreateAccount(Command):
    kind: ClassVar[str] = "create_account"
    login: int = 0
    name: str = ""
    group: str = "demo\\usdt"
    leverage: int = 1
    trade_mode: int = 0
    category: str = "retail"  # retail, professional, eligible_counterparty
    country: str = ""  # country of residence, ISO 3166-1 alpha-2 ("": not declared)


@dataclass(frozen=True)
class Deposit(Command):
    kind: ClassVar[str] = "deposit"
    login: int = 0
    amount: int = 0  # minor units
    comment: str = ""


@dataclass(frozen=True)
class Withdraw(Command):
    kind: ClassVar[str] = "withdraw"
    login: int = 0
    amount: int = 0
    comment: str = ""


@dataclass(frozen=True)
class AdjustCredit(Command):
    kind: ClassVar[str] = "credit"
    login: int = 0
    amount: int = 0  # signed minor units
    comment: str = ""


@dataclass(frozen=True)
class SendOrder(Command):
    """``order_send``: an MT5 trade request dict for account ``login``."""

    kind: ClassVar[str] = "order_send"
    login: int = 0
    request: dict[str, Any] = field(default_factory=dict)
    request_id: int = 0
    reason: int = 3  # ORDER_REASON_EXPERT: placed through the API


@dataclass(frozen=True)
class Ticks(Command):
    """A tick batch: new bid/ask for some symbols (by index)."""

    kind: ClassVar[str] = "ticks"
    symbols: tuple[int, ...] = ()
    bid: tuple[float, ...] = ()
    ask: tuple[float, ...] = ()

    @classmethod
    def of(cls, time_msc: int, quotes: dict[int, tuple[float, float]], actor: str = "feed"
           ) -> Ticks:
        syms = tuple(quotes)
        return cls(time_msc=time_msc, actor=actor, symbols=syms,
                   bid=tuple(float(quotes[s][0]) for s in syms),
                   ask=tuple(float(quotes[s][1]) for s in syms))

    def to_payload(self) -> bytes:
        head = np.array([self.time_msc, len(self.symbols)], dtype=np.int64).tobytes()
        actor = self.actor.encode()
        return (head + np.array([len(actor)], dtype=np.int64).tobytes() + actor
                + np.asarray(self.symbols, dtype=np.int32).tobytes()
                + np.asarray(self.bid, dtype=np.float64).tobytes()
                + np.asarray(self.ask, dtype=np.float64).tobytes())

    @classmethod
    def from_payload(cls, payload: bytes) -> Ticks:
        time_msc, n, alen = np.frombuffer(payload[:24], dtype=np.int64)
        off = 24 + int(alen)
        actor = payload[24:off].decode()
        n = int(n)
        syms = np.frombuffer(payload[off : off + 4 * n], dtype=np.int32)
        off += 4 * n
        bid = np.frombuffer(payload[off : off + 8 * n], dtype=np.float64)
        ask = np.frombuffer(payload[off + 8 * n : off + 16 * n], dtype=np.float64)
        return cls(time_msc=int(time_msc), actor=actor, symbols=tuple(int(s) for s in syms),
                   bid=tuple(float(x) for x in bid), ask=tuple(float(x) for x in ask))


@dataclass(frozen=True)
class TickBatchCommand(Command):
    """A feed's tick batch (each tick with its own time), journaled in binary."""

    kind: ClassVar[str] = "tick_batch"
    batch: Any = None  # cfd.feed.ticks.TickBatch

    def to_payload(self) -> bytes:
        actor = self.actor.encode()
        head = np.array([self.time_msc, len(actor)], dtype=np.int64).tobytes()
        return head + actor + self.batch.to_bytes()

    @classmethod
    def from_payload(cls, payload: bytes) -> TickBatchCommand:
        from cfd.feed.ticks import TickBatch

        time_msc, alen = (int(x) for x in np.frombuffer(payload[:16], dtype=np.int64))
        actor = payload[16 : 16 + alen].decode()
        return cls(time_msc=time_msc, actor=actor,
                   batch=TickBatch.from_bytes(payload[16 + alen :]))


@dataclass(frozen=True)
class SetSymbol(Command):
    """Admin: change fields of a symbol spec (margin rates, trade mode, ...) or add one."""

    kind: ClassVar[str] = "set_symbol"
    name: str = ""
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SetMarket(Command):
    """Sessions or an admin: open/close or halt/resume trading in symbols."""

    kind: ClassVar[str] = "set_market"
    symbols: tuple[str, ...] = ()
    market_open: bool | None = None
    halted: bool | None = None


@dataclass(frozen=True)
class TopUpInsurance(Command):
    kind: ClassVar[str] = "insurance_topup"
    amount: int = 0  # minor units, from broker P/L (negative: back to broker P/L)


@dataclass(frozen=True)
class ForceStopOut(Command):
    """Risk officer: liquidate an account now (stop-out regardless of its level)."""

    kind: ClassVar[str] = "force_stop_out"
    login: int = 0


@dataclass(frozen=True)
class SetAccountLevels(Command):
    """Change margin-call / stop-out settings of one account or of every account in a group."""

    kind: ClassVar[str] = "set_levels"
    login: int = 0
    group: str = ""
    margin_call: float | None = None
    stop_out: float | None = None
    stop_out_end: float | None = None


@dataclass(frozen=True)
class Rollover(Command):
    """Close trading date ``date`` (``YYYY-MM-DD``, New York): expire DAY orders, charge the
    nights' financing, apply what takes effect at the next session. Applied once per date;
    the dates between the last rollover and ``date`` are closed in order."""

    kind: ClassVar[str] = "rollover"
    date: str = ""


@dataclass(frozen=True)
class SetBenchmark(Command):
    """Admin: a benchmark rate fixing (percent a year, e.g. SOFR ``"4.31"``) in force from
    trading date ``date``; an INTEREST-mode symbol with ``swap_benchmark`` uses it."""

    kind: ClassVar[str] = "set_benchmark"
    name: str = ""
    date: str = ""
    rate: str = ""


@dataclass(frozen=True)
class CorporateAction(Command):
    """Admin: add (``op="add"``), amend or cancel a corporate action of the calendar
    (``cfd.trading.corporate``); ``fields`` as that module describes them."""

    kind: ClassVar[str] = "corporate_action"
    op: str = "add"
    id: int = 0
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SetClient(Command):
    """Admin: change an account's client category and/or country of residence (None: keep);
    the account's group rules must still hold."""

    kind: ClassVar[str] = "set_client"
    login: int = 0
    category: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class SetExposureLimit(Command):
    """Risk officer: cap the clients' net volume in a symbol, book-wide (lots; "" removes
    the cap). ``EngineConfig.exposure_limits``; ``accounts.rules.check_exposure``."""

    kind: ClassVar[str] = "set_exposure_limit"
    symbol: str = ""
    lots: str = ""


@dataclass(frozen=True)
class SetGroup(Command):
    """Admin: create an account group or change its settings (``changes``: field ->
    value, as ``cfd.accounts.group_rules`` reads them); what it does to the group's
    accounts is that module's."""

    kind: ClassVar[str] = "set_group"
    group: str = ""
    changes: dict[str, Any] = field(default_factory=dict)


COMMANDS: dict[str, type[Command]] = {
    c.kind: c for c in (CreateAccount, Deposit, Withdraw, AdjustCredit, SendOrder, Ticks,
                        TickBatchCommand,
                        SetSymbol, SetMarket, TopUpInsurance, ForceStopOut, SetAccountLevels,
                        Rollover, SetBenchmark, CorporateAction, SetClient,
                        SetExposureLimit, SetGroup)
}


def register(cls: type[Command]) -> type[Command]:
    """Register another command type (for commands added beside the built-in ones)."""
    COMMANDS[cls.kind] = cls
    return cls


def decode(kind: str, payload: bytes) -> Command:
    try:
        cls = COMMANDS[kind]
    except KeyError:
        raise ValueError(f"unknown command kind {kind!r}") from None
    cmd = cls.from_payload(payload)
    if isinstance(cmd, SetMarket):
        object.__setattr__(cmd, "symbols", tuple(cmd.symbols))
    return cmd


def field_names(cls: type[Command]) -> list[str]:
    return [f.name for f in fields(cls)]
