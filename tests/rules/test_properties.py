"""Properties of decide() over generated inputs (R3, R9, R18-R20, R22)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rules_builders import (
    APPS_FOR_BUSINESS,
    CREATOR,
    D365A,
    EXCHANGE,
    GA,
    GROUP,
    O365_E3,
    O365_E3_CDS_DISABLED,
    OID,
    POWERAPPS,
    PPA,
    SALES,
    SALES_PLAN_DISABLED,
    UNKNOWN_SKU,
)

from syncd.directory.models import Deletion, DirectoryUser
from syncd.rules import (
    SYNCED_COLUMNS,
    Action,
    EnvironmentFacts,
    EnvType,
    Membership,
    Mode,
    RowFacts,
    UserFacts,
    UserKind,
    decide,
    wanted_columns,
)

texts = st.one_of(st.none(), st.sampled_from(["", " ", "Ada", "Lovelace", "x@y.example", "Ünïcødé"]))

directory_users = st.builds(
    DirectoryUser,
    id=st.sampled_from([OID, CREATOR]),
    user_principal_name=st.sampled_from(["ada@contoso.example", "bob@contoso.example"]),
    display_name=texts,
    given_name=texts,
    surname=texts,
    job_title=texts,
    mail=texts,
    business_phones=st.lists(st.sampled_from(["+1 555", "+2 666"]), max_size=2).map(tuple),
    city=texts,
    account_enabled=st.booleans(),
    user_type=st.sampled_from(["Member", "Guest"]),
    assigned_licenses=st.lists(
        st.sampled_from(
            [
                SALES,
                SALES_PLAN_DISABLED,
                POWERAPPS,
                O365_E3,
                O365_E3_CDS_DISABLED,
                EXCHANGE,
                APPS_FOR_BUSINESS,
                UNKNOWN_SKU,
            ]
        ),
        max_size=3,
    ).map(tuple),
)


@st.composite
def user_facts(draw: st.DrawFn) -> UserFacts:
    deletion = draw(st.sampled_from(list(Deletion)))
    du = draw(directory_users)
    user = None if deletion is Deletion.HARD and draw(st.booleans()) else du
    roles = draw(st.sets(st.sampled_from([next(iter(GA)), next(iter(PPA)), next(iter(D365A)), "other"])))
    return UserFacts(user, du.id, deletion, frozenset(roles), draw(st.sampled_from(list(Membership))))


environments = st.builds(
    EnvironmentFacts,
    name=st.just("env"),
    type=st.sampled_from(list(EnvType)),
    has_database=st.booleans(),
    security_group_id=st.sampled_from([None, GROUP]),
    app_pass_capacity_left=st.sampled_from([0, 0, 5]),
    tenant_has_marketing_licence=st.booleans(),
    is_sales=st.booleans(),
    created_by_object_id=st.sampled_from([None, CREATOR]),
    allow_role_assignment_on_disabled_users=st.booleans(),
)


@st.composite
def rows(draw: st.DrawFn) -> RowFacts | None:
    if draw(st.booleans()):
        return None
    base = draw(directory_users)
    cols: dict[str, str | None] = wanted_columns(base)
    if draw(st.booleans()):
        cols = {c: draw(texts) for c in SYNCED_COLUMNS}
    return RowFacts(
        kind=draw(st.sampled_from(list(UserKind))),
        isdisabled=draw(st.booleans()),
        accessmode=draw(st.sampled_from([0, 1, 2, 3, 4, 5])),
        islicensed=draw(st.booleans()),
        columns=cols,
        email_edited=draw(st.booleans()),
    )


modes = st.sampled_from(list(Mode))
common = settings(max_examples=400, deadline=None)


@common
@given(user_facts(), environments, rows(), modes)
def test_decisions_are_deterministic(u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode) -> None:
    assert decide(u, e, r, m) == decide(u, e, r, m)


@common
@given(user_facts(), environments, rows(), modes)
def test_r9_no_decision_deletes_a_row(u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode) -> None:
    # R9: there is no delete action, and every decision for an existing row keeps it.
    assert {a.value for a in Action} == {
        "create",
        "update",
        "enable",
        "disable",
        "keep",
        "leave_alone",
        "refuse",
    }
    d = decide(u, e, r, m)
    if r is not None:
        assert d.action is not Action.CREATE
        assert d.action in {
            Action.UPDATE,
            Action.ENABLE,
            Action.DISABLE,
            Action.KEEP,
            Action.LEAVE_ALONE,
            Action.REFUSE,
        }


@common
@given(user_facts(), environments, rows(), modes)
def test_r3_never_enables_a_user_failing_r3(
    u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode
) -> None:
    d = decide(u, e, r, m)
    fails_r3 = u.user is None or u.deletion is not Deletion.NONE or not u.user.account_enabled
    if fails_r3:
        assert d.action not in (Action.CREATE, Action.ENABLE)
        assert not (d.isdisabled is False and (r is None or r.isdisabled))


@common
@given(user_facts(), environments, rows())
def test_r18_r19_r20_special_rows_never_touched_in_background(
    u: UserFacts, e: EnvironmentFacts, r: RowFacts | None
) -> None:
    d = decide(u, e, r, Mode.BACKGROUND)
    if r is not None and r.kind is not UserKind.REGULAR:
        assert d.action is Action.LEAVE_ALONE and d.changes == {} and d.isdisabled is None


@common
@given(user_facts(), environments, rows(), modes)
def test_r22_explain_gives_the_same_action(
    u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode
) -> None:
    plain = decide(u, e, r, m)
    ex = decide(u, e, r, m, explain=True)
    assert ex.action is plain.action and ex.rule == plain.rule
    assert ex.checks and all(c.message.startswith(c.rule + " ") for c in ex.checks)


@common
@given(user_facts(), environments, rows(), modes)
def test_r11_r12_never_written_on_existing_rows(
    u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode
) -> None:
    d = decide(u, e, r, m)
    if r is not None:
        assert "fullname" not in d.changes  # R11
        if r.email_edited:
            assert "internalemailaddress" not in d.changes  # R12
    assert set(d.changes) <= set(SYNCED_COLUMNS)  # R14


@common
@given(user_facts(), environments, rows(), modes)
def test_r1_no_database_no_rows(u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode) -> None:
    d = decide(u, e, r, m)
    if not e.has_database:
        assert d.action in (Action.LEAVE_ALONE, Action.REFUSE) and d.rule == "R1"


@common
@given(user_facts(), environments, rows(), modes)
def test_r8_refuse_only_on_demand_and_changes_nothing(
    u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode
) -> None:
    d = decide(u, e, r, m)
    if d.action is Action.REFUSE:
        assert m is not Mode.BACKGROUND
        assert d.changes == {} and d.isdisabled is None and d.checks
    if d.action in (Action.CREATE, Action.ENABLE):
        assert d.isdisabled is False


@common
@given(user_facts(), environments, rows(), modes)
def test_r16_admin_set_modes_kept(u: UserFacts, e: EnvironmentFacts, r: RowFacts | None, m: Mode) -> None:
    d = decide(u, e, r, m)
    if r is not None and r.accessmode in (2, 4) and d.accessmode is not None:
        assert d.accessmode == r.accessmode
