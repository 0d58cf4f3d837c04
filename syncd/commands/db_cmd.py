"""`syncd db upgrade|downgrade|current`."""

from __future__ import annotations

from typing import Annotated

import typer

from syncd.context import AppContext, print_json
from syncd.dataverse import db

app = typer.Typer(help="Database schema migrations (alembic).", no_args_is_help=True)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="target revision")] = "head",
) -> None:
    """Upgrade the database schema to REVISION (default: head)."""
    appctx: AppContext = ctx.obj
    engine = appctx.engine(check_head=False)
    before = db.current_revision(engine)
    db.ensure_known_or_empty(engine)
    db.upgrade(engine, revision)
    after = db.current_revision(engine)
    typer.echo(f"database at revision {after} (was {before or 'empty'})")


@app.command("downgrade")
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="target revision, or base")],
) -> None:
    """Downgrade the database schema to REVISION ('base' removes every table)."""
    appctx: AppContext = ctx.obj
    engine = appctx.engine(check_head=False)
    db.downgrade(engine, revision)
    typer.echo(f"database at revision {db.current_revision(engine) or 'base'}")


@app.command("current")
def current(ctx: typer.Context, json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the database's revision and the head this syncd expects."""
    appctx: AppContext = ctx.obj
    engine = appctx.engine(check_head=False)
    cur = db.current_revision(engine)
    head = db.head_revision(appctx.settings.database_url)
    if json:
        print_json({"current": cur, "head": head, "at_head": cur == head})
    else:
        typer.echo(
            f"current {cur or 'empty'}, head {head}{'' if cur == head else ' (run `syncd db upgrade`)'}"
        )
