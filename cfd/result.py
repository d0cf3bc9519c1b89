"""What every engine command returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cfd.constants import Retcode


@dataclass
class Result:
    """What a command returns: an MT5 retcode, a comment and records, plus events.
    ``refused``: the command changed nothing and is not journaled."""

    retcode: int
    comment: str = ""
    data: Any = None
    events: list[dict] = field(default_factory=list)
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.retcode in (Retcode.DONE, Retcode.PLACED, Retcode.CHECK_OK)
