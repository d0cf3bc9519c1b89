"""Package boundaries (import-linter contracts in pyproject.toml): cfd never imports api or
risk; cfd.kernels imports only numpy and numba."""

import ast
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(pathlib.Path(sys.executable).parent))
    if exe is None:
        pytest.fail("import-linter is not installed (it is a dev dependency): the contracts "
                    "in pyproject.toml must be checked")
    run = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_kernels_import_only_numpy_numba_and_each_other():
    allowed = {"numpy", "numba", "math", "cfd"}
    for path in (ROOT / "cfd" / "kernels").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed, f"{path.name} imports {name}"
                if top == "cfd":
                    assert name.startswith("cfd.kernels"), f"{path.name} imports {name}"


def test_kernel_constants_equal_the_enums():
    """The kernels take plain integers (numba freezes globals); each is one of the enums'
    numbers, declared once in the kernels and checked here."""
    from cfd.accounts.book import AccountGroup
    from cfd.constants import CalcMode, MarginMode, StopOutMode
    from cfd.kernels import formulas as F
    from cfd.kernels import margin as M
    from cfd.kernels import reference as R

    assert (F.CALC_CFD, F.CALC_CFDLEVERAGE, F.CALC_EXCH_STOCKS) == (
        CalcMode.CFD, CalcMode.CFDLEVERAGE, CalcMode.EXCH_STOCKS)
    assert F.RULE_MT5_PERCENT == StopOutMode.PERCENT
    assert F.RULE_MT5_MONEY == StopOutMode.MONEY
    assert F.RULE_ESMA not in (F.RULE_MT5_PERCENT, F.RULE_MT5_MONEY)
    rules = {AccountGroup(so_mode=StopOutMode.PERCENT).rule,
             AccountGroup(so_mode=StopOutMode.MONEY).rule, AccountGroup(esma=True).rule}
    assert rules == {F.RULE_MT5_PERCENT, F.RULE_MT5_MONEY, F.RULE_ESMA}
    assert len({M.STATE_OK, M.STATE_MARGIN_CALL, M.STATE_STOP_OUT}) == 3
    assert R.STATE_STOP_OUT is M.STATE_STOP_OUT  # the reference re-declares nothing
    assert MarginMode.RETAIL_HEDGING != MarginMode.RETAIL_NETTING


def test_risk_reaches_the_engine_only_through_its_public_surface():
    """risk imports from cfd only the public modules (the engine, commands, money, kernels,
    the store's package and runner, the stop-out sweep and its commission terms, the
    corporate-actions calendar's file format)."""
    allowed = ("cfd.engine", "cfd.commands", "cfd.constants", "cfd.money", "cfd.kernels",
               "cfd.store", "cfd.store.runner", "cfd.store.errors",
               "cfd.trading.stopout", "cfd.trading.commission", "cfd.trading.corporate_fields")
    for path in (ROOT / "risk").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "cfd":
                    assert name == "cfd" or name.startswith(allowed), \
                        f"{path.name} imports {name}"
