"""R25 group teams on both backends: create, list, show, roles, the team created just in time by a
role assigned to a group, and just-in-time membership at first access, on-demand add and refresh
(never by the background sync)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest
from admin_helpers import E3_SKU, Tenant, make_env
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from syncd.admin import teams, users
from syncd.admin.errors import DirectoryFailed, Refused
from syncd.dataverse.environments import SUPPORT_UPN, root_business_unit
from syncd.dataverse.schema import SystemUser, Team, TeamMembership, TeamRole
from syncd.directory.client import GraphClient
from syncd.directory.errors import DirectoryUnavailable, GraphError
from syncd.directory.fake.server import create_app
from syncd.directory.transport import InProcessTransport
from syncd.errors import Conflict, NotFound, SyncdError
from syncd.rules import in_group_team, membership_type
from syncd.settings import Settings
from syncd.sync.run import RunOptions, sync_environment


@pytest.fixture
def graph(tenant: Tenant) -> Iterator[httpx.Client]:
    """The fake's Graph API for writes, as a test changes the directory over HTTP."""
    transport = InProcessTransport(create_app(tenant.store))
    with httpx.Client(
        transport=transport, base_url="http://fake-entra.local/v1.0", headers={"Authorization": "Bearer x"}
    ) as client:
        yield client


def m365_group(tenant: Tenant, name: str) -> str:
    body = {
        "displayName": name,
        "mailNickname": name.lower().replace(" ", "") + uuid.uuid4().hex[:6],
        "mailEnabled": True,
        "securityEnabled": False,
        "groupTypes": ["Unified"],
    }
    return str(orjson.loads(tenant.store.create_group(body))["id"])


def memberships_of(engine: Engine, upn: str) -> set[str]:
    with Session(engine) as s:
        q = (
            select(Team.name)
            .join(TeamMembership, TeamMembership.teamid == Team.teamid)
            .join(SystemUser, SystemUser.systemuserid == TeamMembership.systemuserid)
            .where(SystemUser.domainname == upn)
        )
        return set(s.scalars(q))


def membership_rows(engine: Engine) -> set[tuple[uuid.UUID, uuid.UUID]]:
    with Session(engine) as s:
        return {(m.teamid, m.systemuserid) for m in s.scalars(select(TeamMembership))}


# -- pure rules ------------------------------------------------------------------------------------


def test_r25_membership_types_decide_who_belongs() -> None:
    # R25: 0 members and guests, 1 members, 2 owners, 3 guests; direct membership only.
    cases = {
        (0, True, False, "Member"): True,
        (0, True, False, "Guest"): True,
        (0, False, True, "Member"): False,
        (1, True, False, "Member"): True,
        (1, True, False, "Guest"): False,
        (2, False, True, "Member"): True,
        (2, True, False, "Member"): False,
        (3, True, False, "Guest"): True,
        (3, True, False, "Member"): False,
        (3, False, True, "Guest"): False,
    }
    for (mtype, member, owner, user_type), expected in cases.items():
        got = in_group_team(mtype, direct_member=member, owner=owner, user_type=user_type)
        assert got is expected, (mtype, member, owner, user_type)
    assert [membership_type(n) for n in ("members-and-guests", "members", "OWNERS", "guests", 2)] == [
        0,
        1,
        2,
        3,
        2,
    ]
    assert membership_type("members_and_guests") == 0 and membership_type("guests") == 3
    with pytest.raises(ValueError, match="'admins'"):
        membership_type("admins")


def test_r25_member_of_lists_a_users_direct_groups(tenant: Tenant, directory: GraphClient) -> None:
    # R25 reads the user's direct groups (GET /users/{id}/memberOf): not nested ones, not roles.
    outer, inner = tenant.group("Outer"), tenant.group("Inner")
    u = tenant.user("nia")
    tenant.member(outer, inner)
    tenant.member(inner, u["id"])
    tenant.admin(u["id"])
    assert [gid for page in directory.iter_member_of_groups(u["id"].upper()) for gid in page] == [inner]
    with pytest.raises(GraphError) as err:
        list(directory.iter_member_of_groups(str(uuid.uuid4())))
    assert err.value.status == 404


# -- create, list, show, roles ---------------------------------------------------------------------


def test_r25_create_list_show_a_security_group_team(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R25, R26: named after the group, type 2, in the root business unit, administered by the
    # built-in support user (R19), holding the roles given.
    make_env(engine)
    gid = tenant.group("Sales Team")
    result = teams.create_team(
        engine, directory, "prod", gid.upper(), membership="members", roles=["Basic User"]
    )
    t = result.team
    assert result.created and result.changed
    assert (t["name"], t["teamtype"], t["membershiptype"], t["roles"]) == ("Sales Team", 2, 1, ["Basic User"])
    assert t["azureactivedirectoryobjectid"] == gid and t["administrator"] == SUPPORT_UPN
    with Session(engine) as s:
        team = s.get_one(Team, uuid.UUID(t["teamid"]))
        assert team.businessunitid == root_business_unit(s, team.environment_id).businessunitid
    listed = teams.list_teams(engine, "prod").teams
    assert [x["teamid"] for x in listed] == [t["teamid"]]
    for key in (t["teamid"], gid, "sales team"):
        shown = teams.show_team(engine, "prod", key).team
        assert shown["teamid"] == t["teamid"] and shown["members"] == []


def test_r25_a_team_s_administrator(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R19 by default; a user of the environment when named; an unknown one is bad input.
    make_env(engine)
    u = tenant.user("olga")
    users.add_user(engine, directory, "prod", u["id"])
    t = teams.create_team(
        engine, directory, "prod", tenant.group("Owned"), administrator=u["userPrincipalName"]
    ).team
    assert t["administrator"] == u["userPrincipalName"]
    with pytest.raises(NotFound, match="nobody@nowhere.example"):
        teams.create_team(
            engine, directory, "prod", tenant.group("Unowned"), administrator="nobody@nowhere.example"
        )
    assert len(teams.list_teams(engine, "prod").teams) == 1


def test_r25_a_microsoft_365_group_team_has_type_3(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    make_env(engine)
    gid = m365_group(tenant, "Project X")
    group = directory.get_group(gid)
    assert group is not None and group.is_microsoft_365
    t = teams.create_team(engine, directory, "prod", gid).team
    assert (t["teamtype"], t["teamtype_name"], t["membershiptype"]) == (3, "Entra Microsoft 365 group", 0)


def test_r25_team_role_assign_and_remove(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    make_env(engine)
    gid = tenant.group("Ops")
    teams.create_team(engine, directory, "prod", gid)
    first = teams.assign_team_role(engine, "prod", "Ops", "basic user")
    again = teams.assign_team_role(engine, "prod", gid, "Basic User")
    assert first.changed and not again.changed and again.team["roles"] == ["Basic User"]
    removed = teams.remove_team_role(engine, "prod", "Ops", "Basic User")
    assert removed.changed and removed.team["roles"] == []
    with pytest.raises(NotFound, match="has no role 'Basic User'"):
        teams.remove_team_role(engine, "prod", "Ops", "Basic User")


def test_r25_bad_input_writes_nothing(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    make_env(engine)
    gid = tenant.group("Finance")
    with pytest.raises(SyncdError, match="'not-a-guid'"):
        teams.create_team(engine, directory, "prod", "not-a-guid")
    unknown = str(uuid.uuid4())
    with pytest.raises(SyncdError, match=f"unknown group '{unknown}'"):
        teams.create_team(engine, directory, "prod", unknown)
    with pytest.raises(NotFound, match="no role 'Wizard'"):
        teams.create_team(engine, directory, "prod", gid, roles=["Wizard"])
    with pytest.raises(SyncdError, match="'admins'"):
        teams.create_team(engine, directory, "prod", gid, membership="admins")
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Team)) == 0
    teams.create_team(engine, directory, "prod", gid, membership="owners")
    with pytest.raises(Conflict, match=f"already has a team for group {gid} with membership type owners"):
        teams.create_team(engine, directory, "prod", gid, membership="owners")
    teams.create_team(engine, directory, "prod", gid, membership="guests")  # another type: another team
    with pytest.raises(SyncdError, match="ambiguous"):
        teams.show_team(engine, "prod", gid)
    assert teams.show_team(engine, "prod", gid, membership="guests").team["membershiptype"] == 3
    with pytest.raises(NotFound, match="no team 'Nobody'"):
        teams.show_team(engine, "prod", "Nobody")


def test_r25_a_role_assigned_to_a_group_creates_its_team_just_in_time(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    make_env(engine)
    gid = tenant.group("Support Desk")
    first = teams.assign_group_role(engine, directory, "prod", gid, "Basic User")
    assert first.created and first.changed
    assert (first.team["name"], first.team["membershiptype"], first.team["roles"]) == (
        "Support Desk",
        0,
        ["Basic User"],
    )
    second = teams.assign_group_role(engine, directory, "prod", gid, "Basic User")
    assert not second.created and not second.changed and second.team["teamid"] == first.team["teamid"]
    owners = teams.assign_group_role(engine, directory, "prod", gid, "Basic User", membership="owners")
    assert owners.created and owners.team["teamid"] != first.team["teamid"]
    with pytest.raises(NotFound, match="no role 'Wizard'"):
        teams.assign_group_role(engine, directory, "prod", tenant.group("Other"), "Wizard")
    assert len(teams.list_teams(engine, "prod").teams) == 2


# -- just-in-time membership -----------------------------------------------------------------------


def test_r25_first_access_adds_memberships_and_the_team_role_gives_access(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R25, R8, R21: the user's only role comes through a group team; first access makes them a
    # member, and then they have access to apps; the diagnosis lists the team and its roles (R22).
    make_env(engine)
    gid = tenant.group("Sellers")
    u = tenant.user("amy")
    tenant.member(gid, u["id"])
    teams.assign_group_role(engine, directory, "prod", gid, "Basic User")
    result = users.first_access(engine, directory, "prod", u["userPrincipalName"])
    assert result.teams is not None and [t.name for t in result.teams.added] == ["Sellers"]
    assert result.row is not None and result.row["roles"] == []
    assert result.row["app_access"]["passed"] is True
    assert result.row["team_roles"] == {"Sellers": ["Basic User"]}
    assert [t["name"] for t in result.as_dict()["teams"]["member_of"]] == ["Sellers"]
    d = users.diagnose_user(engine, directory, "prod", u["id"])
    assert [(t["name"], t["membershiptype_name"], t["roles"]) for t in d.teams] == [
        ("Sellers", "members-and-guests", ["Basic User"])
    ]
    assert d.as_dict()["teams"][0]["azureactivedirectoryobjectid"] == gid
    actions = [e["action"] for e in d.events]
    assert "join_team" in actions
    shown = teams.show_team(engine, "prod", "Sellers").team
    assert [m["domainname"] for m in shown["members"]] == [u["userPrincipalName"]]


def test_r25_on_demand_add_adds_memberships(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    make_env(engine)
    gid = tenant.group("Analysts")
    u = tenant.user("ben")
    tenant.member(gid, u["id"])
    teams.create_team(engine, directory, "prod", gid, membership="members")
    users.add_user(engine, directory, "prod", u["id"])
    assert memberships_of(engine, u["userPrincipalName"]) == {"Analysts"}


def test_r25_refresh_removes_a_membership_after_the_user_leaves_the_group(
    engine: Engine, tenant: Tenant, directory: GraphClient, graph: httpx.Client
) -> None:
    # R25, R23: the user leaves the group in the directory (Graph's DELETE .../members/{id}/$ref);
    # a refresh removes the membership, and with it the role held through the team.
    make_env(engine)
    gid = tenant.group("Temps")
    u = tenant.user("cat")
    tenant.member(gid, u["id"])
    teams.assign_group_role(engine, directory, "prod", gid, "Basic User")
    users.first_access(engine, directory, "prod", u["id"])
    assert memberships_of(engine, u["userPrincipalName"]) == {"Temps"}
    response = graph.delete(f"/groups/{gid}/members/{u['id']}/$ref")
    assert response.status_code == 204
    result = users.refresh_user(engine, directory, "prod", u["id"])
    assert (
        result.teams is not None
        and [t.name for t in result.teams.removed] == ["Temps"]
        and result.teams.member_of == []
    )
    assert memberships_of(engine, u["userPrincipalName"]) == set()
    assert result.row is not None and result.row["app_access"]["passed"] is False
    # and back: added to the group again, the next refresh adds the membership again
    tenant.member(gid, u["id"])
    again = users.refresh_user(engine, directory, "prod", u["id"])
    assert again.teams is not None and [t.name for t in again.teams.added] == ["Temps"]


def test_r25_membership_types_members_guests_owners(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R25: members (userType Member), guests (userType Guest), owners (the group's owners), and
    # members and guests (both); nested members are not members.
    make_env(engine)
    gid = tenant.group("Mixed")
    nested = tenant.group("Nested")
    member, guest, owner, deep = (tenant.user(a) for a in ("dan", "eve", "fay", "gus"))
    tenant.store.update_user(guest["id"], {"userType": "Guest"})
    tenant.member(gid, member["id"])
    tenant.member(gid, guest["id"])
    tenant.owner(gid, owner["id"])
    tenant.member(gid, nested)
    tenant.member(nested, deep["id"])
    for name in ("members-and-guests", "members", "owners", "guests"):
        teams.create_team(engine, directory, "prod", gid, membership=name)
    with Session(engine) as s, s.begin():
        for t in s.scalars(select(Team)):
            t.name = f"Mixed {teams.MEMBERSHIP_NAMES[t.membershiptype]}"
    for u in (member, guest, owner, deep):
        users.add_user(engine, directory, "prod", u["id"])
    assert memberships_of(engine, member["userPrincipalName"]) == {
        "Mixed members-and-guests",
        "Mixed members",
    }
    assert memberships_of(engine, guest["userPrincipalName"]) == {"Mixed members-and-guests", "Mixed guests"}
    assert memberships_of(engine, owner["userPrincipalName"]) == {"Mixed owners"}
    assert memberships_of(engine, deep["userPrincipalName"]) == set()


def test_r25_a_group_team_never_bypasses_the_security_group(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R25, R5: a member of a team's group who is not in the environment's security group gets no
    # row at first access, and no membership; once in the security group, first access adds both.
    sg = tenant.group("Environment Users")
    make_env(engine, security_group_id=sg)
    gid = tenant.group("Team Group")
    u = tenant.user("hal")
    tenant.member(gid, u["id"])
    teams.assign_group_role(engine, directory, "prod", gid, "Basic User")
    with pytest.raises(Refused) as err:
        users.first_access(engine, directory, "prod", u["id"])
    assert any(c.rule == "R5" for c in err.value.checks)
    assert membership_rows(engine) == set()
    with Session(engine) as s:
        assert s.scalar(select(SystemUser).where(SystemUser.domainname == u["userPrincipalName"])) is None
    tenant.member(sg, u["id"])
    result = users.first_access(engine, directory, "prod", u["id"])
    assert (
        result.action == "create"
        and result.teams is not None
        and [t.name for t in result.teams.added] == ["Team Group"]
    )


def test_r25_refresh_gives_a_team_member_without_a_row_one_under_the_on_demand_reading(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R25, R23, R4e: a user whose only licence is a free Dataverse plan of a Microsoft 365 licence
    # (on demand only) gets no row from a refresh by the background rules (R7a), unless a group
    # team's group has them: then the refresh gives them a row and the membership.
    make_env(engine)
    loner, member = tenant.user("pam", licence=E3_SKU), tenant.user("quin", licence=E3_SKU)
    gid = tenant.group("Free Plan Team")
    tenant.member(gid, member["id"])
    teams.assign_group_role(engine, directory, "prod", gid, "Basic User")
    skipped = users.refresh_user(engine, directory, "prod", loner["id"])
    assert skipped.row is None and not skipped.changed
    added = users.refresh_user(engine, directory, "prod", member["id"])
    assert added.action == "create" and added.changed and added.rule == "R8"
    assert added.teams is not None and [t.name for t in added.teams.added] == ["Free Plan Team"]
    assert added.row is not None and added.row["app_access"]["passed"] is True


def test_r25_sync_runs_leave_team_membership_alone(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R25: the background sync never adds or removes a team membership, full or delta: a member of
    # the group who never accessed is not added, and one who left the group is not removed.
    make_env(engine)
    gid = tenant.group("Background")
    stays, leaves, never = (tenant.user(a) for a in ("ian", "jo", "kim"))
    for u in (stays, leaves, never):
        tenant.member(gid, u["id"])
    teams.assign_group_role(engine, directory, "prod", gid, "Basic User")
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    assert membership_rows(engine) == set()  # rows created by sync, no memberships
    users.refresh_user(engine, directory, "prod", stays["id"])
    users.refresh_user(engine, directory, "prod", leaves["id"])
    before = membership_rows(engine)
    assert len(before) == 2
    tenant.store.remove_group_member(gid, leaves["id"])
    tenant.disable(stays["id"])
    for kind in ("delta", "full"):
        report = sync_environment(engine, directory, "prod", Settings(), RunOptions(kind=kind))
        assert report.outcome == "succeeded", report
        assert membership_rows(engine) == before, kind
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(TeamRole)) == 1


def test_r25_a_user_gone_from_the_directory_leaves_every_group_team(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    make_env(engine)
    gid = tenant.group("Leavers")
    u = tenant.user("lou")
    tenant.member(gid, u["id"])
    teams.create_team(engine, directory, "prod", gid)
    users.first_access(engine, directory, "prod", u["id"])
    tenant.delete(u["id"])
    result = users.refresh_user(engine, directory, "prod", u["id"])
    assert result.teams is not None and [t.name for t in result.teams.removed] == ["Leavers"]


def test_r25_a_directory_failure_changes_no_membership(
    engine: Engine, tenant: Tenant, directory: GraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # R25: the groups are read before anything is written; a group that can't be read fails the
    # operation (exit 1, API 502) and leaves the row and its memberships as they were.
    make_env(engine)
    gid = tenant.group("Flaky")
    u = tenant.user("max")
    tenant.member(gid, u["id"])
    teams.create_team(engine, directory, "prod", gid)

    def down(*args: object, **kwargs: object) -> None:
        raise DirectoryUnavailable("http://fake-entra.local/v1.0/groups", 503, 7)

    monkeypatch.setattr(directory, "iter_member_of_groups", down)
    with pytest.raises(DirectoryFailed, match=f"groups of user {u['id']}"):
        users.first_access(engine, directory, "prod", u["id"])
    with Session(engine) as s:
        assert s.scalar(select(SystemUser).where(SystemUser.domainname == u["userPrincipalName"])) is None
    assert membership_rows(engine) == set()


def test_r25_teams_of_the_same_name_stay_apart_and_a_refresh_that_joins_one_is_a_change(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # Two groups with the same displayName give two teams with the same name: every output names
    # each by its team id and group, and a refresh that only changed memberships is "changed".
    make_env(engine)
    first, second = tenant.group("Twins"), tenant.group("Twins")
    u = tenant.user("twin")
    users.add_user(engine, directory, "prod", u["id"])
    tenant.member(first, u["id"])
    tenant.member(second, u["id"])
    a = teams.assign_group_role(engine, directory, "prod", first, "Basic User")
    b = teams.assign_group_role(engine, directory, "prod", second, "Salesperson")
    assert a.created and b.created and a.team["name"] == b.team["name"] == "Twins"
    result = users.refresh_user(engine, directory, "prod", u["id"])
    assert result.teams is not None and result.changed is True
    joined = result.as_dict()["teams"]["added"]
    assert sorted((t["teamid"], t["azureactivedirectoryobjectid"]) for t in joined) == sorted(
        [(a.team["teamid"], first), (b.team["teamid"], second)]
    )
    assert len(result.as_dict()["teams"]["member_of"]) == 2
    assert result.row is not None
    assert sorted(result.row["team_roles"].values()) == [["Basic User"], ["Salesperson"]]
    assert set(result.row["team_roles"]) == {f"Twins ({a.team['teamid']})", f"Twins ({b.team['teamid']})"}
    again = users.refresh_user(engine, directory, "prod", u["id"])
    assert again.changed is False and again.teams is not None and again.teams.added == []


LONG_NAMES = [
    "G" * 200,
    # an astral character (one code point, two UTF-16 units) across the 160th place stays whole
    "A" * 159 + "\U0001f600" + "B" * 40,
    # control characters are removed first, as from a user's columns (R10)
    "Tab\there" + "C" * 195,
]


@pytest.mark.parametrize("display_name", LONG_NAMES)
def test_r25_an_over_long_group_name_is_fitted_like_a_users_columns_and_said(
    engine: Engine, tenant: Tenant, directory: GraphClient, display_name: str
) -> None:
    # The team's name fits its column (160 characters, code points) the way sync fits a user's
    # columns (R10's fit_value), with a warning in the log and a note in the result.
    from structlog.testing import capture_logs

    from syncd.rules.columns import fit_value

    make_env(engine)
    expected = fit_value("name", display_name, 160)[0]
    assert len(expected) == 160
    gid = tenant.group(display_name)
    with capture_logs() as logs:
        created = teams.create_team(engine, directory, "prod", gid)
    assert created.team["name"] == expected
    note = created.notes[0] if created.notes else ""
    assert "cut to 160 characters" in note and f"has {len(display_name)} characters" in note
    assert created.as_dict()["notes"] == created.notes and len(created.notes[0].splitlines()) == 1
    warned = [e for e in logs if e["event"] == "admin.team_name_fitted"]
    assert warned and warned[0]["log_level"] == "warning" and warned[0]["group"] == gid
    with Session(engine) as s:
        assert s.scalars(select(Team.name)).one() == expected  # stored whole on both backends
    jit = teams.assign_group_role(engine, directory, "prod", gid, "Basic User", membership="owners")
    assert jit.created and jit.team["name"] == expected and jit.notes == created.notes
    again = teams.assign_group_role(engine, directory, "prod", gid, "Basic User", membership="owners")
    assert again.notes == []
