"""`syncd sync ENV` (`syncd runs [ENV]` is in runs_cmd).

A run's modules are imported when it runs, each where it is needed: its help imports no more than
typer, and a run never loads the ORM, the embedded fake tenant (unless ENV is `default` on the
embedded directory), nor rich's progress bar unless stdout is a terminal, nor rich at all with
--json when nothing else needs it (tests/foundation/test_cli_lazy.py).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from syncd.errors import Conflict

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from syncd.context import AppContext
    from syncd.directory.client import GraphClient
    from syncd.settings import Settings
    from syncd.sync.run import RunOptions, RunReport

# The embedded default's environment (syncd.sync.embedded.DEFAULT_ENVIRONMENT, which test_cli_lazy
# holds this in step with): named here so that any other ENV does not import the embedded set-up.
DEFAULT_ENVIRONMENT = "default"

# The exit codes of `syncd sync` (also in its help text and the README).
EXIT_SUCCEEDED = 0  # succeeded, or a dry run
EXIT_FAILED = 1  # the run failed; or, with --check, something would change
EXIT_BAD_INPUT = 2  # bad input or refused (SyncdError's exit code): nothing was run
EXIT_BLOCKED = 3  # blocked by the mass-disable guard
EXIT_PARTIAL = 4  # the run finished, but some rows failed to be written


def sync(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(metavar="ENV", help="environment name")],
    full: Annotated[bool, typer.Option("--full", help="read the whole directory")] = False,
    delta: Annotated[bool, typer.Option("--delta", help="read only what changed since the last run")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; write nothing")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="like --dry-run, and exit 1 when something would change")
    ] = False,
    allow_mass_disable: Annotated[
        bool, typer.Option("--allow-mass-disable", help="apply disables over the mass-disable threshold")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Sync one environment now.

    Without --full or --delta, a delta run when there is a checkpoint, else a full run.

    \b
    Exit codes:
      0  succeeded, or a dry run (--dry-run; --check when nothing would change)
      1  failed; or, with --check, something would change
      2  bad input or refused (an unknown environment, another process syncing it)
      3  blocked by the mass-disable guard: no one was disabled (see --allow-mass-disable)
      4  partial: the run finished, but some rows failed (the report's "failed" count)
    """
    if full and delta:
        raise typer.BadParameter("--full and --delta exclude each other", ctx=ctx)
    from syncd.context import print_json
    from syncd.dataverse.rows import load_environment
    from syncd.service.locks import locks_for
    from syncd.sync.run import RunOptions

    appctx: AppContext = ctx.obj
    if env == DEFAULT_ENVIRONMENT:
        from syncd.sync.embedded import ensure_embedded_default

        ensure_embedded_default(appctx)
    kind = "full" if full else "delta" if delta else "auto"
    engine = appctx.engine()
    with engine.connect() as connection:
        env_id = load_environment(connection, env).id
    with locks_for(engine).hold(env_id) as held:
        if not held:
            raise Conflict(
                f"environment {env!r} is being synced by another process (a `syncd run` replica?); "
                "try again when that run ends"
            )
        options = RunOptions(
            kind=kind,
            dry_run=dry_run or check,
            allow_mass_disable=allow_mass_disable or None,
            trigger="cli",
            # Under the environment's lock (an advisory lock on PostgreSQL, a file lock beside a
            # SQLite file) no other run of it is alive: runs it left 'running' are closed.
            holds_lock=True,
        )
        report = _run(appctx, engine, env, options, json, held.connection)
    if json:
        print_json(report.as_dict())
    else:
        _print_report(appctx, report)
    if report.outcome == "failed":
        raise typer.Exit(EXIT_FAILED)
    if report.outcome == "blocked":
        raise typer.Exit(EXIT_BLOCKED)
    if report.outcome == "partial":
        raise typer.Exit(EXIT_PARTIAL)
    if check and report.changes:
        raise typer.Exit(EXIT_FAILED)


def open_directory(settings: Settings) -> GraphClient:
    """syncd.sync.directory.open_directory, imported on first use (tests replace this one)."""
    from syncd.sync.directory import open_directory

    return open_directory(settings)


def sync_environment(*args: Any, **kwargs: Any) -> RunReport:
    """syncd.sync.run.sync_environment, imported on first use (tests replace this one)."""
    from syncd.sync.run import sync_environment

    return sync_environment(*args, **kwargs)


def _run(
    appctx: AppContext, engine: Engine, env: str, options: RunOptions, json: bool, connection: Any
) -> RunReport:
    """The run, on the lock's connection where the lock has one (PostgreSQL)."""
    with open_directory(appctx.settings) as directory:
        if sys.stdout.isatty() and not json:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.completed:,} users"),
                TimeElapsedColumn(),
                transient=True,
            ) as bar:
                task = bar.add_task(f"syncing {env}", total=None)
                return sync_environment(
                    engine,
                    directory,
                    env,
                    appctx.settings,
                    options,
                    progress=lambda _what, n: bar.advance(task, n),
                    connection=connection,
                )
        return sync_environment(engine, directory, env, appctx.settings, options, connection=connection)


def _print_report(appctx: AppContext, report: RunReport) -> None:
    from rich.table import Table

    console = appctx.console
    if report.planned:
        plan = Table("action", "user", "rule", "reason", title="plan (dry run)")
        for op in report.planned[:200]:
            plan.add_row(
                op["action"] + (" (blocked)" if op.get("blocked") else ""),
                str(op["domainname"]),
                op["rule"],
                op["reason"],
            )
        console.print(plan)
        if len(report.planned) > 200:
            console.print(f"... and {len(report.planned) - 200} more operations")
    kind = (
        report.kind
        if report.kind == report.requested_kind
        else f"{report.kind} (asked {report.requested_kind})"
    )
    table = Table(title=f"sync {report.environment}: {report.outcome}", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("run", f"{report.run_id or '-'} ({kind})")
    c = report.counts
    for key, label in (
        ("read", "users read"),
        ("created", "created"),
        ("updated", "updated"),
        ("enabled", "enabled"),
        ("disabled", "disabled"),
        ("unchanged", "unchanged"),
        ("failed", "failed"),
        ("blocked_disables", "disables blocked"),
    ):
        table.add_row(label, f"{c[key]:,}")
    table.add_row("seconds", f"{report.duration_s:.2f}")
    console.print(table)
    if report.error:
        console.print(f"[bold]{report.outcome}:[/bold] {report.error}")
    elif report.outcome == "partial":
        console.print(
            f"[bold]partial:[/bold] {c['failed']:,} row(s) failed, each with its event in run {report.run_id}"
        )
