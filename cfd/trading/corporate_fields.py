"""The fields of a corporate action as people write them: ratios, amounts, calendar files
(CSV or JSON), each refused with a message that names what is wrong."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal, InvalidOperation
from typing import Any


def parse_ratio(text: object) -> tuple[int, int]:
    if not isinstance(text, str) or text.count(":") != 1:
        raise ValueError(f"ratio {text!r} must be 'new:old', e.g. '10:1' or '1:10'")
    a, b = (x.strip() for x in text.split(":"))
    if not (a.isdigit() and b.isdigit()):
        raise ValueError(f"ratio {text!r} must be two whole numbers 'new:old'")
    n, m = int(a), int(b)
    if n <= 0 or m <= 0:
        raise ValueError(f"ratio {text!r}: both sides must be greater than zero")
    if n == m:
        raise ValueError(f"ratio {text!r} changes nothing")
    if n > 1000 or m > 1000:
        raise ValueError(f"ratio {text!r} is out of range (at most 1000:1 or 1:1000)")
    return n, m


def positive_decimal(value: object, what: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} {value!r} is not a number") from None
    if isinstance(value, bool) or not d.is_finite() or d <= 0 or d > 1_000_000:
        raise ValueError(f"{what} {value!r} must be a positive number")
    return d


MAX_IMPORT = 10_000


def parse_calendar(raw: bytes, content_type: str = "") -> list[dict[str, Any]]:
    """Rows of a calendar file: CSV (header ``kind,symbol,ex_date,amount,currency,ratio,
    new_symbol,settle_date,last_price,note``) or a JSON list of objects; ValueError naming
    what is wrong."""

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the file is not UTF-8 text") from None
    if content_type == "application/json" or text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("a JSON import is a list of objects")
    else:
        rows = [dict(r) for r in csv.DictReader(io.StringIO(text))]
        if rows and None in rows[0]:
            raise ValueError("a CSV row has more cells than the header")
    if not rows:
        raise ValueError("no rows to import")
    if len(rows) > MAX_IMPORT:
        raise ValueError(f"{len(rows)} rows: at most {MAX_IMPORT} per import")
    return rows
