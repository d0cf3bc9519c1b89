"""JSON text as the standard library writes it (compact separators), from orjson when
its text is the same: for a dict of plain values about a sixth of the time.

Where orjson's text may differ, :func:`fast_text` gives None and the caller encodes with
``json``: NaN and infinities (orjson writes null; a None too, which is then encoded again,
the same), floats in (1e-10, 1e-4) (orjson writes 0.00001 or 2e-7, json 1e-05 and 2e-07),
text beyond ASCII and the DEL character (json escapes them, DEL as ``\u007f``; the other
ASCII characters both escape alike), and any value either one hands to ``default`` (a numpy
scalar, bytes, a date; subclasses of int, str, dict and list). ``tests/test_bulk_rows``
compares the two over floats of every magnitude, ``tests/test_jsontext`` over text.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_OPTS = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
         | orjson.OPT_PASSTHROUGH_SUBCLASS)
_SORTED = _OPTS | orjson.OPT_SORT_KEYS
_SHORT_EXPONENT = re.compile(rb"e-[0-9](?![0-9])")


def _no_default(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def fast_text(obj: Any, sort_keys: bool = False) -> bytes | None:
    """``obj`` as ``json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys)`` writes
    it (ASCII bytes), from orjson; None where that may not be so."""
    try:
        out = orjson.dumps(obj, default=_no_default, option=_SORTED if sort_keys else _OPTS)
    except TypeError:  # (also a key that is not text, an integer past 64 bits)
        return None
    if (b"null" in out or b"0.0000" in out or not out.isascii() or b"\x7f" in out
            or (b"e-" in out and _SHORT_EXPONENT.search(out))):
        return None
    return out
