"""One small ``@njit`` helper per formula, shared by the recompute, the sweep and the
pre-trade check.

Units: prices and volumes are integer grid units (see ``cfd.money``). Per-symbol factors
are precomputed by the symbol table:

* ``k_profit`` = contract_size * profit_rate / (PRICE_SCALE * VOLUME_SCALE): account currency
  per (price unit x volume unit);
* ``k_margin`` = contract_size * margin_rate * margin_conversion / (PRICE_SCALE * VOLUME_SCALE).
"""

import numba as nb
import numpy as np

CALC_CFD = 2
CALC_CFDLEVERAGE = 4
CALC_EXCH_STOCKS = 32

#: Stop-out rules (per account).
RULE_MT5_PERCENT = 0  # margin level (equity / margin * 100) <= stop-out level
RULE_MT5_MONEY = 1  # equity <= stop-out level (money)
RULE_ESMA = 2  # equity < 50% of the initial margin of open positions

_INT64_SAFE = 9.0e18


@nb.njit(cache=True, inline="always")
def close_price(volume, bid, ask):
    """A long closes at bid, a short at ask."""
    return bid if volume > 0 else ask


@nb.njit(cache=True, inline="always")
def position_profit(volume, price_open, bid, ask, k_profit):
    """Floating profit in account currency: ``(close - open) * volume * k_profit``.

    A long (volume > 0) is valued at bid, a short (volume < 0) at ask.
    """
    close = bid if volume > 0 else ask
    return float(close - price_open) * float(volume) * k_profit


@nb.njit(cache=True, inline="always")
def margin_price(calc_mode, volume, price_open, bid, ask):
    """The price a position is margined at: its open price (CFD, CFDLEVERAGE) or the
    current close price (EXCH_STOCKS)."""
    if calc_mode == CALC_EXCH_STOCKS:
        return bid if volume > 0 else ask
    return price_open


@nb.njit(cache=True, inline="always")
def position_margin(calc_mode, volume, price, k_margin, leverage):
    """Margin in account currency for ``|volume|`` at ``price`` (the margin price).

    CFD and EXCH_STOCKS: ``lots * contract_size * price * rate``; CFDLEVERAGE divides by
    the account leverage.
    """
    m = float(abs(volume)) * float(price) * k_margin
    if calc_mode == CALC_CFDLEVERAGE:
        m = m / leverage
    return m


@nb.njit(cache=True, inline="always")
def margin_level(equity, margin):
    """``equity / margin * 100``; 0.0 when there is no margin (no positions), as MT5 shows."""
    if margin > 0.0:
        return equity / margin * 100.0
    return 0.0


@nb.njit(cache=True, inline="always")
def float_to_minor(x, minor_scale):
    """A re-derived float amount (floating profit, margin) in minor units, rounded half to
    even: ``rint(x * minor_scale)``. The one rule by which every such figure is shown
    (``account_info``) and by which every level and free-margin decision is taken; Python's
    ``round(x * minor_scale)`` gives the same integer."""
    return np.int64(np.rint(x * minor_scale))


@nb.njit(cache=True, inline="always")
def account_figures(balance, credit, profit, margin, minor_scale):
    """``(equity, margin)`` in minor units, as ``account_info`` shows them: balance + credit
    + the floating profit rounded to the cent; the margin rounded to the cent."""
    return (balance + credit + float_to_minor(profit, minor_scale),
            float_to_minor(margin, minor_scale))


@nb.njit(cache=True, inline="always")
def level_at_or_below(equity, margin, level):
    """``equity / margin * 100 <= level`` decided exactly on minor units (``margin > 0``),
    the level taken to hundredths of a percent: ``equity * 10_000 <= round(level * 100) *
    margin`` in int64; in float only past int64 (figures beyond 9e14 minor units)."""
    lh = np.int64(np.rint(level * 100.0))
    lhs = float(equity) * 10000.0
    rhs = float(lh) * float(margin)
    if abs(lhs) < _INT64_SAFE and abs(rhs) < _INT64_SAFE:
        return equity * 10000 <= lh * margin
    return lhs <= rhs


@nb.njit(cache=True, inline="always")
def money_at_or_below(equity, level, minor_scale):
    """``equity <= level`` with ``equity`` in minor units and the level (money) taken to the
    cent."""
    return equity <= float_to_minor(level, minor_scale)


@nb.njit(cache=True, inline="always")
def is_stop_out(rule, so_level, equity, margin, minor_scale):
    """True when an account with this equity and (initial) margin, both in minor units as
    :func:`account_figures` gives them, must be stopped out: margin level ``<= so_level``
    (percent), ``equity <= so_level`` (money), ``equity < 50%`` of the margin (ESMA).

    An account without margin is never stopped out.
    """
    if margin <= 0:
        return False
    if rule == RULE_MT5_PERCENT:
        return level_at_or_below(equity, margin, so_level)
    if rule == RULE_MT5_MONEY:
        return money_at_or_below(equity, so_level, minor_scale)
    return 2 * equity < margin


@nb.njit(cache=True, inline="always")
def is_margin_call(rule, call_level, equity, margin, minor_scale):
    """True at or below the margin-call level: ``equity <= level`` in money mode, else
    (percent mode, and ESMA groups) ``margin level <= level``; on minor units as
    :func:`is_stop_out`. Never without margin."""
    if margin <= 0:
        return False
    if rule == RULE_MT5_MONEY:
        return money_at_or_below(equity, call_level, minor_scale)
    return level_at_or_below(equity, margin, call_level)


@nb.njit(cache=True)
def div_round_half_even(num, den):
    """Integer ``num / den`` rounded half to even (``den > 0``), Python floor semantics."""
    q = num // den
    r = num - q * den
    twice = 2 * r
    if twice > den or (twice == den and q % 2 != 0):
        q += 1
    return q


@nb.njit(cache=True)
def deal_profit_minor(volume, price_open, price_close, k_num, k_den):
    """Exact realised profit in minor units of closing ``volume`` (signed as the position:
    + long, - short) opened at ``price_open`` and closed at ``price_close``.

    ``profit = (close - open) * volume * k_num / k_den``, rounded half to even, all in int64.
    Returns ``(ok, minor)``; ``ok`` is False when an intermediate would not fit in int64 (the
    caller then computes it with Python integers).
    """
    diff = price_close - price_open
    est = abs(float(diff)) * abs(float(volume)) * float(k_num)
    if est >= _INT64_SAFE:
        return False, np.int64(0)
    return True, div_round_half_even(diff * volume * k_num, k_den)
