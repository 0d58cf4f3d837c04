"""One sync run of one environment: read, decide, plan, apply, checkpoint.

A run reads like its table of contents (:meth:`_Run.execute`):

1. **read** the directory: a full read (the users delta from scratch, or, with a security group,
   the group's members, owners and the admins: R24), or a delta read from the checkpoint;
2. **decide** each user by the rules (pure), against the row as it was before this run wrote it;
3. **plan** the operation that decision asks for (pure), saying only what it changes;
4. **apply** creates, updates and enables a batch at a time; hold disables back until the read has
   succeeded and the mass-disable guard has passed;
5. **checkpoint**: the delta links move in the run's last transaction, with the run's row.

Graph is untidy, and the run is built for it. One read can return a user more than once, and the
last copy is the truth: a later copy supersedes whatever an earlier one queued, held or wrote
(:meth:`_Run._observe`). A full read is followed by one delta round from the link it earned, so a
user changed during the read is seen at their latest state before anyone is found missing; only
rows still unseen after that are disabled. A ``410 syncStateNotFound`` during a full read starts
the read again, once, and the run records it.

A run writes on one connection; under the daemon or ``syncd sync`` on PostgreSQL it is the one whose
session holds the environment's advisory lock, so a run that lost its lock has lost the connection
it writes on, and stops at its next statement (it checks the connection every few seconds while it
only reads). Its outcome is then written on a fresh connection. A run has a deadline (the settings'
``delta_run_deadline_seconds`` and ``full_run_deadline_seconds``): past it, or when a wait to retry
Graph would pass it, the run ends as failed and the checkpoint does not move.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import Engine

from syncd.dataverse.rows import EnvironmentRow, load_environment
from syncd.directory.client import GraphClient
from syncd.directory.errors import DeadlineReached, DirectoryAuthError, FullResyncRequired
from syncd.directory.ids import normalize_object_id
from syncd.directory.models import Deletion, DirectoryUser, UsersDeltaPage
from syncd.rules import (
    GROUP_EXEMPT_ROLE_IDS,
    Action,
    AzureState,
    EnvironmentFacts,
    EnvType,
    Membership,
    UserFacts,
    UserKind,
    azure_state,
    decide,
)
from syncd.settings import Settings
from syncd.sync import source
from syncd.sync.apply import Applier
from syncd.sync.guard import check_disables
from syncd.sync.inputs import code_digest, decision_salt, input_hash
from syncd.sync.plan import plan_operation, recreate_values
from syncd.sync.storage import GroupMirror, Storage, open_storage
from syncd.sync.storage.base import record_run_end

if TYPE_CHECKING:
    from syncd.dataverse.schema import Environment

log = structlog.get_logger(__name__)

USERS_LINK = "users_delta_link"
GROUPS_LINK = "groups_delta_link"
ADMINS = "admins"
NO_ROLES: frozenset[str] = frozenset()
_HARD = Deletion.HARD
# A user read whose row must be decided: object id, user (None: gone or out of scope), deletion,
# directory roles, membership, azurestate, input hash (None: not computed yet), out of scope.
_Undecided = tuple[
    str, DirectoryUser | None, Deletion, frozenset[str], Membership, AzureState, int | None, bool
]
ANALYZE_AFTER = 10_000  # rows written by one run, after which the table's statistics are refreshed
FULL_READ_ATTEMPTS = 2  # a 410 during a full read starts it again once
PING_EVERY_S = 2.0  # while a run only reads, it checks its connection (and lock) this often

Progress = Callable[[str, int], None]


class RunInterrupted(Exception):
    """The run was asked to stop (SIGTERM); what was committed stays, the checkpoint does not move."""


class RunDeadlinePassed(Exception):
    """The run is still going at its deadline; what was committed stays, the checkpoint does not move."""


@dataclass
class RunOptions:
    """How to run: ``kind`` "auto" (delta when there is a checkpoint), "full" or "delta"."""

    kind: str = "auto"
    dry_run: bool = False
    allow_mass_disable: bool | None = None  # None: the setting decides
    trigger: str = "cli"
    holds_lock: bool = False  # the caller holds the environment's lock: no other run of it is alive


@dataclass
class RunReport:
    """The outcome of one run.

    ``outcome`` is one of: ``succeeded``; ``partial`` (the run completed, but some rows could not
    be written: ``counts["failed"]``, each with a ``failed`` event); ``blocked`` (the mass-disable
    guard held the disables back; the checkpoint did not move); ``failed`` (``error`` says why;
    nothing half-written, the checkpoint did not move); ``interrupted``; ``dry_run``.
    ``restarts`` counts full reads started again after a 410 ``syncStateNotFound``.
    """

    run_id: int | None
    environment: str
    kind: str
    requested_kind: str
    outcome: str
    counts: dict[str, int]
    duration_s: float
    error: str | None = None
    planned: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0

    @property
    def changes(self) -> int:
        c = self.counts
        return c["created"] + c["updated"] + c["enabled"] + c["disabled"] + c["blocked_disables"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "environment": self.environment,
            "kind": self.kind,
            "requested_kind": self.requested_kind,
            "outcome": self.outcome,
            "counts": self.counts,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "restarts": self.restarts,
            "planned": self.planned,
        }


def environment_facts(env: Environment | EnvironmentRow) -> EnvironmentFacts:
    """The rules' view of an environment row; the security group id in its canonical spelling."""
    group = env.security_group_id
    return EnvironmentFacts(
        name=env.name,
        type=EnvType(env.type),
        has_database=env.has_database,
        security_group_id=normalize_object_id(group) if group else None,
        app_pass_capacity_left=env.app_pass_capacity,
        tenant_has_marketing_licence=env.tenant_has_marketing_licence,
        is_sales=env.is_sales,
        created_by_object_id=env.created_by_object_id.lower() if env.created_by_object_id else None,
        allow_role_assignment_on_disabled_users=env.allow_role_assignment_on_disabled_users,
    )


def sync_environment(
    engine: Engine,
    directory: GraphClient,
    env_name: str,
    settings: Settings,
    options: RunOptions | None = None,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    connection: Any | None = None,
) -> RunReport:
    """Run one sync of ``env_name`` and report it.

    ``connection``: the DB-API connection to write on, owned by the caller; on PostgreSQL the one
    whose session holds the environment's advisory lock (``Lease.connection``), so that the run
    cannot write once the lock is gone. None: the run takes a connection of its own from ``engine``.

    Never raises for directory or data problems: the report's outcome and error say what happened.
    When the run's connection is lost, its outcome is recorded on a fresh one. Raises ``NotFound``
    for an unknown environment and ``ValueError`` for an unknown run kind.
    """
    options = options or RunOptions()
    if options.kind not in ("auto", "full", "delta"):
        raise ValueError(f"unknown run kind {options.kind!r}: expected auto, full or delta")
    # The row through Core: a run never loads the ORM (syncd.dataverse.rows).
    with engine.connect() as c:
        env = load_environment(c, env_name)
    raw = engine.raw_connection() if connection is None else None
    run = _Run(
        raw.driver_connection if raw is not None else connection,
        env,
        directory,
        settings,
        options,
        stop,
        progress,
    )
    try:
        report = run.execute()
    finally:
        if raw is not None:
            if run.storage.connection_lost():
                raw.invalidate()
            raw.close()
    if run.unrecorded and report.run_id is not None:
        _record_elsewhere(engine, run, report)
    return report


def _record_elsewhere(engine: Engine, run: _Run, report: RunReport) -> None:
    """The run's own connection could not record its end: record it on a fresh one."""
    lost = run.storage.connection_lost()
    finished_at = run.storage.last_contact if lost else datetime.now(UTC)
    try:
        written = record_run_end(
            engine,
            report.run_id,  # type: ignore[arg-type]
            report.outcome,
            report.error,
            report.counts,
            restarts=report.restarts,
            finished_at=finished_at,
        )
    except Exception as exc:  # the database is unreachable: the next holder of the lock closes the row
        log.error("sync.outcome_not_recorded", run_id=report.run_id, error=str(exc)[:300])
        return
    log.info("sync.outcome_recorded_on_fresh_connection", run_id=report.run_id, written=written)


class _Run:
    def __init__(
        self,
        conn: Any,
        env: EnvironmentRow,
        directory: GraphClient,
        settings: Settings,
        options: RunOptions,
        stop: threading.Event | None,
        progress: Progress | None,
    ) -> None:
        self.env = env
        self.envf = environment_facts(env)
        self.group_id = self.envf.security_group_id
        self.directory = directory
        self.settings = settings
        self.options = options
        self.stop = stop
        self.progress = progress
        self.storage: Storage = open_storage(conn, env.id, datetime.now(UTC))
        self.applier = Applier(self.storage, settings.batch_size, options.dry_run)
        self.counts = self.applier.counts
        self.admins: source.Admins = {}
        # Users read along the way (the admins), for _observe_by_id: never older than a copy observed since.
        self.known_users: dict[str, DirectoryUser] = {}
        self.load_rows = True  # False while a full run fills an environment that had no rows
        # The seed of each user's input hash: a row whose hash is unchanged is not decided again.
        self.salt = decision_salt(self.envf, code_digest())
        self.read_users = 0
        self.restarts = 0
        self.existing_rows = 0
        # The security group: its members and owners as a full run reads them (None in delta runs,
        # which use the local mirror), and the member changes a delta round read.
        self.members: set[str] | None = None
        self.owners: set[str] = set()
        self.added: set[str] = set()
        self.removed: set[str] = set()
        self.unrecorded = False  # the run's end could not be written on its own connection
        self.started = time.monotonic()
        self.budget_s = float(settings.full_run_deadline_seconds)
        self.deadline = self.started + self.budget_s
        self._last_ping = self.started

    # -- the run -------------------------------------------------------------------------------

    def execute(self) -> RunReport:
        started = self.started
        requested = self.options.kind
        kind = requested if requested != "auto" else "delta"
        try:
            state = self.storage.load_state()
            kind = "delta" if requested != "full" and state.get(USERS_LINK) else "full"
            self._set_deadline(kind)
            if not self.options.dry_run:
                self.storage.start_run(
                    kind, requested, self.options.trigger, reap_stale=self.options.holds_lock
                )
                if self.storage.reaped:
                    log.warning("sync.stale_runs_closed", environment=self.env.name, runs=self.storage.reaped)
            log.info(
                "sync.start",
                environment=self.env.name,
                kind=kind,
                requested=requested,
                run_id=self.storage.run_id,
            )
            if not self.env.has_database:
                outcome, error = self._finish({})  # R1: no database, no users
            elif kind == "delta":
                try:
                    outcome, error = self._delta(state)
                except FullResyncRequired as exc:
                    log.warning("sync.delta_token_expired", environment=self.env.name, url=exc.url)
                    kind = "full"
                    self._set_deadline(kind)
                    self._reset()
                    if not self.options.dry_run:
                        self.storage.set_run_kind("full")
                    outcome, error = self._full()
            else:
                outcome, error = self._full()
        except RunInterrupted:
            outcome, error = "interrupted", "stopped before the end; the checkpoint did not move"
            self._close(outcome, error)
        except (RunDeadlinePassed, DeadlineReached) as exc:
            outcome = "failed"
            error = f"the {kind} run passed its deadline of {self.budget_s:.0f} s"
            if isinstance(exc, DeadlineReached):
                error = f"{exc} of the {kind} run ({self.budget_s:.0f} s)"
            error += f" (the {kind}_run_deadline_seconds setting); stopped, the checkpoint did not move"
            log.error("sync.failed", environment=self.env.name, error=error)
            self._close(outcome, error)
        except DirectoryAuthError as exc:
            outcome, error = "failed", f"{exc}; stopped, the checkpoint did not move"
            log.error("sync.failed", environment=self.env.name, error=error)
            self._close(outcome, error)
        except Exception as exc:
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"
            if self.storage.connection_lost():
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                noticed = datetime.now(UTC).isoformat(timespec="seconds")
                error = (
                    "lost the database connection, and with it the environment's lock; stopped without "
                    f"writing more (noticed at {noticed}; finished_at is its last write), the checkpoint "
                    f"did not move ({type(exc).__name__}: {first})"
                )
            log.error("sync.failed", environment=self.env.name, error=error)
            self._close(outcome, error)
        finally:
            self.directory.deadline = None
        if self.options.dry_run and outcome in ("succeeded", "partial", "blocked"):
            outcome = "dry_run"
        report = RunReport(
            run_id=self.storage.run_id,
            environment=self.env.name,
            kind=kind,
            requested_kind=requested,
            outcome=outcome,
            counts=self.counts.as_dict(),
            duration_s=time.monotonic() - started,
            error=error,
            planned=self.applier.planned if self.options.dry_run else [],
            restarts=self.restarts,
        )
        log.info(
            "sync.summary",
            environment=self.env.name,
            run_id=report.run_id,
            kind=kind,
            requested=requested,
            outcome=outcome,
            duration_s=round(report.duration_s, 3),
            error=error,
            restarts=self.restarts,
            **report.counts,
        )
        return report

    # -- full ----------------------------------------------------------------------------------

    def _full(self) -> tuple[str, str | None]:
        """A full read, started again once if Graph forgets the read's state (410) on the way."""
        for attempt in range(FULL_READ_ATTEMPTS):
            try:
                return self._full_read()
            except FullResyncRequired as exc:
                if attempt + 1 >= FULL_READ_ATTEMPTS:
                    raise
                self.restarts += 1
                log.warning("sync.full_read_restarted", environment=self.env.name, url=exc.url)
                self._reset()
                # The report counts what the read that completes saw; writes already made stay counted.
                self.counts.read = self.counts.unchanged = self.counts.failed = 0
                self.load_rows = True  # rows this run already wrote are known by their timestamps
        raise AssertionError("unreachable")  # pragma: no cover

    def _full_read(self) -> tuple[str, str | None]:
        # With a security group the users delta link comes first, before the admins are read with
        # their user objects: a change to an admin after the link is in the catch-up round, so no
        # admin is decided from a copy older than the link (a change between the two was lost).
        link = self.directory.latest_users_delta_link() if self.group_id else None
        self.admins = source.read_admins(self.directory, self.known_users)
        existing, enabled_before = self.storage.count_rows()
        self.existing_rows = existing
        if existing == 0 and self.restarts == 0:
            # An empty environment: no rows to look up, creates go straight in.
            self.load_rows = False
            self.applier.bulk_create = True
        self.storage.start_seen()
        users_link: str | None
        groups_link: str | None
        if self.group_id:
            assert link is not None
            users_link, groups_link = self._read_group(self.group_id, link)
        else:
            reader = self.directory.users_delta()
            for page in source.prefetch(reader):
                self._check_stop()
                self._observe(_delta_observations(page))
            users_link, groups_link = reader.delta_link, None
        empty = self.read_users == 0
        # Catch up with what changed while the read was paging (admin roles included), before anyone
        # is found missing.
        users_link, groups_link = self._delta_round(users_link, groups_link, self._reread_admins())
        self.applier.flush()
        if not self.load_rows:
            self._resolve_repeats()
        self._disable_unseen()
        state = {USERS_LINK: users_link, GROUPS_LINK: groups_link, ADMINS: _dump_admins(self.admins)}
        mirror = None
        if self.group_id and self.members is not None:
            mirror = GroupMirror(members=sorted(self.members), owners=sorted(self.owners))
        return self._finish(
            state, mirror=mirror, enabled_before=enabled_before, empty_read=empty, count_users=True
        )

    def _reread_admins(self) -> set[str]:
        """Read the admins (R6) again; the users whose admin roles changed since the last reading.

        The user objects read with them replace those of the first reading, which are older than the
        read that followed it (the users whose roles changed are decided again from these copies): a
        user who is no longer an admin is read afresh, so a soft delete, licence or edit the read saw
        is never undone by the copy read before it."""
        self.known_users = {}
        before, self.admins = self.admins, source.read_admins(self.directory, self.known_users)
        return {u for u in before.keys() | self.admins.keys() if before.get(u) != self.admins.get(u)}

    def _read_group(self, group_id: str, users_link: str) -> tuple[str, str | None]:
        """R24: the group's direct members, its owners and the admins, not the tenant. `users_link`
        was taken before anything was read, the admins included."""
        members, groups_link = source.group_members_and_link(self.directory, group_id)
        self.members = members
        evaluated: set[str] = set()
        for page in source.prefetch(source.group_user_pages(self.directory, group_id)):
            self._check_stop()
            page = [u for u in page if u.id in members]
            evaluated.update(u.id for u in page)
            self._observe([Observation(u, u.id, Deletion.NONE, Membership.DIRECT) for u in page])
        self.owners = source.group_owner_ids(self.directory, group_id)
        extra = (self.owners | set(self.admins) | members) - evaluated
        self._observe_by_id(sorted(extra))
        return users_link, groups_link

    def _resolve_repeats(self) -> None:
        """Users read more than once while rows were not looked up (an empty environment): read each
        again and decide against the row this run wrote from an earlier copy."""
        repeated = self.storage.repeated_ids()
        if repeated:
            log.info("sync.repeated_users", environment=self.env.name, users=len(repeated))
            self.load_rows = True
            self.known_users = {}  # read them afresh
            self._observe_by_id(repeated)
            self.applier.flush()

    def _disable_unseen(self) -> None:
        """Rows whose user neither the read nor the catch-up saw: gone from the directory, or (with a
        security group) out of its scope. Only their ids are held; rows load a batch at a time."""
        if not self.load_rows and self.restarts == 0:
            return  # the environment had no rows before this run
        ids = self.storage.unseen_ids()
        soft = self._soft_deleted_ids() if ids else frozenset()
        for i in range(0, len(ids), 999):
            self._check_stop()
            batch = ids[i : i + 999]
            self._observe(self._unseen_observations(batch, soft), unseen=True)

    def _soft_deleted_ids(self) -> frozenset[str]:
        """The ids of the directory's soft-deleted users (its deleted items): an unseen row of one of
        them is soft-deleted (R9, azurestate 1), not gone. One paged read, once per full run."""
        return frozenset(self.directory.iter_deleted_user_ids())

    def _unseen_observations(self, batch: list[str], soft: frozenset[str]) -> list[Observation]:
        """What the directory says of users a full run did not read (R9's azurestate): soft-deleted
        (in the deleted items), or, tenant-wide, not found. With a security group a user outside it
        was not read (R24), so they are looked up by id (present: azurestate 0; else not found), 300
        to a round trip (``users_by_ids``: 15 ids to an ``id in`` filter, 20 filters to a JSON batch),
        except rows already not found (2): a hard-deleted object id never comes back."""
        known = self.storage.load_rows([oid for oid in batch if oid not in soft]) if self.group_id else {}
        lookup = [
            oid
            for oid in batch
            if oid not in soft
            and (row := known.get(oid)) is not None
            and row.facts.azurestate != AzureState.NOT_FOUND
        ]
        found: dict[str, DirectoryUser] = {}
        if lookup:
            self._check_stop()
            found = self.directory.users_by_ids(lookup)
        out: list[Observation] = []
        for oid in batch:
            if oid in soft:
                out.append(Observation(None, oid, Deletion.SOFT))
                continue
            du = found.get(oid.lower())
            if du is not None:
                out.append(Observation(du, oid, Deletion.NONE))
                continue
            out.append(Observation(None, oid, Deletion.HARD))
        return out

    # -- delta ---------------------------------------------------------------------------------

    def _delta(self, state: dict[str, str]) -> tuple[str, str | None]:
        self.admins = source.read_admins(self.directory, self.known_users)
        old_admins = _load_admins(state.get(ADMINS))
        reevaluate = {
            u for u in self.admins.keys() | old_admins.keys() if self.admins.get(u) != old_admins.get(u)
        }
        if self.group_id and not state.get(GROUPS_LINK):
            raise FullResyncRequired("sync_state", None)
        users_link, groups_link = self._delta_round(state[USERS_LINK], state.get(GROUPS_LINK), reevaluate)
        enabled_before = 0
        held = self.applier.held_count
        over_count = held > self.settings.mass_disable_count  # blocked anyway: count exactly
        if over_count or held >= self.settings.mass_disable_ratio_min_count:  # the floor is at least 1
            # The guard compares the disables with the enabled rows (under the ratio's floor it does
            # not, and nothing is counted); counting just far enough to know keeps this run's cost
            # with its changes, not with the environment's size.
            ratio = self.settings.mass_disable_ratio
            limit = int(held / ratio) + 1 if ratio > 0 and not over_count else None
            enabled_before = self.storage.count_enabled(limit)
        state_out = {USERS_LINK: users_link, GROUPS_LINK: groups_link, ADMINS: _dump_admins(self.admins)}
        mirror = GroupMirror(added=self.added, removed=self.removed) if self.group_id else None
        return self._finish(state_out, mirror=mirror, enabled_before=enabled_before)

    def _delta_round(
        self, users_link: str | None, groups_link: str | None, reevaluate: set[str]
    ) -> tuple[str | None, str | None]:
        """Read the groups and users deltas from these links and decide every user they name.

        Returns the next links. Used by delta runs, and by full runs to catch up with what changed
        while their read was paging.
        """
        if self.group_id and groups_link:
            reader = self.directory.groups_delta(groups_link)
            added, removed = source.group_changes(reader, self.group_id)
            groups_link = reader.delta_link
            for oid in added:
                self.added.add(oid)
                self.removed.discard(oid)
            for oid in removed:
                self.removed.add(oid)
                self.added.discard(oid)
            if self.members is not None:
                self.members |= added
                self.members -= removed
            reevaluate = reevaluate | added | removed
        if users_link is None:
            return users_link, groups_link
        users = self.directory.users_delta(users_link)
        seen: set[str] = set()
        for page in source.prefetch(users):
            self._check_stop()
            observed = _delta_observations(page)
            seen.update(o.object_id for o in observed)
            self._observe(observed)
        self._observe_by_id(sorted(reevaluate - seen))
        return users.delta_link, groups_link

    # -- deciding ------------------------------------------------------------------------------

    def _observe_by_id(self, ids: Iterable[str]) -> None:
        """Users known only by id (admins, owners, membership changes, repeats): read them, 300 to a
        round trip (``users_by_ids``), 900 at a time; one not found is looked for in the deleted items."""
        pending = list(ids)
        for i in range(0, len(pending), 900):
            self._check_stop()
            chunk = pending[i : i + 900]
            known = self.known_users
            missing = [oid for oid in chunk if oid not in known]
            found = self.directory.users_by_ids(missing) if missing else {}
            observed: list[Observation] = []
            for oid in chunk:
                du = known.get(oid) or found.get(oid.lower())
                if du is not None:
                    observed.append(Observation(du, oid, Deletion.NONE))
                else:  # soft-deleted (in the deleted items, R9's azurestate 1) or gone
                    self._check_stop()
                    soft = self.directory.get_deleted_user(oid) is not None
                    observed.append(Observation(None, oid, Deletion.SOFT if soft else Deletion.HARD))
            self._observe(observed)

    def _observe(self, items: list[Observation], *, unseen: bool = False) -> None:
        """Decide, plan and queue the operation for each user read; the latest copy of a user wins.

        Within ``items`` the last copy of a user counts. What an earlier copy queued or held is
        dropped; a row that this run already wrote from an earlier copy is judged as it was before
        this run (no row, if this run created it), and a row created from a copy that the latest
        one overrules is withdrawn. ``unseen``: rows a full run did not find in the directory.

        A user whose row records the very facts they are decided from now (``syncd_inputhash``,
        ``syncd.sync.inputs``) is not decided again: nobody has written the row since sync decided
        it from those facts, so it is unchanged. Rows left as they are get their hash recorded.
        """
        if not items:
            return
        latest = {f.object_id: f for f in items}
        ids = list(latest)
        self.applier.supersede(ids)
        known = self.known_users
        if known:  # a copy kept from before this one is older: never decide from it again
            for oid in ids:
                known.pop(oid, None)
        if not unseen:
            self.applier.mark_seen(ids)
        self.read_users += sum(1 for f in latest.values() if f.user is not None)
        if not unseen:
            self.counts.read += len(ids)
        # What the rows were last decided from: a user whose facts hash the same is not decided again.
        hashes = self.storage.load_input_hashes(ids) if self.load_rows and not unseen else {}
        memberships = self._memberships(ids)
        withdraw: list[str] = []
        envf, admins, salt = self.envf, self.admins, self.salt
        todo: list[_Undecided] = []
        for oid, f in latest.items():
            roles = admins.get(oid, NO_ROLES)
            membership = memberships.get(oid, f.membership)
            out_of_scope = (
                self.group_id is not None
                and f.user is not None
                and membership is Membership.NONE
                and roles.isdisjoint(GROUP_EXEMPT_ROLE_IDS)
            )
            # R5, R24: outside the group a user is only known to be out of scope; a row of theirs is
            # disabled (R9) and otherwise left as it is, as a full run that never reads them.
            user, deletion = (None, _HARD) if out_of_scope else (f.user, f.deletion)
            # R9: azurestate follows what the read said of the user, in scope or not.
            state = azure_state(f.user is not None, f.deletion)
            h = None
            stored = hashes.get(oid)
            if stored is not None:
                h = input_hash(user, deletion, roles, membership, state, salt)
                if stored[0] == h:
                    if not stored[1]:
                        self.counts.unchanged += 1
                    continue
            todo.append((oid, user, deletion, roles, membership, state, h, out_of_scope))
        rows = self.storage.load_rows([t[0] for t in todo]) if self.load_rows else {}
        for oid, user, deletion, roles, membership, state, h, out_of_scope in todo:
            facts = UserFacts(user, oid, deletion, roles, membership)
            current = rows.get(oid)
            before = None if current is not None and current.created_by_run else current
            op = plan_operation(decide(facts, envf, before.facts if before else None), oid, before, state)
            if current is not None and before is None:
                # This run created the row from an earlier copy of the user.
                if op is None or op.action is not Action.CREATE:
                    withdraw.append(oid)
                    continue
                op = recreate_values(op, current)
            if op is None:
                if current is not None:
                    if not current.written_by_run:
                        self.counts.unchanged += 1
                    if current.facts.kind is UserKind.REGULAR and current.versionnumber is not None:
                        h = input_hash(user, deletion, roles, membership, state, salt) if h is None else h
                        if current.input_hash != h:
                            self.applier.record_hash(oid, h, current.versionnumber)
                continue
            # Recorded whichever way the user was found (read, or missing from a full read), so that
            # one directory gives one table, hashes included, whatever the runs' history.
            op.input_hash = input_hash(user, deletion, roles, membership, state, salt) if h is None else h
            op.read_version = current.versionnumber if current is not None else None
            if (out_of_scope or (unseen and self.group_id)) and op.action is Action.DISABLE:
                op.rule = "R5"
                op.reason = "Not a direct member of the security group, or gone from the directory: the row is disabled."
            self.applier.add(op)
        self.applier.withdraw(withdraw)
        if self.progress is not None:
            self.progress("read", len(ids))

    def _memberships(self, ids: list[str]) -> dict[str, Membership]:
        """Each user's relation to the security group (R5): from what a full run read, or, in a
        delta run, from the local mirror and this run's member changes. Empty without a group."""
        if not self.group_id:
            return {}
        out: dict[str, Membership] = {}
        if self.members is not None:
            for oid in ids:
                if oid in self.members:
                    out[oid] = Membership.DIRECT
                elif oid in self.owners:
                    out[oid] = Membership.OWNER
                else:
                    out[oid] = Membership.NONE
            return out
        relations = self.storage.group_relations(ids)
        for oid in ids:
            rel = relations.get(oid, set())
            if oid in self.added or ("member" in rel and oid not in self.removed):
                out[oid] = Membership.DIRECT
            elif "owner" in rel:
                out[oid] = Membership.OWNER
            else:
                out[oid] = Membership.NONE
        return out

    # -- finishing -----------------------------------------------------------------------------

    def _finish(
        self,
        state: dict[str, str | None],
        *,
        mirror: GroupMirror | None = None,
        enabled_before: int = 0,
        empty_read: bool = False,
        count_users: bool = False,
    ) -> tuple[str, str | None]:
        """Apply or block the held disables (the guard), then the run's last transaction.

        ``count_users``: record the environment's enabled and disabled users with the run (a full
        run, which reads every row anyway; a delta run's cost stays with its changes, so it
        records none: the status UI's chart of enabled users draws the full runs' counts)."""
        self.applier.flush()
        allow = self.options.allow_mass_disable
        if allow is None:
            allow = self.settings.allow_mass_disable
        verdict = check_disables(
            self.applier.held_count,
            enabled_before,
            max_count=self.settings.mass_disable_count,
            max_ratio=self.settings.mass_disable_ratio,
            ratio_min_count=self.settings.mass_disable_ratio_min_count,
            allow=allow,
            directory_read_empty=empty_read,
        )
        if verdict.allowed:
            self.applier.apply_held()
            outcome, error = "succeeded", None
            if self.counts.failed:
                outcome = "partial"
                error = f"{self.counts.failed} rows could not be written; the run's 'failed' events say why"
        else:
            self.applier.block_held()
            outcome, error = "blocked", verdict.reason
            log.warning("sync.mass_disable_blocked", environment=self.env.name, reason=verdict.reason)
        if self.options.dry_run:
            return outcome, error
        # The checkpoint moves only when everything it covers is applied (a partial run's failed rows
        # are retried by the next full run); a blocked run leaves it, so its disables come back.
        moves = outcome in ("succeeded", "partial")
        self.storage.finish_run(
            outcome,
            error,
            self.counts.as_dict(),
            restarts=self.restarts,
            state=state if moves else None,
            mirror=mirror if moves else None,
            count_users=count_users,
        )
        written = self.counts.written
        if written >= ANALYZE_AFTER or written >= max(1000, self.existing_rows // 10):
            self.storage.analyze()
        return outcome, error

    def _close(self, outcome: str, error: str) -> None:
        """After a failure or an interruption: keep what is whole, record the end, never the checkpoint.

        With the connection lost (and on PostgreSQL the lock with it) nothing more is written on it;
        the end is recorded on a fresh connection (``unrecorded``)."""
        if self.storage.connection_lost():
            self.unrecorded = not self.options.dry_run
            return
        try:
            self.applier.flush()
        except Exception as exc:  # the batch is lost; nothing half-written (its transaction rolled back)
            log.warning("sync.final_flush_failed", error=str(exc)[:300])
        if self.options.dry_run:
            return
        try:
            self.storage.finish_run(outcome, error, self.counts.as_dict(), restarts=self.restarts)
        except Exception as exc:
            log.warning("sync.finish_failed", error=str(exc)[:300])
            self.unrecorded = True

    def _set_deadline(self, kind: str) -> None:
        """The run's deadline, counted from its start, by the kind it runs as (R: the settings)."""
        s = self.settings
        self.budget_s = float(s.full_run_deadline_seconds if kind == "full" else s.delta_run_deadline_seconds)
        self.deadline = self.started + self.budget_s
        self.directory.deadline = self.deadline

    def _reset(self) -> None:
        """Before a read starts again from scratch: keep what is written, forget what was held."""
        self.applier.flush()
        self.applier.clear_held()
        self.known_users = {}
        self.read_users = 0
        self.members, self.owners = None, set()
        self.added, self.removed = set(), set()

    def _check_stop(self) -> None:
        """Between pages and batches: stop when asked, past the deadline, or when the connection (and
        with it, on PostgreSQL, the environment's lock) is gone."""
        if self.stop is not None and self.stop.is_set():
            raise RunInterrupted()
        now = time.monotonic()
        if now > self.deadline:
            raise RunDeadlinePassed()
        if now - self._last_ping >= PING_EVERY_S:
            self._last_ping = now
            self.storage.ping()


@dataclass(slots=True)
class Observation:
    """What one read said of one user: the user (None when removed) and, where the read knows it,
    their relation to the security group. The rules' facts are built from it when deciding."""

    user: DirectoryUser | None
    object_id: str
    deletion: Deletion = Deletion.NONE
    membership: Membership = Membership.NONE


def _delta_observations(page: UsersDeltaPage) -> list[Observation]:
    """A users delta page, in the page's order (a later entry for a user wins)."""
    user, none = DirectoryUser, Deletion.NONE
    return [
        Observation(e, e.id, none) if e.__class__ is user else Observation(None, e.id, e.deletion)  # type: ignore[union-attr]
        for e in page.entries
    ]


def _dump_admins(admins: source.Admins) -> str:
    return orjson.dumps({k: sorted(v) for k, v in sorted(admins.items())}).decode()


def _load_admins(value: str | None) -> source.Admins:
    if not value:
        return {}
    return {k: frozenset(v) for k, v in orjson.loads(value).items()}


__all__ = [
    "RunDeadlinePassed",
    "RunInterrupted",
    "RunOptions",
    "RunReport",
    "environment_facts",
    "sync_environment",
]
