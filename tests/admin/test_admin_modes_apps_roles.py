"""Access modes (R16, R17), application users (R18) and roles (R21), on both backends."""

from __future__ import annotations

import pytest
from admin_helpers import Tenant, make_env
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from syncd.admin import app_users, modes, roles, users
from syncd.admin.errors import Refused
from syncd.dataverse.schema import Environment, SyncEvent, SystemUser
from syncd.directory.client import GraphClient
from syncd.errors import Conflict, NotFound, SyncdError
from syncd.settings import Settings
from syncd.sync.run import RunOptions, sync_environment


def test_set_mode_read_is_kept_by_sync(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R16: a mode set by an administrator (Read) is kept by sync
    make_env(engine)
    u = tenant.user("rita")
    users.add_user(engine, directory, "prod", u["id"])
    r = modes.set_access_mode(engine, "prod", u["userPrincipalName"], "read", directory=directory)
    assert (r.old_mode, r.mode, r.changed, r.note) == (0, 2, True, None)
    assert users.refresh_user(engine, directory, "prod", u["id"]).row["accessmode"] == 2  # type: ignore[index]
    with Session(engine) as s:
        event = s.scalars(select(SyncEvent).order_by(SyncEvent.id.desc())).first()
    assert event is not None and (event.action, event.rule, event.run_id) == ("update", "R16", None)
    # the event records the mode it replaced next to the new one (the provisioning log's old -> new)
    assert (event.changes, event.previous) == ('{"accessmode":2}', '{"accessmode":0}')
    # Read-Write can be set, with the note that sync recomputes it.
    r = modes.set_access_mode(engine, "prod", u["id"], "read-write")
    assert r.mode == 0 and r.note is not None and "R16" in r.note


def test_eighth_noninteractive_is_refused_application_users_dont_count(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R17, R18
    make_env(engine)
    for sp in tenant.service_principals[:3]:
        app_users.create_app_user(engine, directory, "prod", sp["appId"])
    people = [tenant.user(f"ni{i}") for i in range(8)]
    for p in people:
        users.add_user(engine, directory, "prod", p["id"])
    for p in people[:7]:
        r = modes.set_access_mode(engine, "prod", p["id"], "non-interactive")
        assert r.mode == 4 and r.checks[0].rule == "R17" and r.checks[0].passed
    with pytest.raises(Refused) as err:
        modes.set_access_mode(engine, "prod", people[7]["id"], "non-interactive")
    [check] = err.value.checks
    assert check.rule == "R17" and not check.passed and "7" in check.message
    with Session(engine) as s:
        row = s.scalar(select(SystemUser).where(SystemUser.domainname == people[7]["userPrincipalName"]))
        assert row is not None and row.accessmode == 0
    # Setting it again on one already non-interactive is no eighth.
    assert modes.set_access_mode(engine, "prod", people[0]["id"], "non-interactive").changed is False
    # Moving one out frees a place.
    modes.set_access_mode(engine, "prod", people[0]["id"], "read")
    assert modes.set_access_mode(engine, "prod", people[7]["id"], "non-interactive").mode == 4


def test_noninteractive_needs_no_licence(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R4d, R17: licence rules no longer apply to a non-interactive user
    make_env(engine)
    u = tenant.user("robot")
    users.add_user(engine, directory, "prod", u["id"])
    modes.set_access_mode(engine, "prod", u["id"], "non-interactive")
    tenant.unlicence(u["id"])
    r = users.refresh_user(engine, directory, "prod", u["id"])
    assert r.row is not None and r.row["isdisabled"] is False and r.row["accessmode"] == 4


def test_set_mode_bad_input_and_other_kinds(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    make_env(engine)
    sp = tenant.service_principals[0]
    app_users.create_app_user(engine, directory, "prod", sp["appId"])
    with pytest.raises(SyncdError, match="'sideways'"):
        modes.set_access_mode(engine, "prod", sp["appId"], "sideways")
    with pytest.raises(Refused) as err:
        modes.set_access_mode(engine, "prod", sp["appId"], "read")
    assert err.value.checks[0].rule == "R18"
    with pytest.raises(Refused) as err:
        modes.set_access_mode(engine, "prod", "crmoln@microsoft.com", "read")
    assert err.value.checks[0].rule == "R19"
    with pytest.raises(NotFound):
        modes.set_access_mode(engine, "prod", "nobody@x.example", "read")


def test_application_user(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R18, R13
    make_env(engine)
    sp = tenant.service_principals[1]
    r = app_users.create_app_user(engine, directory, "prod", sp["appId"])
    row = r.row
    assert (row["kind"], row["applicationid"], row["accessmode"], row["firstname"], row["isdisabled"]) == (
        "application",
        sp["appId"],
        4,
        "#",
        False,
    )
    assert row["azureactivedirectoryobjectid"] == sp["id"]
    with pytest.raises(Conflict):
        app_users.create_app_user(engine, directory, "prod", sp["appId"])
    with pytest.raises(NotFound, match="00000000-0000-4000-8000-000000000000"):
        app_users.create_app_user(engine, directory, "prod", "00000000-0000-4000-8000-000000000000")
    with pytest.raises(SyncdError, match="'not-a-guid'"):
        app_users.create_app_user(engine, directory, "prod", "not-a-guid")
    # No limit on their number.
    for other in tenant.service_principals[2:]:
        app_users.create_app_user(engine, directory, "prod", other["appId"])
    # Sync never touches them: refresh leaves it alone, a full run too.
    assert users.refresh_user(engine, directory, "prod", sp["appId"]).action == "leave_alone"
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    with Session(engine) as s:
        apps = list(s.scalars(select(SystemUser).where(SystemUser.kind == "application")))
    assert len(apps) == len(tenant.service_principals) - 1
    assert all(a.accessmode == 4 and not a.isdisabled for a in apps)


def test_roles_only_for_enabled_users(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R21: allowRoleAssignmentOnDisabledUsers off
    make_env(engine)
    u, gone = tenant.user("sam"), tenant.user("tom")
    for x in (u, gone):
        users.add_user(engine, directory, "prod", x["id"])
    tenant.disable(gone["id"])
    users.refresh_user(engine, directory, "prod", gone["id"])
    r = roles.assign_role(engine, "prod", u["userPrincipalName"], "basic user")
    assert (r.role, r.changed, r.roles) == ("Basic User", True, ["Basic User"])
    assert roles.assign_role(engine, "prod", u["id"], "Basic User").changed is False
    with pytest.raises(Refused) as err:
        roles.assign_role(engine, "prod", gone["id"], "Basic User")
    assert err.value.checks[0].rule == "R21"
    with pytest.raises(NotFound, match="known: Basic User, Salesperson, System Administrator"):
        roles.assign_role(engine, "prod", u["id"], "Overlord")
    r = roles.remove_role(engine, "prod", u["id"], "Basic User")
    assert r.roles == []
    with pytest.raises(NotFound):
        roles.remove_role(engine, "prod", u["id"], "Basic User")


def test_roles_on_disabled_users_when_the_environment_allows(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R21: allowRoleAssignmentOnDisabledUsers on
    make_env(engine, allow_role_assignment_on_disabled_users=True)
    u = tenant.user("uma")
    users.add_user(engine, directory, "prod", u["id"])
    tenant.disable(u["id"])
    users.refresh_user(engine, directory, "prod", u["id"])
    r = roles.assign_role(engine, "prod", u["id"], "Salesperson")
    assert r.changed and "allowRoleAssignmentOnDisabledUsers" in r.checks[0].message


def test_concurrent_changes_never_make_an_eighth_noninteractive_user(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    """R17 under concurrency: twelve changes at once, each for a different user, leave exactly seven
    non-interactive users on both backends (the environment's row is locked before the count)."""
    import threading

    make_env(engine)
    people = [tenant.user(f"race{i}") for i in range(12)]
    for p in people:
        users.add_user(engine, directory, "prod", p["id"])
    start = threading.Barrier(len(people))
    outcomes: list[str] = []

    def change(user_id: str) -> None:
        start.wait()
        try:
            modes.set_access_mode(engine, "prod", user_id, "non-interactive")
            outcomes.append("set")
        except Refused:
            outcomes.append("refused")

    threads = [threading.Thread(target=change, args=(p["id"],)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["refused"] * 5 + ["set"] * 7
    with Session(engine) as s:
        assert modes.noninteractive_count(s, s.scalar(select(SystemUser.environment_id).limit(1))) == 7


def test_a_role_is_found_by_its_name_in_any_case_of_any_script(engine: Engine) -> None:
    """Role names compare case-insensitively for non-ASCII letters too, the same on both backends."""
    from syncd.dataverse.environments import get_environment, root_business_unit
    from syncd.dataverse.schema import Role

    make_env(engine)
    with Session(engine) as s, s.begin():
        env = get_environment(s, "prod")
        unit = root_business_unit(s, env.id).businessunitid
        s.add(Role(environment_id=env.id, name="Łódź Ärzte Σύμβουλος", businessunitid=unit))
    with Session(engine) as s:
        env = get_environment(s, "prod")
        assert roles.find_role(s, env, "łÓDŹ äRZTE ΣΎΜΒΟΥΛΟΣ").name == "Łódź Ärzte Σύμβουλος"
        with pytest.raises(NotFound):
            roles.find_role(s, env, "Lodz Arzte Σύμβουλος")  # accents are kept


ACCEPTED_MODES = "expected one of read-write (0), administrative (1), read (2), non-interactive (4)"


@pytest.mark.parametrize(
    ("value", "shown"),
    [("sideways", "'sideways'"), (3, "3"), (5, "5"), ("3", "'3'"), (True, "True"), (None, "None"), (7, "7")],
)
def test_a_bad_access_mode_is_one_line_naming_it_and_the_accepted_modes(
    engine: Engine, tenant: Tenant, directory: GraphClient, value: object, shown: str
) -> None:
    # One wording wherever the mode comes from (CLI name, API body, the Web API's number), as the
    # other admin errors: "invalid <what> <value>: expected one of <accepted>".
    make_env(engine)
    u = tenant.user("moody")
    users.add_user(engine, directory, "prod", u["id"])
    with pytest.raises(SyncdError) as err:
        modes.set_access_mode(engine, "prod", u["id"], value, directory=directory)  # type: ignore[arg-type]
    assert str(err.value) == f"invalid access mode {shown}: {ACCEPTED_MODES}"
    with pytest.raises(SyncdError) as err, Session(engine) as s:
        row = s.scalars(select(SystemUser).where(SystemUser.domainname == u["userPrincipalName"])).one()
        modes.change_access_mode(s, s.get_one(Environment, row.environment_id), row, value)  # type: ignore[arg-type]
    assert str(err.value) == f"invalid access mode {shown}: {ACCEPTED_MODES}"


def test_an_access_mode_by_name_or_by_dataverse_number(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    make_env(engine)
    u = tenant.user("numbers")
    users.add_user(engine, directory, "prod", u["id"])
    for value, mode in [("Read", 2), ("4", 4), (0, 0), ("Non_Interactive", 4), ("read/write", 0)]:
        assert modes.set_access_mode(engine, "prod", u["id"], value).mode == mode, value


@pytest.mark.parametrize(("value", "mode"), [(" 2", 2), ("4 ", 4), ("\tread\n", 2), (" Non Interactive ", 4)])
def test_r16_surrounding_whitespace_is_ignored_as_for_membership_types(value: str, mode: int) -> None:
    from syncd.rules import membership_type

    assert modes.parse_mode(value) == mode
    assert membership_type(" 2") == membership_type("2")


@pytest.mark.parametrize("value", ["\u00b2", "\u0662", "\uff12", "2 2", ""])
def test_r16_only_ascii_digits_are_a_mode_number(value: str) -> None:
    # "²".isdigit() is true but int("²") fails: it was an unexpected ValueError, not this one line.
    from syncd.admin.teams import check_membership

    with pytest.raises(SyncdError, match="invalid access mode") as err:
        modes.parse_mode(value)
    assert repr(value) in str(err.value)
    with pytest.raises(SyncdError, match="invalid membership type") as err:
        check_membership(value)
    assert repr(value) in str(err.value)
