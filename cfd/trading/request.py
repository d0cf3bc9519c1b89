"""MT5's trade request and results (field names and order exactly as the MetaTrader5
package: TradeRequest 17 fields, OrderSendResult 11, OrderCheckResult 9)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cfd.constants import RETCODE_DESCRIPTION, Retcode

REQUEST_FIELDS = (
    "action", "magic", "order", "symbol", "volume", "price", "stoplimit", "sl", "tp",
    "deviation", "type", "type_filling", "type_time", "expiration", "comment", "position",
    "position_by",
)
_INT_FIELDS = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time",
               "expiration", "position", "position_by")
_FLOAT_FIELDS = ("volume", "price", "stoplimit", "sl", "tp")
COMMENT_MAX = 31
_KIND: dict[str, type] = {**dict.fromkeys(_INT_FIELDS, int), **dict.fromkeys(_FLOAT_FIELDS, float),
                          "symbol": str, "comment": str}


class RequestFormatError(ValueError):
    """A request that is not even well-formed (wrong types); names the field."""

    def __init__(self, field_name: str, why: str) -> None:
        self.field = field_name
        super().__init__(f'Invalid "{field_name}" argument: {why}')


@dataclass(frozen=True)
class TradeRequest:
    action: int = 0
    magic: int = 0
    order: int = 0
    symbol: str = ""
    volume: float = 0.0
    price: float = 0.0
    stoplimit: float = 0.0
    sl: float = 0.0
    tp: float = 0.0
    deviation: int = 0
    type: int = 0
    type_filling: int = 0
    type_time: int = 0
    expiration: int = 0
    comment: str = ""
    position: int = 0
    position_by: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TradeRequest:
        """Parse a request dict; missing keys default to 0 or "" as in MT5. Unknown keys and
        wrong types raise :class:`RequestFormatError`. Values (NaN prices, negative volumes)
        are checked later, by the engine, which answers with a retcode."""
        if not isinstance(data, dict):
            raise RequestFormatError("request", "expected a dict")
        # fast path: every value already of its field's exact type and in range
        for k, v in data.items():
            kind = _KIND.get(k)
            if kind is not type(v) or (kind is int and not -(2**63) <= v < 2**63):
                break
        else:
            if cls is not TradeRequest:
                return cls(**data)
            # the instance ``cls(**data)`` builds, without a frozen setattr per field
            obj = object.__new__(cls)
            values = _DEFAULTS.copy()
            values.update(data)
            object.__setattr__(obj, "__dict__", values)
            return obj
        unknown = sorted(set(data) - set(REQUEST_FIELDS))
        if unknown:
            raise RequestFormatError(unknown[0], "unknown field")
        out: dict[str, Any] = {}
        for k, v in data.items():
            if v is None:
                continue
            if k in _INT_FIELDS:
                if isinstance(v, bool) or not isinstance(v, int):
                    if isinstance(v, float) and v.is_integer():
                        v = int(v)
                    else:
                        raise RequestFormatError(k, f"expected an integer, got {v!r}")
                if not -(2**63) <= v < 2**63:
                    raise RequestFormatError(k, "out of range")
                out[k] = v
            elif k in _FLOAT_FIELDS:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise RequestFormatError(k, f"expected a number, got {v!r}")
                out[k] = float(v)
            else:
                if not isinstance(v, str):
                    raise RequestFormatError(k, f"expected a string, got {v!r}")
                out[k] = v
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in REQUEST_FIELDS}


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(TradeRequest)}


@dataclass(frozen=True)
class OrderSendResult:
    retcode: int
    deal: int = 0
    order: int = 0
    volume: float = 0.0
    price: float = 0.0
    bid: float = 0.0
    ask: float = 0.0
    comment: str = ""
    request_id: int = 0
    retcode_external: int = 0
    request: TradeRequest = field(default_factory=TradeRequest)

    def to_dict(self) -> dict[str, Any]:
        return {"retcode": self.retcode, "deal": self.deal, "order": self.order,
                "volume": self.volume, "price": self.price, "bid": self.bid, "ask": self.ask,
                "comment": self.comment, "request_id": self.request_id,
                "retcode_external": self.retcode_external, "request": self.request.to_dict()}

    @property
    def ok(self) -> bool:
        return self.retcode in (Retcode.DONE, Retcode.PLACED, Retcode.DONE_PARTIAL)


@dataclass(frozen=True)
class OrderCheckResult:
    """The account as it would be after the trade. ``retcode`` 0 and comment "Done" when the
    request would pass. MT5's nine fields first, then what the trade will be charged
    (``commission`` and ``fee``, account currency, >= 0; a pending order: at its price,
    as an entry), which MT5's result does not carry."""

    retcode: int
    balance: float = 0.0
    equity: float = 0.0
    profit: float = 0.0
    margin: float = 0.0
    margin_free: float = 0.0
    margin_level: float = 0.0
    comment: str = ""
    request: TradeRequest = field(default_factory=TradeRequest)
    commission: float = 0.0
    fee: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["request"] = self.request.to_dict()
        return d


def describe(retcode: int, detail: str = "") -> str:
    base = RETCODE_DESCRIPTION.get(int(retcode), "Unknown")
    return f"{base}: {detail}" if detail else base
