"""On-demand add (R8), first access (R7c), refresh (R23) and diagnose (R22), on both backends."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from admin_helpers import E3_SKU, Tenant, make_env
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from syncd.admin import users
from syncd.admin.errors import Refused
from syncd.dataverse.schema import Environment, SyncEvent, SyncRun, SystemUser
from syncd.directory.client import GraphClient
from syncd.errors import NotFound
from syncd.rules import DYNAMICS_365_ADMINISTRATOR, POWER_PLATFORM_ADMINISTRATOR


def regular_rows(engine: Engine) -> list[SystemUser]:
    with Session(engine) as s:
        return list(s.scalars(select(SystemUser).where(SystemUser.kind == "regular")))


def runs(engine: Engine) -> list[SyncRun]:
    with Session(engine) as s:
        return list(s.scalars(select(SyncRun).order_by(SyncRun.id)))


def test_add_creates_the_row_as_a_user_run_with_its_event(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R8
    make_env(engine)
    u = tenant.user("alice")
    r = users.add_user(engine, directory, "prod", u["userPrincipalName"])
    assert (r.action, r.rule, r.changed, r.outcome) == ("create", "R8", True, "succeeded")
    assert r.row is not None and r.row["isdisabled"] is False and r.row["accessmode"] == 0
    assert all(c.passed for c in r.checks) and {c.rule for c in r.checks} >= {"R1", "R3", "R4", "R5", "R8"}
    [run] = runs(engine)
    assert (run.kind, run.trigger, run.outcome, run.created, run.read) == ("user", "cli", "succeeded", 1, 1)
    with Session(engine) as s:
        [event] = s.scalars(select(SyncEvent)).all()
    assert (event.run_id, event.action, event.rule) == (run.id, "create", "R8")
    # A second add keeps the row: nothing changes.
    again = users.add_user(engine, directory, "prod", u["id"])
    assert (again.action, again.changed) == ("keep", False)
    assert len(regular_rows(engine)) == 1


def test_refused_add_lists_failed_checks_and_changes_nothing(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R8, R4, R5: no licence and not a member of the security group
    group = tenant.group("Dataverse")
    make_env(engine, security_group_id=group)
    u = tenant.user("bob", licence=None)
    with pytest.raises(Refused) as err:
        users.add_user(engine, directory, "prod", u["userPrincipalName"])
    failed = {c.rule for c in err.value.checks}
    assert {"R4", "R5"} <= failed and all(not c.passed for c in err.value.checks)
    assert err.value.exit_code == 1
    assert regular_rows(engine) == [] and runs(engine) == []


def test_add_reenables_a_disabled_row(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R8 re-enable, R9, R23 refresh disables
    make_env(engine)
    u = tenant.user("carol")
    users.add_user(engine, directory, "prod", u["id"])
    tenant.unlicence(u["id"])
    refreshed = users.refresh_user(engine, directory, "prod", u["id"])
    assert (refreshed.action, refreshed.rule) == ("disable", "R9")
    assert refreshed.row is not None and refreshed.row["isdisabled"] is True
    tenant.licence(u["id"], "1e1a282c-9c54-43a2-9310-98ef728faace")
    r = users.add_user(engine, directory, "prod", u["userPrincipalName"])
    assert (r.action, r.rule) == ("enable", "R8")
    assert r.row is not None and r.row["isdisabled"] is False


def test_security_group_membership_on_demand(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R5: direct member yes, owner yes on demand, member only through a nested group no
    group = tenant.group("Dataverse")
    nested = tenant.group("Nested")
    deeper = tenant.group("Deeper")
    tenant.member(group, nested)
    tenant.member(nested, deeper)
    make_env(engine, security_group_id=group)
    direct, owner, inner = tenant.user("direct"), tenant.user("owner"), tenant.user("inner")
    tenant.member(group, direct["id"])
    tenant.owner(group, owner["id"])
    tenant.member(deeper, inner["id"])
    assert users.add_user(engine, directory, "prod", direct["id"]).user["membership"] == "direct"
    r = users.add_user(engine, directory, "prod", owner["id"])
    assert r.action == "create" and r.user["membership"] == "owner"
    with pytest.raises(Refused) as err:
        users.add_user(engine, directory, "prod", inner["id"])
    [r5] = [c for c in err.value.checks if c.rule == "R5"]
    assert "nested" in r5.message
    d = users.diagnose_user(engine, directory, "prod", inner["userPrincipalName"])
    assert d.user["membership"] == "nested_only"


def test_admins_and_group_exemption(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R5, R6, R16: a Power Platform admin is exempt from the group and needs no licence; a D365 admin is not exempt
    group = tenant.group("Dataverse")
    make_env(engine, security_group_id=group)
    pp, d365 = tenant.user("ppadmin", licence=None), tenant.user("d365admin", licence=None)
    tenant.admin(pp["id"], POWER_PLATFORM_ADMINISTRATOR)
    tenant.admin(d365["id"], DYNAMICS_365_ADMINISTRATOR)
    r = users.add_user(engine, directory, "prod", pp["id"])
    assert r.row is not None and r.row["accessmode"] == 1  # Administrative: an admin without a licence
    with pytest.raises(Refused) as err:
        users.add_user(engine, directory, "prod", d365["id"])
    assert [c.rule for c in err.value.checks] == ["R5", "R8"]


def test_app_pass_capacity_lets_unlicensed_users_in_on_demand(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R4b, R7a: the capacity is read, not used up (see syncd/admin/users.py)
    make_env(engine, app_pass_capacity=1)
    a, b = tenant.user("pass1", licence=None), tenant.user("pass2", licence=None)
    free = tenant.user("free", licence=E3_SKU)
    for u in (a, b):
        r = users.add_user(engine, directory, "prod", u["id"])
        assert r.action == "create" and r.via_app_pass and "R4b" in r.reason
    with Session(engine) as s:
        assert s.scalar(select(Environment.app_pass_capacity)) == 1
    # A free Microsoft 365 plan (R4e) is its own ground.
    r = users.add_user(engine, directory, "prod", free["id"])
    assert r.action == "create" and not r.via_app_pass
    # The background sync keeps the row as it is (R7a).
    assert users.refresh_user(engine, directory, "prod", a["id"]).action == "keep"
    assert users.diagnose_user(engine, directory, "prod", a["id"]).next["rule"] == "R7a"


def test_app_pass_capacity_none_left_refuses(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R4b, R8
    make_env(engine, app_pass_capacity=0)
    u = tenant.user("nopass", licence=None)
    with pytest.raises(Refused) as err:
        users.add_user(engine, directory, "prod", u["id"])
    assert [x.rule for x in err.value.checks] == ["R4", "R8"]


def test_teams_rows_only_at_first_access(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R7c
    make_env(engine, "teams", type="teams")
    u = tenant.user("dana")
    with pytest.raises(Refused) as err:
        users.add_user(engine, directory, "teams", u["id"])
    assert any(c.rule == "R7c" for c in err.value.checks)
    assert regular_rows(engine) == []
    r = users.first_access(engine, directory, "teams", u["userPrincipalName"])
    assert (r.operation, r.action, r.changed) == ("access", "create", True)
    d = users.diagnose_user(engine, directory, "teams", u["id"])
    assert d.next["action"] == "keep"


def test_no_database_refuses(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R1
    make_env(engine, "nodb", has_database=False)
    u = tenant.user("erin")
    with pytest.raises(Refused) as err:
        users.add_user(engine, directory, "nodb", u["id"])
    assert [c.rule for c in err.value.checks] == ["R1"]


def test_refresh_disables_a_deleted_user_and_is_refused_for_stubs(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R23, R9, R3
    make_env(engine)
    u = tenant.user("frank")
    users.add_user(engine, directory, "prod", u["id"])
    tenant.delete(u["id"])
    r = users.refresh_user(engine, directory, "prod", u["userPrincipalName"])
    assert (r.action, r.rule, r.changed) == ("disable", "R9", True)
    [row] = regular_rows(engine)
    assert row.isdisabled  # never deleted
    from syncd.admin.stubs import import_stubs

    import_stubs(engine, directory, "prod", "domainname,fullname\nghost@old.example,Ghost\n")
    with pytest.raises(Refused) as err:
        users.refresh_user(engine, directory, "prod", "ghost@old.example")
    assert [c.rule for c in err.value.checks] == ["R23"]


def test_refresh_follows_background_rules(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R23: an owner added on demand is kept, a user who left the group is disabled; a new entitled user is added
    group = tenant.group("Dataverse")
    make_env(engine, security_group_id=group)
    u = tenant.user("gina")
    tenant.member(group, u["id"])
    assert users.refresh_user(engine, directory, "prod", u["id"]).action == "create"
    tenant.store.remove_group_member(group, u["id"])
    r = users.refresh_user(engine, directory, "prod", u["id"])
    assert (r.action, r.row and r.row["isdisabled"]) == ("disable", True)
    outsider = tenant.user("hank")
    r = users.refresh_user(engine, directory, "prod", outsider["id"])
    assert (r.action, r.changed, r.row) == ("leave_alone", False, None)


def test_diagnose_says_why_and_what_next(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R22
    group = tenant.group("Dataverse")
    make_env(engine, security_group_id=group)
    u = tenant.user("ivan")
    tenant.owner(group, u["id"])
    users.add_user(engine, directory, "prod", u["id"])
    d = users.diagnose_user(engine, directory, "prod", u["userPrincipalName"])
    by_rule = {c.rule: c for c in d.checks}
    assert by_rule["R3"].passed and by_rule["R4"].passed
    assert "DYN365_ENTERPRISE_SALES" in by_rule["R4"].message  # the licence that counted
    assert not by_rule["R5"].passed and "owner" in by_rule["R5"].message
    assert d.next["action"] == "keep"  # an owner's row is kept, not disabled
    assert d.on_demand["possible"] is True
    assert d.row is not None and d.row["domainname"] == u["userPrincipalName"]
    assert [e["action"] for e in d.events] == ["create"]
    text = [str(c) for c in d.checks]
    assert any(t.startswith("FAIL R5") for t in text) and any(t.startswith("PASS R3") for t in text)


def test_unknown_user_and_environment(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    make_env(engine)
    with pytest.raises(NotFound, match="nobody@nowhere.example"):
        users.add_user(engine, directory, "prod", "nobody@nowhere.example")
    with pytest.raises(NotFound, match="'nope'"):
        users.add_user(engine, directory, "nope", "x@y.example")
    with pytest.raises(NotFound):
        users.diagnose_user(engine, directory, "prod", "nobody@nowhere.example")
    from syncd.errors import SyncdError

    with pytest.raises(SyncdError, match="invalid user"):
        users.add_user(engine, directory, "prod", "not a user")
    # No UPN holds / \\ ? or %: a key with one is bad input, not a Graph path to follow (it was a
    # 502 "directory unavailable" after the fake's 307 for ``a@b/``).
    for key in ("a@b/", "a/b@c", "a\\b@c", "a?b@c", "a%2Fb@c"):
        with pytest.raises(SyncdError, match="invalid user"):
            users.diagnose_user(engine, directory, "prod", key)


def test_diagnose_a_soft_deleted_user_says_what_the_directory_still_holds(
    engine: Engine, tenant: Tenant, directory: GraphClient, db_url: str, clean_env: object
) -> None:
    # R22, R3, R9: soft-deleted (restorable) with the licence kept and the group membership suspended,
    # and what a restore would do; it used to say hard-deleted, no licence, not a member.
    from syncd.settings import load_settings
    from syncd.sync.run import RunOptions, sync_environment

    group = tenant.group("Dataverse")
    make_env(engine, security_group_id=group)
    u = tenant.user("sally")
    tenant.member(group, u["id"])
    settings = load_settings(database_url=db_url, allow_mass_disable=True)
    assert (
        sync_environment(engine, directory, "prod", settings, RunOptions(kind="full")).outcome == "succeeded"
    )
    tenant.delete(u["id"])

    d = users.diagnose_user(engine, directory, "prod", u["userPrincipalName"])
    assert d.user["deletion"] == "soft" and d.user["restorable"] and not d.user["in_directory"]
    assert d.user["object_id"] == u["id"] and d.user["user_principal_name"] == u["userPrincipalName"]
    assert (d.user["membership"], d.user["membership_suspended"], d.user["membership_source"]) == (
        "direct",
        True,
        "last sync",
    )
    by_rule = {c.rule: c for c in d.checks}
    assert not by_rule["R3"].passed and "soft-deleted" in by_rule["R3"].message
    assert "restorable" in by_rule["R3"].message and "hard" not in by_rule["R3"].message
    assert by_rule["R4"].passed and "DYN365_ENTERPRISE_SALES" in by_rule["R4"].message
    assert by_rule["R5"].passed and "direct member" in by_rule["R5"].message
    assert "suspended" in by_rule["R5"].message
    assert (d.next["action"], d.next["rule"]) == ("disable", "R9")
    assert d.on_demand["possible"] is False and d.on_demand["rule"] == "R3"
    assert d.restore is not None and d.restore["enabled"] is True and d.restore["action"] == "keep"
    # Her admin roles are suspended too: not known, and said so (a licensed member needs none).
    assert d.user["admin_roles_known"] is False and "not known" in by_rule["R6"].message
    assert "holds no admin role" not in by_rule["R6"].message

    # The background sync (here a refresh, R23) disables the row; a restore would enable it again.
    r = users.refresh_user(engine, directory, "prod", u["id"])
    assert (r.action, r.rule) == ("disable", "R9") and r.user["deletion"] == "soft"
    d = users.diagnose_user(engine, directory, "prod", u["id"].upper())
    assert d.restore == {
        "enabled": True,
        "summary": "the row would be enabled again (R9)",
        "action": "enable",
        "rule": "R9",
        "reason": d.restore["reason"],
        "failed_checks": [],
        "unknown": ["admin roles"],  # known or not, they change nothing here
        "cases": [],
    }
    with pytest.raises(Refused) as err:  # R8: refused by R3, not "no such user"
        users.add_user(engine, directory, "prod", u["id"])
    assert "R3" in {c.rule for c in err.value.checks}

    # Once purged from the deleted items it is hard-deleted, and nothing can be restored.
    tenant.store.hard_delete_user(u["id"])
    d = users.diagnose_user(engine, directory, "prod", u["id"])
    assert d.user["deletion"] == "hard" and not d.user["restorable"] and d.restore is None
    assert "hard delete" in {c.rule: c for c in d.checks}["R3"].message


def test_diagnose_a_soft_deleted_user_without_a_row_or_a_mirror(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R22, R3, R5, R7: named by object id, no row yet; with no mirror of the group, the directory
    # lists no membership of a deleted user (suspended), so the membership is not known, and said so.
    make_env(engine, "open")
    group = tenant.group("Dataverse")
    make_env(engine, "scoped", security_group_id=group)
    u = tenant.user("ghosted")
    tenant.member(group, u["id"])
    tenant.delete(u["id"])
    d = users.diagnose_user(engine, directory, "open", u["id"])
    assert d.user["deletion"] == "soft" and d.row is None and d.user["membership"] is None
    assert d.restore is not None
    assert (d.restore["action"], d.restore["enabled"]) == ("create", True)
    assert d.restore["summary"] == f"the background sync would add the user ({d.restore['rule']})"
    d = users.diagnose_user(engine, directory, "scoped", u["id"])
    assert (d.user["membership"], d.user["membership_source"]) == ("unknown", None)
    r5 = {c.rule: c for c in d.checks}["R5"]
    assert not r5.passed and "not known" in r5.message and "suspended" in r5.message
    assert "none is known" not in r5.message
    assert d.restore is not None and d.restore["enabled"] is None  # it depends, and says on what
    assert d.restore["summary"].startswith(
        "the background sync would add the user when the user is still a member of the security group (R5)"
    )
    assert "a restore brings back the memberships and roles the user had" in d.restore["reason"]
    with pytest.raises(NotFound):  # a UPN with no row: deleted items are read by object id only
        users.diagnose_user(engine, directory, "open", u["userPrincipalName"])


def _full_sync(engine: Engine, directory: GraphClient, db_url: str, env: str, kind: str = "auto") -> Any:
    from syncd.settings import load_settings
    from syncd.sync.run import RunOptions, sync_environment

    settings = load_settings(database_url=db_url, allow_mass_disable=True)
    report = sync_environment(engine, directory, env, settings, RunOptions(kind=kind))
    assert report.outcome == "succeeded", report
    return report


def _row_of(engine: Engine, object_id: str) -> SystemUser | None:
    with Session(engine) as s:
        return s.scalar(
            select(SystemUser).where(SystemUser.azureactivedirectoryobjectid == uuid.UUID(object_id))
        )


def test_diagnose_a_soft_deleted_member_once_the_mirror_dropped_them(
    engine: Engine, tenant: Tenant, directory: GraphClient, db_url: str, clean_env: object
) -> None:
    # R22, R5, R9: after the soft delete, the next sync's groups delta reports the member removed
    # (Entra suspends the membership), so the group mirror no longer lists them. Diagnose used to
    # say "FAIL R5 ... none is known" and "if restored: the user would not be enabled (R9)"; but a
    # restore brings the membership back and the next sync enables the row.
    group = tenant.group("Dataverse")
    make_env(engine, security_group_id=group)
    u = tenant.user("umber")
    tenant.member(group, u["id"])
    assert _full_sync(engine, directory, db_url, "prod", "full").counts["created"] >= 1
    tenant.delete(u["id"])
    report = _full_sync(engine, directory, db_url, "prod")
    assert report.kind == "delta" and report.counts["disabled"] == 1
    from syncd.admin import lookup

    with Session(engine) as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == "prod"))
        assert lookup.mirrored_membership(s, env_id, u["id"]) is None  # the mirror dropped them

    d = users.diagnose_user(engine, directory, "prod", u["id"])
    by_rule = {c.rule: c for c in d.checks}
    assert d.user["membership"] == "unknown" and d.user["membership_suspended"]
    assert not by_rule["R5"].passed and "none is known" not in by_rule["R5"].message
    assert "not known" in by_rule["R5"].message
    assert "a restore brings back the memberships and roles the user had" in by_rule["R5"].message
    assert (d.next["action"], d.next["rule"]) == ("keep", "R9")  # the row stays disabled meanwhile
    r = d.restore
    assert r is not None and r["enabled"] is None and (r["action"], r["rule"]) == (None, None)
    assert r["summary"] == (
        "the row would be enabled again when the user is still a member of the security group (R5), "
        "or holds an admin role exempt from the security group (Global or Power Platform Administrator, "
        "R6); otherwise the user would not be enabled (R9)"
    )
    assert r["unknown"] == ["membership", "admin roles"]
    assert [(c["when"], c["enabled"], c["action"]) for c in r["cases"]] == [
        ("is still a member of the security group (R5)", True, "enable"),
        (
            "holds an admin role exempt from the security group (Global or Power Platform Administrator, R6)",
            True,
            "enable",
        ),
        ("otherwise", False, "keep"),
    ]
    # What diagnose said holds: restored, the membership is back, and a sync enables the row.
    tenant.store.restore_user(u["id"])
    _full_sync(engine, directory, db_url, "prod")
    row = _row_of(engine, u["id"])
    assert row is not None and row.isdisabled is False
    d = users.diagnose_user(engine, directory, "prod", u["id"])
    assert d.user["membership"] == "direct" and d.restore is None


def test_diagnose_a_soft_deleted_global_administrator_without_a_licence(
    engine: Engine, tenant: Tenant, directory: GraphClient, db_url: str, clean_env: object
) -> None:
    # R22, R4a, R6, R7: the directory lists a deleted user in no directory role. Diagnose used to say
    # "holds no admin role" and "if restored ... would not be enabled (R7a)"; but once restored the
    # user is a Global Administrator again, and a sync creates their row.
    make_env(engine, app_pass_capacity=3)  # an on-demand-only ground besides (R4b, R7a)
    u = tenant.user("gadmin", licence=None)
    tenant.admin(u["id"])
    tenant.delete(u["id"])
    d = users.diagnose_user(engine, directory, "prod", u["id"])
    by_rule = {c.rule: c for c in d.checks}
    assert d.user["admin_roles"] == [] and d.user["admin_roles_known"] is False
    assert "holds no admin role" not in by_rule["R6"].message and "not known" in by_rule["R6"].message
    assert "a restore brings back the memberships and roles the user had" in by_rule["R6"].message
    assert not by_rule["R4"].passed and "(R4a)" in by_rule["R4"].message
    r = d.restore
    assert r is not None and r["enabled"] is None
    assert r["summary"] == (
        "the background sync would add the user when the user holds an admin role (R6); "
        "otherwise the user would not be enabled (R7a)"
    )
    assert [c["when"] for c in r["cases"]] == ["holds an admin role (R6)", "otherwise"]
    r7 = {c["rule"]: c for c in r["failed_checks"]}
    assert "R7a" not in r7 and "not known" in r7["R7"]["message"]  # "on demand only" is not known
    # What diagnose said holds: restored, a sync creates the row, in Administrative mode (R16).
    tenant.store.restore_user(u["id"])
    assert _full_sync(engine, directory, db_url, "prod", "full").counts["created"] >= 1
    row = _row_of(engine, u["id"])
    assert row is not None and (row.isdisabled, row.accessmode) == (False, 1)


def test_diagnose_a_soft_deleted_user_whom_nothing_could_enable(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R7b: in a trial environment the background sync adds no one, whatever the user's roles and
    # memberships: what is not known changes nothing, and the answer is plain.
    make_env(engine, type="trial")
    u = tenant.user("trialist")
    tenant.delete(u["id"])
    d = users.diagnose_user(engine, directory, "prod", u["id"])
    assert d.restore is not None and d.restore["enabled"] is False and d.restore["cases"] == []
    assert d.restore["summary"] == "the user would not be enabled (R7b)"
