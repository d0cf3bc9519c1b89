"""``cfd-risk``: the risk officer's CLI (``python -m risk``).

Global options pick the book: a running server (default; ``CFD_SERVER``, ``CFD_ADMIN_KEY``),
``--db URL`` (read-only recovery from the store) or ``--snapshot FILE.npz``. Read commands
print a table, or JSON with ``--json``; actions show a dry run on a private copy and act
only with ``--confirm``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import typer
from rich.console import Console

from risk import actions as A
from risk.analytics import accounts_table, exposure, level_counts
from risk.book import Book
from risk.cli_common import (
    ClusterOpt,
    _act,
    _cluster,
    _consoles,
    _fail,
    _kv,
    _percent,
    _print_json,
    _progress,
    _table,
)
from risk.source import Source, SourceError, encode_npz, officer_name

app = typer.Typer(help="The risk officer's CLI: watch the book, stress it, act.",
                  no_args_is_help=True, add_completion=False)
#: Tests plug a fake httpx transport in here.
TRANSPORT: httpx.BaseTransport | None = None

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConfirmOpt = Annotated[bool, typer.Option("--confirm", help="Do it (else: dry run, exit 2).")]


class State:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.engine: Any = None
        self.arrays: dict[str, np.ndarray] | None = None
        self.meta: dict[str, Any] | None = None
        self._book: Book | None = None

    def load(self, err: Console) -> Book:
        if self._book is None:
            with err.status(f"loading the book from {self.source.describe()}..."):
                try:
                    self.engine, self.arrays, self.meta = self.source.load()
                except SourceError as exc:
                    _fail(str(exc))
                self._book = Book.from_engine(self.engine, {"source": self.source.describe()})
        return self._book


@app.callback()
def _options(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(help="Server URL (env CFD_SERVER; default "
                                               "http://127.0.0.1:8000).")] = None,
    db: Annotated[str | None, typer.Option(help="Database URL: read-only recovery from "
                                           "the latest snapshot + journal.")] = None,
    snapshot: Annotated[Path | None, typer.Option(help="An engine snapshot .npz file.")
                        ] = None,
    key: Annotated[str | None, typer.Option(envvar="CFD_ADMIN_KEY", show_envvar=True,
                                            help="Admin API key.")] = None,
    officer: Annotated[str | None, typer.Option(envvar="CFD_OFFICER",
                                                help="Who acts (default: login name).")
                       ] = None,
) -> None:
    ctx.obj = State(Source(server=server, db=db, snapshot=snapshot, key=key,
                           officer=officer or officer_name(), transport=TRANSPORT))


# ------------------------------------------------------------------------ read commands
@app.command()
def accounts(
    ctx: typer.Context,
    below: Annotated[float | None, typer.Option(help="Only margin level below this %.")
                     ] = None,
    symbol: Annotated[str | None, typer.Option(help="Only accounts holding this symbol.")
                      ] = None,
    min_margin: Annotated[float | None, typer.Option(help="Only margin >= this (USDT).")
                          ] = None,
    min_equity: Annotated[float | None, typer.Option(help="Only equity >= this (USDT).")
                          ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 30,
    include_flat: Annotated[bool, typer.Option(help="Also accounts without positions.")
                            ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Accounts by margin level (lowest first), with the uniform price move to stop-out."""
    out, err = _consoles(as_json)
    book = ctx.obj.load(err)
    try:
        rows = accounts_table(book, below, symbol, min_margin, min_equity, limit, include_flat)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    if as_json:
        _print_json({"accounts": rows, "levels": level_counts(book)})
        return
    out.print(_table(f"Accounts by margin level ({len(rows)} shown; to_stop_out_pct: "
                     "uniform price move that reaches the stop-out level)", rows,
                     ["login", "group", "positions", "equity", "margin", "margin_free",
                      "margin_level", "stop_out_level", "notional", "to_stop_out_pct"]))
    out.print(_kv("Margin-level distribution", level_counts(book)))


@app.command("exposure")
def exposure_cmd(
    ctx: typer.Context,
    top: Annotated[int, typer.Option(help="Largest accounts shown per symbol.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Per symbol: clients' long/short/net, the broker's book, concentration, stop-out
    clusters."""
    out, err = _consoles(as_json)
    book = ctx.obj.load(err)
    rows = exposure(book, top=top)
    if as_json:
        _print_json({"exposure": rows})
        return
    view = []
    for r in rows:
        c = r["stop_out_cluster"]
        view.append({**r, "largest": ", ".join(f"{x['login']}:{x['share_pct']}%"
                                               for x in r["largest"]),
                     "stop_outs_cluster_at": "-" if c is None else
                     f"{c['price']:,.2f} ({c['move_pct']:+.1f}%, {c['lots']:g} lots, "
                     f"{c['accounts']} acc)"})
    out.print(_table("Exposure by symbol (notional in USDT; the broker holds the opposite)",
                     view, ["symbol", "price", "long_lots", "short_lots", "net_lots",
                            "limit_lots", "headroom_lots", "net_notional",
                            "broker_notional", "accounts", "largest",
                            "stop_outs_cluster_at"]))


def _render_stress(out: Console, res: Any, book: Book, title: str, limit: int) -> None:
    out.print(_kv(title, res.summary()))
    idx = res.stopped
    idx = idx[np.argsort(-res.deficit[idx], kind="stable")][:limit]
    rows = [{"login": int(book.login[a]), "level_at_shock": float(res.level_before[a]),
             "equity_at_shock": float(res.equity_before[a]),
             "positions_closed": int(res.n_closed[a]),
             "balance_after": int(res.balance_after[a]) / 100,
             "deficit": int(res.deficit[a]) / 100} for a in idx]
    if rows:
        out.print(_table(f"Accounts stopped out (largest deficit first, {len(rows)} of "
                         f"{len(res.stopped)})", rows))
    out.print(_table("Exposure after the sweep (clients' net lots; broker holds the "
                     "opposite)", res.exposure,
                     ["symbol", "price", "net_lots_before", "closed_lots", "net_lots_after",
                      "broker_notional_after"]))


def _stress_json(res: Any, book: Book, limit: int) -> dict[str, Any]:
    idx = res.stopped[np.argsort(-res.deficit[res.stopped], kind="stable")][:limit]
    return {"moves": {n: round(float(m), 6) for n, m in zip(book.symbols.names, res.moves,
                                                            strict=True)},
            "summary": res.summary(),
            "stopped": [{"login": int(book.login[a]), "positions_closed": int(res.n_closed[a]),
                         "deficit": int(res.deficit[a]) / 100,
                         "balance_after": int(res.balance_after[a]) / 100} for a in idx],
            "exposure": res.exposure}


@app.command()
def stress(
    ctx: typer.Context,
    shock: Annotated[list[str] | None, typer.Option(help="SYMBOL=-25% (repeatable).")
                     ] = None,
    all_: Annotated[str | None, typer.Option("--all", help="Move every symbol, e.g. -10%.")
                    ] = None,
    market: Annotated[str | None, typer.Option(help="Correlated market move, e.g. -10%.")
                      ] = None,
    beta: Annotated[bool, typer.Option(help="Scale --market by each symbol's beta "
                                       "(risk/data/symbol_map.csv).")] = False,
    limit: Annotated[int, typer.Option(help="Stopped accounts shown.")] = 20,
    cluster: ClusterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What-if shock: stop-outs, deals, insurance-fund loss, exposure left (on a copy)."""
    from risk.gaps import betas
    from risk.stress import parse_shocks, run_stress, scenario_moves

    out, err = _consoles(as_json)
    book = ctx.obj.load(err)
    names = book.symbols.names
    try:
        shocks = parse_shocks(shock or [], names)
        moves = scenario_moves(
            names, shocks, _percent(all_, "--all") if all_ else 0.0,
            _percent(market, "--market") if market else None, betas() if beta else None)
    except ValueError as exc:
        _fail(str(exc))
    with _cluster(cluster, err) as client, err.status("sweeping a copy of the book..."):
        if client is None:
            res = run_stress(book, moves)
        else:
            from risk.fanout import stress_on_cluster

            res = stress_on_cluster(client, book, moves)
    if as_json:
        _print_json(_stress_json(res, book, limit))
        return
    parts = [f"all {all_}"] if all_ else []
    if market:
        parts.append(f"market {market}" + (" x beta" if beta else ""))
    parts += list(shock or [])
    _render_stress(out, res, book, "Stress: " + (", ".join(parts) or "no move"), limit)


@app.command()
def depeg(
    ctx: typer.Context,
    haircut: Annotated[str, typer.Option(help="USDT below 1 USD by this, e.g. 5%.")] = "5%",
    limit: Annotated[int, typer.Option(help="Stopped accounts shown.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """USDT trades below 1 USD: USD margins and P/L cost more USDT; who is stopped out."""
    from risk.stress import depeg_symbols, run_stress

    out, err = _consoles(as_json)
    book = ctx.obj.load(err)
    h = _percent(haircut, "--haircut")
    try:
        dep = depeg_symbols(book, h)
    except ValueError as exc:
        _fail(str(exc))
    res = run_stress(dep, np.zeros(len(book.symbols)))
    fund_usd = book.insurance_fund / 100 * (1 - h)
    extra = {"haircut": h, "usd_per_usdt": 1 - h, "insurance_fund_usd_value": fund_usd,
             "margin_usdt_before": float(book.figures()["margin"].sum()),
             "margin_usdt_after": float(dep.figures()["margin"].sum())}
    if as_json:
        data = _stress_json(res, book, limit)
        data["depeg"] = extra
        _print_json(data)
        return
    out.print(_kv(f"USDT de-peg: 1 USDT = {1 - h:.4f} USD", extra))
    _render_stress(out, res, book, "Stop-outs at the de-pegged rate", limit)


@app.command()
def gap(
    ctx: typer.Context,
    scenarios: Annotated[int, typer.Option(help="Monte Carlo scenarios.")] = 10_000,
    correlation: Annotated[float, typer.Option(help="Chance a symbol gaps with the market "
                                               "date (0..1).")] = 0.5,
    overnight: Annotated[bool, typer.Option(help="All overnight gaps, not only weekends "
                                            "and holidays.")] = False,
    data: Annotated[Path | None, typer.Option(help="Derive gaps from this folder of daily "
                                              "bars (default: the packaged table).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    cluster: ClusterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Weekend-gap Monte Carlo: expected and tail (99%, 99.9%) insurance-fund loss."""
    from risk.gaps import GapTable, run_gap, sample_gaps, symbol_map

    out, err = _consoles(as_json)
    book = ctx.obj.load(err)
    table = GapTable.from_folder(data) if data else GapTable.load()
    table = table.select(weekend_only=not overnight)
    mapping = symbol_map()
    gaps = sample_gaps(table, book.symbols.names, scenarios, correlation, seed, mapping)
    with _cluster(cluster, err) as client, _progress(err) as prog:
        task = prog.add_task("gap scenarios", total=scenarios)
        res = run_gap(book, gaps, progress=lambda done, _n: prog.update(task, completed=done),
                      client=client)
    summary = res.summary()
    q = table.quantiles()
    dists = [{"series": k, "p0.1": v[0], "p1": v[1], "median": v[2], "p99": v[3],
              "p99.9": v[4], "gaps": int(v[5])} for k, v in q.items()]
    held = sorted({book.symbols.names[s] for s in np.unique(book.pos_sym)})
    used = {n: mapping.get(n, ("POOLED", 1.0))[0] for n in held}
    if as_json:
        _print_json({"summary": summary, "distributions": dists, "symbol_series": used,
                     "kind": "overnight" if overnight else "weekend"})
        return
    out.print(_kv(f"{'Overnight' if overnight else 'Weekend'} gap Monte Carlo: "
                  "insurance-fund loss (USDT)", summary))
    out.print(_table("Historical gap distributions (relative open vs previous close)",
                     [{**d, **{k: f"{d[k]:+.2%}" for k in ("p0.1", "p1", "median", "p99",
                                                         "p99.9")}} for d in dists]))
    out.print("Symbols held -> gap series: " + ", ".join(f"{k}->{v}" for k, v in used.items()))


@app.command()
def report(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "risk-report.html"),
    png_dir: Annotated[Path | None, typer.Option(help="Also write the PNGs here.")] = None,
    scenarios: Annotated[int, typer.Option(help="Gap Monte Carlo scenarios.")] = 2_000,
) -> None:
    """One offline HTML report with charts (margin levels, exposure, stress, fund)."""
    from risk import report as R
    from risk.gaps import GapTable, betas, run_gap, sample_gaps

    out, err = _consoles(False)
    state = ctx.obj
    book = state.load(err)
    with _progress(err) as prog:
        task = prog.add_task("report", total=5)

        def step(name: str) -> None:
            prog.update(task, advance=1, description=name)

        step("gap Monte Carlo")
        table = GapTable.load().select(weekend_only=True)
        res = run_gap(book, sample_gaps(table, book.symbols.names, scenarios))
        from risk.financing import corporate_summary, summary

        html = R.build(book, state.source.describe(), state.arrays, betas(), res.summary(),
                       res.losses, png_dir, step, summary(state.engine),
                       corporate_summary(state.engine))
    out_file.write_text(html)
    out.print(f"wrote {out_file} ({len(html) / 1024:,.0f} KiB)"
              + (f" and PNGs in {png_dir}" if png_dir else ""))


@app.command("snapshot")
def snapshot_cmd(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Argument(help="Where to write the .npz.")],
) -> None:
    """Save the book (from the server or database) as a snapshot .npz for offline use."""
    _, err = _consoles(False)
    state = ctx.obj
    state.load(err)
    arrays, meta = state.engine.snapshot()
    out_file.write_bytes(encode_npz(arrays, meta))
    Console().print(f"wrote {out_file}")


@app.command()
def verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Re-derive balances from the ledger (sum zero); replay the journal, compare hashes."""
    out, err = _consoles(as_json)
    state = ctx.obj
    state.load(err)
    eng = state.engine
    checks = A.verify_ledger(eng)
    if state.meta is not None:
        checks.append(A.verify_snapshot_hash(eng, state.meta))
    if state.source.db:
        with err.status("replaying the journal from the start..."):
            store = state.source.open_store()
            try:
                checks += A.verify_replay(store, eng.state_hash())
            finally:
                store.close()
    else:
        checks.append({"check": "clean replay", "ok": None,
                       "detail": "needs the database: pass --db URL"})
    ok = all(c["ok"] is not False for c in checks)
    if as_json:
        _print_json({"ok": ok, "checks": checks, "state_hash": eng.state_hash()})
    else:
        out.print(_table("Verification", checks, ["check", "ok", "detail"]))
        out.print(f"state hash {eng.state_hash()}")
    if not ok:
        raise typer.Exit(1)


# ------------------------------------------------------------------------ actions
@app.command()
def halt(ctx: typer.Context, symbol: str, confirm: ConfirmOpt = False,
         as_json: JsonOpt = False) -> None:
    """Halt trading in a symbol (positions in it cannot be closed, even by stop-out)."""
    _act(ctx, lambda who: A.halt(symbol, who), confirm, as_json)


@app.command()
def resume(ctx: typer.Context, symbol: str, confirm: ConfirmOpt = False,
           as_json: JsonOpt = False) -> None:
    """Resume trading in a halted symbol (waiting stop-outs proceed)."""
    _act(ctx, lambda who: A.resume(symbol, who), confirm, as_json)


@app.command("set-margin")
def set_margin(
    ctx: typer.Context, symbol: str,
    initial: Annotated[float | None, typer.Option(help="margin_initial_rate, e.g. 0.3")
                       ] = None,
    maintenance: Annotated[float | None, typer.Option(help="margin_maintenance_rate")
                           ] = None,
    tiers: Annotated[str | None, typer.Option(
        help="margin tiers by position size, 'floor:rate,...' from 0 at the initial rate "
             "('' removes them)")] = None,
    tiers_by: Annotated[str | None, typer.Option(
        help="what tier floors measure: volume (lots) or value (notional)")] = None,
    confirm: ConfirmOpt = False, as_json: JsonOpt = False,
) -> None:
    """Set a symbol's margin rates and tiers (the dry run shows the stop-outs it would
    cause)."""
    changes: dict[str, Any] = {}
    if initial is not None:
        changes["margin_initial_rate"] = initial
    if maintenance is not None:
        changes["margin_maintenance_rate"] = maintenance
    if tiers is not None:
        changes["margin_tiers"] = tiers
    if tiers_by is not None:
        changes["margin_tiers_by"] = tiers_by
    if not changes:
        _fail("give --initial, --maintenance, --tiers or --tiers-by")
    _act(ctx, lambda who: A.set_symbol(symbol, changes, who), confirm, as_json)


@app.command("set-limit")
def set_limit(
    ctx: typer.Context, symbol: str,
    lots: Annotated[str, typer.Argument(help="net volume cap in lots; 'none' removes it")],
    confirm: ConfirmOpt = False, as_json: JsonOpt = False,
) -> None:
    """Set the book-wide exposure limit of a symbol (shown by ``exposure``)."""
    _act(ctx, lambda who: A.set_exposure_limit(symbol, "" if lots == "none" else lots, who),
         confirm, as_json)


@app.command("set-group")
def set_group(
    ctx: typer.Context, group: str,
    settings: Annotated[list[str], typer.Argument(
        help='field=value, the value as JSON where it parses ("stop_out=30", '
             '\'blocked_countries=["US"]\', \'margin_tiers={"*": "0:0.2,100000:0.4"}\')')],
    confirm: ConfirmOpt = False, as_json: JsonOpt = False,
) -> None:
    """Create an account group or change its settings (the dry run shows the stop-outs it
    would cause)."""
    changes: dict[str, Any] = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or not key:
            _fail(f"{item!r}: give field=value")
        try:
            changes[key] = json.loads(text)
        except ValueError:
            changes[key] = text
    _act(ctx, lambda who: A.set_group(group, changes, who), confirm, as_json)


@app.command("close-only")
def close_only(ctx: typer.Context, symbol: str, confirm: ConfirmOpt = False,
               as_json: JsonOpt = False) -> None:
    """Put a symbol in close-only mode (trade_mode 3)."""
    _act(ctx, lambda who: A.set_symbol(symbol, {"trade_mode": 3}, who), confirm, as_json)


@app.command()
def liquidate(ctx: typer.Context, login: int, confirm: ConfirmOpt = False,
              as_json: JsonOpt = False) -> None:
    """Stop out an account now, whatever its margin level."""
    _act(ctx, lambda who: A.liquidate(login, who), confirm, as_json)


@app.command("set-levels")
def set_levels(
    ctx: typer.Context,
    login: Annotated[int | None, typer.Option(help="One account.")] = None,
    group: Annotated[str | None, typer.Option(help="Every account of a group.")] = None,
    margin_call: Annotated[float | None, typer.Option(help="Margin-call level.")] = None,
    stop_out: Annotated[float | None, typer.Option(help="Stop-out level.")] = None,
    stop_out_end: Annotated[float | None, typer.Option(help="Hysteresis end level.")
                            ] = None,
    confirm: ConfirmOpt = False, as_json: JsonOpt = False,
) -> None:
    """Change the margin-call / stop-out levels of an account or a group."""
    if (login is None) == (group is None):
        _fail("give exactly one of --login and --group")
    if margin_call is None and stop_out is None and stop_out_end is None:
        _fail("give --margin-call, --stop-out and/or --stop-out-end")
    _act(ctx, lambda who: A.set_levels(who, login, group, margin_call, stop_out,
                                       stop_out_end), confirm, as_json)


@app.command()
def topup(ctx: typer.Context, amount: Annotated[str, typer.Argument(help="USDT, e.g. "
                                                                    "1000.00")],
          confirm: ConfirmOpt = False, as_json: JsonOpt = False) -> None:
    """Top up the insurance fund from broker P/L."""
    try:
        A.topup(amount, "")
    except ValueError as exc:
        _fail(str(exc))
    _act(ctx, lambda who: A.topup(amount, who), confirm, as_json)


def main() -> None:
    app()


from risk import cli_day  # noqa: E402  (its commands join the app)

cli_day.register(app)


if __name__ == "__main__":
    main()
