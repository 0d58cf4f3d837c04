"""Scenarios from the source page (shared/seed/create-users.md), table-driven.

Each row: the facts, the mode, and the expected action (and state) with the rule ids it exercises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from rules_builders import (
    CREATOR,
    D365A,
    GA,
    O365_E3,
    O365_E3_CDS_DISABLED,
    SALES,
    SALES_PLAN_DISABLED,
    duser,
    env,
    facts,
    row_for,
)

from syncd.directory.models import Deletion
from syncd.rules import (
    Action,
    EnvironmentFacts,
    EnvType,
    Membership,
    Mode,
    RowFacts,
    UserFacts,
    UserKind,
    check_noninteractive_limit,
    decide,
)

BG, OD, FA = Mode.BACKGROUND, Mode.ON_DEMAND, Mode.FIRST_ACCESS


@dataclass(frozen=True)
class Scenario:
    user: UserFacts
    env: EnvironmentFacts
    row: RowFacts | None
    mode: Mode
    action: Action
    isdisabled: bool | None = None
    accessmode: int | None = None
    rule: str | None = None
    changes: dict[str, str | None] | None = None
    not_in_changes: tuple[str, ...] = field(default=())


U = duser(SALES)
E3 = duser(O365_E3)
E3_MOVED = duser(O365_E3, city="Manchester")

SCENARIOS = {
    # R4a R5 R6 R16: an unlicensed Global admin outside the group is enabled, Administrative.
    "R4a-R5-global-admin-unlicensed-outside-group": Scenario(
        facts(duser(), roles=GA, membership=Membership.NONE), env(), None, BG, Action.CREATE, False, 1, "R7"
    ),
    # R5 R6: a Dynamics 365 admin outside the group is not entitled.
    "R5-d365-admin-outside-group": Scenario(
        facts(duser(), roles=D365A, membership=Membership.NONE),
        env(),
        None,
        BG,
        Action.LEAVE_ALONE,
        rule="R5",
    ),
    "R5-d365-admin-outside-group-on-demand": Scenario(
        facts(duser(), roles=D365A, membership=Membership.NONE), env(), None, OD, Action.REFUSE, rule="R5"
    ),
    # R5: nested groups are ignored.
    "R5-nested-group-member-only": Scenario(
        facts(U, membership=Membership.NESTED_ONLY), env(), None, BG, Action.LEAVE_ALONE, rule="R5"
    ),
    "R5-nested-group-member-only-on-demand": Scenario(
        facts(U, membership=Membership.NESTED_ONLY), env(), None, OD, Action.REFUSE, rule="R5"
    ),
    # R5: the group's owner: background no, on demand yes.
    "R5-owner-background": Scenario(
        facts(U, membership=Membership.OWNER), env(), None, BG, Action.LEAVE_ALONE, rule="R5"
    ),
    "R5-owner-on-demand": Scenario(
        facts(U, membership=Membership.OWNER), env(), None, OD, Action.CREATE, False, 0, "R8"
    ),
    # R4: a guest whose licence is from the home tenant carries none here.
    "R4-guest-without-licence-in-this-tenant": Scenario(
        facts(duser(guest=True)), env(), None, BG, Action.LEAVE_ALONE, rule="R4"
    ),
    "R4-guest-licensed-in-this-tenant": Scenario(
        facts(duser(SALES, guest=True)), env(), None, BG, Action.CREATE, False, 0
    ),
    # R4e R7a: only the free plan of Office 365 E3.
    "R4e-R7a-free-plan-background-not-added": Scenario(
        facts(E3), env(), None, BG, Action.LEAVE_ALONE, rule="R7a"
    ),
    "R4e-free-plan-on-demand-added": Scenario(facts(E3), env(), None, OD, Action.CREATE, False, 0, "R8"),
    "R4e-free-plan-first-access-added": Scenario(facts(E3), env(), None, FA, Action.CREATE, False, 0, "R8"),
    "R7a-free-plan-existing-row-kept-up-to-date": Scenario(
        facts(E3_MOVED),
        env(),
        row_for(E3, licensed=False),
        BG,
        Action.UPDATE,
        False,
        0,
        changes={"address1_city": "Manchester"},
    ),
    # R4: a Dataverse plan in disabledPlans doesn't count.
    "R4-dataverse-plan-disabled": Scenario(
        facts(duser(SALES_PLAN_DISABLED)), env(), None, BG, Action.LEAVE_ALONE, rule="R4"
    ),
    "R4-free-plan-disabled-on-demand": Scenario(
        facts(duser(O365_E3_CDS_DISABLED)), env(), None, OD, Action.REFUSE, rule="R4"
    ),
    "R9-dataverse-plan-disabled-row-disabled": Scenario(
        facts(duser(SALES_PLAN_DISABLED)), env(), row_for(U), BG, Action.DISABLE, True, rule="R9"
    ),
    # R7b: trial environment.
    "R7b-trial-background-adds-no-one": Scenario(
        facts(U), env(EnvType.TRIAL), None, BG, Action.LEAVE_ALONE, rule="R7b"
    ),
    "R7b-trial-background-updates-existing": Scenario(
        facts(duser(SALES, job_title="Lead")),
        env(EnvType.TRIAL),
        row_for(U),
        BG,
        Action.UPDATE,
        False,
        0,
        changes={"jobtitle": "Lead"},
    ),
    "R7b-trial-on-demand-adds": Scenario(facts(U), env(EnvType.TRIAL), None, OD, Action.CREATE, False, 0),
    # R7d: developer environment: only the creator.
    "R7d-developer-creator-added": Scenario(
        facts(duser(SALES, oid=CREATOR)),
        env(EnvType.DEVELOPER, created_by_object_id=CREATOR),
        None,
        BG,
        Action.CREATE,
        False,
        0,
    ),
    "R7d-developer-other-user-not-added": Scenario(
        facts(U),
        env(EnvType.DEVELOPER, created_by_object_id=CREATOR),
        None,
        BG,
        Action.LEAVE_ALONE,
        rule="R7d",
    ),
    # R7c: Teams environment: first access only.
    "R7c-teams-background": Scenario(facts(U), env(EnvType.TEAMS), None, BG, Action.LEAVE_ALONE, rule="R7c"),
    "R7c-teams-admin-add-refused": Scenario(
        facts(U), env(EnvType.TEAMS), None, OD, Action.REFUSE, rule="R7c"
    ),
    "R7c-teams-first-access": Scenario(facts(U), env(EnvType.TEAMS), None, FA, Action.CREATE, False, 0),
    # R1: no database: nothing, and on demand a clear refusal.
    "R1-no-database-background": Scenario(
        facts(U), env(has_database=False), None, BG, Action.LEAVE_ALONE, rule="R1"
    ),
    "R1-no-database-on-demand": Scenario(
        facts(U), env(has_database=False), None, OD, Action.REFUSE, rule="R1"
    ),
    "R1-no-database-first-access": Scenario(
        facts(U), env(has_database=False), None, FA, Action.REFUSE, rule="R1"
    ),
    # R4d R17: a non-interactive user without a licence stays enabled.
    "R4d-R17-non-interactive-unlicensed-stays-enabled": Scenario(
        facts(duser()), env(), row_for(duser(), accessmode=4, licensed=False), BG, Action.KEEP, False, 4
    ),
    "R17-R5-non-interactive-outside-group-disabled": Scenario(
        facts(duser(), membership=Membership.NONE),
        env(),
        row_for(duser(), accessmode=4, licensed=False),
        BG,
        Action.DISABLE,
        True,
        4,
    ),
    # R12: a customer-edited email is never written again.
    "R12-customer-edited-email-never-written": Scenario(
        facts(duser(SALES, mail="new@contoso.example")),
        env(),
        row_for(U, email_edited=True, internalemailaddress="mine@customer.example"),
        BG,
        Action.KEEP,
        False,
        0,
        not_in_changes=("internalemailaddress",),
    ),
    # R13: blank givenName gives "#".
    "R13-blank-given-name-hash": Scenario(
        facts(duser(SALES, given="")), env(), None, BG, Action.CREATE, False, 0
    ),
    # R11: the full name is never updated after creation.
    "R11-full-name-never-updated": Scenario(
        facts(duser(SALES, display_name="Ada King")),
        env(),
        row_for(U),
        BG,
        Action.KEEP,
        False,
        0,
        not_in_changes=("fullname",),
    ),
    # R18 R19 R20: special rows are never changed by background sync.
    "R18-application-user-untouched": Scenario(
        facts(duser()),
        env(),
        row_for(U, kind=UserKind.APPLICATION, accessmode=4),
        BG,
        Action.LEAVE_ALONE,
        rule="R18",
    ),
    "R19-support-user-untouched": Scenario(
        facts(None, deletion=Deletion.HARD),
        env(),
        row_for(kind=UserKind.SUPPORT, accessmode=3),
        BG,
        Action.LEAVE_ALONE,
        rule="R19",
    ),
    "R19-delegated-admin-untouched": Scenario(
        facts(None, deletion=Deletion.HARD),
        env(),
        row_for(kind=UserKind.DELEGATED_ADMIN, accessmode=5),
        BG,
        Action.LEAVE_ALONE,
        rule="R19",
    ),
    "R20-stub-untouched": Scenario(
        facts(U), env(), row_for(U, kind=UserKind.STUB, disabled=True), BG, Action.LEAVE_ALONE, rule="R20"
    ),
    # R9: deleted, disabled or unlicensed: row disabled, never deleted; re-enabled when entitled again.
    "R9-hard-deleted-row-disabled": Scenario(
        facts(None, deletion=Deletion.HARD), env(), row_for(U), BG, Action.DISABLE, True, rule="R9"
    ),
    "R9-soft-deleted-row-disabled": Scenario(
        facts(U, deletion=Deletion.SOFT), env(), row_for(U), BG, Action.DISABLE, True, rule="R9"
    ),
    "R9-disabled-in-directory-row-disabled": Scenario(
        facts(duser(SALES, enabled=False)), env(), row_for(U), BG, Action.DISABLE, True, rule="R9"
    ),
    "R9-unlicensed-row-disabled": Scenario(
        facts(duser()), env(), row_for(U), BG, Action.DISABLE, True, rule="R9"
    ),
    "R9-removed-from-group-row-disabled": Scenario(
        facts(U, membership=Membership.NONE), env(), row_for(U), BG, Action.DISABLE, True, rule="R9"
    ),
    "R9-already-disabled-unchanged-kept": Scenario(
        facts(duser()),
        env(),
        row_for(duser(), disabled=True, licensed=False),
        BG,
        Action.KEEP,
        True,
        rule="R9",
    ),
    "R9-entitled-again-re-enabled": Scenario(
        facts(U), env(), row_for(U, disabled=True), BG, Action.ENABLE, False, 0, "R9"
    ),
    "R8-entitled-again-on-demand-re-enabled": Scenario(
        facts(U), env(), row_for(U, disabled=True), FA, Action.ENABLE, False, 0, "R8"
    ),
}


@pytest.mark.parametrize("sc", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_scenario(sc: Scenario) -> None:
    d = decide(sc.user, sc.env, sc.row, sc.mode)
    assert d.action is sc.action, d.reason
    assert d.action is not Action.LEAVE_ALONE or d.changes == {}
    if sc.isdisabled is not None:
        assert d.isdisabled is sc.isdisabled
    if sc.accessmode is not None:
        assert d.accessmode == sc.accessmode
    if sc.rule is not None:
        assert d.rule == sc.rule
    if sc.changes is not None:
        assert dict(d.changes) == sc.changes
    for col in sc.not_in_changes:
        assert col not in d.changes
    # R22: the explained decision agrees, and a refusal says why.
    ex = decide(sc.user, sc.env, sc.row, sc.mode, explain=True)
    assert ex.action is d.action and ex.checks
    if d.action is Action.REFUSE:
        assert any(not c.passed for c in ex.checks)


def test_r13_blank_given_name_created_with_hash() -> None:  # R13
    d = decide(facts(duser(SALES, given=None)), env(), None)
    assert d.changes["firstname"] == "#"


@pytest.mark.parametrize(
    ("count", "allowed"),
    [(0, True), (6, True), (7, False), (8, False)],
    ids=["none-yet", "seventh-allowed", "eighth-refused", "over-limit"],
)
def test_r17_eighth_non_interactive_user_refused(count: int, allowed: bool) -> None:  # R17
    c = check_noninteractive_limit(count)
    assert c.passed is allowed and c.rule == "R17"
    if not allowed:
        assert "7" in c.message and "refused" in c.message


def test_r17_application_users_dont_count() -> None:  # R17 R18
    rows = [row_for(kind=UserKind.REGULAR, accessmode=4)] * 6 + [
        row_for(kind=UserKind.APPLICATION, accessmode=4)
    ] * 20
    count = sum(1 for r in rows if r.kind is UserKind.REGULAR and r.accessmode == 4)
    assert check_noninteractive_limit(count).passed
