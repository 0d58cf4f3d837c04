"""`syncd team create|list|show|role assign|role remove` and `syncd role assign-group`: group teams (R25).

Exit codes: 0 done; 1 the directory could not be read; 2 bad input (a malformed or unknown group id,
an unknown environment, team, role or membership type, a second team for the same group and
membership type), with a one-line error naming the value and nothing written.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from syncd.admin import teams
from syncd.commands.admin_cmd import EnvArg, JsonOpt, _directory, role_app
from syncd.context import AppContext, print_json
from syncd.rules import MEMBERSHIP_TYPES

team_app = typer.Typer(
    help="Group teams: an Entra group's team and its security roles (R25).", no_args_is_help=True
)
team_role_app = typer.Typer(help="Security roles of a team (R21, R25).", no_args_is_help=True)
team_app.add_typer(team_role_app, name="role")

MEMBERSHIP_HELP = f"membership type: one of {', '.join(MEMBERSHIP_TYPES)}"
GroupArg = Annotated[str, typer.Argument(metavar="GROUP", help="the Entra group's object id")]
TeamArg = Annotated[
    str, typer.Argument(metavar="TEAM", help="the team's id, its group's object id, or its name")
]
RoleArg = Annotated[str, typer.Argument(metavar="ROLE", help="security role name, e.g. 'Basic User'")]
MembershipOpt = Annotated[
    str | None, typer.Option("--membership", help=MEMBERSHIP_HELP + " (picks among a group's teams)")
]


def _line(t: dict[str, Any]) -> str:
    roles = ", ".join(t["roles"]) or "no roles"
    return (
        f"{t['name']} ({t['teamid']}): {t['teamtype_name']} {t['azureactivedirectoryobjectid']}, "
        f"{t['membershiptype_name']}, {t['member_count']} member(s), roles: {roles}"
    )


def _print_team(result: teams.TeamResult, json: bool, verb: str) -> None:
    if json:
        print_json(result.as_dict())
        return
    typer.echo(f"{verb}: {_line(result.team)}")
    for note in result.notes:
        typer.echo(f"  note: {note}")


@team_app.command("create")
def create(
    ctx: typer.Context,
    env: EnvArg,
    group: Annotated[
        str, typer.Option("--group", help="the Entra group's object id (a security or Microsoft 365 group)")
    ],
    membership: Annotated[str, typer.Option("--membership", help=MEMBERSHIP_HELP)] = "members-and-guests",
    role: Annotated[
        list[str] | None, typer.Option("--role", help="a security role the team holds (repeatable)")
    ] = None,
    administrator: Annotated[
        str | None,
        typer.Option(
            "--administrator",
            help="a user of the environment (UPN or object id); default: the built-in support user",
        ),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Create the group team of an Entra group (R25), named after the group, in the root business unit."""
    appctx: AppContext = ctx.obj
    gid = teams.check_group_id(group)  # bad input fails before anything is opened
    mtype = teams.check_membership(membership)
    with _directory(appctx, env) as directory:
        result = teams.create_team(
            appctx.engine(),
            directory,
            env,
            gid,
            membership=mtype,
            roles=role or (),
            administrator=administrator,
        )
    _print_team(result, json, f"created team in {result.environment}")


@team_app.command("list")
def list_(ctx: typer.Context, env: EnvArg, json: JsonOpt = False) -> None:
    """The environment's teams, with their group, membership type, member count and roles."""
    appctx: AppContext = ctx.obj
    result = teams.list_teams(appctx.engine(), env)
    if json:
        print_json(result.as_dict())
        return
    if not result.teams:
        typer.echo(f"no teams in {result.environment}")
    for t in result.teams:
        typer.echo(_line(t))


@team_app.command("show")
def show(
    ctx: typer.Context, env: EnvArg, team: TeamArg, membership: MembershipOpt = None, json: JsonOpt = False
) -> None:
    """One team, with its members."""
    appctx: AppContext = ctx.obj
    result = teams.show_team(appctx.engine(), env, team, membership=membership)
    if json:
        print_json(result.as_dict())
        return
    t = result.team
    typer.echo(_line(t))
    typer.echo(f"  business unit {t['businessunitid']}, administrator {t['administrator']}")
    for m in t.get("members", []):
        typer.echo(f"  member {m['domainname']}{' (disabled)' if m['isdisabled'] else ''}")


@team_role_app.command("assign")
def team_role_assign(
    ctx: typer.Context,
    env: EnvArg,
    team: TeamArg,
    role: RoleArg,
    membership: MembershipOpt = None,
    json: JsonOpt = False,
) -> None:
    """Give a team a security role: its members hold it (R21, R25)."""
    appctx: AppContext = ctx.obj
    result = teams.assign_team_role(appctx.engine(), env, team, role, membership=membership)
    _print_team(result, json, f"role {result.role} {'assigned' if result.changed else 'already held'}")


@team_role_app.command("remove")
def team_role_remove(
    ctx: typer.Context,
    env: EnvArg,
    team: TeamArg,
    role: RoleArg,
    membership: MembershipOpt = None,
    json: JsonOpt = False,
) -> None:
    """Take a security role away from a team."""
    appctx: AppContext = ctx.obj
    result = teams.remove_team_role(appctx.engine(), env, team, role, membership=membership)
    _print_team(result, json, f"role {result.role} removed")


@role_app.command("assign-group")
def role_assign_group(
    ctx: typer.Context,
    env: EnvArg,
    group: GroupArg,
    role: RoleArg,
    membership: Annotated[str, typer.Option("--membership", help=MEMBERSHIP_HELP)] = "members-and-guests",
    json: JsonOpt = False,
) -> None:
    """Assign a security role to an Entra group (R25): to its group team of that membership type,
    created just in time when the environment has none."""
    appctx: AppContext = ctx.obj
    gid = teams.check_group_id(group)
    mtype = teams.check_membership(membership)
    with _directory(appctx, env) as directory:
        result = teams.assign_group_role(appctx.engine(), directory, env, gid, role, membership=mtype)
    verb = f"role {result.role} {'assigned' if result.changed else 'already held'}"
    if result.created:
        verb += " (team created just in time)"
    _print_team(result, json, verb)
