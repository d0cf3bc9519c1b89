"""What the CLI's commands share: consoles, tables, JSON output, failing with a message,
and the dry-run-then-confirm flow of an action."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from risk import actions as A
from risk.source import SourceError

ClusterOpt = Annotated[str | None, typer.Option(
    "--cluster", help="Run the scenarios on this Dask scheduler, e.g. tcp://host:8786 "
    "(workers need cfd-engine installed).")]


@contextmanager
def _cluster(address: str | None, err: Console) -> Iterator[Any]:
    """A Dask client of ``address`` for the block (None: run here)."""
    if not address:
        yield None
        return
    from risk.fanout import connect

    try:
        with err.status(f"connecting to the cluster at {address}..."):
            client = connect(address)
    except (OSError, TimeoutError, ValueError) as exc:
        _fail(f"cannot reach the Dask scheduler at {address}: {exc}")
    try:
        yield client
    finally:
        client.close()


def _fail(msg: str, code: int = 1) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {msg}")
    raise typer.Exit(code)


def _consoles(as_json: bool) -> tuple[Console, Console]:
    return Console(), Console(stderr=True, quiet=False)


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(_clean(data), indent=2, default=str) + "\n")


def _table(title: str, rows: list[dict[str, Any]], cols: list[str] | None = None) -> Table:
    cols = cols or (list(rows[0]) if rows else [])
    t = Table(title=title, title_justify="left")
    for c in cols:
        t.add_column(c, justify="left" if c in ("symbol", "group", "scenario", "check",
                                                "detail", "action", "metric") else "right")
    for r in rows:
        t.add_row(*(_cell(r.get(c)) for c in cols))
    return t


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "[green]yes[/green]" if v else "[red]NO[/red]"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.2f}"
    if isinstance(v, dict):
        return " ".join(f"{k}={_cell(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v)


def _kv(title: str, data: dict[str, Any]) -> Table:
    return _table(title, [{"metric": k, "value": v} for k, v in data.items()],
                  ["metric", "value"])


def _progress(err: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    console=err, transient=True)


def _percent(text: str, what: str) -> float:
    from risk.stress import parse_percent

    try:
        return parse_percent(text)
    except ValueError as exc:
        _fail(f"{what}: {exc}")
    return 0.0


def _act(ctx: typer.Context, make: Callable[[str], A.Action], confirm: bool,
         as_json: bool) -> None:
    out, err = _consoles(as_json)
    state = ctx.obj
    action = make(state.source.officer)
    state.load(err)
    preview = A.dry_run(state.engine, action)
    result = None
    if confirm and preview["ok"]:
        client = state.source.admin()
        try:
            result = action.perform(client)
        except SourceError as exc:
            _fail(str(exc))
        finally:
            client.close()
    if as_json:
        _print_json({"officer": state.source.officer, "confirmed": confirm,
                     "dry_run": preview, "result": result})
    else:
        stops = preview.pop("stop_outs")
        out.print(_kv(("Done: " if result is not None else "Dry run (nothing sent): ")
                      + action.title + f"  [officer {state.source.officer}]", preview))
        if stops:
            out.print(_table("Stop-outs it causes", stops))
        if result is not None:
            out.print(f"server: {json.dumps(result, default=str)[:500]}")
    if not preview["ok"]:
        _fail(f"the engine refuses it: {preview['comment']}")
    if not confirm:
        err.print("[yellow]not sent: add --confirm to do it[/yellow]")
        raise typer.Exit(2)


