"""One sync run of one environment: read, decide, plan, apply, checkpoint, report.

Full runs read everything (the users delta from scratch, or, with a security group, the group's
members and the admins: R24); delta runs read the users and groups deltas from the stored
checkpoint. Creates, updates and enables are written batch by batch as pages arrive; disables are
held back until the whole read has succeeded and the mass-disable guard has passed, so a failed,
partial or empty read never disables anyone. The checkpoint advances in the run's last
transaction, after everything it covers is committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from syncd.dataverse.schema import Environment
from syncd.directory.client import GraphClient
from syncd.directory.errors import FullResyncRequired
from syncd.directory.models import Deletion, DirectoryUser, UsersDeltaPage
from syncd.errors import NotFound
from syncd.rules import (
    GROUP_EXEMPT_ROLE_IDS,
    Action,
    EnvironmentFacts,
    EnvType,
    Membership,
    UserFacts,
    decide,
)
from syncd.settings import Settings
from syncd.sync import source
from syncd.sync.deferred import DeferredDisables
from syncd.sync.guard import check_disables
from syncd.sync.plan import plan_operation
from syncd.sync.rows import CurrentRow, RowReader
from syncd.sync.writer import Counts, Writer

log = structlog.get_logger(__name__)

USERS_LINK = "users_delta_link"
GROUPS_LINK = "groups_delta_link"
ADMINS = "admins"
NO_ROLES: frozenset[str] = frozenset()
ANALYZE_AFTER = 10_000  # rows written by one run, after which the table's statistics are refreshed

Progress = Callable[[str, int], None]


class RunInterrupted(Exception):
    """The run was asked to stop (SIGTERM); what was committed stays, the checkpoint does not move."""


@dataclass
class RunOptions:
    kind: str = "auto"  # "auto" (delta when there is a checkpoint), "full" or "delta"
    dry_run: bool = False
    allow_mass_disable: bool | None = None  # None: the setting decides
    trigger: str = "cli"
    holds_lock: bool = False  # the caller holds the environment's lock: no other run of it is alive


@dataclass
class RunReport:
    run_id: int | None
    environment: str
    kind: str
    requested_kind: str
    outcome: str
    counts: dict[str, int]
    duration_s: float
    error: str | None = None
    planned: list[dict[str, Any]] = field(default_factory=list)

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
            "planned": self.planned,
        }


def environment_facts(env: Environment) -> EnvironmentFacts:
    return EnvironmentFacts(
        name=env.name,
        type=EnvType(env.type),
        has_database=env.has_database,
        security_group_id=env.security_group_id,
        app_pass_capacity_left=env.app_pass_capacity,
        tenant_has_marketing_licence=env.tenant_has_marketing_licence,
        is_sales=env.is_sales,
        created_by_object_id=env.created_by_object_id,
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
) -> RunReport:
    """Run one sync of `env_name`; never raises for directory or data problems (the report says)."""
    options = options or RunOptions()
    if options.kind not in ("auto", "full", "delta"):
        raise ValueError(f"unknown run kind {options.kind!r}: expected auto, full or delta")
    with Session(engine) as s:
        env = s.scalar(select(Environment).where(Environment.name == env_name))
        if env is None:
            raise NotFound(f"no environment named {env_name!r}")
        s.expunge(env)
    raw = engine.raw_connection()
    try:
        run = _Run(raw.driver_connection, env, directory, settings, options, stop, progress)
        return run.execute()
    finally:
        raw.close()


class _Run:
    def __init__(
        self,
        conn: Any,
        env: Environment,
        directory: GraphClient,
        settings: Settings,
        options: RunOptions,
        stop: threading.Event | None,
        progress: Progress | None,
    ) -> None:
        self.conn = conn
        self.env = env
        self.envf = environment_facts(env)
        self.directory = directory
        self.settings = settings
        self.options = options
        self.stop = stop
        self.progress = progress
        self.sqlite = type(conn).__module__.startswith("sqlite3")
        self.writer = Writer(conn, env.id, self.sqlite, settings.batch_size, options.dry_run)
        self.rows = RowReader(conn, env.id, sqlite=self.sqlite)
        self.counts: Counts = self.writer.counts
        self.disables = DeferredDisables(conn, sqlite=self.sqlite)
        self.admins: source.Admins = {}
        self.load_rows = True
        self.now = datetime.now(UTC)
        self.read_users = 0
        self.in_delta = False
        self.existing_rows = 0
        self.known_users: dict[str, DirectoryUser] = {}  # users read along the way (the admins)
        self.added: set[str] = set()
        self.removed: set[str] = set()

    # -- the run -------------------------------------------------------------------------------

    def execute(self) -> RunReport:
        started = time.monotonic()
        state = self._load_state()
        requested = self.options.kind
        kind = requested
        if kind == "auto":
            kind = "delta" if state.get(USERS_LINK) else "full"
        elif kind == "delta" and not state.get(USERS_LINK):
            kind = "full"
        self.writer.start_run(kind, requested, self.options.trigger, reap_stale=self.options.holds_lock)
        log.info(
            "sync.start", environment=self.env.name, kind=kind, requested=requested, run_id=self.writer.run_id
        )
        outcome, error = "succeeded", None
        try:
            if not self.env.has_database:
                outcome, error = self._finish({})  # R1: no database, no users
            elif kind == "delta":
                try:
                    outcome, error = self._delta(state)
                except FullResyncRequired as exc:
                    log.warning("sync.delta_token_expired", environment=self.env.name, url=exc.url)
                    kind = "full"
                    self.writer.set_run_kind("full")
                    self._reset()
                    outcome, error = self._full()
            else:
                outcome, error = self._full()
        except RunInterrupted:
            outcome, error = "interrupted", "stopped before the end; the checkpoint did not move"
            self._flush_safely()
            self.writer.finish_run(outcome, error)
        except Exception as exc:
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("sync.failed", environment=self.env.name, error=error)
            self._flush_safely()
            self.writer.finish_run(outcome, error)
        if self.options.dry_run:
            outcome = "dry_run" if outcome in ("succeeded", "blocked") else outcome
        report = RunReport(
            run_id=self.writer.run_id,
            environment=self.env.name,
            kind=kind,
            requested_kind=requested,
            outcome=outcome,
            counts=self.counts.as_dict(),
            duration_s=time.monotonic() - started,
            error=error,
            planned=self.writer.planned if self.options.dry_run else [],
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
            **report.counts,
        )
        return report

    def _reset(self) -> None:
        self.writer.flush()
        self.known_users = {}
        self.disables.clear()
        self.read_users = 0
        self.in_delta = False
        self.added, self.removed = set(), set()

    def _flush_safely(self) -> None:
        try:
            self.writer.flush()
        except Exception as exc:  # the batch is lost; nothing half-written (its transaction rolled back)
            log.warning("sync.final_flush_failed", error=str(exc)[:300])

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise RunInterrupted()

    # -- full ----------------------------------------------------------------------------------

    def _full(self) -> tuple[str, str | None]:
        self.admins = source.read_admins(self.directory, self.known_users)
        existing, enabled_before = self.rows.count_regular()
        self.existing_rows = existing
        self.load_rows = existing > 0
        if self.load_rows:
            self.writer.start_seen()
        else:
            self.writer.bulk_create = True
        state: dict[str, str | None] = {}
        mirror: tuple[list[str], list[str]] | None = None
        group_id = self.env.security_group_id
        if group_id:
            # R24: read the group's members and the admins, not the tenant.
            state[USERS_LINK] = self.directory.latest_users_delta_link()
            members, state[GROUPS_LINK] = source.group_members_and_link(self.directory, group_id)
            evaluated: set[str] = set()
            for page in source.prefetch(source.group_user_pages(self.directory, group_id)):
                self._check_stop()
                page = [u for u in page if u.id in members]
                evaluated.update(u.id for u in page)
                self._decide_users([(u, u.id, Deletion.NONE, Membership.DIRECT) for u in page])
            owners = source.group_owner_ids(self.directory, group_id)
            mirror = (sorted(members), sorted(owners))
            extra = [(oid, Membership.OWNER) for oid in sorted(owners - evaluated)]
            extra += [(oid, Membership.NONE) for oid in sorted(set(self.admins) - evaluated - owners)]
            self._decide_fetched(extra)
        else:
            reader = self.directory.users_delta()
            for delta_page in source.prefetch(reader):
                self._check_stop()
                self._decide_users(_delta_items(delta_page))
            state[USERS_LINK] = reader.delta_link
            state[GROUPS_LINK] = None
        state[ADMINS] = _dump_admins(self.admins)
        self.writer.finish_seen()
        if self.load_rows:
            # Rows whose user the read did not see: gone from the directory, or (with a group) not a member.
            for batch in self.rows.iter_unseen():
                self._check_stop()
                for cur in batch:
                    facts = UserFacts(None, cur.object_id, Deletion.HARD)
                    self._plan(decide(facts, self.envf, cur.facts), cur.object_id, cur, group_id is not None)
        empty = self.read_users == 0
        return self._finish(state, mirror=mirror, enabled_before=enabled_before, empty_read=empty)

    # -- delta ---------------------------------------------------------------------------------

    def _delta(self, state: dict[str, str]) -> tuple[str, str | None]:
        self.admins = source.read_admins(self.directory, self.known_users)
        old_admins = _load_admins(state.get(ADMINS))
        reevaluate = {
            u for u in self.admins.keys() | old_admins.keys() if self.admins.get(u) != old_admins.get(u)
        }
        new_state: dict[str, str | None] = {ADMINS: _dump_admins(self.admins)}
        group_id = self.env.security_group_id
        self.in_delta = True
        if group_id:
            link = state.get(GROUPS_LINK)
            if not link:
                raise FullResyncRequired("sync_state", None)
            reader = self.directory.groups_delta(link)
            for page in reader:
                for g in page:
                    if g.id != group_id:
                        continue
                    for m in g.added:
                        self.added.add(m.id)
                        self.removed.discard(m.id)
                    for m in g.removed:
                        self.removed.add(m.id)
                        self.added.discard(m.id)
            new_state[GROUPS_LINK] = reader.delta_link
            reevaluate |= self.added | self.removed
        enabled_before: int | None = None
        users = self.directory.users_delta(state[USERS_LINK])
        seen: set[str] = set()
        for delta_page in source.prefetch(users):
            self._check_stop()
            items = _delta_items(delta_page)
            seen.update(i[1] for i in items)
            self._decide_users(self._with_membership(items))
        new_state[USERS_LINK] = users.delta_link
        self._decide_fetched([(oid, Membership.NONE) for oid in sorted(reevaluate - seen)])
        if self.disables.count:
            # The guard compares the disables with the enabled rows; counting just far enough to
            # know keeps this run's cost with its changes, not with the environment's size.
            ratio = self.settings.mass_disable_ratio
            over_count = (
                self.disables.count > self.settings.mass_disable_count
            )  # blocked anyway: count exactly
            limit = int(self.disables.count / ratio) + 1 if ratio > 0 and not over_count else None
            enabled_before = self.rows.count_enabled_regular(limit)
        return self._finish(
            new_state,
            mirror=None,
            mirror_add=self.added,
            mirror_remove=self.removed,
            enabled_before=enabled_before or 0,
        )

    def _with_membership(
        self, items: list[tuple[DirectoryUser | None, str, Deletion, Membership]]
    ) -> list[tuple[DirectoryUser | None, str, Deletion, Membership]]:
        """Fill in the membership of each user from the group mirror and this run's group changes."""
        if not self.env.security_group_id:
            return items
        known = self._mirror_members([i[1] for i in items])
        out = []
        for du, oid, deletion, _ in items:
            relations = known.get(oid, ())
            if oid in self.added or ("member" in relations and oid not in self.removed):
                membership = Membership.DIRECT
            elif "owner" in relations:
                membership = Membership.OWNER
            else:
                membership = Membership.NONE
            out.append((du, oid, deletion, membership))
        return out

    def _mirror_members(self, ids: list[str]) -> dict[str, set[str]]:
        """Object id -> its relations to the group ('member', 'owner') in the mirror."""
        if not ids:
            return {}
        cur = self.conn.cursor()
        try:
            p = "?" if self.sqlite else "%s"
            found: dict[str, set[str]] = {}
            for i in range(0, len(ids), 900):
                chunk = ids[i : i + 900]
                cur.execute(
                    f"SELECT member_id, relation FROM sync_group_member WHERE environment_id = {p} "
                    f"AND member_id IN ({', '.join([p] * len(chunk))})",
                    (self.env.id, *chunk),
                )
                for member_id, relation in cur.fetchall():
                    found.setdefault(member_id, set()).add(relation)
            return found
        finally:
            cur.close()

    # -- deciding ------------------------------------------------------------------------------

    def _decide_fetched(self, ids: Iterable[tuple[str, Membership]]) -> None:
        """Users known only by id (admins, owners, membership changes): read each from the directory."""
        items: list[tuple[DirectoryUser | None, str, Deletion, Membership]] = []
        for oid, membership in ids:
            self._check_stop()
            du = self.known_users.get(oid) or self.directory.get_user(oid)
            items.append((du, oid, Deletion.NONE if du is not None else Deletion.HARD, membership))
        if self.env.security_group_id and items and self.in_delta:
            # In a delta run the membership of these users comes from the mirror (owners only at full runs).
            fixed = self._with_membership(
                [(d, o, dl, m) for d, o, dl, m in items if m is not Membership.OWNER]
            )
            items = fixed + [i for i in items if i[3] is Membership.OWNER]
        if items:
            self._decide_users(items)

    def _decide_users(self, items: list[tuple[DirectoryUser | None, str, Deletion, Membership]]) -> None:
        if not items:
            return
        self.read_users += sum(1 for i in items if i[0] is not None)
        self.counts.read += len(items)
        rows: dict[str, CurrentRow] = self.rows.load([i[1] for i in items]) if self.load_rows else {}
        envf, admins, plan = self.envf, self.admins, self._plan
        scoped = self.env.security_group_id is not None
        for du, oid, deletion, membership in items:
            cur = rows.get(oid)
            roles = admins.get(oid, NO_ROLES)
            out_of_scope = (
                scoped
                and du is not None
                and membership is Membership.NONE
                and roles.isdisjoint(GROUP_EXEMPT_ROLE_IDS)
            )
            if out_of_scope:
                # R5, R24: outside the group a user is not read, only known to be out of scope; a row of
                # theirs is disabled (R9) and otherwise left as it is, as a full run that never reads them.
                du, deletion = None, Deletion.HARD
            facts = UserFacts(du, oid, deletion, roles, membership)
            plan(decide(facts, envf, cur.facts if cur is not None else None), oid, cur, out_of_scope)
        self.writer.seen(i[1] for i in items)
        if self.progress is not None:
            self.progress("read", len(items))

    def _plan(self, decision: Any, oid: str, cur: CurrentRow | None, not_member: bool) -> None:
        op = plan_operation(decision, oid, cur, self.env.id, self.now)
        if op is None:
            if cur is not None:
                self.counts.unchanged += 1
            return
        if not_member and op.action is Action.DISABLE:
            op.rule = "R5"
            op.reason = (
                "Not a direct member of the security group, or gone from the directory: the row is disabled."
            )
        if op.action is Action.DISABLE:
            self.disables.add(op)
        else:
            self.writer.add(op)

    # -- finishing -----------------------------------------------------------------------------

    def _finish(
        self,
        state: dict[str, str | None],
        *,
        mirror: tuple[list[str], list[str]] | None = None,
        mirror_add: Iterable[str] = (),
        mirror_remove: Iterable[str] = (),
        enabled_before: int = 0,
        empty_read: bool = False,
    ) -> tuple[str, str | None]:
        self.writer.flush()
        allow = self.options.allow_mass_disable
        if allow is None:
            allow = self.settings.allow_mass_disable
        verdict = check_disables(
            self.disables.count,
            enabled_before,
            max_count=self.settings.mass_disable_count,
            max_ratio=self.settings.mass_disable_ratio,
            allow=allow,
            directory_read_empty=empty_read,
        )
        if verdict.allowed:
            for op in self.disables:
                self.writer.add(op)
            self.writer.flush()
            outcome, error = "succeeded", None
        else:
            self.counts.blocked_disables = self.disables.count
            if self.options.dry_run:
                for op in self.disables:
                    if len(self.writer.planned) >= self.writer.planned_limit:
                        break
                    self.writer.planned.append(op.describe() | {"blocked": True})
            outcome, error = "blocked", verdict.reason
            log.warning("sync.mass_disable_blocked", environment=self.env.name, reason=verdict.reason)

        def last(cur: Any) -> None:
            if outcome == "succeeded":
                # The checkpoint moves only when everything it covers is applied.
                self.writer.checkpoint_sql(cur, state)
                if self.env.security_group_id:
                    self.writer.group_mirror_sql(cur, replace=mirror, add=mirror_add, remove=mirror_remove)
            self.writer.finish_run_sql(cur, outcome, error)

        if not self.options.dry_run:
            cur = self.conn.cursor()
            last(cur)
            self.conn.commit()
            c = self.counts
            written = c.created + c.updated + c.enabled + c.disabled
            if not self.sqlite and (
                written >= ANALYZE_AFTER or written >= max(1000, self.existing_rows // 10)
            ):
                # Fresh statistics, so the next run's lookups by object id use the index, not a scan.
                cur.execute("ANALYZE systemuser")
                self.conn.commit()
            cur.close()
        return outcome, error

    # -- state ---------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, str]:
        cur = self.conn.cursor()
        try:
            p = "?" if self.sqlite else "%s"
            cur.execute(f"SELECT key, value FROM sync_state WHERE environment_id = {p}", (self.env.id,))
            out = {k: v for k, v in cur.fetchall()}
            self.conn.commit()
            return out
        finally:
            cur.close()


def _delta_items(page: UsersDeltaPage) -> list[tuple[DirectoryUser | None, str, Deletion, Membership]]:
    items: list[tuple[DirectoryUser | None, str, Deletion, Membership]] = [
        (u, u.id, Deletion.NONE, Membership.NONE) for u in page.users
    ]
    items += [(None, r.id, r.deletion, Membership.NONE) for r in page.removed]
    return items


def _dump_admins(admins: source.Admins) -> str:
    return orjson.dumps({k: sorted(v) for k, v in sorted(admins.items())}).decode()


def _load_admins(value: str | None) -> source.Admins:
    if not value:
        return {}
    return {k: frozenset(v) for k, v in orjson.loads(value).items()}
