"""decide(): who gets a row, when, and in which state (R1-R9, R15-R20)."""

from __future__ import annotations

import pytest
from rules_builders import (
    CREATOR,
    D365A,
    GA,
    O365_E3,
    PPA,
    SALES,
    duser,
    env,
    facts,
    row_for,
)

from syncd.directory.models import Deletion
from syncd.rules import (
    NO_CHANGES,
    SYNCED_COLUMNS,
    AccessMode,
    Action,
    EnvType,
    Membership,
    Mode,
    UserKind,
    decide,
)

ON_DEMAND_MODES = [Mode.ON_DEMAND, Mode.FIRST_ACCESS]


# R1 -----------------------------------------------------------------------------------------------


def test_r1_no_database_background_leaves_alone() -> None:  # R1
    d = decide(facts(duser(SALES)), env(has_database=False), None)
    assert d.action is Action.LEAVE_ALONE and d.rule == "R1"


@pytest.mark.parametrize("mode", ON_DEMAND_MODES)
def test_r1_no_database_on_demand_refuses_clearly(mode: Mode) -> None:  # R1
    d = decide(facts(duser(SALES)), env(has_database=False), None, mode)
    assert d.action is Action.REFUSE and d.rule == "R1"
    assert any(c.rule == "R1" and not c.passed and "no Dataverse database" in c.message for c in d.checks)
    assert "no Dataverse database" in d.reason


# R2 / R3 ------------------------------------------------------------------------------------------


def test_r2_entitled_user_is_created_enabled_read_write() -> None:  # R2
    d = decide(facts(duser(SALES)), env(), None)
    assert d.action is Action.CREATE and d.rule == "R7"
    assert d.isdisabled is False and d.accessmode == AccessMode.READ_WRITE and d.islicensed is True
    assert set(d.changes) == set(SYNCED_COLUMNS)


def test_r3_disabled_in_directory_not_added() -> None:  # R3
    d = decide(facts(duser(SALES, enabled=False)), env(), None)
    assert d.action is Action.LEAVE_ALONE and d.rule == "R3"


@pytest.mark.parametrize("deletion", [Deletion.SOFT, Deletion.HARD])
def test_r3_deleted_user_not_added(deletion: Deletion) -> None:  # R3
    u = duser(SALES)
    d = decide(facts(None if deletion is Deletion.HARD else u, deletion=deletion), env(), None)
    assert d.action is Action.LEAVE_ALONE and d.rule == "R3"


@pytest.mark.parametrize("mode", ON_DEMAND_MODES)
def test_r3_disabled_user_refused_on_demand(mode: Mode) -> None:  # R3 R8
    d = decide(facts(duser(SALES, enabled=False)), env(), None, mode)
    assert d.action is Action.REFUSE and d.rule == "R3"
    assert any(c.rule == "R3" and not c.passed and "accountEnabled" in c.message for c in d.checks)


# R4 -----------------------------------------------------------------------------------------------


def test_r4_unlicensed_user_not_added() -> None:  # R4
    d = decide(facts(duser()), env(), None)
    assert d.action is Action.LEAVE_ALONE and d.rule == "R4"


def test_r4a_unlicensed_admin_added_administrative() -> None:  # R4a R6 R16
    for roles in (GA, PPA, D365A):
        d = decide(facts(duser(), roles=roles), env(), None)
        assert d.action is Action.CREATE
        assert d.accessmode == AccessMode.ADMINISTRATIVE and d.islicensed is False


def test_r4b_app_pass_capacity_on_demand_only() -> None:  # R4b R7a
    e = env(app_pass_capacity_left=3)
    assert decide(facts(duser()), e, None).action is Action.LEAVE_ALONE
    assert decide(facts(duser()), e, None).rule == "R7a"
    d = decide(facts(duser()), e, None, Mode.ON_DEMAND)
    assert d.action is Action.CREATE and d.accessmode == 0
    assert decide(facts(duser()), env(app_pass_capacity_left=0), None, Mode.ON_DEMAND).action is Action.REFUSE


def test_r4c_marketing_tenant_on_demand_only() -> None:  # R4c R7a
    e = env(tenant_has_marketing_licence=True)
    assert decide(facts(duser()), e, None).rule == "R7a"
    assert decide(facts(duser()), e, None, Mode.FIRST_ACCESS).action is Action.CREATE


def test_r4d_non_interactive_row_needs_no_licence() -> None:  # R4d R17
    u = duser()
    d = decide(facts(u), env(), row_for(u, accessmode=4, licensed=False))
    assert d.action is Action.KEEP and d.isdisabled is False and d.accessmode == 4


def test_r4d_non_interactive_still_needs_r3_and_r5() -> None:  # R4d R3 R5 R17
    u = duser()
    row = row_for(u, accessmode=4, licensed=False)
    assert decide(facts(duser(enabled=False)), env(), row).action is Action.DISABLE
    assert decide(facts(u, membership=Membership.NONE), env(), row).action is Action.DISABLE


def test_r4e_free_m365_plan_on_demand_only() -> None:  # R4e R7a
    u = duser(O365_E3)
    assert decide(facts(u), env(), None).rule == "R7a"
    assert decide(facts(u), env(), None, Mode.ON_DEMAND).action is Action.CREATE


# R5 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("membership", [Membership.NESTED_ONLY, Membership.NONE])
def test_r5_only_direct_members_count(membership: Membership) -> None:  # R5
    d = decide(facts(duser(SALES), membership=membership), env(), None)
    assert d.action is Action.LEAVE_ALONE and d.rule == "R5"
    assert (
        decide(facts(duser(SALES), membership=membership), env(), None, Mode.ON_DEMAND).action
        is Action.REFUSE
    )


def test_r5_group_ignored_when_environment_has_none() -> None:  # R5
    d = decide(facts(duser(SALES), membership=Membership.NONE), env(group=None), None)
    assert d.action is Action.CREATE


def test_r5_global_and_power_platform_admins_exempt_d365_admin_not() -> None:  # R5 R6
    for roles in (GA, PPA):
        assert (
            decide(facts(duser(), roles=roles, membership=Membership.NONE), env(), None).action
            is Action.CREATE
        )
    d = decide(facts(duser(), roles=D365A, membership=Membership.NONE), env(), None)
    assert d.action is Action.LEAVE_ALONE and d.rule == "R5"


def test_r5_owner_counts_on_demand_only() -> None:  # R5
    f = facts(duser(SALES), membership=Membership.OWNER)
    assert decide(f, env(), None).action is Action.LEAVE_ALONE
    assert decide(f, env(), None, Mode.ON_DEMAND).action is Action.CREATE
    # a row an owner got on demand is kept, not disabled, by the background sync
    assert decide(f, env(), row_for(f.user)).action is Action.KEEP


# R7 -----------------------------------------------------------------------------------------------


def test_r7a_existing_row_kept_up_to_date_not_disabled() -> None:  # R7a
    old = duser(O365_E3)
    new = duser(O365_E3, job_title="Director")
    d = decide(facts(new), env(), row_for(old, licensed=False))
    assert d.action is Action.UPDATE and d.isdisabled is False and d.changes == {"jobtitle": "Director"}
    # a disabled row stays disabled: enabling is an add, on demand only
    d2 = decide(facts(new), env(), row_for(old, disabled=True, licensed=False))
    assert d2.action is Action.UPDATE and d2.isdisabled is True


def test_r7a_user_disabled_in_directory_still_disabled() -> None:  # R7a R3 R9
    u = duser(O365_E3, enabled=False)
    assert decide(facts(u), env(), row_for(u, licensed=False)).action is Action.DISABLE


def test_r7b_trial_background_adds_no_one_but_updates() -> None:  # R7b
    e = env(EnvType.TRIAL)
    assert decide(facts(duser(SALES)), e, None).rule == "R7b"
    assert decide(facts(duser(SALES)), e, None).action is Action.LEAVE_ALONE
    d = decide(facts(duser(SALES, city="Oxford")), e, row_for(duser(SALES)))
    assert d.action is Action.UPDATE and d.changes == {"address1_city": "Oxford"}
    assert decide(facts(duser(SALES)), e, None, Mode.ON_DEMAND).action is Action.CREATE


def test_r7c_teams_first_access_only() -> None:  # R7c
    e = env(EnvType.TEAMS)
    assert decide(facts(duser(SALES)), e, None).rule == "R7c"
    d = decide(facts(duser(SALES)), e, None, Mode.ON_DEMAND)
    assert d.action is Action.REFUSE and d.rule == "R7c"
    assert decide(facts(duser(SALES)), e, None, Mode.FIRST_ACCESS).action is Action.CREATE


def test_r7d_developer_only_creator_added() -> None:  # R7d
    e = env(EnvType.DEVELOPER, group=None, created_by_object_id=CREATOR)
    assert decide(facts(duser(SALES, oid=CREATOR)), e, None).action is Action.CREATE
    d = decide(facts(duser(SALES)), e, None)
    assert d.action is Action.LEAVE_ALONE and d.rule == "R7d"


# R8 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ON_DEMAND_MODES)
def test_r8_on_demand_enables_disabled_row(mode: Mode) -> None:  # R8
    u = duser(SALES)
    d = decide(facts(u), env(), row_for(u, disabled=True), mode)
    assert d.action is Action.ENABLE and d.rule == "R8" and d.isdisabled is False


def test_r8_refusal_changes_nothing_and_lists_failed_checks() -> None:  # R8 R22
    u = duser()
    row = row_for(u, disabled=True, licensed=False)
    d = decide(facts(u, membership=Membership.NESTED_ONLY), env(), row, Mode.ON_DEMAND)
    assert d.action is Action.REFUSE
    assert d.isdisabled is None and d.accessmode is None and d.islicensed is None and d.changes == {}
    failed = {c.rule for c in d.checks if not c.passed}
    assert {"R4", "R5"} <= failed


# R9 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    ["deleted_hard", "deleted_soft", "disabled", "unlicensed", "left_group"],
)
def test_r9_row_disabled_never_deleted(change: str) -> None:  # R9
    u = duser(SALES)
    row = row_for(u)
    f = {
        "deleted_hard": facts(None, deletion=Deletion.HARD),
        "deleted_soft": facts(u, deletion=Deletion.SOFT),
        "disabled": facts(duser(SALES, enabled=False)),
        "unlicensed": facts(duser()),
        "left_group": facts(u, membership=Membership.NONE),
    }[change]
    d = decide(f, env(), row)
    assert d.action is Action.DISABLE and d.rule == "R9" and d.isdisabled is True
    # next run: the row stays, disabled
    d2 = decide(f, env(), row_for(u, disabled=True))
    assert d2.action in (Action.KEEP, Action.UPDATE) and d2.isdisabled is True


def test_r9_entitled_again_is_enabled_again() -> None:  # R9
    u = duser(SALES)
    d = decide(facts(u), env(), row_for(u, disabled=True))
    assert d.action is Action.ENABLE and d.rule == "R9" and d.isdisabled is False


def test_r9_disable_carries_column_changes_of_present_user() -> None:  # R9 R10
    d = decide(facts(duser(city="Bath")), env(), row_for(duser(SALES)))
    assert d.action is Action.DISABLE and d.changes == {"address1_city": "Bath"}


def test_r9_deleted_user_disable_writes_no_columns() -> None:  # R9
    d = decide(facts(None, deletion=Deletion.HARD), env(), row_for(duser(SALES)))
    assert d.changes == NO_CHANGES


# R15 / R16 ----------------------------------------------------------------------------------------


def test_r15_access_mode_numbers() -> None:  # R15
    assert [m.value for m in AccessMode] == [0, 1, 2, 3, 4, 5]
    assert AccessMode.NON_INTERACTIVE == 4 and AccessMode.DELEGATED_ADMIN == 5


def test_r16_admin_gaining_licence_becomes_read_write() -> None:  # R16
    u = duser(SALES)
    d = decide(facts(u, roles=GA), env(), row_for(u, accessmode=1, licensed=False))
    assert d.action is Action.UPDATE and d.accessmode == 0 and d.islicensed is True


def test_r16_admin_losing_licence_becomes_administrative() -> None:  # R16
    u = duser()
    d = decide(facts(u, roles=GA), env(), row_for(u, accessmode=0, licensed=True))
    assert d.action is Action.UPDATE and d.rule == "R16" and d.accessmode == 1 and d.islicensed is False


@pytest.mark.parametrize("mode", [AccessMode.READ, AccessMode.NON_INTERACTIVE])
def test_r16_admin_set_modes_are_kept(mode: AccessMode) -> None:  # R16 R14
    u = duser(SALES)
    d = decide(facts(u, roles=GA), env(), row_for(u, accessmode=mode))
    assert d.action is Action.KEEP and d.accessmode == mode


# R18 / R19 / R20 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        (UserKind.APPLICATION, "R18"),
        (UserKind.SUPPORT, "R19"),
        (UserKind.DELEGATED_ADMIN, "R19"),
        (UserKind.STUB, "R20"),
    ],
)
def test_r18_r19_r20_special_rows_never_touched_by_background(kind: UserKind, rule: str) -> None:
    u = duser()  # unlicensed, disabled in nothing: a regular row would be disabled
    row = row_for(duser(SALES, city="Elsewhere"), kind=kind, accessmode=4)
    for f in (facts(u), facts(None, deletion=Deletion.HARD), facts(duser(SALES))):
        d = decide(f, env(), row)
        assert d.action is Action.LEAVE_ALONE and d.rule == rule
        assert d.changes == {} and d.isdisabled is None


def test_r20_stub_cannot_be_enabled_on_demand() -> None:  # R20
    d = decide(
        facts(duser(SALES)), env(), row_for(duser(SALES), kind=UserKind.STUB, disabled=True), Mode.ON_DEMAND
    )
    assert d.action is Action.REFUSE and d.rule == "R20"


def test_r8_mode_given_as_plain_string() -> None:  # R8 R7
    u = duser()
    assert decide(facts(u), env(app_pass_capacity_left=1), None, "on_demand").action is Action.CREATE  # type: ignore[arg-type]
    assert decide(facts(u), env(app_pass_capacity_left=1), None, "background").rule == "R7a"  # type: ignore[arg-type]
