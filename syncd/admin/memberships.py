"""Just-in-time membership of group teams (R25).

When a user accesses an environment (first access, R8), is added on demand, or is refreshed by an
administrator (R23), ``syncd.admin.users`` makes the user's row a member of every group team of the
environment whose group has the user, directly, in the team's membership type, and removes it
from the group teams whose group no longer does. The directory is read first (the user's direct
groups, ``GET /users/{id}/memberOf``, once, and the owners of each group that has an owners team),
then the changes are written in one transaction with their events.
The background sync (``syncd.sync``) never calls this: team membership is not its business.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from syncd.admin.audit import record_event
from syncd.admin.errors import DirectoryFailed
from syncd.dataverse.schema import SystemUser, Team, TeamMembership
from syncd.directory.client import GraphClient
from syncd.directory.errors import DirectoryError, GraphError
from syncd.directory.models import DirectoryUser
from syncd.rules import GROUP_TEAM_TYPES, MEMBERSHIP_NAMES, in_group_team

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TeamRef:
    """One group team in a membership change: its id, name, group and membership type, so that
    two teams of the same name (two groups with the same displayName) stay apart."""

    teamid: str
    name: str | None  # None for a team gone since the membership was read
    group_id: str | None
    membershiptype: int | None

    @classmethod
    def of(cls, team: Team) -> TeamRef:
        group = team.azureactivedirectoryobjectid
        return cls(str(team.teamid), team.name, None if group is None else str(group), team.membershiptype)

    def as_dict(self) -> dict[str, Any]:
        """``{"teamid", "name", "azureactivedirectoryobjectid", "membershiptype",
        "membershiptype_name"}``."""
        mtype = self.membershiptype
        return {
            "teamid": self.teamid,
            "name": self.name,
            "azureactivedirectoryobjectid": self.group_id,
            "membershiptype": mtype,
            "membershiptype_name": None if mtype is None else MEMBERSHIP_NAMES.get(mtype),
        }

    def label(self) -> str:
        """The team for one line of text: ``Sales (team <id>, group <id>, members)``."""
        if self.name is None:
            return f"team {self.teamid}"
        mtype = "" if self.membershiptype is None else f", {MEMBERSHIP_NAMES.get(self.membershiptype)}"
        return f"{self.name} (team {self.teamid}, group {self.group_id}{mtype})"


@dataclass
class MembershipChange:
    """What just-in-time membership (R25) did for one user: the teams joined and left, and every
    group team the user is a member of afterwards, each a ``TeamRef``."""

    added: list[TeamRef] = field(default_factory=list)
    removed: list[TeamRef] = field(default_factory=list)
    member_of: list[TeamRef] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether the user joined or left a team."""
        return bool(self.added or self.removed)

    def as_dict(self) -> dict[str, Any]:
        """``{"added", "removed", "member_of"}``: lists of ``TeamRef.as_dict()``."""
        return {
            "added": [t.as_dict() for t in self.added],
            "removed": [t.as_dict() for t in self.removed],
            "member_of": [t.as_dict() for t in self.member_of],
        }


def _direct_groups(directory: GraphClient, user_id: str) -> set[str]:
    """The groups the user is a direct member of (``GET /users/{id}/memberOf``: one read for the
    user, however large the groups); none for a user the directory no longer has."""
    try:
        return {gid for page in directory.iter_member_of_groups(user_id) for gid in page}
    except GraphError as exc:
        if exc.status == 404:
            return set()
        raise DirectoryFailed(f"the directory could not be read (groups of user {user_id}): {exc}") from exc
    except (DirectoryError, OSError) as exc:
        raise DirectoryFailed(f"the directory could not be read (groups of user {user_id}): {exc}") from exc


def _owns(directory: GraphClient, group_id: str, user_id: str) -> bool:
    """Whether the user is one of the group's owners (``GET /groups/{id}/owners``); a group the
    directory no longer has has none."""
    try:
        return any(m.id == user_id for page in directory.iter_group_owners(group_id) for m in page)
    except GraphError as exc:
        if exc.status == 404:
            return False
        raise DirectoryFailed(f"the directory could not be read (owners of group {group_id}): {exc}") from exc
    except (DirectoryError, OSError) as exc:
        raise DirectoryFailed(f"the directory could not be read (owners of group {group_id}): {exc}") from exc


def wanted_teams(directory: GraphClient, teams: Iterable[Team], user: DirectoryUser | None) -> set[uuid.UUID]:
    """R25: the group teams (ids) whose group has the user, directly, in the team's membership
    type, as the directory says now: the user's direct groups are read once (``memberOf``; nested
    groups never count), and the owners of each group that has an owners team. A user not in the
    directory is in none."""
    teams = list(teams)
    if user is None or not teams:
        return set()
    direct = _direct_groups(directory, user.id) if any(t.membershiptype != 2 for t in teams) else set()
    owner_groups = {str(t.azureactivedirectoryobjectid) for t in teams if t.membershiptype == 2}
    owned = {gid for gid in sorted(owner_groups) if _owns(directory, gid, user.id)}
    out = set()
    for t in teams:
        gid = str(t.azureactivedirectoryobjectid)
        if in_group_team(
            t.membershiptype, direct_member=gid in direct, owner=gid in owned, user_type=user.user_type
        ):
            out.add(t.teamid)
    return out


@dataclass
class WantedTeams:
    """The environment's group teams and those the user belongs in, as read from the directory
    (``read_wanted_teams``), to be written by ``write_memberships``."""

    env_id: int
    teams: list[Team]
    wanted: set[uuid.UUID]


def read_wanted_teams(
    engine: Engine, directory: GraphClient, env_id: int, user: DirectoryUser | None
) -> WantedTeams:
    """R25: read the environment's group teams, and from the directory which of them the user
    belongs in (``wanted_teams``). Writes nothing; DirectoryFailed when a group can't be read."""
    with Session(engine) as session:
        teams = list(
            session.scalars(
                select(Team).where(Team.environment_id == env_id, Team.teamtype.in_(GROUP_TEAM_TYPES))
            )
        )
        for t in teams:
            session.expunge(t)
    wanted = wanted_teams(directory, teams, user) if teams else set()
    return WantedTeams(env_id, teams, wanted)


def write_memberships(engine: Engine, found: WantedTeams, systemuserid: uuid.UUID) -> MembershipChange:
    """R25 just in time: make the row a member of every group team in ``found.wanted`` and of no
    other group team of the environment, in one transaction, each change with its event
    (``join_team``/``leave_team``, rule R25). Owner and access teams are left alone."""
    by_id = {t.teamid: t for t in found.teams}
    wanted = {t for t in found.wanted if t in by_id}
    change = MembershipChange()
    with Session(engine) as session, session.begin():
        row = session.get(SystemUser, systemuserid)
        if row is None:
            return change
        current = set(
            session.scalars(
                select(TeamMembership.teamid)
                .join(Team, Team.teamid == TeamMembership.teamid)
                .where(TeamMembership.systemuserid == systemuserid, Team.teamtype.in_(GROUP_TEAM_TYPES))
            )
        )
        for tid in sorted(wanted - current, key=lambda i: (by_id[i].name, str(i))):
            team = by_id[tid]
            session.add(TeamMembership(teamid=tid, systemuserid=systemuserid))
            change.added.append(TeamRef.of(team))
            record_event(
                session,
                row,
                "join_team",
                "R25",
                f"Added to group team {team.name} ({_describe(team)}) just in time.",
            )
        for tid in sorted(current - wanted, key=lambda i: (by_id[i].name if i in by_id else "", str(i))):
            left = by_id.get(tid)
            session.execute(
                delete(TeamMembership).where(
                    TeamMembership.teamid == tid, TeamMembership.systemuserid == systemuserid
                )
            )
            name = left.name if left is not None else str(tid)
            change.removed.append(
                TeamRef.of(left) if left is not None else TeamRef(str(tid), None, None, None)
            )
            what = f" ({_describe(left)})" if left is not None else ""
            record_event(
                session,
                row,
                "leave_team",
                "R25",
                f"Removed from group team {name}{what} just in time: the group no longer has the user.",
            )
        change.member_of = [
            TeamRef.of(by_id[t]) for t in sorted(wanted, key=lambda i: (by_id[i].name, str(i)))
        ]
    if change.changed:
        log.info(
            "admin.team_memberships",
            environment_id=found.env_id,
            systemuserid=str(systemuserid),
            added=[t.teamid for t in change.added],
            removed=[t.teamid for t in change.removed],
        )
    return change


def update_memberships(
    engine: Engine, directory: GraphClient, env_id: int, systemuserid: uuid.UUID, user: DirectoryUser | None
) -> MembershipChange:
    """R25 just in time for one row: ``read_wanted_teams`` then ``write_memberships``. A user not
    in the directory (``user`` None) leaves every group team."""
    return write_memberships(engine, read_wanted_teams(engine, directory, env_id, user), systemuserid)


def _describe(team: Team) -> str:
    return f"group {team.azureactivedirectoryobjectid}, {MEMBERSHIP_NAMES.get(team.membershiptype)}"
