"""`syncd env create|set|list|show|resume`."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from syncd.context import AppContext, print_json
from syncd.dataverse import environments as envs
from syncd.dataverse.schema import ENV_TYPES
from syncd.errors import SyncdError
from syncd.service import quarantine

if TYPE_CHECKING:
    from syncd.directory.client import GraphClient

# The admin layer, the directory client and the locks are imported by the commands that use them:
# `syncd env list` and `syncd env show` only read the database.

app = typer.Typer(help="Dataverse environments: create, change, list, show, resume.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="unique environment name")],
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
    if spec.security_group_id is not None:
        from syncd.admin import env_settings

        _warn(env_settings.check_security_group(lambda: _open_directory(appctx), spec.security_group_id))
    with appctx.session() as session:
        env = envs.create_environment(session, spec)
        info = envs.describe(env) | {"users": envs.user_counts(session, env.id)}
    if appctx.settings.dataverse_api:
        from syncd.webapi.urls import web_api_url

        info["web_api_url"] = web_api_url(appctx.settings.dataverse_api_base_url, env.name)
    if json:
        print_json(info)
    else:
        typer.echo(f"created environment {name!r} ({spec.type}, {info['users']['total']} built-in users)")


@app.command("set")
def set_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="environment name")],
    security_group: Annotated[
        str | None,
        typer.Option(
            "--security-group",
            help="object id of the security group scoping users (R5); the next run is a full run",
        ),
    ] = None,
    no_security_group: Annotated[
        bool, typer.Option("--no-security-group", help="no security group: every user is in scope")
    ] = False,
    type: Annotated[str | None, typer.Option("--type", help=f"one of: {', '.join(ENV_TYPES)}")] = None,
    app_pass_capacity: Annotated[
        int | None, typer.Option("--app-pass-capacity", help="app passes left, for on-demand adds (R4b)")
    ] = None,
    sales: Annotated[
        bool | None,
        typer.Option("--sales/--no-sales", help="a Sales environment (stubs get Salesperson, R20)"),
    ] = None,
    allow_role_assignment_on_disabled_users: Annotated[
        bool | None,
        typer.Option(
            "--allow-role-assignment-on-disabled-users/--no-allow-role-assignment-on-disabled-users",
            help="R21's environment setting",
        ),
    ] = None,
    marketing: Annotated[
        bool | None,
        typer.Option(
            "--marketing/--no-marketing", help="the tenant has a tenant-level Marketing licence (R4c)"
        ),
    ] = None,
    created_by: Annotated[
        str | None,
        typer.Option("--created-by", help="object id of the creator (developer environments, R7d)"),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Change an environment's settings. A change of who the background sync adds or keeps (a new
    security group or --no-security-group, a new type, a developer environment's creator, app
    passes or the Marketing licence coming or going) makes its next run a full run; the group is
    checked against the directory when the directory can be read."""
    appctx: AppContext = ctx.obj
    if security_group is not None and no_security_group:
        raise SyncdError("--security-group and --no-security-group exclude each other")
    values: dict[str, Any] = {
        k: v
        for k, v in {
            "type": type,
            "security_group_id": security_group,
            "app_pass_capacity": app_pass_capacity,
            "is_sales": sales,
            "allow_role_assignment_on_disabled_users": allow_role_assignment_on_disabled_users,
            "tenant_has_marketing_licence": marketing,
            "created_by_object_id": created_by,
        }.items()
        if v is not None
    }
    if no_security_group:
        values["security_group_id"] = None
    if not values:
        raise SyncdError(
            "nothing to change: give at least one of --security-group, --no-security-group, --type, "
            "--app-pass-capacity, --sales/--no-sales, --allow-role-assignment-on-disabled-users/--no-..., "
            "--marketing/--no-marketing, --created-by"
        )
    envs.check_settings(values)  # bad values fail before the database or the directory is opened
    engine = appctx.engine()
    from syncd.admin import env_settings
    from syncd.service.locks import locks_for

    result = env_settings.set_environment(
        engine, name, values, directory=lambda: _open_directory(appctx), hold=locks_for(engine).hold
    )
    for warning in result.warnings:
        _warn(warning)
    if json:
        print_json(result.as_dict())
        return
    if not result.changed:
        typer.echo(f"environment {name!r}: nothing changed")
        return
    changes = ", ".join(f"{k} {_shown(c['old'])} -> {_shown(c['new'])}" for k, c in result.changed.items())
    typer.echo(f"environment {name!r}: {changes}")
    if result.full_run_next:
        what = ", ".join(f"the {envs.SCOPE_LABELS[k]}" for k in result.scope_changed) or "the scope"
        typer.echo(f"  {what} changed who the background sync adds or keeps: the next run is a full run")


def _open_directory(appctx: AppContext) -> AbstractContextManager[GraphClient]:
    """The configured directory, asked once, without the long retries of a sync run."""
    from syncd.sync.directory import open_directory

    return open_directory(appctx.settings, max_retries=1, timeout=10.0)


def _warn(warning: str | None) -> None:
    if warning:
        print(f"syncd: warning: {warning}", file=sys.stderr)


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


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
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="environment name")],
    json: JsonOpt = False,
) -> None:
    """Show one environment's settings, user counts and quarantine state."""
    appctx: AppContext = ctx.obj
    policy = quarantine.QuarantinePolicy.from_settings(appctx.settings)
    with appctx.session() as session:
        env = envs.get_environment(session, name)
        state = quarantine.read_state(session, env.id, policy)
        info = envs.describe(env) | {"users": envs.user_counts(session, env.id)}
    if appctx.settings.dataverse_api:
        from syncd.webapi.urls import web_api_url

        info["web_api_url"] = web_api_url(appctx.settings.dataverse_api_base_url, env.name)
    if json:
        print_json(info | {"quarantine": state.as_dict()})
        return
    table = Table("field", "value", show_header=False)
    for k, v in info.items():
        table.add_row(k, str(v))
    table.add_row("quarantine", state.describe())
    appctx.console.print(table)


@app.command("resume")
def resume(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="environment name")],
    json: JsonOpt = False,
) -> None:
    """Take an environment out of quarantine: the failed runs so far stop counting, so the daemon's
    next scheduled run goes ahead. Idempotent; an unknown name is an error (exit 2)."""
    appctx: AppContext = ctx.obj
    policy = quarantine.QuarantinePolicy.from_settings(appctx.settings)
    result = quarantine.resume(appctx.engine(), name, policy)
    if json:
        print_json(result.as_dict())
        return
    typer.echo(result.describe())
