"""`syncd user|app-user|stub|role ...`: the administrator's operations on one user (syncd.admin).

Exit codes: 0 done; 1 refused by the rules (the failed checks are printed) or the directory could
not be read; 2 bad input, or an unknown environment, user, role or service principal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from syncd.admin import app_users, lookup, modes, roles, stubs, users
from syncd.admin.errors import Refused
from syncd.context import AppContext, print_json
from syncd.directory.client import GraphClient
from syncd.errors import SyncdError
from syncd.rules import Check
from syncd.rules.diagnose import SUSPENDED
from syncd.sync.directory import open_directory
from syncd.sync.embedded import DEFAULT_ENVIRONMENT, ensure_embedded_default

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2

user_app = typer.Typer(
    help="One directory user in one environment: add, first access, refresh, diagnose, access mode.",
    no_args_is_help=True,
)
app_user_app = typer.Typer(help="Application users (R18).", no_args_is_help=True)
stub_app = typer.Typer(help="Stub users from data import (R20).", no_args_is_help=True)
role_app = typer.Typer(help="Security roles of users (R21).", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
EnvArg = Annotated[str, typer.Argument(metavar="ENV", help="environment name")]
UserArg = Annotated[str, typer.Argument(metavar="USER", help="the user's userPrincipalName or object id")]


@contextmanager
def _directory(appctx: AppContext, env: str) -> Iterator[GraphClient]:
    if env == DEFAULT_ENVIRONMENT:
        ensure_embedded_default(appctx)
    with open_directory(appctx.settings) as client:
        yield client


@contextmanager
def _refusals(json: bool) -> Iterator[None]:
    """A refusal prints its failed checks and exits 1; nothing was changed."""
    try:
        yield
    except Refused as exc:
        if json:
            print_json(exc.as_dict())
        else:
            print(f"syncd: refused: {exc}", file=sys.stderr)
            for check in exc.checks:
                print(f"  {check}", file=sys.stderr)
        raise typer.Exit(EXIT_REFUSED) from None


def _checks(checks: Any) -> None:
    for c in checks:
        typer.echo(f"  {c if isinstance(c, Check) else ('PASS ' if c['passed'] else 'FAIL ') + c['message']}")


def _row_line(row: dict[str, Any] | None) -> str:
    if row is None:
        return "no row"
    state = "disabled" if row["isdisabled"] else "enabled"
    roles_ = ", ".join(row["roles"]) or "no roles"
    through = [f"{', '.join(r)} through team {t}" for t, r in row.get("team_roles", {}).items() if r]
    if through:
        roles_ += "; " + "; ".join(through)
    return (
        f"{row['kind']} user {row['domainname']}, {state}, access mode {row['accessmode_name']}, "
        f"{'licensed' if row['islicensed'] else 'not licensed'}, {roles_}"
    )


def _print_user_result(result: users.UserResult) -> None:
    change = "changed" if result.changed else "unchanged"
    typer.echo(
        f"{result.operation} {result.user['key']} in {result.environment}: {result.action} ({result.rule}), {change}"
    )
    typer.echo(f"  {result.reason}")
    if result.via_app_pass:
        typer.echo("  no licence: added through the environment's app-pass capacity (R4b)")
    for message in result.conflicts:
        typer.echo(f"  conflict: {message}")
    typer.echo(f"  row: {_row_line(result.row)}")
    if result.teams is not None:
        # R25, just in time: one line per team, each named by its id and group (names may repeat).
        for t in result.teams.added:
            typer.echo(f"  joined group team {t.label()} (R25, just in time)")
        for t in result.teams.removed:
            typer.echo(f"  left group team {t.label()} (R25, just in time)")
    if result.run_id is not None:
        typer.echo(f"  run {result.run_id}: {result.outcome}")


def _user_op(ctx: typer.Context, op: Any, env: str, user: str, json: bool) -> None:
    appctx: AppContext = ctx.obj
    user = lookup.check_key(user)  # bad input fails before anything is opened or created
    with _refusals(json), _directory(appctx, env) as directory:
        result = op(appctx.engine(), directory, env, user, trigger="cli")
    if json:
        print_json(result.as_dict())
    else:
        _print_user_result(result)
    if result.outcome == "failed":
        raise typer.Exit(EXIT_REFUSED)


@user_app.command("add")
def add(ctx: typer.Context, env: EnvArg, user: UserArg, json: JsonOpt = False) -> None:
    """Add a user on demand (R8), like Add-AdminPowerAppsSyncUser: create or re-enable the row, or
    refuse with the checks that failed."""
    _user_op(ctx, users.add_user, env, user, json)


@user_app.command("access")
def access(ctx: typer.Context, env: EnvArg, user: UserArg, json: JsonOpt = False) -> None:
    """The user's first access to the environment (R7c, R8): the only way rows appear in Teams environments."""
    _user_op(ctx, users.first_access, env, user, json)


@user_app.command("refresh")
def refresh(ctx: typer.Context, env: EnvArg, user: UserArg, json: JsonOpt = False) -> None:
    """Resync one user now by the background sync's rules, disabling included (R23); not for stubs."""
    _user_op(ctx, users.refresh_user, env, user, json)


@user_app.command("diagnose")
def diagnose(ctx: typer.Context, env: EnvArg, user: UserArg, json: JsonOpt = False) -> None:
    """Why the user is or is not enabled, check by check (R22), what the background sync will do next,
    the row and its last events."""
    appctx: AppContext = ctx.obj
    user = lookup.check_key(user)
    with _directory(appctx, env) as directory:
        d = users.diagnose_user(appctx.engine(), directory, env, user)
    if json:
        print_json(d.as_dict())
        return
    u = d.user
    name = u["user_principal_name"] or u["key"]
    if u["in_directory"]:
        where = "in the directory"
    elif u["restorable"]:
        where = "soft-deleted: in the directory's deleted items, restorable"
    else:
        where = "not in the directory"
    typer.echo(f"user {name} ({u['object_id']}, {where}) in environment {d.environment}")
    typer.echo("checks:")
    _checks(d.checks)
    if u["membership_suspended"]:
        if u["membership"] == "unknown":
            typer.echo(
                "membership: not known (the directory lists no group membership of a deleted user); "
                f"{SUSPENDED}"
            )
        else:
            source = (
                "the last sync's view of the group"
                if u["membership_source"] == "last sync"
                else "the directory"
            )
            typer.echo(
                f"membership: {u['membership']} (from {source}); suspended while the user is deleted, "
                "restored with the user"
            )
    if u["restorable"] and not u["admin_roles_known"]:
        typer.echo(f"admin roles: not known (the directory lists no role of a deleted user); {SUSPENDED}")
    typer.echo(f"next background sync: {d.next['action']} ({d.next['rule']}): {d.next['reason']}")
    if d.restore is not None:
        r = d.restore
        if r["enabled"] is None:  # depends on what the directory can't tell while the user is deleted
            typer.echo(f"if restored: {r['summary']}")
            typer.echo(f"  ({r['reason']})")
        else:
            typer.echo(f"if restored: {r['summary']}: {r['reason']}")
    if d.on_demand:
        od = d.on_demand
        verdict = "possible" if od["possible"] else "refused"
        typer.echo(f"on-demand add: {verdict}, {od['action']} ({od['rule']}): {od['reason']}")
    typer.echo(f"row: {_row_line(d.row)}")
    if d.row is not None and "app_access" in d.row:
        access = d.row["app_access"]
        typer.echo(f"  {'PASS' if access['passed'] else 'FAIL'} {access['message']}")
    if d.row is not None:
        typer.echo(f"roles held directly: {', '.join(d.row['roles']) or 'none'}")
    for t in d.teams:
        group = f"group {t['azureactivedirectoryobjectid']}, " if t["azureactivedirectoryobjectid"] else ""
        typer.echo(
            f"roles through team {t['name']} ({group}{t['membershiptype_name']}): {', '.join(t['roles']) or 'none'}"
        )
    if d.events:
        typer.echo("last events:")
        for e in d.events:
            run = f"run {e['run_id']}" if e["run_id"] is not None else "admin"
            typer.echo(f"  {(e['created_at'] or '')[:19]} {e['action']} ({e['rule']}, {run}): {e['reason']}")


@user_app.command("set-mode")
def set_mode(
    ctx: typer.Context,
    env: EnvArg,
    user: UserArg,
    mode: Annotated[
        str,
        typer.Argument(
            metavar="MODE",
            help="one of: " + ", ".join(f"{name} ({number})" for name, number in modes.MODES.items()),
        ),
    ],
    json: JsonOpt = False,
) -> None:
    """Set the user's access mode (R16); at most 7 non-interactive users per environment (R17)."""
    appctx: AppContext = ctx.obj
    modes.parse_mode(mode)  # bad input fails before the directory is opened
    user = lookup.check_key(user)
    with _refusals(json), _directory(appctx, env) as directory:
        result = modes.set_access_mode(appctx.engine(), env, user, mode, directory=directory)
    if json:
        print_json(result.as_dict())
        return
    d = result.as_dict()
    what = "set" if result.changed else "already"
    typer.echo(
        f"{result.user} in {result.environment}: access mode {what} {d['mode_name']} (was {d['old_mode_name']})"
    )
    if result.note:
        typer.echo(f"  note: {result.note}")


@app_user_app.command("create")
def app_user_create(
    ctx: typer.Context,
    env: EnvArg,
    app_id: Annotated[str, typer.Argument(metavar="APP_ID", help="the service principal's appId")],
    json: JsonOpt = False,
) -> None:
    """Create an application user for a service principal of the directory (R18)."""
    appctx: AppContext = ctx.obj
    app_id = app_users.check_app_id(app_id)
    with _refusals(json), _directory(appctx, env) as directory:
        result = app_users.create_app_user(appctx.engine(), directory, env, app_id)
    if json:
        print_json(result.as_dict())
        return
    typer.echo(
        f"created application user {result.display_name} (appId {result.app_id}) in {result.environment}: "
        "enabled, non-interactive"
    )


@stub_app.command("import")
def stub_import(
    ctx: typer.Context,
    env: EnvArg,
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="CSV with at least the columns domainname,fullname")
    ],
    json: JsonOpt = False,
) -> None:
    """Create stub users from a CSV file (R20); a file with any bad line imports nothing."""
    appctx: AppContext = ctx.obj
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise SyncdError(f"can't read {str(file)!r}: {exc.strerror or exc}") from None
    try:
        with _refusals(json), _directory(appctx, env) as directory:
            result = stubs.import_stubs(appctx.engine(), directory, env, data, source=str(file))
    except stubs.BadCsv as exc:
        if json:
            print_json(exc.as_dict())
        else:
            print(
                f"syncd: error: {exc.args[0].split(': ', 1)[0]}: {len(exc.problems)} bad line(s), nothing imported",
                file=sys.stderr,
            )
            for p in exc.problems:
                print(f"  {p}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if json:
        print_json(result.as_dict())
        return
    typer.echo(
        f"imported {len(result.created)} stub user(s) into {result.environment} with the role "
        f"{result.default_role}, owning {result.records} record(s)"
    )
    for c in result.conflicts:
        typer.echo(f"  conflict (line {c['line']}): {c['message']}")


@stub_app.command("reassign")
def stub_reassign(
    ctx: typer.Context,
    env: EnvArg,
    stub: Annotated[str, typer.Argument(metavar="STUB", help="the stub's domainname")],
    target: Annotated[
        str, typer.Argument(metavar="TARGET", help="the user who gets the records (UPN or object id)")
    ],
    json: JsonOpt = False,
) -> None:
    """Move a stub user's records to another user (R20)."""
    appctx: AppContext = ctx.obj
    stub = lookup.check_key(stub, "stub user")
    target = lookup.check_key(target, "target user")
    with _refusals(json), _directory(appctx, env) as directory:
        result = stubs.reassign_stub(appctx.engine(), env, stub, target, directory=directory)
    if json:
        print_json(result.as_dict())
        return
    typer.echo(
        f"reassigned {result.records} record(s) of stub {result.stub} to {result.target} in {result.environment}"
    )


def _role_op(ctx: typer.Context, op: Any, env: str, user: str, role: str, json: bool) -> None:
    appctx: AppContext = ctx.obj
    user = lookup.check_key(user)
    with _refusals(json), _directory(appctx, env) as directory:
        result = op(appctx.engine(), env, user, role, directory=directory)
    if json:
        print_json(result.as_dict())
        return
    what = {"assign": "assigned" if result.changed else "already held", "remove": "removed"}[result.operation]
    typer.echo(
        f"role {result.role} {what}: {result.user} in {result.environment} (roles: {', '.join(result.roles) or 'none'})"
    )


RoleArg = Annotated[str, typer.Argument(metavar="ROLE", help="security role name, e.g. 'Basic User'")]


@role_app.command("assign")
def role_assign(ctx: typer.Context, env: EnvArg, user: UserArg, role: RoleArg, json: JsonOpt = False) -> None:
    """Assign a security role: only to an enabled user unless the environment allows it (R21)."""
    _role_op(ctx, roles.assign_role, env, user, role, json)


@role_app.command("remove")
def role_remove(ctx: typer.Context, env: EnvArg, user: UserArg, role: RoleArg, json: JsonOpt = False) -> None:
    """Remove a security role from a user."""
    _role_op(ctx, roles.remove_role, env, user, role, json)
