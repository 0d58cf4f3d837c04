"""`syncd config show`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from syncd.context import AppContext, print_json

app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)


@app.command("show")
def show(
    ctx: typer.Context, json: Annotated[bool, typer.Option("--json", help="print JSON")] = False
) -> None:
    """Print the effective settings (command line > SYNCD_* variables > syncd.toml > defaults), secrets masked."""
    appctx: AppContext = ctx.obj
    values = appctx.settings.masked()
    if json:
        print_json(values)
        return
    table = Table("setting", "value", "variable")
    for key, value in values.items():
        table.add_row(key, str(value), f"SYNCD_{key.upper()}")
    appctx.console.print(table)
