"""The run's storage on SQLite (the sqlite3 module): executemany upserts and updates.

GUIDs are stored as SQLAlchemy's ``Uuid`` type stores them on SQLite (32 lower-case hex digits)
and timestamps as its ``DateTime`` does (``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC); both are
converted here, at the boundary. Updates are grouped by the set of columns they set, one
``UPDATE`` statement per shape, so a column an operation does not set keeps the value the row
has at write time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from syncd.sync.plan import CREATE_COLUMNS, SYNCED_EMAIL, Operation
from syncd.sync.rows import ROW_COLUMNS
from syncd.sync.storage.base import EVENT_COLUMNS, IN_CLAUSE_CHUNK, NEW_COLUMNS, Storage

_EMAIL = ("internalemailaddress", SYNCED_EMAIL)
_NOT_EDITED = f"internalemailaddress IS {SYNCED_EMAIL}"


def stored_guid(value: str) -> str:
    """A dashed GUID as SQLAlchemy's Uuid type stores it on SQLite: 32 lower-case hex digits."""
    return value.replace("-", "").lower()


def sqlite_ts(value: datetime) -> str:
    """A timestamp as SQLAlchemy's SQLite DateTime stores it."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _upsert_sql() -> str:
    sets = []
    for c in CREATE_COLUMNS[3:]:
        if c == "fullname":
            continue
        if c in _EMAIL:
            sets.append(f"{c} = CASE WHEN systemuser.{_NOT_EDITED} THEN excluded.{c} ELSE systemuser.{c} END")
        else:
            sets.append(f"{c} = excluded.{c}")
    sets.append("modifiedon = excluded.modifiedon")
    # The row was not the one the decision was made against: decide it in full next time.
    sets.append("syncd_inputhash = NULL")
    return (
        f"INSERT INTO systemuser ({', '.join(NEW_COLUMNS)}) VALUES ({', '.join('?' * len(NEW_COLUMNS))}) "
        "ON CONFLICT (environment_id, azureactivedirectoryobjectid) DO UPDATE SET "
        + ", ".join(sets)
        + " WHERE systemuser.syncd_kind = 'regular'"
    )


_UPSERT = _upsert_sql()


def _update_sql(columns: tuple[str, ...]) -> str:
    sets = [
        f"{c} = CASE WHEN {_NOT_EDITED} THEN ? ELSE {c} END" if c in _EMAIL else f"{c} = ?" for c in columns
    ]
    return (
        f"UPDATE systemuser SET {', '.join(sets)}, modifiedon = ?, "
        "syncd_inputhash = CASE WHEN versionnumber = ? THEN ? END "
        "WHERE environment_id = ? AND azureactivedirectoryobjectid = ? AND syncd_kind = 'regular'"
    )


_RECORD_HASH = (
    "UPDATE systemuser SET syncd_inputhash = ? WHERE environment_id = ? AND azureactivedirectoryobjectid = ? "
    "AND syncd_kind = 'regular' AND versionnumber = ?"
)


class SqliteStorage(Storage):
    sqlite = True
    p = "?"

    def __init__(self, conn: Any, env_id: int, now: datetime) -> None:
        super().__init__(conn, env_id, now)
        self._select = (
            f"SELECT {', '.join(ROW_COLUMNS)} FROM systemuser WHERE environment_id = ? "
            "AND azureactivedirectoryobjectid IN "
        )
        self._updates: dict[tuple[str, ...], str] = {}
        self._select_hash = (
            "SELECT azureactivedirectoryobjectid, syncd_inputhash, modifiedon FROM systemuser "
            "WHERE environment_id = ? AND syncd_kind = 'regular' AND syncd_inputhash IS NOT NULL "
            "AND azureactivedirectoryobjectid IN "
        )

    def ts(self, value: datetime) -> Any:
        return sqlite_ts(value)

    def db_id(self, object_id: str) -> str:
        return stored_guid(object_id)

    def _select_rows(self, ids: list[str]) -> list[tuple[Any, ...]]:
        return self._select_in(self._select, ids)

    def _select_hashes(self, ids: list[str]) -> list[tuple[Any, ...]]:
        return self._select_in(self._select_hash, ids)

    def _select_in(self, sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (ending in ``IN``) for these object ids, a parameter list at a time."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(ids), IN_CLAUSE_CHUNK):
            chunk = [stored_guid(x) for x in ids[i : i + IN_CLAUSE_CHUNK]]
            rows = self._tx((sql + "(" + ",".join("?" * len(chunk)) + ")", (self.env_id, *chunk)))
            out.extend(rows or ())
        return out

    # -- seen ----------------------------------------------------------------------------------

    def _create_seen(self) -> None:
        # Indexed, so finding the rows not seen is one pass, not a probe of the whole table per row.
        self._tx(
            ("CREATE TEMP TABLE IF NOT EXISTS _syncd_seen (oid TEXT)", ()),
            ("CREATE INDEX IF NOT EXISTS temp._syncd_seen_oid ON _syncd_seen (oid)", ()),
            ("DELETE FROM _syncd_seen", ()),
        )

    _repeated_sql = "SELECT oid FROM _syncd_seen GROUP BY oid HAVING count(*) > 1"

    def _insert_seen(self, cur: Any, ids: Sequence[str]) -> None:
        cur.executemany("INSERT INTO _syncd_seen (oid) VALUES (?)", [(stored_guid(i),) for i in ids])

    def _unseen_sql(self) -> tuple[str, Sequence[Any]]:
        return (
            "SELECT s.azureactivedirectoryobjectid FROM systemuser s WHERE s.environment_id = ? "
            "AND s.syncd_kind = 'regular' "
            "AND NOT EXISTS (SELECT 1 FROM _syncd_seen t WHERE t.oid = s.azureactivedirectoryobjectid)",
            (self.env_id,),
        )

    # -- rows ----------------------------------------------------------------------------------

    def _create_rows(self, cur: Any, ops: Sequence[Operation], bulk: bool) -> None:
        env, now, cols = self.env_id, self.stamp, CREATE_COLUMNS[3:]
        unit = self.root_business_unit()
        cur.executemany(
            _UPSERT,
            [
                (
                    env,
                    unit,
                    1,
                    stored_guid(op.systemuserid),
                    stored_guid(op.object_id),
                    "regular",
                    *[op.values[c] for c in cols],
                    now,
                    now,
                    op.input_hash,
                )
                for op in ops
            ],
        )

    def _update_rows(self, cur: Any, ops: Sequence[Operation]) -> None:
        shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        now, env = self.stamp, self.env_id
        for op in ops:
            shape = tuple(op.values)
            shapes.setdefault(shape, []).append(
                (*op.values.values(), now, op.read_version, op.input_hash, env, stored_guid(op.object_id))
            )
        for shape, rows in shapes.items():
            sql = self._updates.get(shape)
            if sql is None:
                sql = self._updates[shape] = _update_sql(shape)
            cur.executemany(sql, rows)

    def _record_hashes(self, cur: Any, hashes: Sequence[tuple[str, int, int]]) -> None:
        env = self.env_id
        cur.executemany(_RECORD_HASH, [(h, env, stored_guid(oid), version) for oid, h, version in hashes])

    def _insert_events(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        cols = ", ".join(EVENT_COLUMNS)
        cur.executemany(
            f"INSERT INTO sync_event ({cols}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})", rows
        )

    # -- held disables -------------------------------------------------------------------------

    def _create_held(self) -> None:
        self._tx(
            ("CREATE TEMP TABLE IF NOT EXISTS _syncd_held (oid TEXT PRIMARY KEY, op TEXT)", ()),
            ("DELETE FROM _syncd_held", ()),
        )

    def _insert_held(self, cur: Any, rows: list[tuple[str, str]]) -> None:
        cur.executemany("INSERT INTO _syncd_held (oid, op) VALUES (?, ?)", rows)
