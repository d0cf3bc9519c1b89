"""One self-contained HTML risk report (charts as base64 PNGs), readable offline; the PNGs
can also be written beside it."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from risk.analytics import exposure, insurance_history, level_counts
from risk.book import Book
from risk.stress import run_stress, scenario_moves

LADDER = (-0.05, -0.10, -0.20, -0.30, -0.50, 0.10, 0.20)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def stress_ladder(book: Book, betas: dict[str, float] | None = None) -> list[dict[str, Any]]:
    rows = []
    names = book.symbols.names
    for m in LADDER:
        res = run_stress(book, scenario_moves(names, all_move=m), with_exposure=False)
        rows.append({"scenario": f"all {m:+.0%}", **res.summary()})
    if betas:
        for m in (-0.10, -0.20):
            res = run_stress(book, scenario_moves(names, market=m, betas=betas),
                             with_exposure=False)
            rows.append({"scenario": f"market {m:+.0%} x beta", **res.summary()})
    return rows


def charts(book: Book, expo: list[dict], ladder: list[dict], fund: list[tuple[int, float]],
           gap_losses: np.ndarray | None) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    f = book.figures()
    lv = f["level"][f["margin"] > 0]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(np.clip(lv, -100, 2000), bins=60, color="#4a7ab5")
    so = float(np.median(book.so_so)) if book.n_accounts else 50.0
    ax.axvline(so, color="red", ls="--", label=f"stop-out {so:.0f}%")
    ax.set_xlabel("margin level % (clipped to [-100, 2000])")
    ax.set_ylabel("accounts")
    ax.set_title("Margin-level distribution")
    ax.legend()
    out["margin_levels"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [r["symbol"] for r in expo]
    ax.bar(names, [r["long_notional"] for r in expo], color="#5a9", label="clients long")
    ax.bar(names, [-r["short_notional"] for r in expo], color="#c66", label="clients short")
    ax.plot(names, [r["broker_notional"] for r in expo], "k_", ms=14, mew=2,
            label="broker net")
    ax.set_ylabel("notional, USDT")
    ax.set_title("Exposure by symbol")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(fontsize=8)
    out["exposure"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [r["scenario"] for r in ladder]
    ax.bar(labels, [r["deficit"] for r in ladder], color="#b55", label="deficit (fund + broker)")
    ax.set_ylabel("USDT")
    ax2 = ax.twinx()
    ax2.plot(labels, [r["accounts_stopped_out"] for r in ladder], "o-", color="#333",
             label="accounts stopped out")
    ax2.set_ylabel("accounts")
    ax.tick_params(axis="x", rotation=45)
    ax.set_title("Stress scenarios")
    out["stress"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 3.2))
    if fund:
        t = [dt.datetime.fromtimestamp(x / 1000, dt.UTC) for x, _ in fund]
        ax.step(t, [b for _, b in fund], where="post", color="#2a6")
    else:
        ax.text(0.5, 0.5, "no insurance-fund postings", ha="center", transform=ax.transAxes)
    ax.set_ylabel("USDT")
    ax.set_title("Insurance fund history")
    fig.autofmt_xdate()
    out["insurance_fund"] = _png(fig)

    if gap_losses is not None and len(gap_losses):
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.hist(gap_losses, bins=60, color="#865")
        for q, c in ((0.99, "orange"), (0.999, "red")):
            ax.axvline(np.quantile(gap_losses, q), color=c, ls="--", label=f"{q:.1%}")
        ax.set_yscale("log")
        ax.set_xlabel("insurance-fund loss per scenario, USDT")
        ax.set_title("Weekend-gap Monte Carlo")
        ax.legend()
        out["gap"] = _png(fig)
    return out


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return "" if v is None else str(v)


def build(book: Book, source: str, arrays: dict[str, np.ndarray] | None,
          betas: dict[str, float] | None = None, gap: dict[str, Any] | None = None,
          gap_losses: np.ndarray | None = None, png_dir: Path | None = None,
          step: Callable[[str], None] | None = None,
          financing: dict[str, Any] | None = None,
          corporate: dict[str, Any] | None = None) -> str:
    step = step or (lambda _s: None)
    step("exposure")
    expo = exposure(book)
    step("stress ladder")
    ladder = stress_ladder(book, betas)
    fund = insurance_history(arrays) if arrays is not None and "posting.src" in arrays else []
    step("charts")
    pngs = charts(book, expo, ladder, fund, gap_losses)
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for name, data in pngs.items():
            (png_dir / f"{name}.png").write_bytes(data)
    img = {k: base64.b64encode(v).decode() for k, v in pngs.items()}
    f = book.figures()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>CFD risk report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}h2{margin-top:28px}</style></head><body>",
        f"<h1>CFD risk report</h1><p>{html.escape(source)} &middot; {now} &middot; "
        f"{book.n_accounts:,} accounts, {book.n_positions:,} positions, insurance fund "
        f"{book.insurance_fund / 100:,.2f} USDT, total equity {f['equity'].sum():,.2f}, "
        f"margin {f['margin'].sum():,.2f}</p>",
        "<h2>Margin levels</h2>", f"<img src='data:image/png;base64,{img['margin_levels']}'>",
        _table([level_counts(book)], list(level_counts(book))),
        "<h2>Exposure by symbol</h2>", f"<img src='data:image/png;base64,{img['exposure']}'>",
        _table(expo, ["symbol", "price", "long_lots", "short_lots", "net_notional",
                      "broker_notional", "accounts", "top_share_pct", "stop_out_cluster"]),
        "<h2>Stress scenarios</h2>", f"<img src='data:image/png;base64,{img['stress']}'>",
        _table(ladder, ["scenario", "accounts_stopped_out", "deals", "accounts_negative",
                        "deficit", "from_insurance_fund", "from_broker_pl",
                        "insurance_fund_after"]),
        "<h2>Insurance fund</h2>",
        f"<img src='data:image/png;base64,{img['insurance_fund']}'>",
    ]
    if gap is not None and "gap" in img:
        parts += ["<h2>Weekend gaps</h2>", f"<img src='data:image/png;base64,{img['gap']}'>",
                  _table([gap], list(gap))]
    if financing is not None:
        parts += ["<h2>Overnight financing</h2>",
                  f"<p>rolled through {financing['rolled_through']}; financing account "
                  f"{financing['financing_account']:,.2f} USDT; next rollover "
                  f"{financing['next_date']}: projected net income "
                  f"{financing['next_total']:,.2f} USDT</p>",
                  _table(financing["last_totals"], ["date", "positions", "charged", "paid",
                                                    "net_income"]),
                  _table(financing["next"], ["symbol", "group", "nights", "positions",
                                             "charged", "paid", "net_income"])]
    if corporate is not None:
        parts += ["<h2>Corporate actions</h2>",
                  "<p>Upcoming, with their cash effect on the current book (USDT)</p>",
                  _table(corporate["upcoming"], ["id", "kind", "symbol", "ex_date", "status",
                                                 "detail", "positions", "due_to_longs",
                                                 "due_from_shorts", "withholding",
                                                 "broker_net"]),
                  "<p>Applied at the last rollovers</p>",
                  _table(corporate["last_applied"], ["id", "date", "kind", "symbol",
                                                     "positions"])]
    parts.append("</body></html>")
    return "\n".join(parts)
