"""Margin tiers by position size (cfd.instruments.tiers): published worked examples through
order_calc_margin and account_info, the kernels against their references on tiered books, the
one per-account loop agreeing wherever it runs, the incremental path, the pre-trade check and
the admin command."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.book import BookSpec, build, kernel_args, shock
from cfd import commands as C
from cfd.constants import Retcode
from cfd.engine import Engine
from cfd.errors import SpecError
from cfd.instruments.spec import SymbolSpec
from cfd.instruments.tiers import deductions, parse_tiers, tiered_amount
from cfd.kernels import reference as R
from cfd.kernels.margin import recompute_account, recompute_detect
from cfd.trading import stopout
from cfd.trading.margin_tiers import tier_sets
from risk.book import Book as RiskBook
from tests.helpers import Book

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# CMC Markets' ladder: 0-1,000 10 %, 1,000-3,000 15 %, 3,000-5,000 20 %, 5,000-10,000 30 %,
# over 10,000 50 % (units)
CMC = "0:0.10,1000:0.15,3000:0.20,5000:0.30,10000:0.50"
# IG's share tiers (Frequentis AG): 0-200 25 %, 200-1,000 40 %, 1,000-3,400 50 %, 3,400+ 75 %
IG = "0:0.25,200:0.40,1000:0.50,3400:0.75"
# Binance's ADA/BUSD brackets by notional: 2.5 % / 5 % / 10 % / 15 % / 25 % / 50 %
ADA = "0:0.025,100000:0.05,500000:0.10,1000000:0.15,2000000:0.25,5000000:0.50"
# Bybit's XYZUSDT illustration: 2 % / 2.5 % / 3 % / 3.5 % / 4 % per 1,000 USDT of value
XYZ = "0:0.02,1000:0.025,2000:0.03,3000:0.035,4000:0.04"


def spec(name: str, tiers: str, by: str = "volume", digits: int = 2) -> SymbolSpec:
    rate = parse_tiers(tiers)[0][1]
    return SymbolSpec(name=name, digits=digits, margin_initial_rate=rate,
                      margin_maintenance_rate=rate / 2, margin_tiers=tiers, margin_tiers_by=by,
                      volume_min=Decimal(1), volume_step=Decimal(1),
                      volume_max=Decimal(10_000_000))


def tier_book() -> Book:
    specs = [spec("CMC", CMC), spec("FQT", IG), spec("ADA", ADA, "value", digits=4),
             spec("XYZ", XYZ, "value"), SymbolSpec(name="FLAT")]
    b = Book(Engine(specs=specs))
    b.account(1001, 100_000_000)  # hedging, 1,000,000.00
    b.account(2002, 100_000_000, group="demo\\netting")
    b.quote(CMC=(2.75, 2.75), FQT=(30.00, 30.00), ADA=(0.6000, 0.6000), XYZ=(35.00, 35.00),
            FLAT=(100.00, 100.00))
    return b


def calc(b: Book, symbol: str, volume: float, price: float) -> float:
    return b.eng.order_calc_margin(0, symbol, volume, price, 1001)


def test_deductions_are_the_cumulative_ladder() -> None:
    # ADA: ded_n = ded_{n-1} + floor_n * (rate_n - rate_{n-1}):
    # 100,000 * 2.5 % = 2,500; + 500,000 * 5 % = 27,500; + 1,000,000 * 5 % = 77,500;
    # + 2,000,000 * 10 % = 277,500; + 5,000,000 * 25 % = 1,527,500
    assert deductions(parse_tiers(ADA)) == [0, 2_500, 27_500, 77_500, 277_500, 1_527_500]
    # XYZ: 1,000 * 0.5 % = 5; + 2,000 * 0.5 % = 15; + 3,000 * 0.5 % = 30; + 4,000 * 0.5 % = 50
    assert deductions(parse_tiers(XYZ)) == [0, 5, 15, 30, 50]


@pytest.mark.parametrize("tiers, x, want", [
    # 6,500 units over five brackets, slice by slice:
    # 1,000 * 10 % + 2,000 * 15 % + 2,000 * 20 % + 1,500 * 30 % = 100 + 300 + 400 + 450 = 1,250
    (CMC, 6_500, 1_250),
    # 1,500 shares: 200 * 25 % + 800 * 40 % + 500 * 50 % = 50 + 320 + 250 = 620
    (IG, 1_500, 620),
    # notional 600,000 in the 10 % bracket: 600,000 * 10 % - 27,500 = 32,500
    (ADA, 600_000, 32_500),
    # value 3,500: 3,500 * 3.5 % - 30 = 92.5 (Bybit's page, effective 2.643 %)
    (XYZ, 3_500, Fraction(185, 2)),
    # at a floor both brackets agree: 1,000 * 10 % = 100 = 1,000 * 15 % - 50
    (CMC, 1_000, 100),
])
def test_marginal_sum_equals_the_deduction_form(tiers, x, want) -> None:
    t = parse_tiers(tiers)
    assert tiered_amount(Fraction(x), t) == want
    # the slices one by one
    bounds = [f for f, _ in t[1:]] + [Decimal(10**12)]
    slices = sum(max(Fraction(0), min(Fraction(x), Fraction(hi)) - Fraction(lo)) * Fraction(r)
                 for (lo, r), hi in zip(t, bounds, strict=True))
    assert slices == want


def test_worked_examples_through_order_calc_margin() -> None:
    b = tier_book()
    # CMC: 1,250 margin units * 2.75 = 3,437.50 (notional 6,500 * 2.75 = 17,875)
    assert calc(b, "CMC", 6_500, 2.75) == 3_437.50
    # IG: 620 * 30.00 = 18,600.00; below the first floor 150 * 30.00 * 25 % = 1,125.00
    assert calc(b, "FQT", 1_500, 30.00) == 18_600.00
    assert calc(b, "FQT", 150, 30.00) == 1_125.00
    # ADA: 1,000,000 * 0.6000 = 600,000 notional -> 32,500.00
    assert calc(b, "ADA", 1_000_000, 0.6) == 32_500.00
    # XYZ: 100 * 35.00 = 3,500 -> 92.50
    assert calc(b, "XYZ", 100, 35.00) == 92.50


@pytest.mark.parametrize("login", [1001, 2002])
def test_worked_examples_through_account_info(login: int) -> None:
    b = tier_book()
    # CMC in two fills on the same side (hedging: two positions; netting: one): the
    # aggregate 6,500 units is margined by the ladder: 3,437.50
    assert b.buy(login, "CMC", 4_000).ok
    # 4,000 units: 4,000 * 20 % - 200 = 600 units * 2.75 = 1,650.00
    assert b.info(login)["margin"] == 1_650.00
    assert b.buy(login, "CMC", 2_500).ok
    assert b.info(login)["margin"] == 3_437.50
    # plus ADA 1,000,000 at 0.6000: 32,500.00; plus XYZ 100 at 35.00: 92.50
    assert b.buy(login, "ADA", 1_000_000).ok
    assert b.buy(login, "XYZ", 100).ok
    # 3,437.50 + 32,500.00 + 92.50 = 36,030.00
    assert b.info(login)["margin"] == 36_030.00


def test_hedged_volumes_count_gross_and_netting_nets() -> None:
    b = tier_book()
    # hedging 1001: long 4,000 and short 2,500 are both margined in full (no hedged margin),
    # so the bracket is that of 6,500: 3,437.50
    assert b.buy(1001, "CMC", 4_000).ok
    assert b.sell(1001, "CMC", 2_500).ok
    assert b.info(1001)["margin"] == 3_437.50
    # netting 2002: the sell reduces the position to 1,500: 1,500 * 15 % - 50 = 175 units
    # * 2.75 = 481.25
    assert b.buy(2002, "CMC", 4_000).ok
    assert b.sell(2002, "CMC", 2_500).ok
    assert b.info(2002)["margin"] == 481.25


def test_order_check_and_the_free_margin_use_the_tiers() -> None:
    b = tier_book()
    b.account(3003, 200_000)  # 2,000.00
    # 6,500 CMC: flat 10 % would need 1,787.50 (affordable), the ladder 3,437.50 (not)
    req = {"action": 1, "symbol": "CMC", "volume": 6_500, "type": 0, "price": 2.75,
           "type_filling": 2}
    assert b.eng.order_check(3003, req).retcode == Retcode.NO_MONEY
    # 2,000 units: 2,000 * 15 % - 50 = 250 units * 2.75 = 687.50
    chk = b.eng.order_check(3003, {**req, "volume": 2_000})
    assert chk.retcode == Retcode.CHECK_OK and chk.margin == 687.50
    before = b.eng.state_hash()
    res = b.buy(3003, "CMC", 6_500)
    assert res.retcode == Retcode.NO_MONEY and b.eng.state_hash() == before
    assert b.buy(3003, "CMC", 2_000).ok
    assert b.info(3003)["margin"] == 687.50


def test_set_symbol_turns_tiers_on_and_bad_schedules_are_refused() -> None:
    b = tier_book()
    assert b.buy(1001, "FLAT", 300).ok
    # flat 20 %: 300 * 100.00 * 20 % = 6,000.00
    assert b.info(1001)["margin"] == 6_000.00
    res = b.apply(C.SetSymbol, name="FLAT", changes={"margin_tiers": "0:0.2,100:0.5"})
    assert res.ok, res
    # 300 lots: 300 * 50 % - 100 * 30 % = 120 lots-equivalent * 100.00 = 12,000.00
    assert b.info(1001)["margin"] == 12_000.00
    for bad, word in (("0:0.3,100:0.5", "margin_initial_rate"), ("0:0.2,100:0.1", "fall"),
                      ("5:0.2", "start at 0"), ("0:0.2,0:0.3", "rise"), ("0-0.2", "floor:rate")):
        before = b.eng.state_hash()
        res = b.apply(C.SetSymbol, name="FLAT", changes={"margin_tiers": bad})
        assert not res.ok and word in res.comment, (bad, res)
        assert b.eng.state_hash() == before
    with pytest.raises(SpecError, match="margin_tiers_by"):
        SymbolSpec(name="X", margin_tiers_by="shares")


# ----------------------------------------------------------------- kernels on tiered books
tiered_books = st.builds(
    BookSpec,
    positions=st.integers(0, 300),
    accounts=st.integers(1, 30),
    symbols=st.integers(1, 8),
    long_frac=st.sampled_from([0.5, 1.0]),
    leverage=st.sampled_from([2.0, 5.0, 20.0]),
    seed=st.integers(0, 2**31),
    level_lo=st.just(40.0),
    level_hi=st.just(300.0),
    calc_modes=st.sampled_from([(2,), (32,), (2, 4, 32)]),
    hedging_frac=st.sampled_from([0.0, 0.5, 1.0]),
    esma_frac=st.sampled_from([0.0, 0.3]),
    tiered_frac=st.sampled_from([0.5, 1.0]),
)


@SETTINGS
@given(spec=tiered_books)
def test_tiered_recompute_equals_references_and_every_caller(spec) -> None:
    eng = build(spec)
    n = len(eng.accounts)
    a = kernel_args(eng)
    out = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int8))
    recompute_detect(**a, out_profit=out[0], out_margin=out[1], out_margin_maint=out[2],
                     out_state=out[3])
    npr = R.recompute_detect_numpy(**a)
    a.pop("n_acc")
    ppr = R.recompute_detect_python(range(n), **a)
    assert list(out[0]) == ppr[0] and list(out[1]) == ppr[1] and list(out[2]) == ppr[2]
    assert list(out[3]) == ppr[3]
    for got, want in zip(npr, out, strict=True):
        assert np.array_equal(got, want)
    # the engine's per-account loop (symbol columns) and the risk CLI's give the same bits
    ac, sc, pc = eng.accounts.cols, eng.symbols.cols, eng.positions.cols
    idx = eng.positions.by_acc
    for i in range(n):
        pr, m, mm = recompute_account(i, idx.off, idx.cnt, idx.pool, pc.sym, pc.volume,
                                      pc.price_open, sc.bid, sc.ask, sc.k_profit, sc.k_margin,
                                      sc.k_margin_maint, sc.calc_mode, tier_sets(eng),
                                      int(ac.leverage[i]))
        assert (pr, m, mm) == (out[0][i], out[1][i], out[2][i])
    fig = RiskBook.from_engine(eng).figures()
    np.testing.assert_allclose(fig["profit"], out[0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(fig["margin"], out[1], rtol=1e-12, atol=1e-9)


@SETTINGS
@given(spec=tiered_books, factor=st.sampled_from([0.6, 0.75, 0.9]))
def test_tiered_sweep_kernel_equals_the_engine_sweep(spec, factor) -> None:
    """The sweep kernel re-derives each account after every close with the same loop as the
    engine's per-position path: both leave the same state."""
    engines = []
    for path in (stopout.sweep_python, stopout.sweep_kernel):
        eng = build(spec)
        syms, old_bid, old_ask = shock(eng, factor)
        eng.incremental(syms, old_bid, old_ask)
        path(eng, np.arange(len(eng.accounts), dtype=np.int64), False)
        engines.append(eng)
    assert engines[0].state_hash() == engines[1].state_hash()


@SETTINGS
@given(spec=tiered_books, seed=st.integers(0, 2**31), bulk=st.booleans())
def test_tiered_incremental_ticks_agree_with_the_full_recompute(spec, seed, bulk) -> None:
    spec = replace(spec, calc_modes=(2, 32))
    eng = build(spec)
    if bulk:
        eng.bulk_tick_min, eng.bulk_tick_share = 0, 0.0
    sc, ac = eng.symbols.cols, eng.accounts.cols
    ns, n = len(eng.symbols), len(eng.accounts)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        syms = np.unique(rng.integers(0, ns, rng.integers(1, ns + 1))).astype(np.int32)
        old_bid, old_ask = sc.bid[syms].copy(), sc.ask[syms].copy()
        sc.bid[syms] = np.maximum(old_bid * rng.uniform(0.7, 1.3) // 10_000 * 10_000, 10_000)
        sc.ask[syms] = sc.bid[syms] + 10_000
        touched = eng.incremental(syms, old_bid, old_ask)
        assert set(touched.tolist()) >= set(eng.holders(syms).tolist())
    inc = ac.profit[:n].copy(), ac.margin[:n].copy(), ac.margin_maint[:n].copy()
    eng.recompute_all()
    tol = 1e-9 * (1.0 + np.abs(ac.margin[:n]).max())
    for got, want in zip(inc, (ac.profit[:n], ac.margin[:n], ac.margin_maint[:n]), strict=True):
        assert np.allclose(got, want, rtol=1e-9, atol=tol)


def test_an_account_with_more_tiered_symbols_than_the_work_table_holds() -> None:
    """Past ``account.GROUPS / 2`` tiered symbols in one account (the work table half full)
    the loop scans the account again per symbol: the same figures, to the bit, as the
    references."""
    from cfd.kernels.account import GROUPS

    eng = build(BookSpec(positions=600, accounts=1, symbols=GROUPS, seed=5,
                         hedging_frac=1.0, esma_frac=0.0, tiered_frac=1.0))
    assert len(set(eng.positions.cols.sym[eng.positions.of_account(0)].tolist())) > GROUPS // 2
    a = kernel_args(eng)
    out = (np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, np.int8))
    recompute_detect(**a, out_profit=out[0], out_margin=out[1], out_margin_maint=out[2],
                     out_state=out[3])
    a.pop("n_acc")
    ppr = R.recompute_detect_python([0], **a)
    assert (out[0][0], out[1][0], out[2][0]) == (ppr[0][0], ppr[1][0], ppr[2][0])


@pytest.mark.parametrize("positions", [63, 64, 65, 150])
def test_an_account_about_one_word_of_marks_long_equals_the_reference(positions) -> None:
    """An account's tiered positions are marked in one 64-bit word; an account of more
    positions than that is summed per symbol. Either side of the edge, the full recompute
    and the per-account recompute give the references' figures to the bit."""
    from cfd.kernels.account import LISTED

    eng = build(BookSpec(positions=positions, accounts=1, symbols=400, seed=11,
                         hedging_frac=1.0, esma_frac=0.0, tiered_frac=0.5))
    slots = eng.positions.of_account(0)
    assert len(slots) == positions and (positions > LISTED) == (positions in (65, 150))
    # distinct symbols, untiered at the first position and tiered at the 65th (the bit a
    # word of marks would share with the first), alternating elsewhere
    tier_n = eng.symbols.tiers()[0]
    tiered = [s for s in range(400) if tier_n[s]]
    plain = [s for s in range(400) if not tier_n[s]]
    for k, p in enumerate(slots):
        use = tiered if k == LISTED or k % 2 else plain
        eng.positions.cols.sym[p] = use.pop()
    a = kernel_args(eng)
    out = (np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, np.int8))
    recompute_detect(**a, out_profit=out[0], out_margin=out[1], out_margin_maint=out[2],
                     out_state=out[3])
    sc = eng.symbols.cols
    one = recompute_account(0, a["acc_off"], a["acc_cnt"], a["pool"], a["pos_sym"],
                            a["pos_vol"], a["pos_price"], sc.bid, sc.ask, sc.k_profit,
                            sc.k_margin, sc.k_margin_maint, sc.calc_mode, a["tiers"],
                            int(a["acc_lev"][0]))
    a.pop("n_acc")
    ppr = R.recompute_detect_python([0], **a)
    want = (ppr[0][0], ppr[1][0], ppr[2][0])
    assert (out[0][0], out[1][0], out[2][0]) == want
    assert one == want


def test_the_work_table_is_left_free_for_the_next_account() -> None:
    from cfd.kernels.account import GROUPS, account_sums, pack_symbols, scratch

    eng = build(BookSpec(positions=300, accounts=10, symbols=40, seed=7, tiered_frac=1.0))
    a = kernel_args(eng)
    symtab = pack_symbols(a["sym_bid"], a["sym_ask"], a["sym_kp"], a["sym_km"], a["sym_kmm"],
                          a["sym_mode"], a["tiers"])[0]  # (the book has one tier set)
    tiers = a["tiers"][0][0], a["tiers"][1][0], a["tiers"][2]
    work = scratch()
    for i in range(10):
        fresh = account_sums(a["pool"], a["acc_off"][i], a["acc_cnt"][i], a["pos_sym"],
                             a["pos_vol"], a["pos_price"], symtab, tiers, a["acc_lev"][i],
                             scratch())
        again = account_sums(a["pool"], a["acc_off"][i], a["acc_cnt"][i], a["pos_sym"],
                             a["pos_vol"], a["pos_price"], symtab, tiers, a["acc_lev"][i],
                             work)
        assert fresh == again
        assert (work[:GROUPS, 0] == -1.0).all()


def test_specs_without_tiers_read_as_before() -> None:
    """The tier fields appear in a spec's dict (snapshots, the state hash) only when set."""
    plain = SymbolSpec(name="X")
    assert "margin_tiers" not in plain.to_dict() and "margin_tiers_by" not in plain.to_dict()
    tiered = spec("Y", IG)
    d = tiered.to_dict()
    assert d["margin_tiers"] == IG and "margin_tiers_by" not in d  # "volume": the default
    assert spec("Z", XYZ, "value").to_dict()["margin_tiers_by"] == "value"
    assert SymbolSpec.from_dict(d) == tiered and SymbolSpec.from_dict(plain.to_dict()) == plain


@pytest.mark.parametrize("syms", [[3, 67, 131, 5], [3, 5, 3, 7, 9], [9], [3, 9, 7, 3]])
def test_each_way_of_summing_a_tiered_account_equals_the_reference(syms) -> None:
    """An account's tiered symbols all distinct (one of them sharing a mask bit with another:
    checked exactly), held twice (summed per symbol first), or alone: the kernel's sums are
    the reference's to the bit."""
    eng = build(BookSpec(positions=40, accounts=4, symbols=200, seed=3, hedging_frac=1.0,
                         esma_frac=0.0, tiered_frac=0.7))
    tier_n = eng.symbols.tiers()[0]
    assert all(tier_n[s] for s in (3, 7, 9, 131)) and not tier_n[67] and not tier_n[5]
    pc = eng.positions.cols
    for a in range(4):
        slots = eng.positions.of_account(a)
        for k, p in enumerate(slots):
            pc.sym[p] = syms[k % len(syms)] if a % 2 == 0 or k < len(syms) else 11 + k
    a = kernel_args(eng)
    out = (np.zeros(4), np.zeros(4), np.zeros(4), np.zeros(4, np.int8))
    recompute_detect(**a, out_profit=out[0], out_margin=out[1], out_margin_maint=out[2],
                     out_state=out[3])
    a.pop("n_acc")
    ppr = R.recompute_detect_python(range(4), **a)
    assert out[1].tolist() == ppr[1] and out[2].tolist() == ppr[2]
    assert out[0].tolist() == ppr[0]


def test_symbols_with_the_same_ladder_share_its_rows() -> None:
    from cfd.instruments.tiers import MAX_TIERS, check_tiers, tier_table

    a = [(0.0, 1.0, 0.0, 0.0), (5.0, 2.0, 5.0, 0.0)]
    b = [(0.0, 1.0, 0.0, 0.0), (7.0, 2.0, 7.0, 0.0)]
    n, off, table = tier_table([a, [], b, a])
    assert n.tolist() == [2, 0, 2, 2] and off.tolist() == [0, 0, 2, 0] and len(table) == 4
    many = [(Decimal(i), Decimal("0.1")) for i in range(MAX_TIERS + 1)]
    assert "at most" in check_tiers(many, Decimal("0.1"))


@SETTINGS
@given(lengths=st.lists(st.integers(0, 9), min_size=1, max_size=6),
       picks=st.lists(st.tuples(st.integers(0, 5), st.integers(1, 200)), min_size=1,
                      max_size=30))
def test_the_packed_bracket_search_equals_the_table_scan(lengths, picks) -> None:
    """The full recompute's bracket search in the packed table (the schedules padded to
    four rows) picks the bracket and factor of the tier table's scan, to the bit, for
    schedules of any length and measures on, between and past the floors."""
    import numba as nb

    from cfd.instruments.tiers import tier_table
    from cfd.kernels.account import TIER, factor, pack_symbols, tier_factor

    @nb.njit
    def both(symtab, tiers, tier, off, n, x):
        return factor(symtab, tiers, tier, x), tier_factor(tiers[2], off, n, x)

    scheds = [[(10.0 * j, 1.0 + 0.5 * j, 3.0 * j, 0.0) for j in range(k)] for k in lengths]
    tier_n, tier_off, table = tier_table(scheds)
    z = np.zeros(len(scheds), np.int64)
    sets = (tier_n.reshape(1, -1), tier_off.reshape(1, -1), table)
    symtab = pack_symbols(z, z, z.astype(float), z.astype(float), z.astype(float), z, sets)[0]
    for s, v in picks:
        s %= len(scheds)
        if not tier_n[s]:
            assert symtab[s, TIER] == 0.0
            continue
        x = 10.0 * (v // 2) if v % 2 == 0 else 5.0 * v + 1.25  # on a floor or between
        got, want = both(symtab, (tier_n, tier_off, table), symtab[s, TIER],
                         tier_off[s], tier_n[s], x)
        assert got == want
