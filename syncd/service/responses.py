"""The JSON the daemon's admin API answers, as typed models (pydantic), for its OpenAPI document.

The handlers build their answers from the operations' ``as_dict()`` (``syncd.admin``,
``syncd.service.runs``, ``syncd.service.quarantine``, ``syncd.sync.run.RunReport``); each model
here describes one of those shapes field for field, so that ``syncd.service.openapi`` can give a
client the schema of every answer. Nothing here is used to build an answer: the tests validate the
daemon's real answers against these schemas (``tests/service/test_openapi.py``, and schemathesis
against the running daemon), so a shape that changes without its model fails there.

Names are the answers' own: Dataverse logical names for the SQL side (``systemuserid``,
``domainname``, ``azureactivedirectoryobjectid``, ``accessmode``, ``teamid``, ``membershiptype``...),
Graph property names for the directory side (``user_principal_name`` is Graph's
``userPrincipalName`` as the answers spell it), rule ids of RULES.md in ``rule`` (``R1``-``R26``).

A model's fields are exactly its answer's keys (``additionalProperties: false``) unless its
docstring says the answer is open (``dict[str, ...]``: counts by kind, a run's planned operations,
an event's changed columns). A key that is only sometimes present is declared with ``maybe()``
(not required, never null); a key always present but possibly null is ``X | None`` (required).
Timestamps are ISO 8601 strings; ids (GUIDs) are strings in their one spelling (lower case, dashed).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from syncd.dataverse.schema import ENV_TYPES, RUN_OUTCOMES


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def maybe() -> Any:
    """A field that an answer holds only sometimes: not required, and not null when present."""
    return Field(default=None, json_schema_extra=_no_default)


class Reply(BaseModel):
    """An answer of the API: exactly these keys (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------------------------


class Check(Reply):
    """One rule check (``syncd.rules.Check``): its rule id (R1-R26), whether it passed, and why."""

    rule: str
    passed: bool
    message: str


class BadLine(Reply):
    """One bad line of a stub CSV (R20)."""

    line: int
    message: str


class Error(Reply):
    """Every error of the API: ``error`` names the kind (``"bad request"`` for every 400,
    ``"unauthorized"``, ``"admin API disabled"``, ``"not found"``, ``"method not allowed"``,
    ``"conflict"``, ``"refused"``, ``"busy"``, ``"directory unavailable"``, ``"internal error"``...),
    ``detail`` is one line for a person. A refusal by the rules (409 ``refused``) adds the failed
    ``checks``; a stub CSV with bad lines (400) adds its ``lines``."""

    error: str
    detail: str
    checks: list[Check] | SkipJsonSchema[None] = maybe()
    lines: list[BadLine] | SkipJsonSchema[None] = maybe()


# -- environments and runs -----------------------------------------------------------------------


class UserCounts(BaseModel):
    """An environment's rows by state (``total``, ``enabled``, ``disabled``) and by kind
    (``regular``, ``application``, ``stub``, ``support``...: only the kinds it has)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": {"type": "integer"}})

    total: int
    enabled: int
    disabled: int


class RunCounts(Reply):
    """A run's counts of rows (``sync_run``'s columns)."""

    read: int
    created: int
    updated: int
    enabled: int
    disabled: int
    unchanged: int
    failed: int
    blocked_disables: int


class Run(Reply):
    """One run as ``sync_run`` holds it (``syncd.service.runs.run_dict``)."""

    id: int
    environment: str | None
    environment_id: int
    kind: str = Field(description="'full', 'delta' or 'user'")
    requested_kind: str | None
    trigger: str | None
    outcome: Literal[RUN_OUTCOMES]  # type: ignore[valid-type]
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    counts: RunCounts
    error: str | None
    users_enabled: int | None = Field(
        description="the environment's regular rows enabled when the run finished: full runs only "
        "(null: a delta, dry, failed, one-user or older run)"
    )
    users_disabled: int | None = Field(
        description="the environment's regular rows disabled when the run finished"
    )


class Quarantine(Reply):
    """An environment's quarantine state (``syncd.service.quarantine.QuarantineState``)."""

    quarantined: bool
    consecutive_failures: int
    since: str | None
    last_failure_at: str | None
    next_attempt_at: str | None
    backoff_s: float
    resumed_at: str | None


class EnvironmentFields(Reply):
    """An environment's settings (``syncd.dataverse.environments.describe``)."""

    name: str
    type: Literal[ENV_TYPES]  # type: ignore[valid-type]
    has_database: bool
    security_group_id: str | None
    app_pass_capacity: int
    tenant_has_marketing_licence: bool
    is_sales: bool
    created_by_object_id: str | None
    allow_role_assignment_on_disabled_users: bool
    created_on: str | None


class EnvironmentSummary(EnvironmentFields):
    """An environment in ``GET /api/environments``: its settings, user counts, last finished run
    and last success, and its quarantine state."""

    users: UserCounts
    last_run: Run | None
    last_success_at: str | None
    quarantine: Quarantine | SkipJsonSchema[None] = maybe()


class EnvironmentDetail(EnvironmentFields):
    """One environment (``GET /api/environments/{name}``): its settings, user counts, quarantine
    state and its 20 latest runs, newest first."""

    users: UserCounts
    quarantine: Quarantine
    recent_runs: list[Run]


class RunReport(Reply):
    """What a run did (``syncd.sync.run.RunReport``): its outcome (``succeeded``, ``partial``,
    ``blocked``, ``failed``, ``interrupted``, ``dry_run``), counts, and for a dry run or a blocked
    run the operations it planned (open objects: each operation's columns)."""

    run_id: int | None
    environment: str
    kind: str
    requested_kind: str
    outcome: str
    counts: dict[str, int]
    duration_s: float
    error: str | None
    planned: list[dict[str, Any]]
    restarts: int


class SettingValues(Reply):
    """One changed setting, before and after."""

    old: Any
    new: Any


class EnvironmentWithUsers(EnvironmentFields):
    """An environment's settings and its user counts."""

    users: UserCounts


class EnvironmentSettingsResult(Reply):
    """``PATCH /api/environments/{name}`` (``syncd env set``): the environment after the change,
    each changed setting (old, new), whether the next run is a full run, the settings that made it
    so (``scope_changed``), and warnings (a security group that could not be checked)."""

    environment: EnvironmentWithUsers
    changed: dict[str, SettingValues]
    full_run_next: bool
    scope_changed: list[str]
    warnings: list[str]


class Resumed(Reply):
    """``POST .../resume`` (``syncd env resume``): whether anything changed, whether the
    environment was in quarantine, and how many failed runs no longer count."""

    environment: str
    changed: bool
    was_quarantined: bool
    failures_cleared: int
    resumed_at: str | None


# -- users (R7c, R8, R16-R18, R20-R23) ------------------------------------------------------------


class DirectoryUser(Reply):
    """The user as the directory shows them, and what the rules know of their groups and admin
    roles (Graph: ``id``, ``userPrincipalName``, ``displayName``)."""

    key: str
    object_id: str | None
    user_principal_name: str | None
    display_name: str | None
    in_directory: bool
    deletion: str | None
    restorable: bool
    admin_roles: list[str]
    admin_roles_known: bool
    membership: str | None
    membership_suspended: bool
    membership_source: str | None


class AppAccess(Reply):
    """R21: whether the row's roles let it use apps."""

    passed: bool
    message: str


class UserRow(Reply):
    """A SystemUser row (Dataverse logical names), with its roles directly and through teams."""

    systemuserid: str
    kind: str
    azureactivedirectoryobjectid: str | None
    applicationid: str | None
    domainname: str | None
    fullname: str | None
    firstname: str | None
    lastname: str | None
    internalemailaddress: str | None
    isdisabled: bool
    accessmode: int
    accessmode_name: str | None
    islicensed: bool
    roles: list[str]
    team_roles: dict[str, list[str]] = Field(description="team name → the roles it gives the user (R21)")
    app_access: AppAccess
    azurestate: int | None
    businessunitid: str
    createdon: str | None
    modifiedon: str | None


class TeamRef(Reply):
    """A group team in a membership change (R25)."""

    teamid: str
    name: str | None
    azureactivedirectoryobjectid: str | None
    membershiptype: int | None
    membershiptype_name: str | None


class MembershipChange(Reply):
    """R25: the group teams the user joined and left just in time, and is a member of now."""

    added: list[TeamRef]
    removed: list[TeamRef]
    member_of: list[TeamRef]


class UserResult(Reply):
    """What an add (R8), first access (R7c) or refresh (R23) did: the decision (``action``,
    ``rule``, ``reason``), the row after it and the group teams joined and left (R25)."""

    operation: Literal["add", "access", "refresh"]
    environment: str
    user: DirectoryUser
    action: str
    rule: str
    reason: str
    changed: bool
    run_id: int | None
    outcome: str
    via_app_pass: bool
    conflicts: list[str]
    checks: list[Check]
    row: UserRow | None
    teams: MembershipChange | None


class Decision(Reply):
    """What the background sync will do next with the user."""

    action: str
    rule: str
    reason: str


class OnDemand(Reply):
    """What an on-demand add (R8) would do; absent keys (``{}``) when the directory does not
    have the user."""

    possible: bool | SkipJsonSchema[None] = maybe()
    action: str | SkipJsonSchema[None] = maybe()
    rule: str | SkipJsonSchema[None] = maybe()
    reason: str | SkipJsonSchema[None] = maybe()
    failed_checks: list[Check] | SkipJsonSchema[None] = maybe()


class Event(Reply):
    """One event of the row (``sync_event``): the run, action, rule and the changed columns
    (an open object: column → old and new, as the run wrote them)."""

    id: int
    run_id: int | None
    action: str
    rule: str | None
    reason: str | None
    changes: dict[str, Any] | list[Any] | None
    created_at: str | None


class UserTeam(Reply):
    """A group team the row is a member of, with its roles (R22, R25)."""

    teamid: str
    name: str | None
    teamtype: int | None
    teamtype_name: str | None
    azureactivedirectoryobjectid: str | None
    membershiptype: int | None
    membershiptype_name: str | None
    roles: list[str]


class Diagnosis(Reply):
    """R22: check by check, why the user is or is not enabled, what the background sync does next,
    what an on-demand add would do, the row, its latest events and teams; for a soft-deleted user,
    what a restore would do (an open object: ``enabled``, ``summary``, ``cases``...)."""

    environment: str
    user: DirectoryUser
    checks: list[Check]
    next: Decision
    on_demand: OnDemand
    conflicts: list[str]
    row: UserRow | None
    events: list[Event]
    restore: dict[str, Any] | None
    teams: list[UserTeam]


class ModeResult(Reply):
    """``PUT .../access-mode`` (R16, R17): the access mode before and after, by number and name."""

    environment: str
    user: str
    systemuserid: str
    old_mode: int
    old_mode_name: str | None
    mode: int
    mode_name: str | None
    changed: bool
    checks: list[Check]
    note: str | None


class AppUserResult(Reply):
    """``POST .../app-users`` (R18): the service principal and the application user's row."""

    environment: str
    app_id: str
    service_principal_id: str
    display_name: str
    row: UserRow


class StubCreated(Reply):
    """One stub user created from a CSV line (R20)."""

    line: int
    domainname: str
    systemuserid: str


class StubConflict(Reply):
    """A stub that conflicts with a directory user or a row (R20)."""

    line: int
    domainname: str
    message: str


class StubImportResult(Reply):
    """``POST .../stubs`` (R20): the stubs created, their default role, records and conflicts."""

    environment: str
    created: list[StubCreated]
    default_role: str
    records: int
    conflicts: list[StubConflict]


class ReassignResult(Reply):
    """``POST .../stubs/{stub}/reassign`` (R20): the records moved to the target user."""

    environment: str
    stub: str
    target: str
    target_systemuserid: str
    records: int
    checks: list[Check]


class RoleResult(Reply):
    """``POST .../roles``, ``DELETE .../roles/{role}/users/{user}`` (R21): the user's roles after."""

    environment: str
    user: str
    systemuserid: str
    role: str
    operation: Literal["assign", "remove"]
    changed: bool
    roles: list[str]
    checks: list[Check]


# -- group teams (R25) ----------------------------------------------------------------------------


class TeamMember(Reply):
    """A member of a team."""

    systemuserid: str
    domainname: str | None
    azureactivedirectoryobjectid: str | None
    isdisabled: bool


class Team(Reply):
    """A team (``syncd.admin.teams.team_dict``); ``members`` only where a team is shown with them."""

    teamid: str
    name: str | None
    teamtype: int | None
    teamtype_name: str | None
    azureactivedirectoryobjectid: str | None
    membershiptype: int | None
    membershiptype_name: str | None
    businessunitid: str
    administratorid: str
    administrator: str | None
    roles: list[str]
    member_count: int
    createdon: str | None
    members: list[TeamMember] | SkipJsonSchema[None] = maybe()


class TeamList(Reply):
    """``GET .../teams``: the environment's teams."""

    environment: str
    teams: list[Team]


class TeamResult(Reply):
    """What a team operation did (``show``, ``create``, ``assign_role``, ``remove_role``): the team
    after it, whether it changed and whether it was created; ``notes`` say e.g. that the group's
    name was cut to fit (R10)."""

    operation: str
    environment: str
    changed: bool
    created: bool
    role: str | None
    team: Team
    notes: list[str]


class OpenApiDocument(BaseModel):
    """The OpenAPI 3.1 document itself (``GET /api/openapi.json``): an open object."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class EnvironmentList(RootModel[list[EnvironmentSummary]]):
    """``GET /api/environments``: every environment, by name."""


class RunList(RootModel[list[Run]]):
    """``GET /api/runs``: runs, newest first."""


# -- the status UI's reads (issue 15) -------------------------------------------------------------


class UserHit(Reply):
    """One row a user search found (``syncd.dataverse.user_search.UserHit``); ``accessmode`` is R15's
    number, ``syncd_kind`` what the row stands for (R18-R20)."""

    systemuserid: str
    azureactivedirectoryobjectid: str | None
    domainname: str
    fullname: str | None
    isdisabled: bool
    accessmode: int
    syncd_kind: str


class UserHitList(RootModel[list[UserHit]]):
    """``GET /api/environments/{name}/users``: the rows a search found, by UPN."""


class ChangedValue(Reply):
    """One column an event changed: its value before (null when not recorded) and after."""

    old: Any
    new: Any


class LogEvent(Reply):
    """One event of the provisioning log (``syncd.dataverse.provisioning_log.LogEvent.as_dict``):
    ``changes`` is open (column -> old and new value); ``domainname`` is the row's UPN now."""

    id: int
    run_id: int | None
    environment: str
    systemuserid: str | None
    azureactivedirectoryobjectid: str | None
    domainname: str | None
    action: str
    rule: str
    reason: str
    changes: dict[str, ChangedValue]
    created_at: str


class LogEventList(RootModel[list[LogEvent]]):
    """``GET /api/events``: one page of events, newest first (the next page: ``before`` = the last id)."""
