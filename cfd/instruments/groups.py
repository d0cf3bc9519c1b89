"""MT5's ``group`` filter of symbols (``symbols_get``, ``positions_get``, ``history_*``):
one definition, used by the API over the engine and by the store's queries."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=256)
def _compile_group(group: str) -> tuple[tuple[bool, re.Pattern[str]], ...]:
    out = []
    for raw in group.split(","):
        mask = raw.strip()
        if not mask:
            continue
        exclude = mask.startswith("!")
        mask = mask[1:].strip() if exclude else mask
        pattern = ".*".join(re.escape(p) for p in mask.split("*"))
        out.append((exclude, re.compile(f"^{pattern}$", re.IGNORECASE)))
    return tuple(out)


def symbol_in_group(name: str, group: str | None) -> bool:
    """Comma-separated masks applied in order (case-insensitive), ``*`` matching any run of
    characters, ``!mask`` excluding what matched so far: ``"*,!*A*"`` is everything without
    an A, ``"!*A*,*"`` everything (the later ``*`` re-includes). A filter that starts with
    an exclusion starts from every symbol: ``"!AAPL"`` is everything but AAPL. No filter
    (None or empty) is every symbol."""
    if not group:
        return True
    masks = _compile_group(group)
    if not masks:
        return True
    included = masks[0][0]  # a leading exclusion starts from everything
    for exclude, pattern in masks:
        if pattern.match(name):
            included = not exclude
    return included
