"""Overnight financing (swap) charges of every open position, exact, in one pass.

A position's charge for a rollover is ``base * |volume| * k_num / k_den`` minor units, rounded
half to even, where ``k_num / k_den`` is an exact rational that the caller derives per
(account group, symbol, side) from the swap mode, the rates, the nights and the conversion
(``cfd.trading.financing.charge_factors``), and ``base`` is the price the mode uses:

* ``BASE_ONE``   -- 1 (POINTS and CURRENCY_DEPOSIT: the factor already holds the money per lot)
* ``BASE_OPEN``  -- the position's open price (INTEREST_OPEN)
* ``BASE_MID2``  -- ``bid + ask`` (INTEREST_CURRENT at the mid; the factor holds the 1/2)

The sign of ``k_num`` is the client's: positive credits the client, negative charges it.
"""

import numba as nb
import numpy as np

from cfd.kernels.formulas import div_round_half_even

BASE_ONE = 0
BASE_OPEN = 1
BASE_MID2 = 2

_INT64_SAFE = 9.0e18


@nb.njit(cache=True)
def swap_charges(n_slots, active, pos_acc, pos_sym, pos_volume, pos_price_open, acc_group,
                 sym_base, sym_bid, sym_ask, k_num, k_den, out_amount, out_over,
                 out_acc_total):
    """Charge of every active position slot into ``out_amount`` (0 for inactive ones) and
    each account's sum into ``out_acc_total`` (which the caller zeroes).

    ``k_num`` / ``k_den`` are ``[group, symbol, side]`` (side 0 long, 1 short). Returns the
    number of slots whose product would not fit in int64: those are flagged in ``out_over``,
    left out of the totals, and the caller computes them with Python integers."""
    n_over = 0
    for p in range(n_slots):
        out_amount[p] = 0
        out_over[p] = False
        if not active[p]:
            continue
        v = pos_volume[p]
        side = 0 if v > 0 else 1
        g = acc_group[pos_acc[p]]
        s = pos_sym[p]
        num = k_num[g, s, side]
        if num == 0:
            continue
        mode = sym_base[s]
        if mode == BASE_ONE:
            base = np.int64(1)
        elif mode == BASE_OPEN:
            base = pos_price_open[p]
        else:
            base = sym_bid[s] + sym_ask[s]
        av = abs(v)
        if abs(float(base)) * float(av) * abs(float(num)) >= _INT64_SAFE:
            n_over += 1
            out_over[p] = True
            continue
        amt = div_round_half_even(base * av * num, k_den[g, s, side])
        out_amount[p] = amt
        out_acc_total[pos_acc[p]] += amt
    return n_over


def swap_charges_reference(positions, acc_group, sym_base, sym_bid, sym_ask, k_num, k_den):
    """Pure-Python reference: ``{slot: amount}`` for ``positions``, an iterable of
    ``(slot, acc, sym, volume, price_open)``, with Python integers (no overflow)."""
    out = {}
    for p, a, s, v, po in positions:
        side = 0 if v > 0 else 1
        g = int(acc_group[a])
        num, den = int(k_num[g, s, side]), int(k_den[g, s, side])
        if num == 0:
            out[p] = 0
            continue
        mode = int(sym_base[s])
        base = 1 if mode == BASE_ONE else (int(po) if mode == BASE_OPEN
                                           else int(sym_bid[s]) + int(sym_ask[s]))
        q, r = divmod(base * abs(int(v)) * num, den)
        if 2 * r > den or (2 * r == den and q % 2 == 1):
            q += 1
        out[p] = q
    return out


@nb.njit(cache=True)
def charge_totals(amount, pos_sym, pos_acc, acc_group, n_groups, out_count, out_charged,
                  out_paid):
    """Per (symbol, group) cell ``sym * n_groups + group``: positions charged or paid, the
    sum charged to clients (> 0) and the sum paid to them (> 0), int64."""
    for p in range(len(amount)):
        a = amount[p]
        if a == 0:
            continue
        k = pos_sym[p] * n_groups + acc_group[pos_acc[p]]
        out_count[k] += 1
        if a < 0:
            out_charged[k] -= a
        else:
            out_paid[k] += a
