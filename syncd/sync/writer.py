"""The writer: the only code that writes sync's results to the database.

Rows go in batches, one transaction each. On PostgreSQL a batch is COPYed into a temporary
staging table and merged with one set-based `INSERT ... ON CONFLICT ... DO UPDATE ... WHERE ...
IS DISTINCT FROM ...`; on SQLite the same upsert runs through executemany. The upsert never
rewrites fullname (R11), never overwrites an email a customer edited (R12, checked again at
write time), never touches a row that is not a regular user (R18-R20), and leaves unchanged rows
alone (`modifiedon` stays). A batch that fails is retried row by row, so a bad record fails
alone, with an event, and the rest of its batch goes through.

In dry-run mode nothing is written: operations are counted and collected for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from syncd.rules import Action
from syncd.sync.plan import STAGE_COLUMNS, Operation
from syncd.sync.rows import to_db_uuid

log = structlog.get_logger(__name__)

_COLS = ", ".join(STAGE_COLUMNS)
_UPDATABLE = [c for c in STAGE_COLUMNS[4:] if c not in ("fullname", "createdon", "modifiedon")]
_EMAIL_COLS = ("internalemailaddress", "synced_internalemailaddress")
_EVENT_COLS = (
    "run_id",
    "environment_id",
    "systemuserid",
    "azureactivedirectoryobjectid",
    "action",
    "rule",
    "reason",
    "changes",
    "created_at",
)
_UUID_STAGE = (0, 2)  # positions of GUIDs in a staged row


def _upsert_sql(sqlite: bool, source: str) -> str:
    t = "systemuser"
    edited_ok = f"{t}.internalemailaddress IS NOT DISTINCT FROM {t}.synced_internalemailaddress"
    if sqlite:
        edited_ok = f"{t}.internalemailaddress IS {t}.synced_internalemailaddress"
    sets = []
    for c in _UPDATABLE:
        if c in _EMAIL_COLS:
            sets.append(f"{c} = CASE WHEN {edited_ok} THEN excluded.{c} ELSE {t}.{c} END")
        else:
            sets.append(f"{c} = excluded.{c}")
    sets.append("modifiedon = excluded.modifiedon")
    if sqlite:
        differs = " OR ".join(f"{t}.{c} IS NOT excluded.{c}" for c in _UPDATABLE)
    else:
        left = ", ".join(f"{t}.{c}" for c in _UPDATABLE)
        right = ", ".join(f"excluded.{c}" for c in _UPDATABLE)
        differs = f"({left}) IS DISTINCT FROM ({right})"
    return (
        f"INSERT INTO {t} ({_COLS}) {source} "
        "ON CONFLICT (environment_id, azureactivedirectoryobjectid) DO UPDATE SET "
        + ", ".join(sets)
        + f" WHERE {t}.kind = 'regular' AND ({differs})"
    )


_UPSERT_ROW_SQLITE = _upsert_sql(True, "VALUES (" + ", ".join(["?"] * len(STAGE_COLUMNS)) + ")")
_UPSERT_ROW_PG = _upsert_sql(False, "VALUES (" + ", ".join(["%s"] * len(STAGE_COLUMNS)) + ")")
_UPSERT_STAGED_PG = _upsert_sql(False, f"SELECT {_COLS} FROM _syncd_stage")


@dataclass
class Counts:
    read: int = 0
    created: int = 0
    updated: int = 0
    enabled: int = 0
    disabled: int = 0
    unchanged: int = 0
    failed: int = 0
    blocked_disables: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


_COUNTER = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.ENABLE: "enabled",
    Action.DISABLE: "disabled",
}


@dataclass
class Writer:
    """Writes a run's operations, events, seen ids, checkpoints and run rows on one connection."""

    conn: Any  # the DB-API connection (psycopg or sqlite3), owned by the run
    env_id: int
    sqlite: bool
    batch_size: int = 5000
    dry_run: bool = False
    run_id: int | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    counts: Counts = field(default_factory=Counts)
    planned: list[dict[str, Any]] = field(default_factory=list)
    planned_limit: int = 10_000
    _pending: list[Operation] = field(default_factory=list)
    _seen: list[str] = field(default_factory=list)
    _seen_table: bool = False
    bulk_create: bool = False  # the environment had no regular rows: creates go straight in with COPY

    @property
    def p(self) -> str:
        return "?" if self.sqlite else "%s"

    # -- operations ----------------------------------------------------------------------------

    def add(self, op: Operation) -> None:
        """Queue one operation; a full batch is written at once."""
        self._pending.append(op)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self, extra: Callable[[Any], None] | None = None) -> None:
        """Write the queued operations, their events (and `extra` statements) in one transaction."""
        ops = _last_per_user(self._pending)
        self._pending = []
        seen, self._seen = self._seen, []
        if self.dry_run:
            if seen:  # the seen ids go to a temporary table, which a dry run may write
                cur = self.conn.cursor()
                self._write_seen(cur, seen)
                self.conn.commit()
                cur.close()
            for op in ops:
                self._count(op)
            return
        if not ops and not seen and extra is None:
            return
        bulk = self.bulk_create and not self.sqlite and all(op.action is Action.CREATE for op in ops)
        try:
            self._transaction(ops, seen, extra, bulk)
        except Exception as exc:
            self.conn.rollback()
            if not ops:
                raise
            if bulk:
                # A row appeared since the run began (an admin's add): merge this batch instead.
                log.info("sync.bulk_copy_conflict", rows=len(ops), error=str(exc)[:200])
                self.bulk_create = False
                self.flush_ops(ops, seen, extra)
                return
            log.warning("sync.batch_failed", rows=len(ops), error=str(exc)[:300])
            self._write_one_by_one(ops, seen, extra)
            return
        for op in ops:
            self._count(op)

    def flush_ops(self, ops: list[Operation], seen: list[str], extra: Callable[[Any], None] | None) -> None:
        self._pending, self._seen = ops, seen
        self.flush(extra)

    def _transaction(
        self, ops: Sequence[Operation], seen: Sequence[str], extra: Callable[[Any], None] | None, bulk: bool
    ) -> None:
        cur = self.conn.cursor()
        if seen:
            self._write_seen(cur, seen)
        if ops:
            if bulk:
                with cur.copy(f"COPY systemuser ({_COLS}) FROM STDIN") as copy:
                    for op in ops:
                        copy.write_row(op.row)
            else:
                self._write_rows(cur, ops)
            self._write_event_rows(cur, [(op, op.action, op.rule, op.reason) for op in ops])
        if extra is not None:
            extra(cur)
        self.conn.commit()
        cur.close()

    def _count(self, op: Operation) -> None:
        name = _COUNTER[op.action]
        setattr(self.counts, name, getattr(self.counts, name) + 1)
        if self.dry_run and len(self.planned) < self.planned_limit:
            self.planned.append(op.describe())

    def _stage(self, op: Operation) -> tuple[Any, ...]:
        if not self.sqlite:
            return op.row
        row = list(op.row)
        for i in _UUID_STAGE:
            row[i] = to_db_uuid(row[i], True)
        row[21] = _sqlite_ts(row[21])
        row[22] = _sqlite_ts(row[22])
        return tuple(row)

    def _write_rows(self, cur: Any, ops: Sequence[Operation]) -> None:
        if self.sqlite:
            sql = _UPSERT_ROW_SQLITE
            cur.executemany(sql, [self._stage(op) for op in ops])
            return
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _syncd_stage (LIKE systemuser INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY _syncd_stage ({_COLS}) FROM STDIN") as copy:
            for op in ops:
                copy.write_row(op.row)
        cur.execute(_UPSERT_STAGED_PG)

    def _write_one_by_one(self, ops: Sequence[Operation], seen: Sequence[str], extra: Any) -> None:
        """After a failed batch: each row in its own transaction, so a bad record fails alone."""
        cur = self.conn.cursor()
        if seen:
            self._write_seen(cur, seen)
            self.conn.commit()
        sql = _UPSERT_ROW_SQLITE if self.sqlite else _UPSERT_ROW_PG
        for op in ops:
            try:
                cur.execute(sql, self._stage(op))
                self._write_event_rows(cur, [(op, op.action, op.rule, op.reason)])
                self.conn.commit()
                self._count(op)
            except Exception as exc:
                self.conn.rollback()
                self.counts.failed += 1
                log.warning("sync.row_failed", object_id=op.object_id, error=str(exc)[:300])
                reason = f"Write failed: {str(exc).splitlines()[0][:500]}"
                self._write_event_rows(cur, [(op, Action.REFUSE, "R10", reason)])
                self.conn.commit()
        if extra is not None:
            extra(cur)
            self.conn.commit()
        cur.close()

    # -- events --------------------------------------------------------------------------------

    def _write_event_rows(self, cur: Any, items: Iterable[tuple[Operation, Action, str, str]]) -> None:
        """One sync_event per written row, in the rows' transaction. A creation's event carries no
        column values (the row itself holds them); other events carry what changed."""
        now = self._ts(self.now())
        sqlite = self.sqlite
        rows = []
        for op, action, rule, reason in items:
            if action is Action.CREATE or not op.changes:
                changes = None
            else:
                changes = orjson.dumps(op.changes, default=str).decode()
            sid, oid = (
                (to_db_uuid(op.systemuserid, True), to_db_uuid(op.object_id, True))
                if sqlite
                else (
                    op.systemuserid,
                    op.object_id,
                )
            )
            name = "failed" if action is Action.REFUSE else action.value
            rows.append((self.run_id, self.env_id, sid, oid, name, rule, reason, changes, now))
        if not rows:
            return
        cols = ", ".join(_EVENT_COLS)
        if sqlite:
            cur.executemany(f"INSERT INTO sync_event ({cols}) VALUES ({', '.join('?' * 9)})", rows)
        else:
            with cur.copy(f"COPY sync_event ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)

    # -- seen ids (full runs) ------------------------------------------------------------------

    def start_seen(self) -> None:
        """A temporary table of the object ids a full run has seen, to find the rows it has not."""
        cur = self.conn.cursor()
        if self.sqlite:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS _syncd_seen (oid TEXT)")
        else:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS _syncd_seen (oid uuid)")
        cur.execute("DELETE FROM _syncd_seen")
        self.conn.commit()
        cur.close()
        self._seen_table = True

    def seen(self, object_ids: Iterable[str]) -> None:
        if self._seen_table:
            self._seen.extend(object_ids)
            if len(self._seen) >= self.batch_size:
                self.flush()

    def _write_seen(self, cur: Any, ids: Sequence[str]) -> None:
        if self.sqlite:
            cur.executemany("INSERT INTO _syncd_seen (oid) VALUES (?)", [(to_db_uuid(i, True),) for i in ids])
        else:
            with cur.copy("COPY _syncd_seen (oid) FROM STDIN") as copy:
                for i in ids:
                    copy.write_row((i,))

    def finish_seen(self) -> None:
        """Write the remaining seen ids, and let the planner query the table."""
        if self._seen_table:
            self.flush()
        if not self.sqlite and self._seen_table:
            cur = self.conn.cursor()
            cur.execute("ANALYZE _syncd_seen")
            self.conn.commit()
            cur.close()

    # -- run rows, checkpoints, group mirror ---------------------------------------------------

    def start_run(
        self, kind: str, requested_kind: str, trigger: str, *, reap_stale: bool = False
    ) -> int | None:
        """Record the run's start. With `reap_stale` (the caller holds the environment's lock, so no
        other run of it is alive), runs left 'running' by a process that died are closed first."""
        if self.dry_run:
            return None
        p = self.p
        cur = self.conn.cursor()
        if reap_stale:
            cur.execute(
                f"UPDATE sync_run SET outcome = 'interrupted', finished_at = {p}, "
                f"error = 'the process running it ended before it finished' "
                f"WHERE environment_id = {p} AND outcome = 'running'",
                (self._ts(self.now()), self.env_id),
            )
            if cur.rowcount:
                log.warning("sync.stale_runs_closed", environment_id=self.env_id, runs=cur.rowcount)
        cur.execute(
            "INSERT INTO sync_run (environment_id, kind, requested_kind, trigger, started_at, outcome, read, "
            "created, updated, enabled, disabled, unchanged, failed, blocked_disables) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, 'running', 0, 0, 0, 0, 0, 0, 0, 0) RETURNING id",
            (self.env_id, kind, requested_kind, trigger, self._ts(self.now())),
        )
        self.run_id = int(cur.fetchone()[0])
        self.conn.commit()
        cur.close()
        return self.run_id

    def set_run_kind(self, kind: str) -> None:
        if self.dry_run or self.run_id is None:
            return
        cur = self.conn.cursor()
        cur.execute(f"UPDATE sync_run SET kind = {self.p} WHERE id = {self.p}", (kind, self.run_id))
        self.conn.commit()
        cur.close()

    def finish_run_sql(self, cur: Any, outcome: str, error: str | None) -> None:
        if self.dry_run or self.run_id is None:
            return
        c = self.counts
        p = self.p
        cur.execute(
            f"UPDATE sync_run SET finished_at = {p}, outcome = {p}, read = {p}, created = {p}, updated = {p}, "
            f"enabled = {p}, disabled = {p}, unchanged = {p}, failed = {p}, blocked_disables = {p}, "
            f"error = {p} WHERE id = {p}",
            (
                self._ts(self.now()),
                outcome,
                c.read,
                c.created,
                c.updated,
                c.enabled,
                c.disabled,
                c.unchanged,
                c.failed,
                c.blocked_disables,
                error,
                self.run_id,
            ),
        )

    def finish_run(self, outcome: str, error: str | None = None) -> None:
        """Record the run's end on its own (failures, interruptions)."""
        if self.dry_run or self.run_id is None:
            return
        try:
            self.conn.rollback()
        except Exception:  # pragma: no cover - a dead connection: the run row stays 'running'
            return
        cur = self.conn.cursor()
        self.finish_run_sql(cur, outcome, error)
        self.conn.commit()
        cur.close()

    def checkpoint_sql(self, cur: Any, state: dict[str, str | None]) -> None:
        if self.dry_run:
            return
        p = self.p
        now = self._ts(self.now())
        for key, value in state.items():
            cur.execute(
                f"DELETE FROM sync_state WHERE environment_id = {p} AND key = {p}", (self.env_id, key)
            )
            if value is not None:
                cur.execute(
                    f"INSERT INTO sync_state (environment_id, key, value, updated_on) VALUES ({p}, {p}, {p}, {p})",
                    (self.env_id, key, value, now),
                )

    def group_mirror_sql(
        self,
        cur: Any,
        *,
        replace: tuple[list[str], list[str]] | None,
        add: Iterable[str],
        remove: Iterable[str],
    ) -> None:
        """Keep the local copy of the security group's direct user members (and owners) in step.

        `replace` is (members, owners) read by a full run; `add` and `remove` are a delta's member changes.
        """
        if self.dry_run:
            return
        p = self.p
        rows: list[tuple[int, str, str]] = []
        if replace is not None:
            cur.execute(f"DELETE FROM sync_group_member WHERE environment_id = {p}", (self.env_id,))
            rows = [(self.env_id, m, "member") for m in replace[0]] + [
                (self.env_id, o, "owner") for o in replace[1]
            ]
        rm = [(self.env_id, m) for m in remove]
        if rm:
            cur.executemany(
                f"DELETE FROM sync_group_member WHERE environment_id = {p} AND member_id = {p} AND relation = 'member'",
                rm,
            )
        rows += [(self.env_id, m, "member") for m in add]
        if rows:
            conflict = "OR IGNORE " if self.sqlite else ""
            tail = "" if self.sqlite else " ON CONFLICT DO NOTHING"
            cur.executemany(
                f"INSERT {conflict}INTO sync_group_member (environment_id, member_id, relation) "
                f"VALUES ({p}, {p}, {p}){tail}",
                rows,
            )

    def _ts(self, value: datetime) -> Any:
        return _sqlite_ts(value) if self.sqlite else value


def _last_per_user(ops: list[Operation]) -> list[Operation]:
    """One operation per user in a batch (the later one wins: Graph may list a user twice)."""
    if len({op.object_id for op in ops}) == len(ops):
        return ops
    return list({op.object_id: op for op in ops}.values())


def _sqlite_ts(value: Any) -> Any:
    """Timestamps as SQLAlchemy's SQLite DateTime stores them."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value
