"""Finding what an admin operation works on: the environment, the directory user and facts, the row.

A user is named by object id (a GUID) or by userPrincipalName. Rows are found by object id,
application id (application users), systemuserid, or domainname (the UPN; exact first, then
ignoring case, as UPNs compare).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import Engine, case, or_, select
from sqlalchemy.orm import Session

from syncd.admin.errors import DirectoryFailed
from syncd.dataverse.environments import get_environment
from syncd.dataverse.schema import (
    Environment,
    Role,
    SyncEvent,
    SyncGroupMember,
    SystemUser,
    SystemUserRole,
    Team,
    TeamMembership,
    TeamRole,
)
from syncd.dataverse.textfold import asciifold, casefold, fold_ascii, fold_text
from syncd.directory.client import GraphClient
from syncd.directory.errors import DirectoryError, GraphError
from syncd.directory.ids import is_object_id, normalize_object_id
from syncd.directory.models import DirectoryUser, GroupMember, MemberKind
from syncd.errors import NotFound, SyncdError
from syncd.rules import Membership, RowFacts, UserKind, check_app_access
from syncd.rules.diagnose import access_mode_name
from syncd.sync import source

MAX_KEY = 1024
# Characters no userPrincipalName holds (Entra allows letters, digits, ' . - _ ! # ^ ~ and one @)
# that would change a Graph request's path or query: such a key names nobody, and is bad input.
NOT_IN_UPN = frozenset("/\\?%")


def check_key(key: str, what: str = "user") -> str:
    """A user named on the command line or in a request: an object id or a UPN.

    An object id comes back in its one canonical spelling (lower case, dashed; braces and the
    32-digit form accepted), so that ``ABCD...`` and ``abcd...`` name the same user everywhere.
    """
    if not isinstance(key, str) or not key.strip():
        raise SyncdError(f"invalid {what} {key!r}: expected an object id or a userPrincipalName")
    key = key.strip()
    if len(key) > MAX_KEY or any(c.isspace() or c < " " or c == "\x7f" or c in NOT_IN_UPN for c in key):
        raise SyncdError(f"invalid {what} {key!r}: expected an object id or a userPrincipalName")
    if "@" in key:
        return key
    try:
        return normalize_object_id(key)
    except ValueError:
        raise SyncdError(
            f"invalid {what} {key!r}: expected an object id (GUID) or a userPrincipalName"
        ) from None


def is_guid(value: str) -> bool:
    """Whether the value reads as an object id (a GUID), in any spelling."""
    return is_object_id(value)


def load_environment(engine: Engine, name: str) -> Environment:
    """The environment, detached from its session (NotFound names the known ones)."""
    with Session(engine) as session:
        env = get_environment(session, name)
        session.expunge(env)
    return env


@contextmanager
def directory_errors(what: str) -> Iterator[None]:
    """Turn a directory failure into an error the CLI and the API report on one line."""
    try:
        yield
    except DirectoryError as exc:
        raise DirectoryFailed(f"the directory could not be read ({what}): {exc}") from exc


def read_user(directory: GraphClient, key: str) -> DirectoryUser | None:
    with directory_errors(f"user {key}"):
        return directory.get_user(key)


def read_deleted_user(directory: GraphClient, object_id: str) -> DirectoryUser | None:
    """The user in the directory's deleted items (soft-deleted, restorable), or None."""
    with directory_errors(f"deleted user {object_id}"):
        return directory.get_deleted_user(object_id)


def mirrored_membership(session: Session, env_id: int, object_id: str) -> Membership | None:
    """The user's relation to the environment's security group as of its last sync run (the
    ``sync_group_member`` mirror): DIRECT, OWNER, or None when the mirror does not list them."""
    relations = set(
        session.scalars(
            select(SyncGroupMember.relation).where(
                SyncGroupMember.environment_id == env_id, SyncGroupMember.member_id == object_id
            )
        )
    )
    if "member" in relations:
        return Membership.DIRECT
    if "owner" in relations:
        return Membership.OWNER
    return None


def admin_roles(directory: GraphClient, object_id: str) -> frozenset[str]:
    """The R6 admin role templates the user holds."""
    with directory_errors("admin roles"):
        return source.read_admins(directory).get(object_id, frozenset())


def membership(directory: GraphClient, group_id: str, user_id: str) -> Membership:
    """How the user relates to the security group (R5): a direct member, an owner, a member only
    through nested groups (walked to any depth, each group once), or none of these.

    A direct member is DIRECT even when also an owner; an owner who is only a nested member is
    OWNER (ownership counts on demand, nested membership never does).
    """
    with directory_errors(f"security group {group_id}"):
        try:
            nested: list[str] = []
            for page in directory.iter_group_members(group_id, select=None):
                for m in page:
                    if m.id == user_id and _is_user(m):
                        return Membership.DIRECT
                    if isinstance(m, GroupMember) and m.kind is MemberKind.GROUP:
                        nested.append(m.id)
            for page in directory.iter_group_owners(group_id):
                if any(m.id == user_id for m in page):
                    return Membership.OWNER
            seen = {group_id}
            while nested:
                gid = nested.pop()
                if gid in seen:
                    continue
                seen.add(gid)
                for page in directory.iter_group_members(gid, select=None):
                    for m in page:
                        if m.id == user_id and _is_user(m):
                            return Membership.NESTED_ONLY
                        if isinstance(m, GroupMember) and m.kind is MemberKind.GROUP:
                            nested.append(m.id)
        except GraphError as exc:
            if exc.status == 404:
                raise DirectoryFailed(
                    f"the environment's security group {group_id} is not in the directory"
                ) from exc
            raise
    return Membership.NONE


def _is_user(m: DirectoryUser | GroupMember) -> bool:
    return isinstance(m, DirectoryUser) or m.kind is MemberKind.USER


# -- rows ------------------------------------------------------------------------------------------


def find_rows(
    session: Session, env_id: int, key: str, *, kinds: tuple[str, ...] | None = None
) -> list[SystemUser]:
    """The environment's rows the key names, regular users first."""
    q = select(SystemUser).where(SystemUser.environment_id == env_id)
    if kinds is not None:
        q = q.where(SystemUser.kind.in_(kinds))
    order = (case((SystemUser.kind == "regular", 0), else_=1), SystemUser.createdon)
    if is_guid(key):
        u = uuid.UUID(normalize_object_id(key))
        q = q.where(
            or_(
                SystemUser.azureactivedirectoryobjectid == u,
                SystemUser.applicationid == u,
                SystemUser.systemuserid == u,
            )
        )
        return list(session.scalars(q.order_by(*order)))
    # The exact spelling first, through the folded-UPN index (migration 0007).
    exact = q.where(asciifold(SystemUser.domainname) == fold_ascii(key), SystemUser.domainname == key)
    found = list(session.scalars(exact.order_by(*order)))
    if found:
        return found
    return list(session.scalars(q.where(casefold(SystemUser.domainname) == fold_text(key)).order_by(*order)))


def find_row(
    session: Session,
    env: Environment,
    key: str,
    *,
    kinds: tuple[str, ...] | None = None,
    directory: GraphClient | None = None,
) -> SystemUser:
    """The row the key names; with a directory, a UPN the row no longer carries is looked up there."""
    rows = find_rows(session, env.id, key, kinds=kinds)
    if not rows and directory is not None and not is_guid(key):
        du = read_user(directory, key)
        if du is not None:
            rows = find_rows(session, env.id, du.id, kinds=kinds)
    if not rows:
        what = "user" if kinds is None else " or ".join(kinds) + " user"
        raise NotFound(f"no {what} {key!r} in environment {env.name!r}")
    return rows[0]


def row_facts(row: SystemUser) -> RowFacts:
    """What the rules need of a row that is not read through the sync engine's reader."""
    return RowFacts(
        kind=UserKind(row.kind),
        isdisabled=row.isdisabled,
        accessmode=row.accessmode,
        islicensed=row.islicensed,
        columns={"domainname": row.domainname, "fullname": row.fullname},
        azurestate=row.azurestate,
    )


def stub_rows_with_upn(session: Session, env_id: int, upn: str) -> list[SystemUser]:
    """Stub users whose domainname equals the UPN, ignoring case (R20 conflicts)."""
    q = select(SystemUser).where(
        SystemUser.environment_id == env_id,
        SystemUser.kind == "stub",
        casefold(SystemUser.domainname) == fold_text(upn),
    )
    return list(session.scalars(q))


def role_names(session: Session, systemuserid: uuid.UUID) -> list[str]:
    q = (
        select(Role.name)
        .join(SystemUserRole, SystemUserRole.roleid == Role.roleid)
        .where(SystemUserRole.systemuserid == systemuserid)
        .order_by(Role.name)
    )
    return list(session.scalars(q))


def team_role_names(session: Session, systemuserid: uuid.UUID) -> dict[str, list[str]]:
    """Team -> the names of the security roles it holds, for every team the user is a member of
    (R21: a member holds its team's roles; a team holding none maps to an empty list). A team is
    keyed by its name, or by ``name (teamid)`` when the user is in several teams of that name (two
    groups with the same displayName), so no two teams merge."""
    rows = session.execute(
        select(Team.teamid, Team.name, Role.name)
        .join(TeamMembership, TeamMembership.teamid == Team.teamid)
        .outerjoin(TeamRole, TeamRole.teamid == Team.teamid)
        .outerjoin(Role, Role.roleid == TeamRole.roleid)
        .where(TeamMembership.systemuserid == systemuserid)
        .order_by(Team.name, Team.teamid, Role.name)
    ).all()
    ids_by_name: dict[str, set[uuid.UUID]] = {}
    for teamid, name, _ in rows:
        ids_by_name.setdefault(name, set()).add(teamid)
    teams: dict[str, list[str]] = {}
    for teamid, name, role in rows:
        key = name if len(ids_by_name[name]) == 1 else f"{name} ({teamid})"
        names = teams.setdefault(key, [])
        if role is not None:
            names.append(role)
    return teams


def row_dict(session: Session, row: SystemUser) -> dict[str, Any]:
    """A row as the admin operations show it (R22): its state, its direct roles (``roles``), the
    roles it holds through each team (``team_roles``) and R21's app-access check (``app_access``)."""
    roles = role_names(session, row.systemuserid)
    team_roles = team_role_names(session, row.systemuserid)
    access = check_app_access(roles, team_roles)
    return {
        "systemuserid": str(row.systemuserid),
        "kind": row.kind,
        "azureactivedirectoryobjectid": _str(row.azureactivedirectoryobjectid),
        "applicationid": _str(row.applicationid),
        "domainname": row.domainname,
        "fullname": row.fullname,
        "firstname": row.firstname,
        "lastname": row.lastname,
        "internalemailaddress": row.internalemailaddress,
        "isdisabled": row.isdisabled,
        "accessmode": row.accessmode,
        "accessmode_name": access_mode_name(row.accessmode),
        "islicensed": row.islicensed,
        "roles": roles,
        "team_roles": team_roles,
        "app_access": {"passed": access.passed, "message": access.message},
        "azurestate": row.azurestate,
        "businessunitid": str(row.businessunitid),
        "createdon": _iso(row.createdon),
        "modifiedon": _iso(row.modifiedon),
    }


def last_events(session: Session, env_id: int, row: SystemUser, limit: int = 10) -> list[dict[str, Any]]:
    """The row's latest events (sync's and the administrators'), newest first."""
    cond = SyncEvent.systemuserid == row.systemuserid
    if row.azureactivedirectoryobjectid is not None:
        cond = or_(cond, SyncEvent.azureactivedirectoryobjectid == row.azureactivedirectoryobjectid)
    q = (
        select(SyncEvent)
        .where(SyncEvent.environment_id == env_id, cond)
        .order_by(SyncEvent.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": e.id,
            "run_id": e.run_id,
            "action": e.action,
            "rule": e.rule,
            "reason": e.reason,
            "changes": orjson.loads(e.changes) if e.changes else None,
            "created_at": _iso(e.created_at),
        }
        for e in session.scalars(q)
    ]


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
