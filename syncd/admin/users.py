"""Operations on one directory user: on-demand add (R8), first access (R7c, R8), refresh (R23) and
diagnose (R22).

Each reads the user, the admin roles and the security-group membership from the directory, the
user's row from the database, and asks the rules engine with ``explain=True``. Writes go through
the sync engine's planner and writer, recorded as a sync run of kind ``user`` with its event, so a
row added on demand is exactly the row the background sync would have written.

Group teams (R25). Each of add, first access and refresh also updates the user's memberships of the
environment's group teams just in time (``syncd.admin.memberships``): the directory is read before
anything is written, the memberships after the row. A refresh of a user with no row whom a group
team's group has reads R2-R5 as an on-demand add does (R25); otherwise refresh follows the
background rules (R23).

App passes (R4b). An add that stands only on the environment's app-pass capacity (no full licence,
no admin role, not non-interactive, no free Microsoft 365 plan, no tenant Marketing licence) does
not use a pass up: ``app_pass_capacity`` is left as it is, and the result says ``via_app_pass``.
The rules read the capacity as "passes left" and let the background sync keep such a row only
while the capacity is above zero (R7a); taking one pass per add would make the add that takes
the last pass disable its own user at the next background run. So the capacity is what the
administrator sets (``syncd env create --app-pass-capacity``), and on-demand adds read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.admin import lookup
from syncd.admin.errors import Refused, check_dict
from syncd.admin.memberships import MembershipChange, WantedTeams, read_wanted_teams, write_memberships
from syncd.admin.teams import user_teams
from syncd.dataverse.schema import Environment, SystemUser
from syncd.directory.client import GraphClient
from syncd.directory.models import Deletion, DirectoryUser
from syncd.errors import NotFound
from syncd.rules import (
    DYNAMICS_365_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    Action,
    Check,
    Decision,
    EnvironmentFacts,
    Membership,
    Mode,
    RowFacts,
    UserFacts,
    UserKind,
    azure_state,
    check_refresh_allowed,
    decide,
    diagnose,
    entitlement,
    stub_conflict,
)
from syncd.rules.diagnose import SUSPENDED, unknowns
from syncd.sync.apply import Applier
from syncd.sync.plan import Operation, plan_operation
from syncd.sync.rows import CurrentRow
from syncd.sync.run import environment_facts
from syncd.sync.storage import Storage, open_storage

log = structlog.get_logger(__name__)

EVENTS_SHOWN = 10
_DIRECT = Membership.DIRECT


@dataclass
class UserResult:
    """What an add, first access or refresh did."""

    operation: str  # "add", "access" or "refresh"
    environment: str
    user: dict[str, Any]
    action: str
    rule: str
    reason: str
    changed: bool  # the row changed, or the user joined or left a group team (R25)
    run_id: int | None
    outcome: str
    checks: tuple[Check, ...] = ()
    conflicts: list[str] = field(default_factory=list)
    via_app_pass: bool = False  # the add stood on the environment's app-pass capacity alone (R4b)
    row: dict[str, Any] | None = None
    # R25: the group teams the user joined and left just in time, and is a member of now (None
    # when the operation left no regular row to update).
    teams: MembershipChange | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "environment": self.environment,
            "user": self.user,
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "changed": self.changed,
            "run_id": self.run_id,
            "outcome": self.outcome,
            "via_app_pass": self.via_app_pass,
            "conflicts": self.conflicts,
            "checks": [check_dict(c) for c in self.checks],
            "row": self.row,
            "teams": self.teams.as_dict() if self.teams is not None else None,
        }


@dataclass
class Diagnosis:
    """R22: the checks, what the background sync will do next, what an on-demand add would do, the row
    and its last events."""

    environment: str
    user: dict[str, Any]
    checks: tuple[Check, ...]
    next: dict[str, str]
    on_demand: dict[str, Any]
    conflicts: list[str]
    row: dict[str, Any] | None
    events: list[dict[str, Any]]
    restore: dict[str, Any] | None = None  # a soft-deleted user: what a restore would do
    # R22, R25: the teams the row is a member of, each with its group, membership type and roles.
    teams: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "user": self.user,
            "checks": [check_dict(c) for c in self.checks],
            "next": self.next,
            "on_demand": self.on_demand,
            "conflicts": self.conflicts,
            "row": self.row,
            "events": self.events,
            "restore": self.restore,
            "teams": self.teams,
        }


@dataclass
class _Target:
    """One user in one environment, as the rules see it."""

    env: Environment
    envf: EnvironmentFacts
    key: str
    directory_user: DirectoryUser | None
    facts: UserFacts
    current: CurrentRow | None  # the regular row, as the sync engine reads it
    row_facts: RowFacts | None
    row_id: Any  # systemuserid of the row, if any
    conflicts: list[Check]
    # Where a soft-deleted user's (suspended) membership comes from: "last sync" (the group mirror)
    # or "directory" (what the directory reports now); None for other users.
    membership_source: str | None = None

    @property
    def soft_deleted(self) -> bool:
        return self.facts.deletion is Deletion.SOFT

    def user_dict(self) -> dict[str, Any]:
        du = self.directory_user or self.facts.user  # a soft-deleted user as the deleted items hold them
        scoped = bool(self.envf.security_group_id)
        unknown = unknowns(self.facts, self.envf)
        membership = self.facts.membership.value if scoped else None
        return {
            "key": self.key,
            "object_id": du.id if du is not None else self.facts.object_id,
            "user_principal_name": du.user_principal_name if du is not None else None,
            "display_name": du.display_name if du is not None else None,
            "in_directory": self.directory_user is not None,
            "deletion": None if self.directory_user is not None else self.facts.deletion.value,
            "restorable": self.soft_deleted,
            "admin_roles": sorted(self.facts.admin_role_template_ids),
            # A soft-deleted user's roles and memberships are suspended: what the directory does not
            # list is not known (a restore brings back what the user had).
            "admin_roles_known": not unknown.roles,
            "membership": "unknown" if unknown.membership else membership,
            "membership_suspended": self.soft_deleted and scoped,
            "membership_source": None if unknown.membership else (self.membership_source if scoped else None),
        }


@contextmanager
def _raw(engine: Engine) -> Iterator[tuple[Any, bool]]:
    """The DB-API connection the sync engine's reader and writer work on."""
    raw = engine.raw_connection()
    conn = raw.driver_connection
    assert conn is not None
    try:
        yield conn, type(conn).__module__.startswith("sqlite3")
    finally:
        try:
            conn.rollback()
        finally:
            raw.close()


def _resolve(
    engine: Engine, conn: Any, sqlite: bool, directory: GraphClient, env_name: str, key: str
) -> _Target:
    key = lookup.check_key(key)
    env = lookup.load_environment(engine, env_name)
    envf = environment_facts(env)
    du = lookup.read_user(directory, key)
    reader = open_storage(conn, env.id, datetime.now(UTC))
    with Session(engine) as session:
        if du is not None:
            roles = lookup.admin_roles(directory, du.id) if env.has_database else frozenset()
            member = Membership.NONE
            if env.has_database and env.security_group_id:
                member = lookup.membership(directory, env.security_group_id, du.id)
            facts = UserFacts(du, du.id, Deletion.NONE, roles, member)
            current = reader.load_rows([du.id]).get(du.id)
            conflicts = [
                stub_conflict(du, lookup.row_facts(s))
                for s in lookup.stub_rows_with_upn(session, env.id, du.user_principal_name)
            ]
            row_facts = current.facts if current is not None else None
            row_id = current.systemuserid if current is not None else None
            if current is not None and current.facts.kind is not UserKind.REGULAR:
                current = None  # an application user's id: the rules leave it alone
            return _Target(env, envf, key, du, facts, current, row_facts, row_id, conflicts)
        # Not in the directory: soft-deleted (in its deleted items), hard-deleted, or a row that never
        # came from it (stub, application, built-in).
        rows = lookup.find_rows(session, env.id, key)
        row = rows[0] if rows else None
        soft = _soft_deleted(reader, session, directory, env, envf, key, row)
        if soft is not None:
            return soft
        if row is None:
            raise NotFound(f"no user {key!r} in the directory nor in environment {env.name!r}")
        oid = (
            str(row.azureactivedirectoryobjectid)
            if row.azureactivedirectoryobjectid
            else str(row.systemuserid)
        )
        facts = UserFacts(None, oid, Deletion.HARD)
        if row.kind == UserKind.REGULAR and row.azureactivedirectoryobjectid is not None:
            current = reader.load_rows([oid]).get(oid)
            if current is not None:
                return _Target(env, envf, key, None, facts, current, current.facts, current.systemuserid, [])
        return _Target(env, envf, key, None, facts, None, lookup.row_facts(row), row.systemuserid, [])


def _soft_deleted(
    reader: Storage,
    session: Session,
    directory: GraphClient,
    env: Environment,
    envf: EnvironmentFacts,
    key: str,
    row: SystemUser | None,
) -> _Target | None:
    """The target when the user is in the directory's deleted items (R3, R9: soft-deleted,
    restorable), as the directory still holds them: their licences, and the security-group
    membership a restore brings back (Entra suspends a soft-deleted user's memberships and role
    assignments: the group mirror of the last sync says what they were, if it still lists the
    user, else what the directory reports now; none of either is "not known")."""
    if row is not None:
        if row.kind != UserKind.REGULAR or row.azureactivedirectoryobjectid is None:
            return None
        oid = str(row.azureactivedirectoryobjectid)
    elif lookup.is_guid(key):
        oid = key
    else:
        return None  # deleted items are read by object id, never by UPN
    deleted = lookup.read_deleted_user(directory, oid)
    if deleted is None:
        return None
    oid = deleted.id
    # Entra lists a deleted user in no directory role and no group: what it lists is known, what
    # it does not is not (see ``syncd.rules.diagnose.unknowns``).
    roles = lookup.admin_roles(directory, oid) if env.has_database else frozenset()
    member, source = Membership.NONE, None
    if env.has_database and env.security_group_id:
        mirrored = lookup.mirrored_membership(session, env.id, oid)
        if mirrored is not None:
            member, source = mirrored, "last sync"
        else:
            member = lookup.membership(directory, env.security_group_id, oid)
            source = "directory" if member is not Membership.NONE else None
    facts = UserFacts(deleted, oid, Deletion.SOFT, roles, member)
    current = reader.load_rows([oid]).get(oid) if row is not None else None
    if current is not None:
        return _Target(env, envf, key, None, facts, current, current.facts, current.systemuserid, [], source)
    row_facts = lookup.row_facts(row) if row is not None else None
    row_id = row.systemuserid if row is not None else None
    return _Target(env, envf, key, None, facts, None, row_facts, row_id, [], source)


def _uses_app_pass(target: _Target, decision: Decision) -> bool:
    """Whether this add stands on the environment's app-pass capacity alone (R4b)."""
    if decision.action not in (Action.CREATE, Action.ENABLE):
        return False
    ent = entitlement(target.facts, target.envf, target.row_facts)
    envf = target.envf
    return (
        ent.licence.full is None
        and ent.admin_role is None
        and not ent.non_interactive
        and ent.licence.free is None
        and not envf.tenant_has_marketing_licence
        and envf.app_pass_capacity_left > 0
    )


def _apply(
    conn: Any,
    sqlite: bool,
    target: _Target,
    op: Operation | None,
    trigger: str,
) -> tuple[int | None, str, str | None]:
    """Write the operation as a run of kind 'user'; returns (run id, outcome, error)."""
    storage = open_storage(conn, target.env.id, datetime.now(UTC))
    storage.start_run("user", "user", trigger)
    applier = Applier(storage)
    applier.counts.read = 1
    if op is None:
        if target.current is not None:
            applier.counts.unchanged = 1
    else:
        applier.add(op)
        applier.apply_held()  # a one-user disable (R23) is not held back: there is no guard to pass
    outcome, error = "succeeded", None
    if applier.counts.failed:
        outcome, error = "failed", f"the row of {target.key} could not be written (see the run's events)"
    storage.finish_run(outcome, error, applier.counts.as_dict())
    return storage.run_id, outcome, error


def _one_user(
    engine: Engine,
    directory: GraphClient,
    env_name: str,
    key: str,
    mode: Mode,
    operation: str,
    trigger: str,
) -> UserResult:
    with _raw(engine) as (conn, sqlite):
        target = _resolve(engine, conn, sqlite, directory, env_name, key)
        if operation == "refresh":
            allowed = check_refresh_allowed(target.row_facts.kind if target.row_facts else None)
            if not allowed.passed:
                raise Refused(
                    f"user {key} can't be refreshed in {target.env.name}: {allowed.message}", [allowed]
                )
        elif (
            target.directory_user is None
            and not target.soft_deleted  # refused by the rules below, with R3 saying why
            and (target.row_facts is None or target.row_facts.kind is UserKind.REGULAR)
        ):
            raise NotFound(f"no user {key!r} in the directory")
        # R25: the group teams the user belongs in, read before anything is written (a directory
        # that can't be read changes nothing).
        wanted: WantedTeams | None = None
        if target.env.has_database:
            wanted = read_wanted_teams(engine, directory, target.env.id, target.directory_user)
        decision = decide(target.facts, target.envf, target.row_facts, mode, explain=True)
        if operation == "refresh" and target.row_facts is None and wanted is not None and wanted.wanted:
            # R25: a refresh of a user with no row whom a group team's group has gives them one
            # if they are entitled under the on-demand reading of R2-R5 (never past R5).
            on_demand = decide(target.facts, target.envf, None, Mode.ON_DEMAND, explain=True)
            if on_demand.action is not Action.REFUSE and on_demand.touches_row:
                decision, mode = on_demand, Mode.ON_DEMAND
        if decision.action is Action.REFUSE:
            log.info(
                "admin.user_refused",
                environment=target.env.name,
                user=key,
                operation=operation,
                rule=decision.rule,
            )
            what = {"add": "added to", "access": "given access to", "refresh": "refreshed in"}[operation]
            raise Refused(
                f"user {key} can't be {what} {target.env.name}: {decision.reason}", decision.failed_checks
            )
        op = None
        if decision.touches_row:
            facts = target.facts
            state = azure_state(facts.user is not None, facts.deletion)  # R9
            op = plan_operation(decision, facts.object_id, target.current, state)
        app_pass = mode is not Mode.BACKGROUND and op is not None and _uses_app_pass(target, decision)
        if op is not None and app_pass:
            op.reason += " The user has no licence: added through the environment's app-pass capacity (R4b)."
        run_id, outcome, _ = _apply(conn, sqlite, target, op, trigger)
    teams = None
    with Session(engine) as session:
        row = _row_after(session, target)
        row_id = row.systemuserid if row is not None and row.kind == UserKind.REGULAR else None
    if wanted is not None and row_id is not None and outcome == "succeeded":
        teams = write_memberships(engine, wanted, row_id)  # R25: just in time, never in the background
    with Session(engine) as session:
        row = _row_after(session, target)
        row_dict = lookup.row_dict(session, row) if row is not None else None
    log.info(
        "admin.user",
        environment=target.env.name,
        user=key,
        operation=operation,
        action=decision.action.value,
        rule=decision.rule,
        run_id=run_id,
        outcome=outcome,
        via_app_pass=app_pass,
    )
    return UserResult(
        operation=operation,
        environment=target.env.name,
        user=target.user_dict(),
        action=decision.action.value,
        rule=decision.rule,
        reason=op.reason if op is not None else decision.reason,
        # A refresh that only joined or left group teams (R25) changed the user too.
        changed=(op is not None and outcome == "succeeded") or (teams is not None and teams.changed),
        run_id=run_id,
        outcome=outcome,
        checks=decision.checks,
        conflicts=[c.message for c in target.conflicts if not c.passed],
        via_app_pass=app_pass,
        row=row_dict,
        teams=teams,
    )


def _row_after(session: Session, target: _Target) -> SystemUser | None:
    rows = lookup.find_rows(session, target.env.id, target.facts.object_id)
    if not rows and target.row_id is not None:
        rows = lookup.find_rows(session, target.env.id, str(target.row_id))
    return rows[0] if rows else None


def add_user(
    engine: Engine, directory: GraphClient, env_name: str, key: str, *, trigger: str = "cli"
) -> UserResult:
    """R8: an administrator's on-demand add (Add-AdminPowerAppsSyncUser)."""
    return _one_user(engine, directory, env_name, key, Mode.ON_DEMAND, "add", trigger)


def first_access(
    engine: Engine, directory: GraphClient, env_name: str, key: str, *, trigger: str = "cli"
) -> UserResult:
    """R7c, R8: the user's first attempt to open the environment."""
    return _one_user(engine, directory, env_name, key, Mode.FIRST_ACCESS, "access", trigger)


def refresh_user(
    engine: Engine, directory: GraphClient, env_name: str, key: str, *, trigger: str = "cli"
) -> UserResult:
    """R23: resync one user now, by the background sync's rules (disabling included); not for stubs."""
    return _one_user(engine, directory, env_name, key, Mode.BACKGROUND, "refresh", trigger)


def diagnose_user(engine: Engine, directory: GraphClient, env_name: str, key: str) -> Diagnosis:
    """R22: check by check, why the user is or is not enabled, and what the background sync does next."""
    with _raw(engine) as (conn, sqlite):
        target = _resolve(engine, conn, sqlite, directory, env_name, key)
    background = decide(target.facts, target.envf, target.row_facts, Mode.BACKGROUND, explain=True)
    on_demand: dict[str, Any] = {}
    if target.directory_user is not None or target.soft_deleted:
        od = decide(target.facts, target.envf, target.row_facts, Mode.ON_DEMAND, explain=True)
        on_demand = {
            "possible": od.action is not Action.REFUSE,
            "action": od.action.value,
            "rule": od.rule,
            "reason": od.reason,
            "failed_checks": [check_dict(c) for c in od.failed_checks],
        }
    checks = background.checks + tuple(target.conflicts)
    with Session(engine) as session:
        row = _row_after(session, target)
        row_dict = lookup.row_dict(session, row) if row is not None else None
        events = lookup.last_events(session, target.env.id, row, EVENTS_SHOWN) if row is not None else []
        teams = user_teams(session, row.systemuserid) if row is not None else []
    return Diagnosis(
        environment=target.env.name,
        user=target.user_dict(),
        checks=checks,
        next={"action": background.action.value, "rule": background.rule, "reason": background.reason},
        on_demand=on_demand,
        conflicts=[c.message for c in target.conflicts if not c.passed],
        row=row_dict,
        events=events,
        restore=_restore(target) if target.soft_deleted else None,
        teams=teams,
    )


def _restore(target: _Target) -> dict[str, Any]:
    """What restoring a soft-deleted user would do (R3, R9): the user comes back with their
    licences, memberships and admin roles, and the background sync then decides as for any user in
    the directory. The memberships and roles the directory can't list while the user is deleted
    (see ``unknowns``) are not known: when they would decide, the answer says on what it depends
    (``enabled`` None, each case in ``cases``) rather than guess."""
    envf, row = target.envf, target.row_facts
    base = replace(target.facts, deletion=Deletion.NONE)
    unknown = unknowns(base, envf, restored=True)
    decision = decide(base, envf, row, Mode.BACKGROUND)
    checks = diagnose(base, envf, row, Mode.BACKGROUND, decision=decision, restored=True)
    enabled = _enabled_after(decision, row)
    out: dict[str, Any] = {
        "enabled": enabled,
        "summary": _restore_summary(decision, enabled),
        "action": decision.action.value,
        "rule": decision.rule,
        "reason": decision.reason,
        "failed_checks": [check_dict(c) for c in checks if not c.passed],
        "unknown": (["membership"] if unknown.membership else [])
        + (["admin roles"] if unknown.roles else []),
        "cases": [],
    }
    if not unknown:
        return out
    memberships = [Membership.DIRECT, Membership.NONE] if unknown.membership else [base.membership]
    role_sets = (
        [frozenset(), frozenset({DYNAMICS_365_ADMINISTRATOR}), frozenset({GLOBAL_ADMINISTRATOR})]
        if unknown.roles
        else [base.admin_role_template_ids]
    )

    def outcome(membership: Membership, roles: frozenset[str]) -> Decision:
        return decide(replace(base, membership=membership, admin_role_template_ids=roles), envf, row)

    outcomes = {(m, r): outcome(m, r) for m in memberships for r in role_sets}
    if len({_enabled_after(d, row) for d in outcomes.values()}) == 1:
        return out  # what is not known changes nothing
    # The conditions that enable the user, each as few facts as it takes.
    cases: list[tuple[list[str], Decision]] = []
    for m in memberships:
        member = (
            ["is still a member of the security group (R5)"] if unknown.membership and m is _DIRECT else []
        )
        ok = [roles for roles in role_sets if _enabled_after(outcomes[(m, roles)], row)]
        if not ok:
            continue
        roles, d = ok[0], outcomes[(m, ok[0])]
        if not roles:
            cases.append((member, d))
        elif DYNAMICS_365_ADMINISTRATOR in roles:
            cases.append((member + ["holds an admin role (R6)"], d))
        else:
            exempt = "holds an admin role exempt from the security group (Global or Power Platform Administrator, R6)"
            cases.append((member + [exempt], d))
    minimal = [c for c in cases if not any(set(o[0]) < set(c[0]) for o in cases)]
    if not minimal or any(not facts for facts, _ in minimal):  # pragma: no cover - enabling is monotonic
        out.update(
            enabled=None, action=None, rule=None, summary="depends on " + unknown.what(), reason=SUSPENDED
        )
        return out
    when = ", or ".join(" and ".join(facts) for facts, _ in minimal)
    first = minimal[0][1]
    verb = {
        Action.CREATE: "the background sync would add the user",
        Action.ENABLE: "the row would be enabled again",
    }.get(first.action, "the row would stay enabled")
    out.update(
        enabled=None,
        action=None,
        rule=None,
        summary=f"{verb} when the user {when}; otherwise {_restore_summary(decision, enabled)}",
        reason=f"the directory can't tell {unknown.what()} of a deleted user: {SUSPENDED}",
        cases=[
            {"when": " and ".join(facts), "enabled": True, "action": d.action.value, "rule": d.rule}
            for facts, d in minimal
        ]
        + [{"when": "otherwise", "enabled": enabled, "action": decision.action.value, "rule": decision.rule}],
    )
    return out


def _enabled_after(decision: Decision, row: RowFacts | None) -> bool:
    """Whether the user's row is enabled once the background sync has applied ``decision``."""
    if decision.isdisabled is not None:
        return not decision.isdisabled
    return row is not None and not row.isdisabled and decision.action is Action.KEEP


def _restore_summary(decision: Decision, enabled: bool) -> str:
    if decision.action is Action.ENABLE:
        return f"the row would be enabled again ({decision.rule})"
    if decision.action is Action.CREATE:
        return f"the background sync would add the user ({decision.rule})"
    if enabled:
        return f"the row would stay enabled ({decision.rule})"
    return f"the user would not be enabled ({decision.rule})"
