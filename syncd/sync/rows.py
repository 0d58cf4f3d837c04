"""Reading current SystemUser rows for a batch of directory users (read-only).

The sync engine works on the raw DB-API connection of the run: SQLAlchemy stays for the schema,
the migrations and the admin paths, while the hot path speaks SQL directly (psycopg 3 on
PostgreSQL, sqlite3 on SQLite). Object ids travel as Graph's dashed GUID strings; on SQLite,
where SQLAlchemy's Uuid type stores 32 hex digits, they are converted at this boundary.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.rules import SYNCED_COLUMNS, RowFacts, UserKind

# The columns a run reads, in order.
ROW_COLUMNS: tuple[str, ...] = (
    "systemuserid",
    "azureactivedirectoryobjectid",
    "kind",
    "isdisabled",
    "accessmode",
    "islicensed",
    "synced_internalemailaddress",
    "createdon",
    *[c for c in SYNCED_COLUMNS if c != "azureactivedirectoryobjectid"],
)
_N_FIXED = 8
_UUID_COLUMNS = ("systemuserid", "azureactivedirectoryobjectid")
_SYNCED_READ = [c for c in SYNCED_COLUMNS if c != "azureactivedirectoryobjectid"]
_KINDS = {k.value: k for k in UserKind}


def to_db_uuid(value: str, sqlite: bool) -> str:
    """A dashed GUID as the backend stores it (32 hex digits on SQLite)."""
    return value.replace("-", "").lower() if sqlite else value


def from_db_uuid(value: Any) -> str | None:
    """A stored GUID back to Graph's dashed lower-case form."""
    if value is None:
        return None
    s = str(value).lower()
    if len(s) == 32:
        return f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}"
    return s


@dataclass(slots=True)
class CurrentRow:
    """A row as a run sees it: the facts the rules read, and the values to stage an update from."""

    systemuserid: str
    object_id: str
    facts: RowFacts
    synced_email: str | None
    createdon: Any


def _to_row(t: Sequence[Any]) -> CurrentRow:
    columns = dict(zip(_SYNCED_READ, t[_N_FIXED:], strict=False))
    oid = t[1]
    if len(oid) != 36:  # SQLite's 32 hex digits
        oid = from_db_uuid(oid)
    columns["azureactivedirectoryobjectid"] = oid
    email = columns["internalemailaddress"]
    synced = t[6]
    facts = RowFacts(
        kind=_KINDS[t[2]],
        isdisabled=bool(t[3]),
        accessmode=int(t[4]),
        islicensed=bool(t[5]),
        columns=columns,
        email_edited=email != synced,
    )
    sid = t[0] if len(t[0]) == 36 else from_db_uuid(t[0]) or ""
    return CurrentRow(sid, oid, facts, synced, t[7])


class RowReader:
    """Loads rows of one environment by object id, in batches, on the run's connection."""

    def __init__(self, dbapi_conn: Any, env_id: int, *, sqlite: bool) -> None:
        self.conn = dbapi_conn
        self.env_id = env_id
        self.sqlite = sqlite
        cols = ", ".join(ROW_COLUMNS)
        if sqlite:
            self._sql = (
                f"SELECT {cols} FROM systemuser WHERE environment_id = ? AND azureactivedirectoryobjectid IN "
            )
        else:
            # GUIDs travel as text both ways: cheaper than building uuid objects for every row.
            text_cols = ", ".join(f"{c}::text" if c in _UUID_COLUMNS else c for c in ROW_COLUMNS)
            self._sql = (
                f"SELECT {text_cols} FROM systemuser WHERE environment_id = %s "
                "AND azureactivedirectoryobjectid = ANY(%s::text[]::uuid[])"
            )

    def load(self, object_ids: Iterable[str]) -> dict[str, CurrentRow]:
        ids = list(object_ids)
        if not ids:
            return {}
        cur = self.conn.cursor()
        try:
            if self.sqlite:
                out: dict[str, CurrentRow] = {}
                for i in range(0, len(ids), 900):
                    chunk = [to_db_uuid(x, True) for x in ids[i : i + 900]]
                    sql = self._sql + "(" + ",".join("?" * len(chunk)) + ")"
                    cur.execute(sql, (self.env_id, *chunk))
                    for t in cur.fetchall():
                        r = _to_row(t)
                        out[r.object_id] = r
                return out
            # A page of ids is a small share of a large environment, but not of a small one, where the
            # planner would pick a sequential scan: repeated on every page, that turns a run quadratic.
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute(self._sql, (self.env_id, ids))
            rows = cur.fetchall()
            self.conn.commit()
            return {r.object_id: r for r in map(_to_row, rows)}
        finally:
            cur.close()

    def count_enabled_regular(self, limit: int | None = None) -> int:
        """Enabled regular rows; with `limit`, counting stops there (a delta run's cost stays with its changes)."""
        cur = self.conn.cursor()
        try:
            p = "?" if self.sqlite else "%s"
            rows = (
                f"SELECT 1 FROM systemuser WHERE environment_id = {p} AND kind = 'regular' AND NOT isdisabled"
            )
            if limit is None:
                cur.execute(f"SELECT count(*) FROM ({rows}) t", (self.env_id,))
            else:
                cur.execute(f"SELECT count(*) FROM ({rows} LIMIT {p}) t", (self.env_id, limit))
            return int(cur.fetchone()[0])
        finally:
            cur.close()

    def count_regular(self) -> tuple[int, int]:
        """The environment's regular rows, and how many of them are enabled, in one scan."""
        cur = self.conn.cursor()
        try:
            p = "?" if self.sqlite else "%s"
            cur.execute(
                "SELECT count(*), coalesce(sum(CASE WHEN isdisabled THEN 0 ELSE 1 END), 0) FROM systemuser "
                f"WHERE environment_id = {p} AND kind = 'regular'",
                (self.env_id,),
            )
            total, enabled = cur.fetchone()
            return int(total), int(enabled)
        finally:
            cur.close()

    def iter_unseen(self, batch: int = 999) -> Iterator[list[CurrentRow]]:
        """Regular rows of the environment whose user the run did not see (the `_syncd_seen` table).

        Only their object ids are held at once; the rows themselves are loaded a batch at a time.
        """
        p = "?" if self.sqlite else "%s"
        oid = "s.azureactivedirectoryobjectid" + ("" if self.sqlite else "::text")
        sql = (
            f"SELECT {oid} FROM systemuser s WHERE s.environment_id = {p} AND s.kind = 'regular' "
            "AND NOT EXISTS (SELECT 1 FROM _syncd_seen t WHERE t.oid = s.azureactivedirectoryobjectid)"
        )
        cur = self.conn.cursor()
        try:
            cur.execute(sql, (self.env_id,))
            ids: list[str] = [r[0] if len(r[0]) == 36 else str(from_db_uuid(r[0])) for r in cur.fetchall()]
            self.conn.commit()
        finally:
            cur.close()
        for i in range(0, len(ids), batch):
            yield list(self.load(ids[i : i + batch]).values())
