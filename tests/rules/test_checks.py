"""Diagnostics and the admin operations' checks (R6, R17, R20-R23), and how they read."""

from __future__ import annotations

from rules_builders import (
    APPS_FOR_BUSINESS,
    D365A,
    GA,
    GROUP,
    O365_E3,
    SALES,
    SALES_PLAN_DISABLED,
    UNKNOWN_SKU,
    duser,
    env,
    facts,
    row_for,
)

from syncd.rules import (
    Action,
    EnvType,
    Membership,
    Mode,
    UserKind,
    check_refresh_allowed,
    check_role_assignment,
    decide,
    default_role_name,
    diagnose,
    is_stub_conflict,
    stub_conflict,
)


def _by_rule(checks: tuple) -> dict:  # type: ignore[type-arg]
    return {c.rule: c for c in checks}


def test_r22_diagnosis_lists_r1_r3_r4_r5_r6_r7() -> None:  # R22
    checks = diagnose(facts(duser(SALES)), env(), None)
    assert {"R1", "R3", "R4", "R5", "R6", "R7", "R16"} <= {c.rule for c in checks}
    assert all(c.passed for c in checks)


def test_r22_r4_message_names_the_licence_that_counted() -> None:  # R22 R4
    c = _by_rule(diagnose(facts(duser(SALES)), env(), None))["R4"]
    assert (
        c.message == "R4 licence: holds Dynamics 365 Sales Enterprise Edition (DYN365_ENTERPRISE_SALES plan)"
    )


def test_r22_r5_message_names_the_kind_of_membership() -> None:  # R22 R5
    c = _by_rule(diagnose(facts(duser(SALES), membership=Membership.NESTED_ONLY), env(), None))["R5"]
    assert not c.passed
    assert c.message == (
        "R5 security group: not a direct member of group 1234abcd… "
        "(member only through a nested group; nested groups don't count)"
    )
    assert GROUP.startswith("1234abcd")


def test_r22_r5_d365_admin_told_not_exempt() -> None:  # R22 R5 R6
    c = _by_rule(diagnose(facts(duser(), roles=D365A, membership=Membership.NONE), env(), None))["R5"]
    assert not c.passed and "Dynamics 365 administrators are not exempt" in c.message


def test_r22_r5_exempt_admin() -> None:  # R22 R5 R6
    checks = _by_rule(diagnose(facts(duser(), roles=GA, membership=Membership.NONE), env(), None))
    assert checks["R5"].passed and "exempt" in checks["R5"].message
    assert "Global Administrator" in checks["R6"].message
    assert "R4a" in checks["R4"].message
    assert "Administrative (1)" in checks["R16"].message


def test_r22_r4_explains_disabled_plan_office_only_and_guest() -> None:  # R22 R4
    u = duser(SALES_PLAN_DISABLED, APPS_FOR_BUSINESS, UNKNOWN_SKU, guest=True)
    c = _by_rule(diagnose(facts(u), env(), None))["R4"]
    assert not c.passed
    assert "DYN365_ENTERPRISE_SALES plan of Dynamics 365 Sales Enterprise Edition is disabled" in c.message
    assert "Office-only licences never count: Microsoft 365 Apps for business" in c.message
    assert "unknown" in c.message
    assert "guest counts only licences assigned in this tenant" in c.message


def test_r22_r4_free_plan_background_vs_on_demand() -> None:  # R22 R4e R7a
    bg = _by_rule(diagnose(facts(duser(O365_E3)), env(), None))
    assert not bg["R4"].passed and "on demand only" in bg["R4"].message and "R4e" in bg["R4"].message
    assert bg["R7a"].passed is False
    od = _by_rule(diagnose(facts(duser(O365_E3)), env(), None, Mode.ON_DEMAND))
    assert od["R4"].passed and "DYN365_CDS_O365_P2" in od["R4"].message and od["R8"].passed


def test_r22_environment_type_checks() -> None:  # R22 R7b R7c R7d
    assert not _by_rule(diagnose(facts(duser(SALES)), env(EnvType.TRIAL), None))["R7b"].passed
    assert not _by_rule(diagnose(facts(duser(SALES)), env(EnvType.TEAMS), None))["R7c"].passed
    assert not _by_rule(diagnose(facts(duser(SALES)), env(EnvType.DEVELOPER), None))["R7d"].passed


def test_r22_r1_stops_at_the_database() -> None:  # R22 R1
    checks = diagnose(facts(duser(SALES)), env(has_database=False), None, Mode.ON_DEMAND)
    assert [c.rule for c in checks] == ["R1"] and not checks[0].passed


def test_r22_special_rows_explained() -> None:  # R22 R18 R19 R20
    for kind, rule in [
        (UserKind.APPLICATION, "R18"),
        (UserKind.SUPPORT, "R19"),
        (UserKind.DELEGATED_ADMIN, "R19"),
        (UserKind.STUB, "R20"),
    ]:
        checks = diagnose(facts(duser()), env(), row_for(duser(), kind=kind))
        assert checks[-1].rule == rule


def test_r22_explain_attaches_checks_and_keeps_action() -> None:  # R22
    f = facts(duser(), membership=Membership.OWNER)
    plain = decide(f, env(), None)
    ex = decide(f, env(), None, explain=True)
    assert plain.checks == () and ex.checks and ex.action is plain.action


def test_r8_refusal_reason_lists_failures() -> None:  # R8 R22
    d = decide(facts(duser(), membership=Membership.NESTED_ONLY), env(), None, Mode.ON_DEMAND)
    assert d.action is Action.REFUSE
    assert "R4 licence" in d.reason and "R5 security group" in d.reason
    assert str(d.failed_checks[0]).startswith("FAIL ")


def test_r21_role_assignment_enabled_only_unless_setting() -> None:  # R21
    assert check_role_assignment(row_for(duser()), env()).passed
    c = check_role_assignment(row_for(duser(), disabled=True), env())
    assert not c.passed and "allowRoleAssignmentOnDisabledUsers" in c.message
    assert check_role_assignment(
        row_for(duser(), disabled=True), env(allow_role_assignment_on_disabled_users=True)
    ).passed


def test_r23_refresh_not_for_stubs() -> None:  # R23
    assert not check_refresh_allowed(UserKind.STUB).passed
    assert check_refresh_allowed(UserKind.REGULAR).passed
    assert check_refresh_allowed(None).passed


def test_r20_stub_conflict_reported_not_merged() -> None:  # R20
    u = duser(SALES)
    stub = row_for(kind=UserKind.STUB, disabled=True, domainname="ADA@contoso.example")
    c = stub_conflict(u, stub)
    assert not c.passed and "not merged" in c.message and u.user_principal_name in c.message
    assert stub_conflict(u, row_for(kind=UserKind.STUB, domainname="other@contoso.example")).passed
    assert is_stub_conflict("a@b.example", "A@B.example") and not is_stub_conflict("a@b.example", None)


def test_r20_default_role() -> None:  # R20
    assert default_role_name(env()) == "Basic User"
    assert default_role_name(env(is_sales=True)) == "Salesperson"
