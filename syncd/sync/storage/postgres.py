"""The run's storage on PostgreSQL (psycopg 3): COPY and set-based statements.

New rows are COPYed straight into an empty environment, or through a staging table and one
``INSERT ... ON CONFLICT`` otherwise. Updates are COPYed into a staging table, each with a bit
mask of the columns it sets, and applied by one ``UPDATE ... FROM``: a column whose bit is clear
keeps the value the row has at write time.

Rows go to PostgreSQL in COPY's binary format (about half the cost of the text format on both
sides: nothing is printed to text and parsed back), each column as the type the table declares
(read from the catalog once per run). GUIDs stay strings in Python: :class:`GuidBinaryDumper`
turns them into the 16 bytes of a binary ``uuid``, which is cheaper than building ``uuid.UUID``
objects for every row; they come back as text.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg.adapt import Dumper
from psycopg.pq import Format

from syncd.sync.plan import CREATE_COLUMNS, SET_COLUMNS, SYNCED_EMAIL, Operation
from syncd.sync.rows import ROW_COLUMNS
from syncd.sync.storage.base import EVENT_COLUMNS, NEW_COLUMNS, Storage

_UUIDS = ("systemuserid", "azureactivedirectoryobjectid")
_NEW = ", ".join(NEW_COLUMNS)
_EMAIL = ("internalemailaddress", SYNCED_EMAIL)
_NOT_EDITED = f"t.internalemailaddress IS NOT DISTINCT FROM t.{SYNCED_EMAIL}"
_TYPES = {
    "isdisabled": "boolean",
    "accessmode": "smallint",
    "islicensed": "boolean",
    "azurestate": "smallint",
}


def _merge_sql() -> str:
    """New rows from the staging table; a row that appeared since the run read (an administrator's
    add) is brought up to date instead, never its fullname (R11), an edited email (R12) or its
    business unit (R26: sync never moves a user)."""
    sets = []
    for c in CREATE_COLUMNS[3:]:
        if c == "fullname":
            continue
        if c in _EMAIL:
            sets.append(f"{c} = CASE WHEN {_NOT_EDITED} THEN excluded.{c} ELSE t.{c} END")
        else:
            sets.append(f"{c} = excluded.{c}")
    sets.append("modifiedon = excluded.modifiedon")
    # The row was not the one the decision was made against: decide it in full next time.
    sets.append("syncd_inputhash = NULL")
    return (
        f"INSERT INTO systemuser AS t ({_NEW}) SELECT {_NEW} FROM _syncd_new "
        "ON CONFLICT (environment_id, azureactivedirectoryobjectid) DO UPDATE SET "
        + ", ".join(sets)
        + " WHERE t.syncd_kind = 'regular'"
    )


def _update_sql() -> str:
    sets = []
    for bit, c in enumerate(SET_COLUMNS):
        guard = f"s.mask & {1 << bit} <> 0"
        if c in _EMAIL:
            guard += f" AND {_NOT_EDITED}"
        sets.append(f"{c} = CASE WHEN {guard} THEN s.{c} ELSE t.{c} END")
    sets.append("syncd_inputhash = CASE WHEN t.versionnumber = s.readversion THEN s.inputhash END")
    return (
        "UPDATE systemuser t SET " + ", ".join(sets) + ", modifiedon = %s FROM _syncd_set s "
        "WHERE t.environment_id = %s AND t.azureactivedirectoryobjectid = s.oid AND t.syncd_kind = 'regular'"
    )


_MERGE = _merge_sql()
_UPDATE = _update_sql()
_SET_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS _syncd_set (oid uuid, mask integer, inputhash bigint, readversion bigint, "
    + ", ".join(f"{c} {_TYPES.get(c, 'text')}" for c in SET_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_BITS = {c: 1 << i for i, c in enumerate(SET_COLUMNS)}
# Type oids of PostgreSQL's catalog (pg_type), for the temporary tables' COPY.
_UUID, _INT4, _INT8, _INT2, _BOOL, _TEXT = 2950, 23, 20, 21, 16, 25
_SET_TYPES = [
    _UUID,
    _INT4,
    _INT8,
    _INT8,
    *({"boolean": _BOOL, "smallint": _INT2}.get(_TYPES.get(c, "text"), _TEXT) for c in SET_COLUMNS),
]


class GuidBinaryDumper(Dumper):
    """A GUID, as a dashed or 32-digit string (or a ``uuid.UUID``), to PostgreSQL's binary ``uuid``:
    16 bytes. For COPY in binary format (``Copy.set_types``). Raises ValueError naming a value that
    is not a GUID, which fails the batch, as a bad value would in text format."""

    format = Format.BINARY
    oid = _UUID

    def dump(self, obj: Any) -> bytes:
        if obj.__class__ is uuid.UUID:
            return bytes(obj.bytes)
        digits = obj.replace("-", "")
        try:
            value = bytes.fromhex(digits) if len(digits) == 32 else b""
        except ValueError:
            value = b""
        if len(value) != 16:
            raise ValueError(f"not a GUID: {obj!r}")
        return value


_HASH_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS _syncd_hash (oid uuid, inputhash bigint, readversion bigint) "
    "ON COMMIT DELETE ROWS"
)
_RECORD_HASHES = (
    "UPDATE systemuser t SET syncd_inputhash = h.inputhash FROM _syncd_hash h "
    "WHERE t.environment_id = %s AND t.azureactivedirectoryobjectid = h.oid AND t.syncd_kind = 'regular' "
    "AND t.versionnumber = h.readversion"
)


class PostgresStorage(Storage):
    sqlite = False
    p = "%s"

    def __init__(self, conn: Any, env_id: int, now: Any) -> None:
        super().__init__(conn, env_id, now)
        self._types: dict[str, list[int]] = {}
        cols = ", ".join(f"{c}::text" if c in _UUIDS else c for c in ROW_COLUMNS)
        self._select = (
            f"SELECT {cols} FROM systemuser WHERE environment_id = %s "
            "AND azureactivedirectoryobjectid = ANY(string_to_array(%s, ',')::uuid[])"
        )
        self._select_hash = (
            "SELECT azureactivedirectoryobjectid::text, syncd_inputhash, modifiedon FROM systemuser "
            "WHERE environment_id = %s AND azureactivedirectoryobjectid = ANY(string_to_array(%s, ',')::uuid[]) "
            "AND syncd_kind = 'regular' AND syncd_inputhash IS NOT NULL"
        )

    def _select_rows(self, ids: list[str]) -> list[tuple[Any, ...]]:
        # A page of ids is a small share of a large environment but not of a small one, where the
        # planner would pick a sequential scan: repeated on every page, that turns a run quadratic.
        rows: list[tuple[Any, ...]] = self._tx(
            ("SET LOCAL enable_seqscan = off", ()), (self._select, (self.env_id, ",".join(ids)))
        )
        return rows

    def _select_hashes(self, ids: list[str]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._tx(
            ("SET LOCAL enable_seqscan = off", ()), (self._select_hash, (self.env_id, ",".join(ids)))
        )
        return rows

    def _column_types(self, cur: Any, table: str, columns: Sequence[str]) -> list[int]:
        """The type oids of ``columns`` of ``table`` as the catalog declares them (read once, on
        ``cur``: inside the caller's transaction)."""
        key = f"{table}:{','.join(columns)}"
        if key not in self._types:
            cur.execute(
                "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            declared = dict(cur.fetchall())
            self._types[key] = [declared[c] for c in columns]
        return self._types[key]

    @staticmethod
    def _copy_binary(cur: Any, target: str, types: list[int], rows: Iterable[Sequence[Any]]) -> None:
        """COPY ``rows`` into ``target`` ("table (columns)") in binary format, as ``types``."""
        cur.adapters.register_dumper(None, GuidBinaryDumper)
        with cur.copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)

    # -- seen ----------------------------------------------------------------------------------

    def _create_seen(self) -> None:
        self._tx(("CREATE TEMP TABLE IF NOT EXISTS _syncd_seen (oid uuid)", ()), ("TRUNCATE _syncd_seen", ()))

    _repeated_sql = "SELECT oid::text FROM _syncd_seen GROUP BY oid HAVING count(*) > 1"

    def _insert_seen(self, cur: Any, ids: Sequence[str]) -> None:
        # Object ids are checked GUIDs (syncd.directory.ids): COPY's text format needs no escaping.
        with cur.copy("COPY _syncd_seen (oid) FROM STDIN") as copy:
            copy.write("\n".join(ids) + "\n")

    def _unseen_sql(self) -> tuple[str, Sequence[Any]]:
        self._tx(("ANALYZE _syncd_seen", ()))
        return (
            "SELECT s.azureactivedirectoryobjectid::text FROM systemuser s WHERE s.environment_id = %s "
            "AND s.syncd_kind = 'regular' "
            "AND NOT EXISTS (SELECT 1 FROM _syncd_seen t WHERE t.oid = s.azureactivedirectoryobjectid)",
            (self.env_id,),
        )

    # -- rows ----------------------------------------------------------------------------------

    def _create_rows(self, cur: Any, ops: Sequence[Operation], bulk: bool) -> None:
        if bulk:
            target = "systemuser"
        else:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _syncd_new (LIKE systemuser INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            target = "_syncd_new"
        env, now, cols = self.env_id, self.now, CREATE_COLUMNS[3:]
        unit = self.root_business_unit()
        rows = (
            (
                env,
                unit,
                True,
                op.systemuserid,
                op.object_id,
                "regular",
                *[op.values[c] for c in cols],
                now,
                now,
                op.input_hash,
            )
            for op in ops
        )
        self._copy_binary(cur, f"{target} ({_NEW})", self._column_types(cur, "systemuser", NEW_COLUMNS), rows)
        if not bulk:
            cur.execute(_MERGE)

    def _update_rows(self, cur: Any, ops: Sequence[Operation]) -> None:
        cur.execute(_SET_TABLE)
        bits = _BITS
        rows = []
        for op in ops:
            v = op.values
            mask = 0
            for c in v:
                mask |= bits[c]
            rows.append(
                (op.object_id, mask, op.input_hash, op.read_version, *[v.get(c) for c in SET_COLUMNS])
            )
        columns = "oid, mask, inputhash, readversion, " + ", ".join(SET_COLUMNS)
        self._copy_binary(cur, f"_syncd_set ({columns})", _SET_TYPES, rows)
        cur.execute(_UPDATE, (self.now, self.env_id))

    def _record_hashes(self, cur: Any, hashes: Sequence[tuple[str, int, int]]) -> None:
        cur.execute(_HASH_TABLE)
        self._copy_binary(cur, "_syncd_hash (oid, inputhash, readversion)", [_UUID, _INT8, _INT8], hashes)
        cur.execute(_RECORD_HASHES, (self.env_id,))

    def _insert_mirror(self, cur: Any, rows: list[tuple[int, str, str]]) -> None:
        with cur.copy("COPY sync_group_member (environment_id, member_id, relation) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)

    def _insert_events(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        types = self._column_types(cur, "sync_event", EVENT_COLUMNS)
        self._copy_binary(cur, f"sync_event ({', '.join(EVENT_COLUMNS)})", types, rows)

    # -- held disables -------------------------------------------------------------------------

    def _create_held(self) -> None:
        self._tx(
            ("CREATE TEMP TABLE IF NOT EXISTS _syncd_held (oid text PRIMARY KEY, op text)", ()),
            ("TRUNCATE _syncd_held", ()),
        )

    def _insert_held(self, cur: Any, rows: list[tuple[str, str]]) -> None:
        with cur.copy("COPY _syncd_held (oid, op) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)

    def analyze(self) -> None:
        """Fresh statistics, so the next run's lookups by object id use the index, not a scan."""
        self._tx(("ANALYZE systemuser", ()))
