"""Corporate actions on the most held symbol of a skewed book: a 10-for-1 split and a cash
dividend, each applied by a rollover, computed, booked and journaled.

The book's hedging positions pick symbol ``k`` with weight ``1 / (k + 1) ** skew`` (default
1.15: about a tenth of a book's positions in its first symbol). Before timing, the split
kernel is checked against its pure-Python reference and the dividend amounts against exact
fractions, on a sample of the symbol's positions. Timed: the ``Rollover`` command through
``Engine.apply`` with the action due (the query tables' rows apart, as the cascade does).
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from decimal import Decimal
from fractions import Fraction

import numpy as np

from benchmarks.book import BookSpec, build
from cfd import commands as C
from cfd.kernels.corporate import split_reference
from cfd.money import MINOR_SCALE, VOLUME_SCALE, div_round_half_even
from cfd.trading.financing import cutoff_msc

THU, FRI = dt.date(2024, 6, 6), dt.date(2024, 6, 7)  # ex-dates: Friday, then Monday


def _rollover(eng, day: dt.date) -> tuple[float, float, dict]:
    """Apply ``day``'s rollover; (seconds for the command, seconds for its rows, result)."""
    cmd = C.Rollover(time_msc=cutoff_msc(day) + 1, actor="bench", date=str(day))
    d0, p0 = len(eng.deals), eng.ledger.postings.size
    eng.collect_effects = False
    t0 = time.perf_counter()
    res = eng.apply(cmd)
    cmd.to_payload()  # the journal row: the command itself
    t1 = time.perf_counter()
    if not res.ok:
        raise AssertionError(f"rollover refused: {res.comment}")
    eng.deal_rows(d0, len(eng.deals))  # what the query tables would take
    eng.ledger.rows(p0, eng.ledger.postings.size, eng.accounts.cols.login)
    t2 = time.perf_counter()
    if eng.ledger_total() != 0:
        raise AssertionError("the ledger does not sum to zero")
    return t1 - t0, t2 - t1, res.data


def check(eng, s: int, sample: int = 20_000) -> int:
    ca = eng.corporate
    slots = ca._slots(s)[:sample]
    pc, sc = eng.positions.cols, eng.symbols.cols
    k = eng.symbols.k_exact[s]
    _, _, step = eng.symbols.volume_limits(s)
    pu = eng.symbols.point_units(s)
    bid1 = div_round_half_even(int(sc.bid[s]), 10 * pu) * pu
    ask1 = max(div_round_half_even(int(sc.ask[s]), 10 * pu) * pu, bid1)
    got = ca.split_plan(s, slots, 10, 1, bid1, ask1)
    want = split_reference(pc.volume[slots], pc.price_open[slots], 10, 1, step,
                           int(sc.bid[s]), int(sc.ask[s]), bid1, ask1, k.numerator,
                           k.denominator)
    if [tuple(int(x[i]) for x in got) for i in range(len(slots))] != want:
        raise AssertionError("split kernel != reference")
    action = {"sym": s, "amount": "0.24", "currency": "USD"}
    amounts = ca.dividend_amounts(action, pc.volume[slots])
    per = Fraction(Decimal("0.24")) * MINOR_SCALE / VOLUME_SCALE
    for v, a in zip(pc.volume[slots].tolist(), amounts.tolist(), strict=True):
        x = per * abs(v)
        if div_round_half_even(x.numerator, x.denominator) != a:
            raise AssertionError("dividend amounts != exact fractions")
    return len(slots)


def bench_corporate(spec: BookSpec) -> dict:
    eng = build(spec)
    counts = eng.positions.by_sym.cnt[: len(eng.symbols)]
    s = int(np.argmax(counts))
    name = eng.symbols.specs[s].name
    checked = check(eng, s)
    t = cutoff_msc(THU) - 3_600_000
    for fields in ({"kind": "split", "symbol": name, "ex_date": str(FRI), "ratio": "10:1"},
                   {"kind": "dividend", "symbol": name, "ex_date": "2024-06-10",
                    "amount": "0.024"}):
        res = eng.apply(C.CorporateAction(time_msc=t, actor="bench", op="add", fields=fields))
        if not res.ok:
            raise AssertionError(res.comment)
    gc.collect()
    split_s, split_rows_s, _ = _rollover(eng, THU)
    gc.collect()
    div_s, div_rows_s, _ = _rollover(eng, FRI)
    last = eng.corporate.last_applied()
    return {"positions": spec.positions, "accounts": spec.accounts, "symbols": spec.symbols,
            "symbol": name, "symbol_positions": int(counts[s]), "checked_positions": checked,
            "split_s": split_s, "split_rows_s": split_rows_s, "dividend_s": div_s,
            "dividend_rows_s": div_rows_s, "applied": last}
