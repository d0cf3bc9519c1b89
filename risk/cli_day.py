"""The trading day for the risk officer: financing, the rollover, the corporate-actions
calendar (``cfd-risk financing``, ``rollover``, ``actions``, ``action-add``,
``action-import``, ``action-cancel``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from risk import financing as Fin
from risk.cli_common import _act, _consoles, _fail, _print_json, _table

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConfirmOpt = Annotated[bool, typer.Option("--confirm", help="Do it (else: dry run, exit 2).")]


def register(app: typer.Typer) -> None:
    @app.command()
    def financing(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Overnight financing: the last rollovers by symbol and group (charged to clients,
        paid to them) and the next rollover's projected charges on the current book."""
        out, err = _consoles(as_json)
        state = ctx.obj
        state.load(err)
        data = Fin.summary(state.engine)
        if as_json:
            _print_json(data)
            return
        out.print(_table(f"Last rollovers (through {data['rolled_through']})",
                         data["last_totals"]))
        out.print(_table("By symbol and group", data["last"]))
        out.print(_table(f"Next rollover {data['next_date']} (projected, net income "
                         f"{data['next_total']:,.2f} USDT)", data["next"]))

    @app.command()
    def rollover(ctx: typer.Context,
                 date: Annotated[str | None, typer.Option(help="Trading date YYYY-MM-DD.")
                                 ] = None,
                 confirm: ConfirmOpt = False, as_json: JsonOpt = False) -> None:
        """Close a trading date now (a back-dated or missed rollover): financing, DAY orders,
        the corporate actions due."""
        _act(ctx, lambda who: Fin.rollover(date, who), confirm, as_json)

    @app.command()
    def actions(ctx: typer.Context, as_json: JsonOpt = False) -> None:
        """Corporate actions: upcoming ones with their cash effect on the current book
        (dividends due to longs and from shorts, withholding, the broker's net) and what
        the last rollovers applied."""
        out, err = _consoles(as_json)
        state = ctx.obj
        state.load(err)
        data = Fin.corporate_summary(state.engine)
        if as_json:
            _print_json(data)
            return
        out.print(_table("Upcoming corporate actions (USDT)", data["upcoming"],
                         ["id", "kind", "symbol", "ex_date", "status", "positions",
                          "due_to_longs", "due_from_shorts", "withholding", "broker_net",
                          "detail"]))
        out.print(_table("Applied at the last rollovers", data["last_applied"]))

    @app.command("action-add")
    def action_add(
        ctx: typer.Context,
        kind: Annotated[str, typer.Argument(help="dividend, split, ticker or delist")],
        symbol: str,
        ex_date: Annotated[str, typer.Argument(help="YYYY-MM-DD")],
        amount: Annotated[str | None, typer.Option(help="Dividend per share.")] = None,
        currency: Annotated[str | None, typer.Option(help="Dividend currency.")] = None,
        ratio: Annotated[str | None, typer.Option(help="Split 'new:old', e.g. 10:1.")
                         ] = None,
        new_symbol: Annotated[str | None, typer.Option(help="Ticker change: new name.")
                              ] = None,
        settle_date: Annotated[str | None, typer.Option(help="Delisting settlement.")
                               ] = None,
        last_price: Annotated[str | None, typer.Option(help="Delisting last price.")
                              ] = None,
        confirm: ConfirmOpt = False, as_json: JsonOpt = False,
    ) -> None:
        """Add a corporate action to the calendar (dry run first)."""
        fields = {"kind": kind, "symbol": symbol, "ex_date": ex_date, "amount": amount,
                  "currency": currency, "ratio": ratio, "new_symbol": new_symbol,
                  "settle_date": settle_date, "last_price": last_price}
        fields = {k: v for k, v in fields.items() if v is not None}
        _act(ctx, lambda who: Fin.add_action(fields, who), confirm, as_json)

    @app.command("action-cancel")
    def action_cancel(ctx: typer.Context, action_id: int, confirm: ConfirmOpt = False,
                      as_json: JsonOpt = False) -> None:
        """Cancel a corporate action that has not taken effect."""
        _act(ctx, lambda who: Fin.cancel_action(action_id, who), confirm, as_json)

    @app.command("action-import")
    def action_import(ctx: typer.Context,
                      path: Annotated[Path, typer.Argument(help="A CSV or JSON file.")],
                      confirm: ConfirmOpt = False, as_json: JsonOpt = False) -> None:
        """Add the corporate actions of a CSV or JSON file (each row checked on a private
        copy first; with --confirm the file goes to the server, row by row)."""
        out, err = _consoles(as_json)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            _fail(f"cannot read {path}: {exc}")
        state = ctx.obj
        state.load(err)
        try:
            rows = Fin.import_dry_run(state.engine, raw, state.source.officer)
        except ValueError as exc:
            _fail(f"{path}: {exc}")
        result = None
        if confirm:
            client = state.source.admin()
            try:
                result = client.import_actions(raw, path.suffix.lower())
            finally:
                client.close()
        if as_json:
            _print_json({"dry_run": rows, "confirmed": confirm, "result": result})
        else:
            out.print(_table(f"{path.name}: {len(rows)} rows", rows))
            if result is not None:
                out.print(f"server: {result.get('added')} added")
        if not confirm:
            err.print("[yellow]not sent: add --confirm to do it[/yellow]")
            raise typer.Exit(2)
