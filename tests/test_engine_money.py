from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cfd.kernels.formulas import deal_profit_minor
from cfd.kernels.formulas import div_round_half_even as nb_div
from cfd.money import div_round_half_even, money_minor, to_minor, volume_units


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        (Fraction(1, 200), 0),  # 0.005 -> 0.00 (half to even)
        (Fraction(3, 200), 2),  # 0.015 -> 0.02
        (Fraction(-1, 200), 0),  # -0.005 -> -0.00
        (Fraction(-3, 200), -2),  # -0.015 -> -0.02
        (Decimal("12.3449"), 1234),
        (Decimal("12.3451"), 1235),
        (7, 700),
    ],
)
def test_to_minor_rounds_half_to_even(amount, cents):
    assert to_minor(amount) == cents


def test_parsing_typed_amounts_is_exact():
    assert money_minor("100.10") == 10010
    assert money_minor(0.1) == 10  # read through repr: '0.1'
    assert volume_units(0.3) == 3000
    with pytest.raises(ValueError, match="more digits"):
        money_minor("0.001")
    for bad in ("nan", float("inf"), "x", True):
        with pytest.raises(ValueError):
            money_minor(bad)


@given(st.integers(-(10**15), 10**15), st.integers(1, 10**9))
def test_numba_and_python_rounding_agree(num, den):
    assert nb_div(num, den) == div_round_half_even(num, den)
    assert div_round_half_even(num, den) == to_minor(Fraction(num, den), 1)


@given(st.integers(-(10**9), 10**9), st.integers(-(10**9), 10**9), st.integers(1, 10**8))
def test_deal_profit_is_exact_or_says_so(volume, diff, price_open):
    k_num, k_den = 1, 10**8  # AAPL: 1 share per lot, USD 1:1
    ok, minor = deal_profit_minor(volume, price_open, price_open + diff, k_num, k_den)
    exact = to_minor(Fraction(diff * volume * k_num, k_den), 1)
    if ok:
        assert minor == exact
    else:
        assert abs(diff * volume * k_num) >= 2**62
