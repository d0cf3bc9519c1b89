"""One error tree. A trade rejection carries its MT5 retcode and a comment naming the cause."""

from __future__ import annotations

from cfd.constants import Retcode


class CfdError(Exception):
    """Base of every error the engine raises on purpose."""


class SpecError(CfdError, ValueError):
    """An invalid symbol specification, naming the symbol and the field."""

    def __init__(self, symbol: str, field: str, reason: str) -> None:
        self.symbol, self.field, self.reason = symbol, field, reason
        super().__init__(f"symbol {symbol}: field {field!r}: {reason}")


class Rejected(CfdError):
    """A command refused with an MT5 retcode; nothing changed.

    ``comment`` says what was wrong in the trader's words, e.g.
    ``"free margin 120.00 USDT, required 300.00 USDT"``.
    """

    def __init__(self, retcode: int, comment: str) -> None:
        self.retcode = Retcode(retcode)
        self.comment = comment
        super().__init__(f"{self.retcode.name} ({int(self.retcode)}): {comment}")


class UnknownAccount(Rejected):
    def __init__(self, login: int) -> None:
        super().__init__(Retcode.INVALID, f"unknown account {login}")


class EngineHalted(CfdError):
    """The engine stopped taking commands: a command failed inside it, so its state may be
    half-changed. The message says which command and why; restart to recover."""
