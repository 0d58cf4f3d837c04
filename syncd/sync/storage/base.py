"""What a run needs of the database, as one interface: the only place the sync engine holds SQL.

A :class:`Storage` works on one environment's SystemUser rows and sync bookkeeping, on one DB-API
connection owned by the run (psycopg 3 on PostgreSQL, sqlite3 on SQLite). Each dialect fills in
the statements that differ (bulk loads, set-based updates, temporary tables); what reads the same
on both lives here. The run calls these methods and never builds a statement itself.

Every write method is one transaction that commits or, on failure, rolls back and raises: nothing
is half-written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import DateTime, Engine, bindparam, text

from syncd.rules import Action
from syncd.sync.plan import CREATE_COLUMNS, Operation
from syncd.sync.rows import ROW_COLUMNS, CurrentRow, from_db_uuid, row_from_tuple

EVENT_COLUMNS = (
    "run_id",
    "environment_id",
    "systemuserid",
    "azureactivedirectoryobjectid",
    "action",
    "rule",
    "reason",
    "changes",
    "previous",
    "created_at",
)
RUN_COUNTS = ("read", "created", "updated", "enabled", "disabled", "unchanged", "failed", "blocked_disables")
# A new row's columns: the environment, its root business unit (R26) and issyncwithdirectory, then
# the operation's columns, the timestamps and what the decision was made from (syncd.sync.inputs).
# versionnumber is the database's (a trigger stamps every row, COPY included).
NEW_COLUMNS = (
    "environment_id",
    "businessunitid",
    "issyncwithdirectory",
    *CREATE_COLUMNS,
    "createdon",
    "modifiedon",
    "syncd_inputhash",
)
# The event of a disable the mass-disable guard held back (a blocked run writes one per disable).
WITHHELD = "withheld"
WITHHELD_REASON = "Withheld by the mass-disable guard"
IN_CLAUSE_CHUNK = 900  # ids per IN (...) list: under SQLite's default limit of 999 parameters


@dataclass(frozen=True, slots=True)
class GroupMirror:
    """Changes to the local copy of the security group (R5, R24): a full replacement
    (``members``, ``owners``) from a full run, or a delta run's ``added``/``removed`` members."""

    members: Sequence[str] | None = None
    owners: Sequence[str] = ()
    added: Iterable[str] = ()
    removed: Iterable[str] = ()


class Storage(ABC):
    """One environment's rows and sync bookkeeping on one connection. See the module docstring."""

    sqlite: ClassVar[bool]
    p: ClassVar[str]  # the driver's parameter marker

    def __init__(self, conn: Any, env_id: int, now: datetime) -> None:
        self.conn = conn
        self.env_id = env_id
        self.now = now
        self.run_id: int | None = None
        self.stamp = self.ts(now)  # this run's timestamp as the backend stores and returns it
        self._held_table = False
        self._seen_table = False
        self.reaped = 0  # runs closed as abandoned by start_run
        self._root_unit: Any = None
        # When the last transaction committed: the last moment this run is known to have held the
        # connection (and, on PostgreSQL, the environment's lock, which lives on it).
        self.last_contact = now

    # -- plumbing ------------------------------------------------------------------------------

    def ts(self, value: datetime) -> Any:
        """A timestamp as the driver takes it."""
        return value

    def db_id(self, object_id: str) -> str:
        """A dashed GUID as the backend stores it."""
        return object_id

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor whose statements commit together at the end of the block, or roll back and raise."""
        cur = self.conn.cursor()
        try:
            yield cur
            self.conn.commit()
            self.last_contact = datetime.now(UTC)
        except BaseException:
            if not self.connection_lost():
                self.conn.rollback()
            raise
        finally:
            cur.close()

    def connection_lost(self) -> bool:
        """Whether the connection is gone (psycopg marks a connection whose session ended ``broken``;
        on PostgreSQL the environment's lock went with it). sqlite3 connections are never lost."""
        return bool(getattr(self.conn, "closed", False) or getattr(self.conn, "broken", False))

    def ping(self) -> None:
        """One round trip; raises the driver's error when the connection (and its lock) is gone."""
        self._tx(("SELECT 1", ()))

    def _tx(self, *statements: tuple[str, Sequence[Any]]) -> Any:
        """Run statements in one transaction; the rows of the last one (None when it returns none)."""
        with self.transaction() as cur:
            for sql, args in statements:
                cur.execute(sql, args)
            return cur.fetchall() if cur.description is not None else None

    # -- reads -----------------------------------------------------------------------------------

    def root_business_unit(self) -> Any:
        """The environment's root business unit id (R26: users that sync or an on-demand add creates
        go there), as the driver returns it; read once per storage. Raises LookupError when the
        environment has none (it has no database, R1)."""
        if self._root_unit is None:
            rows = self._tx(
                (
                    f"SELECT businessunitid FROM businessunit WHERE environment_id = {self.p} "
                    "AND parentbusinessunitid IS NULL",
                    (self.env_id,),
                )
            )
            if not rows:
                raise LookupError(f"environment {self.env_id} has no root business unit (R26)")
            self._root_unit = rows[0][0]
        return self._root_unit

    def load_state(self) -> dict[str, str]:
        """The environment's checkpoints (``sync_state``): key -> value."""
        rows = self._tx(
            (f"SELECT key, value FROM sync_state WHERE environment_id = {self.p}", (self.env_id,))
        )
        return {k: v for k, v in rows or ()}

    def count_rows(self) -> tuple[int, int]:
        """The environment's regular rows, and how many of them are enabled, in one scan."""
        total, enabled = self._tx(self._count_rows_sql())[0]
        return int(total), int(enabled)

    def _count_rows_sql(self) -> tuple[str, tuple[Any, ...]]:
        """The statement of ``count_rows``: (regular rows, enabled ones) of the environment."""
        return (
            "SELECT count(*), coalesce(sum(CASE WHEN isdisabled THEN 0 ELSE 1 END), 0) FROM systemuser "
            f"WHERE environment_id = {self.p} AND syncd_kind = 'regular'",
            (self.env_id,),
        )

    def count_enabled(self, limit: int | None = None) -> int:
        """Enabled regular rows; with ``limit``, counting stops there (a delta run's cost stays with
        its changes, not with the environment's size)."""
        p = self.p
        rows = f"SELECT 1 FROM systemuser WHERE environment_id = {p} AND syncd_kind = 'regular' AND NOT isdisabled"
        if limit is None:
            out = self._tx((f"SELECT count(*) FROM ({rows}) t", (self.env_id,)))
        else:
            out = self._tx((f"SELECT count(*) FROM ({rows} LIMIT {p}) t", (self.env_id, limit)))
        return int(out[0][0])

    def load_rows(self, object_ids: Iterable[str]) -> dict[str, CurrentRow]:
        """The rows of these users (any kind), by object id; users without a row are absent."""
        ids = list(object_ids)
        if not ids:
            return {}
        stamp = self.stamp
        return {r.object_id: r for r in (row_from_tuple(t, stamp) for t in self._select_rows(ids))}

    @abstractmethod
    def _select_rows(self, ids: list[str]) -> list[tuple[Any, ...]]:
        """Tuples in ROW_COLUMNS order for these object ids."""

    def load_input_hashes(self, object_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """Object id -> (``syncd_inputhash``, whether this run wrote the row) for the regular rows of
        these users that have one: what sync last decided them from, and nobody has written since
        (see ``syncd.sync.inputs``)."""
        ids = list(object_ids)
        if not ids:
            return {}
        stamp = self.stamp
        return {_object_id(oid): (h, modified == stamp) for oid, h, modified in self._select_hashes(ids)}

    @abstractmethod
    def _select_hashes(self, ids: list[str]) -> list[tuple[Any, ...]]:
        """(object id, syncd_inputhash, modifiedon) of the regular rows of these users with a hash."""

    def group_relations(self, object_ids: Sequence[str]) -> dict[str, set[str]]:
        """Object id -> its relations to the security group in the local mirror ('member', 'owner')."""
        found: dict[str, set[str]] = {}
        p = self.p
        for i in range(0, len(object_ids), IN_CLAUSE_CHUNK):
            chunk = list(object_ids[i : i + IN_CLAUSE_CHUNK])
            rows = self._tx(
                (
                    f"SELECT member_id, relation FROM sync_group_member WHERE environment_id = {p} "
                    f"AND member_id IN ({', '.join([p] * len(chunk))})",
                    (self.env_id, *chunk),
                )
            )
            for member_id, relation in rows or ():
                found.setdefault(member_id, set()).add(relation)
        return found

    # -- seen ids (full runs) ------------------------------------------------------------------

    def start_seen(self) -> None:
        """An empty temporary table of the object ids a full run has seen."""
        self._create_seen()
        self._seen_table = True

    @abstractmethod
    def _create_seen(self) -> None: ...

    @abstractmethod
    def _insert_seen(self, cur: Any, ids: Sequence[str]) -> None: ...

    def mark_seen(self, ids: Sequence[str]) -> None:
        """Record seen ids on their own (dry runs; the writes of a real run carry them)."""
        if not ids or not self._seen_table:
            return
        with self.transaction() as cur:
            self._insert_seen(cur, ids)

    def unseen_ids(self) -> list[str]:
        """Object ids of the environment's regular rows the run has not seen (only the ids are held)."""
        rows = self._tx(self._unseen_sql())
        return [_object_id(r[0]) for r in rows or ()]

    @abstractmethod
    def _unseen_sql(self) -> tuple[str, Sequence[Any]]: ...

    def repeated_ids(self) -> list[str]:
        """Object ids the run has seen more than once (Graph repeated them across pages)."""
        rows = self._tx((self._repeated_sql, ()))
        return [_object_id(r[0]) for r in rows or ()]

    _repeated_sql: ClassVar[str]

    # -- writes ----------------------------------------------------------------------------------

    def write(
        self,
        ops: Sequence[Operation],
        seen: Sequence[str] = (),
        *,
        bulk_create: bool = False,
        hashes: Sequence[tuple[str, int, int]] = (),
    ) -> None:
        """Apply operations, with one event each, record seen ids, and record on rows left as they
        are what they were decided from, in one transaction.

        ``bulk_create`` (every operation is a CREATE into an environment that had no regular rows)
        lets a dialect load them without conflict handling. ``hashes``: (object id, input hash, the
        row's versionnumber when read), written only to a row still at that version (no version
        moved under the decision). Raises on failure, having rolled back.
        """
        with self.transaction() as cur:
            if seen and self._seen_table:
                self._insert_seen(cur, seen)
            if hashes:
                self._record_hashes(cur, hashes)
            if ops:
                creates = [op for op in ops if op.action is Action.CREATE]
                others = [op for op in ops if op.action is not Action.CREATE]
                if creates:
                    self._create_rows(cur, creates, bulk_create)
                if others:
                    self._update_rows(cur, others)
                self._insert_events(cur, [self._event(op, op.action.value, op.event_reason) for op in ops])

    def write_withheld(self, ops: Sequence[Operation]) -> None:
        """One ``withheld`` event per disable the mass-disable guard held back, in one transaction:
        the disable's own rule, its changes (and the values it would have replaced), and the reason
        ``Withheld by the mass-disable guard: <the disable's reason>``. No row is written."""
        if not ops:
            return
        rows = [self._event(op, WITHHELD, f"{WITHHELD_REASON}: {op.event_reason}") for op in ops]
        with self.transaction() as cur:
            self._insert_events(cur, rows)

    def write_failure(self, op: Operation, error: str) -> None:
        """The event of an operation whose write failed (R10: a bad record fails alone)."""
        with self.transaction() as cur:
            self._insert_events(cur, [self._event(op, "failed", f"Write failed: {error}")])

    @abstractmethod
    def _create_rows(self, cur: Any, ops: Sequence[Operation], bulk: bool) -> None: ...

    @abstractmethod
    def _update_rows(self, cur: Any, ops: Sequence[Operation]) -> None:
        """Set each operation's columns on its row (regular rows only), reading the row at write time:
        the email is written only while no customer has edited it (R12), and modifiedon moves. The
        operation's input hash is recorded if the row is still the version the run read, else null."""

    @abstractmethod
    def _record_hashes(self, cur: Any, hashes: Sequence[tuple[str, int, int]]) -> None:
        """Set syncd_inputhash on regular rows still at the versionnumber the run read; nothing else
        moves (not modifiedon: the row did not change)."""

    @abstractmethod
    def _insert_events(self, cur: Any, rows: list[tuple[Any, ...]]) -> None: ...

    def _event(self, op: Operation, action: str, reason: str) -> tuple[Any, ...]:
        """One sync_event row (EVENT_COLUMNS) for ``op``: ``changes`` column -> new value and
        ``previous`` the same columns -> the value the row held when the run read it (both null for
        a CREATE: nothing is computed for the initial sync's creates)."""
        changes = previous = None
        if op.action is not Action.CREATE:
            # What changed: the synced columns, and the row's state where the operation sets it.
            changed = op.event_columns()
            if changed:
                changes = orjson.dumps(changed, default=str).decode()
                if op.previous is not None:
                    old = op.previous
                    previous = orjson.dumps({c: old.get(c) for c in changed}, default=str).decode()
        return (
            self.run_id,
            self.env_id,
            self.db_id(op.systemuserid),
            self.db_id(op.object_id),
            action,
            op.rule,
            reason,
            changes,
            previous,
            self.ts(datetime.now(UTC)),
        )

    def withdraw(self, object_ids: Sequence[str]) -> int:
        """Remove rows this run created, with this run's events for them, in one transaction.

        For a user whose later copy in the same read says they should never have had a row: the
        environment ends as if only that copy had been read. Rows created by anyone else, or before
        this run, are never touched (R9). Returns the rows removed.
        """
        p, removed = self.p, 0
        with self.transaction() as cur:
            for oid in object_ids:
                key = self.db_id(oid)
                cur.execute(
                    f"DELETE FROM systemuser WHERE environment_id = {p} AND azureactivedirectoryobjectid = {p} "
                    f"AND syncd_kind = 'regular' AND createdon = {p}",
                    (self.env_id, key, self.stamp),
                )
                removed += cur.rowcount
                cur.execute(
                    f"DELETE FROM sync_event WHERE run_id = {p} AND azureactivedirectoryobjectid = {p}",
                    (self.run_id, key),
                )
        return removed

    # -- held-back disables past what memory keeps -----------------------------------------------

    @abstractmethod
    def _create_held(self) -> None: ...

    @abstractmethod
    def _insert_held(self, cur: Any, rows: list[tuple[str, str]]) -> None: ...

    def spill_held(self, ops: Sequence[Operation]) -> None:
        """Keep held-back disables in a temporary table (one row per user: a later one replaces it)."""
        if not self._held_table:
            self._create_held()
            self._held_table = True
        rows = [(op.object_id, _dump(op)) for op in ops]
        with self.transaction() as cur:
            self.drop_held_sql(cur, [r[0] for r in rows])
            self._insert_held(cur, rows)

    def drop_held(self, object_ids: Sequence[str]) -> int:
        """Forget the spilled disables of these users (a later copy supersedes them); returns how many."""
        if not self._held_table or not object_ids:
            return 0
        with self.transaction() as cur:
            n = self.drop_held_sql(cur, object_ids)
        return n

    def drop_held_sql(self, cur: Any, object_ids: Sequence[str]) -> int:
        if not self._held_table:
            return 0
        n = 0
        for i in range(0, len(object_ids), IN_CLAUSE_CHUNK):
            chunk = list(object_ids[i : i + IN_CLAUSE_CHUNK])
            cur.execute(f"DELETE FROM _syncd_held WHERE oid IN ({', '.join([self.p] * len(chunk))})", chunk)
            n += max(cur.rowcount, 0)
        return n

    def clear_held(self) -> None:
        if self._held_table:
            self._tx(("DELETE FROM _syncd_held", ()))

    def held(self, chunk: int) -> Iterator[Operation]:
        """Every spilled disable, ``chunk`` at a time in memory."""
        if not self._held_table:
            return
        last = ""
        while True:
            rows = self._tx(
                (
                    f"SELECT oid, op FROM _syncd_held WHERE oid > {self.p} ORDER BY oid LIMIT {self.p}",
                    (last, chunk),
                )
            )
            if not rows:
                return
            last = rows[-1][0]
            for _, blob in rows:
                yield _load(blob)

    # -- the run's own rows ----------------------------------------------------------------------

    def start_run(self, kind: str, requested_kind: str, trigger: str, *, reap_stale: bool = False) -> int:
        """Record the run's start. With ``reap_stale`` (the caller holds the environment's lock, so no
        other run of it is alive), runs left 'running' by a process that died are closed first, as
        'abandoned'."""
        p = self.p
        with self.transaction() as cur:
            if reap_stale:
                cur.execute(
                    f"UPDATE sync_run SET outcome = 'abandoned', finished_at = {p}, "
                    "error = 'the process running it ended before it finished' "
                    f"WHERE environment_id = {p} AND outcome = 'running'",
                    # Closed no later than this run starts: the two never seem to overlap.
                    (self.stamp, self.env_id),
                )
                self.reaped = cur.rowcount
            cur.execute(
                "INSERT INTO sync_run (environment_id, kind, requested_kind, trigger, started_at, outcome, read, "
                "created, updated, enabled, disabled, unchanged, failed, blocked_disables, restarts) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}, 'running', 0, 0, 0, 0, 0, 0, 0, 0, 0) RETURNING id",
                (self.env_id, kind, requested_kind, trigger, self.stamp),
            )
            self.run_id = int(cur.fetchone()[0])
        return self.run_id

    def set_run_kind(self, kind: str) -> None:
        if self.run_id is not None:
            self._tx((f"UPDATE sync_run SET kind = {self.p} WHERE id = {self.p}", (kind, self.run_id)))

    def finish_run(
        self,
        outcome: str,
        error: str | None,
        counts: dict[str, int],
        *,
        restarts: int = 0,
        state: dict[str, str | None] | None = None,
        mirror: GroupMirror | None = None,
        count_users: bool = False,
    ) -> None:
        """The run's last transaction: its checkpoint (``state``, None: it does not move), the group
        mirror, and the run's row with its outcome and counts. With ``count_users`` (a run that
        finished), the environment's regular rows enabled and disabled as this transaction sees them
        go to ``users_enabled`` / ``users_disabled`` (one count over the environment's rows)."""
        p = self.p
        with self.transaction() as cur:
            users: tuple[int | None, int | None] = (None, None)
            if count_users and self.run_id is not None:
                cur.execute(*self._count_rows_sql())
                total, enabled = cur.fetchone()
                users = (int(enabled), int(total) - int(enabled))
            if state is not None:
                now = self.ts(datetime.now(UTC))
                for key, value in state.items():
                    cur.execute(
                        f"DELETE FROM sync_state WHERE environment_id = {p} AND key = {p}", (self.env_id, key)
                    )
                    if value is not None:
                        cur.execute(
                            "INSERT INTO sync_state (environment_id, key, value, updated_on) "
                            f"VALUES ({p}, {p}, {p}, {p})",
                            (self.env_id, key, value, now),
                        )
            if mirror is not None:
                self._mirror(cur, mirror)
            if self.run_id is not None:
                sets = ", ".join(f"{c} = {p}" for c in RUN_COUNTS)
                cur.execute(
                    f"UPDATE sync_run SET finished_at = {p}, outcome = {p}, error = {p}, restarts = {p}, {sets}, "
                    f"users_enabled = {p}, users_disabled = {p} WHERE id = {p}",
                    (
                        self.ts(datetime.now(UTC)),
                        outcome,
                        error,
                        restarts,
                        *(counts.get(c, 0) for c in RUN_COUNTS),
                        *users,
                        self.run_id,
                    ),
                )

    def _mirror(self, cur: Any, mirror: GroupMirror) -> None:
        p = self.p
        rows: list[tuple[int, str, str]] = []
        if mirror.members is not None:
            cur.execute(f"DELETE FROM sync_group_member WHERE environment_id = {p}", (self.env_id,))
            rows = [(self.env_id, m, "member") for m in mirror.members]
            rows += [(self.env_id, o, "owner") for o in mirror.owners]
        removed = [(self.env_id, m) for m in mirror.removed]
        if removed:
            cur.executemany(
                f"DELETE FROM sync_group_member WHERE environment_id = {p} AND member_id = {p} "
                "AND relation = 'member'",
                removed,
            )
        if mirror.members is not None and rows:
            self._insert_mirror(cur, rows)  # a full replacement: the table holds none of them
            rows = []
        rows += [(self.env_id, m, "member") for m in mirror.added]
        if rows:
            cur.executemany(
                "INSERT INTO sync_group_member (environment_id, member_id, relation) "
                f"VALUES ({p}, {p}, {p}) ON CONFLICT DO NOTHING",
                rows,
            )

    def _insert_mirror(self, cur: Any, rows: list[tuple[int, str, str]]) -> None:
        """Rows of a group mirror just emptied for this environment (so none conflicts)."""
        p = self.p
        cur.executemany(
            f"INSERT INTO sync_group_member (environment_id, member_id, relation) VALUES ({p}, {p}, {p})",
            rows,
        )

    def analyze(self) -> None:  # noqa: B027 - a no-op where the backend needs none
        """Fresh planner statistics after a run rewrote much of the table (a no-op where not needed)."""


def _object_id(stored: str) -> str:
    """An object id as a query returned it (dashed on PostgreSQL, 32 digits on SQLite), dashed."""
    return stored if len(stored) == 36 else str(from_db_uuid(stored))


def _dump(op: Operation) -> str:
    return orjson.dumps(
        [
            op.object_id,
            op.systemuserid,
            op.values,
            op.rule,
            op.reason,
            dict(op.changes),
            list(op.notes),
            op.input_hash,
            op.read_version,
            dict(op.previous) if op.previous is not None else None,
        ],
        default=str,
    ).decode()


def _load(blob: str) -> Operation:
    object_id, systemuserid, values, rule, reason, changes, notes, input_hash, version, previous = (
        orjson.loads(blob)
    )
    return Operation(
        Action.DISABLE,
        object_id,
        systemuserid,
        values,
        rule,
        reason,
        changes,
        tuple(notes),
        input_hash,
        version,
        previous,
    )


__all__ = ["ROW_COLUMNS", "GroupMirror", "Storage"]


def record_run_end(
    engine: Engine,
    run_id: int,
    outcome: str,
    error: str | None,
    counts: dict[str, int],
    *,
    restarts: int,
    finished_at: datetime,
) -> bool:
    """Record a run's end on a fresh connection from ``engine``, when the run's own connection is gone.

    Only the run's own row is written, and only while it is still 'running' or was closed as
    'abandoned' by a later holder of the lock that took the run for dead: the recorded outcome and
    error become the true ones. ``finished_at`` is kept when a later run already closed the row (no
    later than its own start). Returns whether the row was written; raises SQLAlchemy's errors.
    """
    sets = ", ".join(f"{c} = :{c}" for c in RUN_COUNTS)
    with engine.begin() as conn:
        result = conn.execute(
            text(
                "UPDATE sync_run SET finished_at = CASE WHEN outcome = 'running' THEN :finished_at "
                f"ELSE finished_at END, outcome = :outcome, error = :error, restarts = :restarts, {sets} "
                "WHERE id = :run_id AND outcome IN ('running', 'abandoned')"
            ).bindparams(bindparam("finished_at", type_=DateTime(timezone=True))),
            {
                "finished_at": finished_at,
                "outcome": outcome,
                "error": error,
                "restarts": restarts,
                "run_id": run_id,
                **{c: counts.get(c, 0) for c in RUN_COUNTS},
            },
        )
        return result.rowcount == 1
