"""Weekend and overnight gaps: historical distributions and the insurance-fund Monte Carlo.

Gaps come from real daily bars (Date, Open, ..., Close, Adj Close): the gap of day ``t`` is
``Open_t * f_t / AdjClose_{t-1} - 1`` with ``f_t = AdjClose_t / Close_t``, i.e. the open
against the previous close on one split- and dividend-adjusted scale (a split between the
two bars is not a gap). A gap is a *weekend* gap when the bars are more than one calendar day
apart (weekends and holidays). ``risk/data/gaps.csv`` holds the gaps derived from the three
series in ``/work/shared/data`` (NVDA, ORCL, YHOO; one row per date, blank where a series
has no bar), so the CLI works without that folder.

Catalogue symbols map to a series (``risk/data/symbol_map.csv``): each symbol borrows the
gap distribution of the series most like it in volatility: NVDA for high-beta tech and
crypto-linked names, YHOO for internet platforms, ORCL for large, steady caps; a symbol
without a row uses all three pooled (``POOLED``).

A scenario draws one historical date for the whole market (the cross-section of that date,
so the three series move together as they did), and each symbol takes its series' gap on that
date with probability ``correlation``, otherwise the gap of an independent draw from its
series. Each symbol's marginal distribution is therefore its series' empirical one (dates a
series lacks are replaced by dates all series share), and ``correlation`` sets how often
names move together (1: all names of a series move as one).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cfd.money import MINOR_SCALE
from risk.book import Book
from risk.kernels import gap_losses

SERIES = ("NVDA", "ORCL", "YHOO")
POOLED = "POOLED"


def _data_file(name: str):
    return resources.files("risk").joinpath("data").joinpath(name)


def read_bars(path: Path) -> tuple[list[dt.date], np.ndarray, np.ndarray, np.ndarray]:
    """Dates, Open, Close and Adj Close of a daily-bar CSV."""
    dates, o, c, a = [], [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                vals = float(row["Open"]), float(row["Close"]), float(row["Adj Close"])
            except (KeyError, ValueError):
                continue
            if min(vals) <= 0:
                continue
            dates.append(dt.date.fromisoformat(row["Date"]))
            o.append(vals[0])
            c.append(vals[1])
            a.append(vals[2])
    return dates, np.array(o), np.array(c), np.array(a)


def bar_gaps(dates: list[dt.date], open_: np.ndarray, close: np.ndarray, adj: np.ndarray
             ) -> tuple[list[dt.date], np.ndarray, np.ndarray]:
    """Per bar after the first: its date, the adjusted open-vs-previous-close gap, and
    whether it is a weekend (or holiday) gap."""
    f = adj / close
    gap = open_[1:] * f[1:] / adj[:-1] - 1.0
    weekend = np.array([(dates[i + 1] - dates[i]).days > 1 for i in range(len(dates) - 1)])
    return dates[1:], gap, weekend


def derive(folder: Path) -> dict[str, dict[dt.date, tuple[float, bool]]]:
    """Gaps per series from ``<folder>/<series>-*.csv``."""
    out: dict[str, dict[dt.date, tuple[float, bool]]] = {}
    for name in SERIES:
        files = sorted(folder.glob(f"{name.lower()}-*.csv"))
        if not files:
            continue
        d, g, w = bar_gaps(*read_bars(files[0]))
        out[name] = {day: (float(x), bool(k)) for day, x, k in zip(d, g, w, strict=True)}
    return out


def write_table(gaps: dict[str, dict[dt.date, tuple[float, bool]]], path: Path) -> None:
    days = sorted(set().union(*(set(v) for v in gaps.values())))
    names = [n for n in SERIES if n in gaps]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "weekend", *names])
        for day in days:
            wk = any(gaps[n][day][1] for n in names if day in gaps[n])
            w.writerow([day.isoformat(), int(wk),
                        *(f"{gaps[n][day][0]:.6f}" if day in gaps[n] else "" for n in names)])


@dataclass
class GapTable:
    """Gaps by date (rows) and series (columns); NaN where a series has no bar."""

    dates: np.ndarray  # datetime64[D]
    weekend: np.ndarray  # bool
    series: list[str]
    gaps: np.ndarray  # (n_dates, n_series)

    @classmethod
    def load(cls, path: Path | None = None) -> GapTable:
        text = _data_file("gaps.csv").read_text() if path is None else Path(path).read_text()
        rows = list(csv.reader(text.splitlines()))
        head, body = rows[0], rows[1:]
        series = head[2:]
        gaps = np.array([[float(x) if x else np.nan for x in r[2:]] for r in body])
        return cls(dates=np.array([r[0] for r in body], dtype="datetime64[D]"),
                   weekend=np.array([r[1] == "1" for r in body]), series=series, gaps=gaps)

    @classmethod
    def from_folder(cls, folder: Path) -> GapTable:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "gaps.csv"
            write_table(derive(folder), path)
            return cls.load(path)

    def select(self, weekend_only: bool) -> GapTable:
        keep = self.weekend if weekend_only else np.ones(len(self.dates), dtype=np.bool_)
        return GapTable(self.dates[keep], self.weekend[keep], self.series, self.gaps[keep])

    def quantiles(self, qs: tuple[float, ...] = (0.001, 0.01, 0.5, 0.99, 0.999)
                  ) -> dict[str, list[float]]:
        out = {}
        for j, name in enumerate(self.series):
            col = self.gaps[:, j]
            col = col[~np.isnan(col)]
            out[name] = [float(x) for x in np.quantile(col, qs)] + [len(col)]
        return out


def symbol_map(path: Path | None = None) -> dict[str, tuple[str, float]]:
    """Catalogue symbol -> (gap series, beta for correlated market moves)."""
    text = _data_file("symbol_map.csv").read_text() if path is None else Path(path).read_text()
    out = {}
    for row in csv.DictReader(text.splitlines()):
        out[row["symbol"]] = (row["series"], float(row["beta"]))
    return out


def betas(path: Path | None = None) -> dict[str, float]:
    return {k: v[1] for k, v in symbol_map(path).items()}


def sample_gaps(table: GapTable, names: list[str], n_scen: int, correlation: float = 0.5,
                seed: int = 0, mapping: dict[str, tuple[str, float]] | None = None
                ) -> np.ndarray:
    """``(n_symbols, n_scen)`` relative gaps (see the module docstring)."""
    rng = np.random.default_rng(seed)
    mapping = symbol_map() if mapping is None else mapping
    n_dates = len(table.dates)
    full = np.nonzero(~np.isnan(table.gaps).any(axis=1))[0]  # dates every series traded
    common = rng.integers(0, n_dates, n_scen)
    backup = full[rng.integers(0, len(full), n_scen)]  # when a series has no bar on `common`
    cols = {series: table.gaps[:, j] for j, series in enumerate(table.series)}
    out = np.zeros((len(names), n_scen))
    for i, name in enumerate(names):
        series = mapping.get(name, (POOLED, 1.0))[0]
        together = rng.random(n_scen) < correlation
        if series in cols:
            col = cols[series]
            valid = np.nonzero(~np.isnan(col))[0]
            g = col[valid[rng.integers(0, len(valid), n_scen)]]
            shared = col[common]
            shared = np.where(np.isnan(shared), col[backup], shared)
            g = np.where(together, shared, g)
        else:
            pick = np.where(together, backup, full[rng.integers(0, len(full), n_scen)])
            g = table.gaps[pick, rng.integers(0, len(table.series), n_scen)]
        out[i] = g
    return out


@dataclass
class GapResult:
    losses: np.ndarray  # per scenario, account currency
    fund: float
    accounts_at_risk: int
    seconds: float

    def summary(self) -> dict[str, float]:
        loss = self.losses
        return {
            "scenarios": len(loss), "accounts_at_risk": self.accounts_at_risk,
            "expected_loss": float(loss.mean()),
            "p_loss": float((loss > 0).mean()),
            "var_99": float(np.quantile(loss, 0.99)),
            "var_99_9": float(np.quantile(loss, 0.999)),
            "es_99": float(loss[loss >= np.quantile(loss, 0.99)].mean()),
            "worst": float(loss.max()),
            "insurance_fund": self.fund,
            "p_fund_exhausted": float((loss > self.fund).mean()),
            "seconds": round(self.seconds, 3),
        }


def account_symbol_pairs(book: Book) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of (account, symbol) pairs: ``pair_off`` (n_acc + 1), ``pair_sym`` and
    ``pair_delta``, the account's signed notional in the symbol (account currency): the
    equity change for a relative move ``g`` of that symbol is ``pair_delta * g``."""
    ns = len(book.symbols)
    key = book.pos_acc.astype(np.int64) * ns + book.pos_sym
    uniq, inv = np.unique(key, return_inverse=True)
    delta = np.bincount(inv, weights=book.notional(), minlength=len(uniq))
    acc = uniq // ns
    off = np.zeros(book.n_accounts + 1, dtype=np.int64)
    off[1:] = np.cumsum(np.bincount(acc, minlength=book.n_accounts))
    return off, (uniq % ns).astype(np.int32), delta


#: Account blocks of the gap kernel (rows of its output, summed in this order): fixed, so a
#: scenario's loss is the same float on any machine and any thread count.
ACCOUNT_BLOCKS = 64


@dataclass
class GapInputs:
    """What the gap kernel reads of a book: the accounts that can reach negative equity and
    their (account, symbol) pairs. Small next to the book, so it is what a cluster receives."""

    at_risk: np.ndarray
    pair_off: np.ndarray
    pair_sym: np.ndarray
    pair_delta: np.ndarray
    equity: np.ndarray
    credit: np.ndarray

    @classmethod
    def of(cls, book: Book, gaps: np.ndarray) -> GapInputs:
        """Accounts that cannot reach negative equity even if every symbol gaps against them
        by the largest gap in ``gaps`` are left out."""
        fig = book.figures()
        off, psym, pdelta = account_symbol_pairs(book)
        worst = np.abs(gaps).max(axis=1) if gaps.size else np.zeros(len(book.symbols))
        risk = np.zeros(book.n_accounts)
        np.add.at(risk, np.repeat(np.arange(book.n_accounts), np.diff(off)),
                  np.abs(pdelta) * worst[psym])
        equity = fig["equity"]
        return cls(at_risk=np.nonzero(equity - risk < 0)[0].astype(np.int64), pair_off=off,
                   pair_sym=psym, pair_delta=pdelta, equity=equity,
                   credit=book.credit / MINOR_SCALE)


def scenario_losses(inp: GapInputs, gaps: np.ndarray, chunk: int = 1000,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Loss per scenario (column of ``gaps``), ``chunk`` scenarios per kernel call (a
    chunk's running equities stay in cache). Runs where the book is: here or on a worker."""
    n_scen = gaps.shape[1]
    losses = np.zeros(n_scen)
    width = min(chunk, n_scen)
    work, acc = np.empty((ACCOUNT_BLOCKS, width)), np.empty((ACCOUNT_BLOCKS, width))
    for start in range(0, n_scen, chunk):
        g = np.ascontiguousarray(gaps[:, start : start + chunk])
        out = acc[:, : g.shape[1]]
        out.fill(0.0)
        gap_losses(inp.at_risk, inp.pair_off, inp.pair_sym, inp.pair_delta, inp.equity,
                   inp.credit, g, ACCOUNT_BLOCKS, out, work)
        losses[start : start + g.shape[1]] = out.sum(axis=0)
        if progress is not None:
            progress(g.shape[1])
    return losses


def run_gap(book: Book, gaps: np.ndarray, chunk: int = 1000,
            progress: Callable[[int, int], None] | None = None,
            client: Any = None) -> GapResult:
    """Insurance-fund loss per scenario when every symbol opens with ``gaps[:, j]``.

    The stop-out at the open trades at the gapped prices, where closing a position does not
    change the account's equity; an account whose equity at the open is negative is therefore
    closed out completely and its negative balance (``credit - equity``) is compensated,
    whatever the order of the closes. Accounts that cannot reach negative equity even if every
    symbol gaps against them by the largest gap in ``gaps`` are skipped. (Exact for the
    sweep without commissions; ``tests/test_risk_gap.py`` checks it against the stress sweep.)

    With a Dask ``client`` the scenarios run on its cluster in blocks of whole chunks
    (``risk.fanout``), with the same losses to the last bit.
    """
    import time

    t0 = time.perf_counter()
    inp = GapInputs.of(book, gaps)
    n_scen = gaps.shape[1]
    done = [0]

    def step(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(done[0], n_scen)

    if client is None:
        losses = scenario_losses(inp, gaps, chunk, step)
    else:
        from risk.fanout import gap_on_cluster

        losses = gap_on_cluster(client, inp, gaps, chunk, step)
    return GapResult(losses=losses, fund=book.insurance_fund / MINOR_SCALE,
                     accounts_at_risk=len(inp.at_risk), seconds=time.perf_counter() - t0)
