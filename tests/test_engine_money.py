from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import example, given
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


@given(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12), st.integers(1, 10**8))
@example(volume=10**4, diff=10**6, price_open=10**8)  # 1 lot, +1.00: 10**10 fits int64
@example(volume=10**10, diff=10**10, price_open=1)  # 10**20 does not: the kernel says so
def test_deal_profit_is_exact_or_says_so(volume, diff, price_open):
    k_num, k_den = 1, 10**8  # AAPL: 1 share per lot, USD 1:1
    ok, minor = deal_profit_minor(volume, price_open, price_open + diff, k_num, k_den)
    exact = to_minor(Fraction(diff * volume * k_num, k_den), 1)
    if ok:
        assert minor == exact
        assert abs(diff * volume * k_num) < 2**63  # computed in int64 without wrapping
    else:
        assert abs(diff * volume * k_num) >= 2**62  # refused only near int64's limit


def test_a_posting_beyond_int64_is_refused_not_wrapped():
    from cfd import commands as C
    from cfd.accounts.ledger import BROKER_PL, INSURANCE_FUND, LedgerOverflow, PostingKind
    from tests.helpers import Book

    b = Book.two_accounts()
    led = b.eng.ledger
    # a fund 10 cents below int64's largest value (broker P/L the opposite: the sum is 0)
    led.balance[INSURANCE_FUND] += 2**63 - 10 - int(led.balance[INSURANCE_FUND])
    led.balance[BROKER_PL] = -(2**63 - 10)
    assert led.total() == 0
    before = (b.eng.state_hash(), b.eng.seq, led.next_id)
    r = b.apply(C.TopUpInsurance, amount=11)  # 2**63 - 10 + 11 > 2**63 - 1
    assert r.refused and "beyond the largest balance" in r.comment
    assert (b.eng.state_hash(), b.eng.seq, led.next_id) == before
    assert b.apply(C.TopUpInsurance, amount=9).ok  # up to 2**63 - 1 exactly
    assert int(led.balance[INSURANCE_FUND]) == 2**63 - 1
    with pytest.raises(LedgerOverflow):  # the ledger itself never wraps
        led.post(0, BROKER_PL, INSURANCE_FUND, 1, PostingKind.INSURANCE_TOPUP)
    assert int(led.balance[INSURANCE_FUND]) == 2**63 - 1 and led.total() == 0
