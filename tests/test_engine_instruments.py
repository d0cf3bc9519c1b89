from decimal import Decimal

import pytest

from cfd.errors import SpecError
from cfd.instruments import SymbolSpec, load_catalogue
from cfd.instruments.registry import SymbolTable


def test_default_catalogue_has_20_us_stocks_at_5x():
    specs = load_catalogue()
    names = {s.name for s in specs}
    assert len(specs) >= 20
    assert {"AAPL", "TSLA", "NVDA", "MSFT"} <= names
    aapl = next(s for s in specs if s.name == "AAPL")
    # 5x leverage: initial margin rate 1 / 5 = 0.2
    assert aapl.margin_initial_rate == Decimal("0.2")
    assert aapl.calc_mode == 2 and aapl.currency_profit == "USD"
    assert aapl.point == Decimal("0.01")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"contract_size": "0"}, "contract_size"),
        ({"volume_min": "0.15", "volume_step": "0.1"}, "volume_step"),
        ({"volume_step": "0"}, "volume_step"),
        ({"volume_max": "0.05"}, "volume_max"),
        ({"calc_mode": 0}, "calc_mode"),
        ({"digits": 9}, "digits"),
        ({"margin_initial_rate": "-0.2"}, "margin_initial_rate"),
        ({"margin_maintenance_rate": "0.3"}, "margin_maintenance_rate"),
        ({"trade_mode": 7}, "trade_mode"),
        ({"session": "MOON"}, "session"),
        ({"volume_step": "0.00001", "volume_min": "0.00001"}, "volume_min"),
        ({"contract_size": "abc"}, "contract_size"),
        ({"contract_size": "NaN"}, "contract_size"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(changes, field):
    with pytest.raises(SpecError) as err:
        SymbolSpec.from_dict({"name": "XYZ", **changes})
    assert err.value.field == field
    assert f"'{field}'" in str(err.value) and "XYZ" in str(err.value)


def test_catalogue_file_error_names_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("name,contract_size\nGOOD,1\nBAD,0\n")
    with pytest.raises(SpecError, match=r"contract_size.*line 3"):
        load_catalogue(path)


def test_unknown_field_and_duplicates_refused(tmp_path):
    with pytest.raises(SpecError, match="unknown field"):
        SymbolSpec.from_dict({"name": "XYZ", "leverage_max": 5})
    path = tmp_path / "dup.csv"
    path.write_text("name\nAAA\nAAA\n")
    with pytest.raises(SpecError, match="duplicate"):
        load_catalogue(path)


def test_profit_factor_is_exact_per_unit():
    table = SymbolTable([SymbolSpec(name="AAA", contract_size=Decimal(100))],
                        rates={"USD": Decimal("0.999")})
    # cents per (1e-6 USD x 1e-4 lot): 100 shares * 0.999 * 100 cents / (1e6 * 1e4)
    from fractions import Fraction

    assert table.k_exact[0] == Fraction(100) * Fraction("0.999") * 100 / (10**6 * 10**4)


def test_missing_conversion_rate_is_refused():
    with pytest.raises(SpecError, match="conversion rate"):
        SymbolTable([SymbolSpec(name="SAP", currency_profit="EUR")])
