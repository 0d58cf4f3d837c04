"""`syncd entra …`: generate, churn and serve a fake tenant (mounted by the main CLI)."""

from __future__ import annotations

import sys

import orjson
import typer

DEFAULT_STORE = "./syncd-tenant.db"

entra_app = typer.Typer(help="The fake Entra directory: a Graph v1.0 look-alike.", no_args_is_help=True)


def _print_json(obj: object) -> None:
    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


@entra_app.command()
def generate(
    users: int = typer.Option(..., "--users", min=0, help="How many users."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same tenant."),
    store: str = typer.Option(DEFAULT_STORE, "--store", help="The tenant file (SQLite)."),
    group_size: int | None = typer.Option(None, "--group-size", min=0, help="Members of 'Dataverse Users'."),
    admins_per_role: int | None = typer.Option(None, "--admins-per-role", min=0),
    json_out: bool = typer.Option(False, "--json", help="Print the full summary as JSON."),
) -> None:
    """Replace the tenant in STORE with a generated one."""
    from syncd.directory.fake.generator import generate_tenant
    from syncd.directory.fake.store import TenantStore

    tenant = TenantStore.open(store)
    try:
        if sys.stderr.isatty() and not json_out:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            ) as bar:
                task = bar.add_task("users", total=users)
                summary = generate_tenant(
                    tenant,
                    users,
                    seed,
                    group_size=group_size,
                    admins_per_role=admins_per_role,
                    progress=lambda done, total: bar.update(task, completed=done),
                )
        else:
            summary = generate_tenant(
                tenant, users, seed, group_size=group_size, admins_per_role=admins_per_role
            )
    finally:
        tenant.close()
    if json_out:
        _print_json(summary)
        return
    rate = users / summary["seconds"] if summary["seconds"] else 0.0
    typer.echo(
        f"generated {users} users (seed {seed}) into {store} in {summary['seconds']:.1f}s ({rate:,.0f}/s)"
    )
    for name, count in summary["categories"].items():
        typer.echo(f"  {name:<26}{count:>10}")
    for group in summary["groups"].values():
        typer.echo(f"  group {group['displayName']!r}: {group['members']} direct members, id {group['id']}")


@entra_app.command()
def churn(
    changes: int = typer.Option(..., "--changes", min=0, help="How many changes."),
    seed: int = typer.Option(0, "--seed"),
    store: str = typer.Option(DEFAULT_STORE, "--store"),
    json_out: bool = typer.Option(False, "--json", help="Print the full summary (ids touched) as JSON."),
) -> None:
    """Apply a random, realistic mix of changes to the tenant in STORE."""
    from syncd.directory.fake.churn import apply_churn
    from syncd.directory.fake.store import TenantStore

    tenant = TenantStore.open(store)
    try:
        summary = apply_churn(tenant, changes, seed)
    finally:
        tenant.close()
    if json_out:
        _print_json(summary)
        return
    typer.echo(f"applied {summary['changes']} changes (seed {seed}) to {store}")
    for kind, count in summary["counts"].items():
        typer.echo(f"  {kind:<16}{count:>8}")


@entra_app.command()
def serve(
    port: int = typer.Option(8765, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    store: str = typer.Option(DEFAULT_STORE, "--store"),
    token: str | None = typer.Option(None, "--token", help="Accept only this bearer token (default: any)."),
) -> None:
    """Serve the tenant in STORE as Microsoft Graph v1.0 (and /_sim/ controls)."""
    import uvicorn

    from syncd.directory.fake.server import create_app
    from syncd.directory.fake.store import TenantStore

    app = create_app(TenantStore.open(store), token=token)
    typer.echo(f"serving {store} at http://{host}:{port}/v1.0", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
