"""`syncd runs [ENV]`: the recent sync runs. It only reads the database, so it loads no more than
that needs: not the sync engine, the directory client or alembic, nor the ORM (the runs are read
through Core, syncd.dataverse.rows), nor rich with --json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from syncd.context import AppContext, print_json

if TYPE_CHECKING:
    from sqlalchemy import Row

MAX_RUNS_LISTED = 2**31 - 1  # a 32-bit LIMIT: any larger number lists them all as well


def runs(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Argument(metavar="ENV", help="only this environment")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_RUNS_LISTED, help="how many runs")] = 20,
    json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List recent sync runs, newest first."""
    # Imported here, so that `syncd runs --help` loads neither the database nor rich's tables.
    from sqlalchemy import select

    from syncd.dataverse.rows import ENVIRONMENT, SYNC_RUN, load_environment

    appctx: AppContext = ctx.obj
    with appctx.engine().begin() as connection:
        q = (
            select(SYNC_RUN, ENVIRONMENT.c.name.label("environment_name"))
            .join(ENVIRONMENT, ENVIRONMENT.c.id == SYNC_RUN.c.environment_id)
            .order_by(SYNC_RUN.c.id.desc())
            .limit(limit)
        )
        if env is not None:
            # An unknown environment is an error (exit code 2), as for every other command: not an
            # empty list that reads as "no runs yet".
            q = q.where(SYNC_RUN.c.environment_id == load_environment(connection, env).id)
        rows = [_run_dict(r) for r in connection.execute(q).all()]
    if json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("id", "environment", "kind", "started (UTC)", "outcome", "changes", "seconds")
    for r in rows:
        changes = (
            f"+{r['created']} ~{r['updated']} on {r['enabled']} off {r['disabled']}"
            + (f" failed {r['failed']}" if r["failed"] else "")
            + (f" blocked {r['blocked_disables']}" if r["blocked_disables"] else "")
        )
        table.add_row(
            str(r["id"]),
            r["environment"],
            r["kind"],
            r["started_at"][:19].replace("T", " "),
            r["outcome"] + (f": {r['error'][:60]}" if r["error"] else ""),
            changes,
            "" if r["duration_s"] is None else f"{r['duration_s']:.2f}",
        )
    appctx.console.print(table)


def _run_dict(r: Row[Any]) -> dict[str, Any]:
    duration = (r.finished_at - r.started_at).total_seconds() if r.finished_at and r.started_at else None
    return {
        "id": r.id,
        "environment": r.environment_name,
        "kind": r.kind,
        "requested_kind": r.requested_kind,
        "trigger": r.trigger,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "outcome": r.outcome,
        "read": r.read,
        "created": r.created,
        "updated": r.updated,
        "enabled": r.enabled,
        "disabled": r.disabled,
        "unchanged": r.unchanged,
        "failed": r.failed,
        "blocked_disables": r.blocked_disables,
        "duration_s": duration,
        "error": r.error,
    }
