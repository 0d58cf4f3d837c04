"""`syncd env create|list|show`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from syncd.context import AppContext, print_json
from syncd.dataverse import environments as envs
from syncd.dataverse.schema import ENV_TYPES

app = typer.Typer(help="Dataverse environments: create, list, show.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="unique environment name")],
    type: Annotated[str, typer.Option("--type", help=f"one of: {', '.join(ENV_TYPES)}")] = "production",
    security_group: Annotated[
        str | None,
        typer.Option("--security-group", help="object id of the security group scoping users (R5)"),
    ] = None,
    no_database: Annotated[
        bool, typer.Option("--no-database", help="no Dataverse database: never holds users (R1)")
    ] = False,
    app_pass_capacity: Annotated[
        int, typer.Option("--app-pass-capacity", help="app passes left, for on-demand adds (R4b)")
    ] = 0,
    marketing: Annotated[
        bool, typer.Option("--marketing", help="the tenant has a tenant-level Marketing licence (R4c)")
    ] = False,
    sales: Annotated[
        bool, typer.Option("--sales", help="a Sales environment (stubs get Salesperson, R20)")
    ] = False,
    created_by: Annotated[
        str | None,
        typer.Option("--created-by", help="object id of the creator (developer environments, R7d)"),
    ] = None,
    allow_role_assignment_on_disabled_users: Annotated[
        bool, typer.Option("--allow-role-assignment-on-disabled-users", help="R21's environment setting")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Create an environment; with a database, also its support and delegated-admin users (R19) and roles."""
    appctx: AppContext = ctx.obj
    spec = envs.EnvironmentSpec(
        name=name,
        type=type.lower(),
        has_database=not no_database,
        security_group_id=security_group,
        app_pass_capacity=app_pass_capacity,
        tenant_has_marketing_licence=marketing,
        is_sales=sales,
        created_by_object_id=created_by,
        allow_role_assignment_on_disabled_users=allow_role_assignment_on_disabled_users,
    ).normalized()
    with appctx.session() as session:
        env = envs.create_environment(session, spec)
        info = envs.describe(env) | {"users": envs.user_counts(session, env.id)}
    if json:
        print_json(info)
    else:
        typer.echo(f"created environment {name!r} ({spec.type}, {info['users']['total']} built-in users)")


@app.command("list")
def list_(ctx: typer.Context, json: JsonOpt = False) -> None:
    """List environments with their user counts."""
    appctx: AppContext = ctx.obj
    with appctx.session() as session:
        rows = [
            envs.describe(e) | {"users": envs.user_counts(session, e.id)}
            for e in envs.list_environments(session)
        ]
    if json:
        print_json(rows)
        return
    table = Table("name", "type", "database", "security group", "enabled", "disabled")
    for r in rows:
        table.add_row(
            r["name"],
            r["type"],
            "yes" if r["has_database"] else "no",
            r["security_group_id"] or "-",
            str(r["users"]["enabled"]),
            str(r["users"]["disabled"]),
        )
    appctx.console.print(table)


@app.command("show")
def show(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="environment name")], json: JsonOpt = False
) -> None:
    """Show one environment's settings and user counts."""
    appctx: AppContext = ctx.obj
    with appctx.session() as session:
        env = envs.get_environment(session, name)
        info = envs.describe(env) | {"users": envs.user_counts(session, env.id)}
    if json:
        print_json(info)
        return
    table = Table("field", "value", show_header=False)
    for k, v in info.items():
        table.add_row(k, str(v))
    appctx.console.print(table)
