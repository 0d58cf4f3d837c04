"""Group teams (R25): create, list, show, their security roles, and just-in-time membership.

A group team ties an environment to one Entra group and a membership type (members and guests,
members, owners, guests) and holds security roles that its members hold through it (R21).

* Created by an administrator (``create_team``) or just in time when a role is assigned to a group
  that has no team of that membership type yet (``assign_group_role``). The group is looked up in
  the directory: an unknown group is bad input; a directory that can't be read is
  ``DirectoryFailed`` (the team takes its name and type from the group, so nothing is guessed).
  Its name is the group's displayName, fitted to the column as sync fits a user's columns (R10,
  ``fit_value``: control characters removed, cut to 160 characters, code points), with a warning
  in the log and a note in the result when it had to change (a blank displayName gives the
  group's object id, so that every team has a name it can be found by; surrounding spaces are
  kept, and ``find_team`` finds the name with or without them); its type 2 (security group) or 3 (Microsoft 365 group,
  "Unified" in ``groupTypes``); it goes to the environment's root business unit (R26); its
  administrator is the environment's built-in support user (R19) unless an administrator names a
  user of the environment.
* One team per group and membership type per environment: a second is a Conflict.
* Membership is updated just in time (``syncd.admin.memberships``), by the one-user operations of
  ``syncd.admin.users`` (first access, on-demand add, refresh): never by the background sync.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.admin import lookup
from syncd.admin.errors import DirectoryFailed
from syncd.admin.roles import find_role
from syncd.dataverse.environments import SUPPORT_UPN, get_environment, root_business_unit, shown
from syncd.dataverse.lengths import TEAM_NAME_LENGTH
from syncd.dataverse.schema import (
    TEAM_TYPES,
    Environment,
    Role,
    SystemUser,
    Team,
    TeamMembership,
    TeamRole,
    utcnow,
)
from syncd.dataverse.textfold import asciifold, casefold, fold_ascii, fold_text
from syncd.directory.client import GraphClient
from syncd.directory.errors import DirectoryError
from syncd.directory.ids import normalize_object_id
from syncd.directory.models import DirectoryGroup
from syncd.errors import Conflict, NotFound, SyncdError
from syncd.rules import MEMBERSHIP_NAMES, group_team_type, membership_type
from syncd.rules.columns import fit_value

log = structlog.get_logger(__name__)


# -- shapes ----------------------------------------------------------------------------------------


def team_dict(session: Session, team: Team, *, members: bool = False) -> dict[str, Any]:
    """A team as the CLI and the API show it: ids, name, type and membership type (number and
    name), business unit, administrator, its roles, its member count and, with ``members``, its
    members (systemuserid, domainname, object id)."""
    roles = list(
        session.scalars(
            select(Role.name)
            .join(TeamRole, TeamRole.roleid == Role.roleid)
            .where(TeamRole.teamid == team.teamid)
            .order_by(Role.name)
        )
    )
    admin = session.get(SystemUser, team.administratorid)
    count = session.scalar(select(func.count()).where(TeamMembership.teamid == team.teamid)) or 0
    out: dict[str, Any] = {
        "teamid": str(team.teamid),
        "name": team.name,
        "teamtype": team.teamtype,
        "teamtype_name": TEAM_TYPES.get(team.teamtype),
        "azureactivedirectoryobjectid": _str(team.azureactivedirectoryobjectid),
        "membershiptype": team.membershiptype,
        "membershiptype_name": MEMBERSHIP_NAMES.get(team.membershiptype),
        "businessunitid": str(team.businessunitid),
        "administratorid": str(team.administratorid),
        "administrator": admin.domainname if admin is not None else None,
        "roles": roles,
        "member_count": count,
        "createdon": team.createdon.isoformat() if team.createdon else None,
    }
    if members:
        q = (
            select(SystemUser)
            .join(TeamMembership, TeamMembership.systemuserid == SystemUser.systemuserid)
            .where(TeamMembership.teamid == team.teamid)
            .order_by(SystemUser.domainname)
        )
        out["members"] = [
            {
                "systemuserid": str(u.systemuserid),
                "domainname": u.domainname,
                "azureactivedirectoryobjectid": _str(u.azureactivedirectoryobjectid),
                "isdisabled": u.isdisabled,
            }
            for u in session.scalars(q)
        ]
    return out


@dataclass
class TeamResult:
    """What a team operation did: the team after it, and whether anything changed."""

    operation: str  # "create", "show", "assign_role", "remove_role"
    environment: str
    team: dict[str, Any]
    changed: bool
    created: bool = False  # the team was created (by ``create`` or just in time)
    role: str | None = None
    notes: list[str] = field(default_factory=list)  # e.g. the group's name had to be cut to fit

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "environment": self.environment,
            "changed": self.changed,
            "created": self.created,
            "role": self.role,
            "team": self.team,
            "notes": self.notes,
        }


@dataclass
class TeamList:
    environment: str
    teams: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "teams": self.teams}


# -- checks ----------------------------------------------------------------------------------------


def check_group_id(value: object) -> str:
    """A group object id in its canonical spelling; SyncdError naming the value otherwise."""
    if not isinstance(value, str):
        raise SyncdError(f"invalid group id {value!r}: expected an object id (GUID)")
    try:
        return normalize_object_id(value.strip())
    except ValueError:
        raise SyncdError(f"invalid group id {value!r}: expected an object id (GUID)") from None


def check_membership(value: object) -> int:
    try:
        return membership_type(value)
    except ValueError as exc:
        raise SyncdError(str(exc)) from None


def read_group(directory: GraphClient, group_id: str) -> DirectoryGroup:
    """The group from the directory: SyncdError (bad input) when it has no such group,
    DirectoryFailed when it can't be read."""
    try:
        group = directory.get_group(group_id)
    except (DirectoryError, OSError) as exc:
        raise DirectoryFailed(f"the directory could not be read (group {group_id}): {exc}") from exc
    if group is None:
        raise SyncdError(f"unknown group {group_id!r}: the directory has no group with this id")
    return group


def _environment(session: Session, name: str) -> Environment:
    env = get_environment(session, name)
    if not env.has_database:
        raise SyncdError(f"environment {env.name!r} has no Dataverse database (R1): it has no teams")
    return env


def _str(value: object) -> str | None:
    return None if value is None else str(value)


# -- finding a team --------------------------------------------------------------------------------


def find_team(session: Session, env: Environment, key: str, membership: int | None = None) -> Team:
    """The environment's team named by ``key``: its team id, its group's object id (with
    ``membership`` when the group has several teams), or its name, ignoring case: the name as
    given first, then ignoring surrounding spaces on both sides (a team keeps its group's
    displayName as it is, surrounding spaces and all, see ``team_name``; so ``"  pad  "`` and
    ``pad`` both find it). NotFound when none matches, and without a query for a key no team can
    have (a control character: ``team_name`` removes them; longer than the longest key); SyncdError
    for a blank key and when the key names several teams (the error lists their ids)."""
    if not isinstance(key, str) or not key.strip():
        raise SyncdError(f"invalid team {shown(key)}: expected a team id, a group id or a team name")
    if len(key) > lookup.MAX_KEY or any(c < " " or c == "\x7f" for c in key):
        raise NotFound(f"no team {shown(key)} in environment {env.name!r}")
    q = select(Team).where(Team.environment_id == env.id)
    found: list[Team] = []
    if lookup.is_guid(key.strip()):
        u = uuid.UUID(normalize_object_id(key.strip()))
        found = list(session.scalars(q.where(or_(Team.teamid == u, Team.azureactivedirectoryobjectid == u))))
    if not found:
        found = _filter(session.scalars(q.where(casefold(Team.name) == fold_text(key))), membership)
    if not found:
        trimmed = casefold(func.trim(Team.name)) == fold_text(key.strip(" "))
        found = list(session.scalars(q.where(trimmed)))
    found = _filter(found, membership)
    if not found:
        raise NotFound(f"no team {shown(key)} in environment {env.name!r}")
    if len(found) > 1:
        ids = ", ".join(f"{t.teamid} ({MEMBERSHIP_NAMES.get(t.membershiptype)})" for t in found)
        raise SyncdError(
            f"team {shown(key)} is ambiguous in environment {env.name!r}: give a team id ({ids})"
        )
    return found[0]


def _filter(teams: Iterable[Team], membership: int | None) -> list[Team]:
    return [t for t in teams if membership is None or t.membershiptype == membership]


# -- create, list, show ----------------------------------------------------------------------------


def _administrator(session: Session, env: Environment, key: str | None, directory: GraphClient) -> SystemUser:
    if key is None:
        admin = session.scalar(
            select(SystemUser).where(
                SystemUser.environment_id == env.id,
                SystemUser.kind == "support",
                asciifold(SystemUser.domainname) == fold_ascii(SUPPORT_UPN),  # the folded-UPN index
                SystemUser.domainname == SUPPORT_UPN,
            )
        )
        if admin is None:  # pragma: no cover - every environment with a database has one (R19)
            raise SyncdError(f"environment {env.name!r} has no built-in support user (R19)")
        return admin
    # A stub is a placeholder for a user that does not exist (R20): it can't administer a team.
    kinds = ("regular", "application", "support", "delegated_admin")
    return lookup.find_row(
        session, env, lookup.check_key(key, "administrator"), kinds=kinds, directory=directory
    )


def team_name(group: DirectoryGroup) -> tuple[str, str | None]:
    """R25: the name of the group's team, its displayName fitted to the column as sync fits a
    user's columns (R10, ``fit_value``: control characters removed, cut to TEAM_NAME_LENGTH code
    points), and a one-line note saying how when it had to change (else None).

    Dataverse requires a team's name, and a blank one could not be told apart or looked up by
    name: a displayName that is blank (empty, only spaces, or nothing left once control characters
    are removed) gives the group's object id instead, as a blank givenName gives firstname "#"
    (R13), and a note saying so. Surrounding spaces are kept, as Dataverse keeps them and as
    ``fit_value`` keeps a user's; ``find_team`` finds such a team with or without them."""
    name, note = fit_value("team name", group.display_name, TEAM_NAME_LENGTH)
    if not name.strip():
        return (
            group.id,
            f"team name: the group's displayName {group.display_name!r} is blank: named {group.id}",
        )
    if note is None:
        return name, None
    return name, f"{note} (the group's displayName has {len(group.display_name)} characters)"


def _new_team(
    session: Session,
    env: Environment,
    group: DirectoryGroup,
    membership: int,
    administrator: SystemUser,
    notes: list[str],
) -> Team:
    """The group's new team (Conflict when it has one of this membership type); a note on its
    name, when the group's had to be fitted, is appended to ``notes`` and logged as a warning."""
    existing = session.scalar(
        select(Team).where(
            Team.environment_id == env.id,
            Team.azureactivedirectoryobjectid == uuid.UUID(group.id),
            Team.membershiptype == membership,
        )
    )
    if existing is not None:
        raise Conflict(
            f"environment {env.name!r} already has a team for group {group.id} with membership type "
            f"{MEMBERSHIP_NAMES[membership]}: {existing.name!r} ({existing.teamid})"
        )
    name, note = team_name(group)
    if note is not None:
        notes.append(note)
        log.warning("admin.team_name_fitted", environment=env.name, group=group.id, note=note)
    team = Team(
        environment_id=env.id,
        name=name,
        teamtype=group_team_type(group.group_types),
        azureactivedirectoryobjectid=uuid.UUID(group.id),
        membershiptype=membership,
        businessunitid=root_business_unit(session, env.id).businessunitid,
        administratorid=administrator.systemuserid,
    )
    session.add(team)
    try:
        session.flush()
    except IntegrityError:  # another writer created it between the check and the insert
        raise Conflict(
            f"environment {env.name!r} already has a team for group {group.id} with membership type "
            f"{MEMBERSHIP_NAMES[membership]}"
        ) from None
    return team


def create_team(
    engine: Engine,
    directory: GraphClient,
    env_name: str,
    group_id: str,
    *,
    membership: str | int = "members-and-guests",
    roles: Sequence[str] = (),
    administrator: str | None = None,
) -> TeamResult:
    """R25: create the group team of ``group_id`` with the membership type and the roles given.

    Bad input (SyncdError, exit 2, 400; nothing written): a malformed group id, a group the
    directory does not have, an unknown membership type or role, an environment without a
    database. A team for the same group and membership type: Conflict (exit 2, 409). A directory
    that can't be read: DirectoryFailed (exit 1, 502). Members are added as they access the
    environment or are refreshed (``syncd.admin.memberships``), not here. ``administrator``: a
    user of the environment (UPN or object id; not a stub) instead of the built-in support user.
    Returns a TeamResult (``created`` True) whose ``team`` is ``team_dict``'s shape; its ``notes`` say when
    the group's name had to be fitted to make the team's (``team_name``).
    """
    gid = check_group_id(group_id)
    mtype = check_membership(membership)
    with Session(engine) as session:
        _environment(session, env_name)  # an unknown environment fails before the directory is read
    group = read_group(directory, gid)
    with Session(engine) as session, session.begin():
        env = _environment(session, env_name)
        wanted = [find_role(session, env, r) for r in roles]
        admin = _administrator(session, env, administrator, directory)
        notes: list[str] = []
        team = _new_team(session, env, group, mtype, admin, notes)
        for role in {r.roleid: r for r in wanted}.values():
            session.add(TeamRole(teamid=team.teamid, roleid=role.roleid))
        session.flush()
        result = TeamResult("create", env.name, team_dict(session, team), True, created=True, notes=notes)
    log.info(
        "admin.team_created", environment=env_name, group=gid, membership=mtype, team=result.team["teamid"]
    )
    return result


def list_teams(engine: Engine, env_name: str) -> TeamList:
    """The environment's teams, by name, each as ``team_dict`` shows it."""
    with Session(engine) as session:
        env = get_environment(session, env_name)
        teams = session.scalars(
            select(Team).where(Team.environment_id == env.id).order_by(Team.name, Team.teamid)
        )
        return TeamList(env.name, [team_dict(session, t) for t in teams])


def show_team(engine: Engine, env_name: str, key: str, *, membership: str | int | None = None) -> TeamResult:
    """One team (see ``find_team``) with its members."""
    mtype = None if membership is None else check_membership(membership)
    with Session(engine) as session:
        env = get_environment(session, env_name)
        team = find_team(session, env, key, mtype)
        return TeamResult("show", env.name, team_dict(session, team, members=True), False)


# -- roles -----------------------------------------------------------------------------------------


def _give_role(session: Session, team: Team, role: Role) -> bool:
    held = session.scalar(
        select(TeamRole).where(TeamRole.teamid == team.teamid, TeamRole.roleid == role.roleid)
    )
    if held is not None:
        return False
    session.add(TeamRole(teamid=team.teamid, roleid=role.roleid))
    team.modifiedon = utcnow()
    session.flush()
    return True


def assign_team_role(
    engine: Engine, env_name: str, key: str, role_name: str, *, membership: str | int | None = None
) -> TeamResult:
    """R25, R21: give the team a security role (its members hold it); ``changed`` False when it
    already holds it. An unknown team or role is NotFound (exit 2, 404)."""
    mtype = None if membership is None else check_membership(membership)
    with Session(engine) as session, session.begin():
        env = get_environment(session, env_name)
        team = find_team(session, env, key, mtype)
        role = find_role(session, env, role_name)
        changed = _give_role(session, team, role)
        result = TeamResult("assign_role", env.name, team_dict(session, team), changed, role=role.name)
    log.info("admin.team_role_assigned", environment=env_name, team=result.team["teamid"], role=result.role)
    return result


def remove_team_role(
    engine: Engine, env_name: str, key: str, role_name: str, *, membership: str | int | None = None
) -> TeamResult:
    """Take a security role away from a team (NotFound when the team doesn't hold it)."""
    mtype = None if membership is None else check_membership(membership)
    with Session(engine) as session, session.begin():
        env = get_environment(session, env_name)
        team = find_team(session, env, key, mtype)
        role = find_role(session, env, role_name)
        held = session.scalar(
            select(TeamRole).where(TeamRole.teamid == team.teamid, TeamRole.roleid == role.roleid)
        )
        if held is None:
            raise NotFound(f"team {team.name!r} has no role {role.name!r} in environment {env.name!r}")
        session.delete(held)
        team.modifiedon = utcnow()
        session.flush()
        result = TeamResult("remove_role", env.name, team_dict(session, team), True, role=role.name)
    log.info("admin.team_role_removed", environment=env_name, team=result.team["teamid"], role=result.role)
    return result


def assign_group_role(
    engine: Engine,
    directory: GraphClient,
    env_name: str,
    group_id: str,
    role_name: str,
    *,
    membership: str | int = "members-and-guests",
) -> TeamResult:
    """R25: assign a security role to an Entra group: to its team of that membership type, created
    just in time (as ``create_team`` would) when the environment has none. ``created`` says whether
    the team was created. Errors as ``create_team`` and ``assign_team_role``."""
    gid = check_group_id(group_id)
    mtype = check_membership(membership)
    with Session(engine) as session:
        env = _environment(session, env_name)
        find_role(session, env, role_name)  # an unknown role fails before the directory is read
        team_id = session.scalar(
            select(Team.teamid).where(
                Team.environment_id == env.id,
                Team.azureactivedirectoryobjectid == uuid.UUID(gid),
                Team.membershiptype == mtype,
            )
        )
    group = read_group(directory, gid) if team_id is None else None
    with Session(engine) as session, session.begin():
        env = _environment(session, env_name)
        role = find_role(session, env, role_name)
        created = False
        notes: list[str] = []
        if team_id is None:
            assert group is not None
            admin = _administrator(session, env, None, directory)
            team = _new_team(session, env, group, mtype, admin, notes)
            created = True
        else:
            team = session.get_one(Team, team_id)
        changed = _give_role(session, team, role) or created
        result = TeamResult(
            "assign_role",
            env.name,
            team_dict(session, team),
            changed,
            created=created,
            role=role.name,
            notes=notes,
        )
    log.info(
        "admin.group_role_assigned",
        environment=env_name,
        group=gid,
        membership=mtype,
        role=result.role,
        team_created=created,
    )
    return result


def user_teams(session: Session, systemuserid: uuid.UUID) -> list[dict[str, Any]]:
    """R22: the teams the row is a member of, each with its group, membership type and roles."""
    q = (
        select(Team)
        .join(TeamMembership, TeamMembership.teamid == Team.teamid)
        .where(TeamMembership.systemuserid == systemuserid)
        .order_by(Team.name, Team.teamid)
    )
    out = []
    for t in session.scalars(q):
        d = team_dict(session, t)
        out.append(
            {
                k: d[k]
                for k in (
                    "teamid",
                    "name",
                    "teamtype",
                    "teamtype_name",
                    "azureactivedirectoryobjectid",
                    "membershiptype",
                    "membershiptype_name",
                    "roles",
                )
            }
        )
    return out
