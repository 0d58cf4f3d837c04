"""Environment provisioning: built-in users (R19), no database no users (R1), bad input."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from syncd.dataverse import db
from syncd.dataverse.environments import (
    DELEGATED_ADMIN_UPN,
    SUPPORT_UPN,
    EnvironmentSpec,
    create_environment,
    get_environment,
    root_business_unit,
)
from syncd.dataverse.schema import BusinessUnit, Environment, Role, SystemUser, SystemUserRole
from syncd.errors import Conflict, NotFound, SyncdError


def test_r19_environment_with_database_has_support_and_delegated_admin_users(engine) -> None:
    # R19: from its creation, the support user (mode 3) and the delegated-admin user (mode 5)
    with db.session_factory(engine)() as s, s.begin():
        env = create_environment(s, EnvironmentSpec(name="prod"))
        users = {
            u.domainname: u for u in s.scalars(select(SystemUser).where(SystemUser.environment_id == env.id))
        }
    assert set(users) == {SUPPORT_UPN, DELEGATED_ADMIN_UPN}
    assert users[SUPPORT_UPN].accessmode == 3 and users[SUPPORT_UPN].kind == "support"
    assert users[DELEGATED_ADMIN_UPN].accessmode == 5 and users[DELEGATED_ADMIN_UPN].kind == "delegated_admin"
    assert all(u.azureactivedirectoryobjectid is None and not u.isdisabled for u in users.values())


def test_r26_environment_with_database_has_a_root_business_unit_named_after_it(engine) -> None:
    # R26: from its creation; its built-in users (R19) and default roles belong to it.
    with db.session_factory(engine)() as s, s.begin():
        env = create_environment(s, EnvironmentSpec(name="Contoso Prod"))
        nodb = create_environment(s, EnvironmentSpec(name="nodb", has_database=False))
        root = root_business_unit(s, env.id)
        assert (root.name, root.parentbusinessunitid, root.environment_id) == ("Contoso Prod", None, env.id)
        assert root.versionnumber > 0
        units = s.scalars(select(BusinessUnit)).all()
        assert [u.businessunitid for u in units] == [root.businessunitid]  # none without a database (R1)
        users = s.scalars(select(SystemUser).where(SystemUser.environment_id == env.id)).all()
        assert users and {u.businessunitid for u in users} == {root.businessunitid}
        assert all(u.azurestate == 0 and u.issyncwithdirectory is False for u in users)
        roles = s.scalars(select(Role).where(Role.environment_id == env.id)).all()
        assert {r.businessunitid for r in roles} == {root.businessunitid}
        with pytest.raises(NotFound):
            root_business_unit(s, nodb.id)


def test_default_roles_created(engine) -> None:
    with db.session_factory(engine)() as s, s.begin():
        env = create_environment(s, EnvironmentSpec(name="sales", is_sales=True))
        names = set(s.scalars(select(Role.name).where(Role.environment_id == env.id)))
        assigned = s.scalar(select(func.count()).select_from(SystemUserRole))
    assert names == {"System Administrator", "Basic User", "Salesperson"}
    assert assigned == 2


def test_r1_environment_without_database_holds_no_users(engine) -> None:
    # R1: no database, no users (not even the built-in ones)
    with db.session_factory(engine)() as s, s.begin():
        env = create_environment(s, EnvironmentSpec(name="nodb", has_database=False))
        n = s.scalar(select(func.count()).select_from(SystemUser).where(SystemUser.environment_id == env.id))
    assert n == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (EnvironmentSpec(name="x", type="bogus"), "unknown environment type 'bogus'"),
        (EnvironmentSpec(name="x", security_group_id="not-a-guid"), "invalid security group id 'not-a-guid'"),
        (EnvironmentSpec(name="x", app_pass_capacity=-1), "invalid app-pass capacity -1"),
        (EnvironmentSpec(name="x", type="developer"), "needs --created-by"),
        (EnvironmentSpec(name=" x"), "invalid environment name ' x'"),
    ],
)
def test_bad_specs_name_the_bad_value_and_write_nothing(engine, spec: EnvironmentSpec, message: str) -> None:
    with pytest.raises(SyncdError, match=message), db.session_factory(engine)() as s, s.begin():
        create_environment(s, spec)
    with db.session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Environment)) == 0


def test_duplicate_name_is_a_conflict(engine) -> None:
    with db.session_factory(engine)() as s, s.begin():
        create_environment(s, EnvironmentSpec(name="dup"))
    with pytest.raises(Conflict, match="'dup' already exists"), db.session_factory(engine)() as s, s.begin():
        create_environment(s, EnvironmentSpec(name="dup"))
    with db.session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Environment)) == 1


def test_unknown_environment_lists_known_ones(engine) -> None:
    with db.session_factory(engine)() as s, s.begin():
        create_environment(s, EnvironmentSpec(name="alpha"))
    with (
        pytest.raises(NotFound, match="no environment named 'beta' \\(known: alpha\\)"),
        db.session_factory(engine)() as s,
    ):
        get_environment(s, "beta")


def test_an_over_long_name_is_shown_with_its_closing_quote() -> None:
    from syncd.dataverse.environments import shown

    text = shown("é" * 200)
    assert text.startswith("'é") and text.endswith("…'") and len(text) == 60
