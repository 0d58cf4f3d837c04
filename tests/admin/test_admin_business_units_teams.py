"""R26 business units, R21 roles held through a team, R9 azurestate and versionnumber on the admin
operations, on both backends."""

from __future__ import annotations

import uuid

import pytest
from admin_helpers import Tenant, make_env
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.admin import app_users, users
from syncd.dataverse.environments import root_business_unit
from syncd.dataverse.schema import Environment, Role, SystemUser, Team, TeamMembership, TeamRole
from syncd.directory.client import GraphClient
from syncd.rules import check_app_access


def _env_id(s: Session) -> int:
    env_id = s.scalar(select(Environment.id).where(Environment.name == "prod"))
    assert env_id is not None
    return env_id


def test_r26_on_demand_and_application_users_go_to_the_root_business_unit(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R26: an on-demand add (R8) and an application user (R18) are created in the root business unit.
    make_env(engine)
    u = tenant.user("ann")
    result = users.add_user(engine, directory, "prod", u["id"])
    sp = tenant.service_principals[0]
    app_users.create_app_user(engine, directory, "prod", sp["appId"])
    with Session(engine) as s:
        root = root_business_unit(s, _env_id(s))
        assert root.name == "prod"
        rows = s.scalars(select(SystemUser)).all()
        assert {r.businessunitid for r in rows} == {root.businessunitid}
        added = next(r for r in rows if r.domainname == u["userPrincipalName"])
        assert (added.azurestate, added.issyncwithdirectory) == (0, True)
        app = next(r for r in rows if r.kind == "application")
        assert app.issyncwithdirectory is False
    assert result.row is not None and result.row["businessunitid"] == str(root.businessunitid)


def test_versionnumber_moves_with_admin_writes(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    make_env(engine)
    u = tenant.user("bea")
    users.add_user(engine, directory, "prod", u["id"])
    with Session(engine) as s:
        row = s.scalar(select(SystemUser).where(SystemUser.domainname == u["userPrincipalName"]))
        assert row is not None
        first = row.versionnumber
    tenant.disable(u["id"])
    users.refresh_user(engine, directory, "prod", u["id"])
    with Session(engine) as s, s.begin():
        row = s.scalar(select(SystemUser).where(SystemUser.domainname == u["userPrincipalName"]))
        assert row is not None and row.isdisabled and row.versionnumber > first
        second = row.versionnumber
        row.new_costcentre = "CC-7"  # an ORM write: the database stamps it, the ORM reads it back
        s.flush()
        assert row.versionnumber > second


def test_r21_roles_held_through_a_team_count(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R21: a user with no direct role, member of a team that holds one, has access to apps; the
    # diagnosis (R22) lists direct roles and the roles through each team.
    make_env(engine)
    u = tenant.user("cid")
    result = users.add_user(engine, directory, "prod", u["id"])
    assert result.row is not None and result.row["app_access"]["passed"] is False
    with Session(engine) as s, s.begin():
        env_id = _env_id(s)
        unit = root_business_unit(s, env_id).businessunitid
        row = s.scalar(select(SystemUser).where(SystemUser.domainname == u["userPrincipalName"]))
        assert row is not None
        role = s.scalar(select(Role).where(Role.environment_id == env_id, Role.name == "Basic User"))
        assert role is not None
        team = Team(
            environment_id=env_id,
            name="Sales group team",
            teamtype=2,
            azureactivedirectoryobjectid=uuid.uuid4(),
            membershiptype=1,
            businessunitid=unit,
            administratorid=row.systemuserid,
        )
        s.add(team)
        s.flush()
        s.add_all(
            [
                TeamMembership(teamid=team.teamid, systemuserid=row.systemuserid),
                TeamRole(teamid=team.teamid, roleid=role.roleid),
            ]
        )
    diagnosis = users.diagnose_user(engine, directory, "prod", u["id"])
    assert diagnosis.row is not None
    assert diagnosis.row["roles"] == [] and diagnosis.row["team_roles"] == {
        "Sales group team": ["Basic User"]
    }
    access = diagnosis.row["app_access"]
    assert access["passed"] is True and "through team Sales group team: Basic User" in access["message"]


def test_r21_app_access_check_lists_direct_and_team_roles() -> None:
    assert not check_app_access([], {}).passed
    check = check_app_access([], {"Empty team": []})
    assert not check.passed and "Empty team" in check.message
    check = check_app_access(["System Administrator"], {"T": ["Basic User"], "Empty": []})
    assert check.passed and check.rule == "R21"
    assert check.message == "R21 security roles: direct: System Administrator; through team T: Basic User"


def test_team_uniqueness_as_dataverse_has_it(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R25: one group team per Entra group and membership type; a user is a member of a team once;
    # a team holds a role once; a group team has a group, an owner team has none.
    make_env(engine)
    with Session(engine) as s, s.begin():
        env_id = _env_id(s)
        unit = root_business_unit(s, env_id).businessunitid
        admin = s.scalar(select(SystemUser.systemuserid).where(SystemUser.kind == "support"))
        assert admin is not None
        group = uuid.uuid4()
        for membership in (0, 2):
            s.add(
                Team(
                    environment_id=env_id,
                    name=f"group {membership}",
                    teamtype=2,
                    azureactivedirectoryobjectid=group,
                    membershiptype=membership,
                    businessunitid=unit,
                    administratorid=admin,
                )
            )
    base = {"environment_id": env_id, "businessunitid": unit, "administratorid": admin}
    bad = [
        dict(name="again", teamtype=2, azureactivedirectoryobjectid=group, membershiptype=0),
        dict(
            name="owner with group", teamtype=0, azureactivedirectoryobjectid=uuid.uuid4(), membershiptype=0
        ),
        dict(name="group without one", teamtype=3, azureactivedirectoryobjectid=None, membershiptype=0),
        dict(name="bad type", teamtype=4, azureactivedirectoryobjectid=None, membershiptype=0),
    ]
    for values in bad:
        with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
            s.add(Team(**base, **values))  # type: ignore[arg-type]
    with Session(engine) as s, s.begin():
        team = s.scalars(select(Team)).first()
        assert team is not None and team.versionnumber > 0
        team_id = team.teamid
        s.add(TeamMembership(teamid=team_id, systemuserid=admin))
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        s.add(TeamMembership(teamid=team_id, systemuserid=admin))
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM teammembership")).scalar() == 1
