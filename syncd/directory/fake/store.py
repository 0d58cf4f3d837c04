"""The fake tenant's store: SQLite (a file in WAL mode, or memory), versioned for delta queries.

Every change takes the next change number from `meta.change` and stamps it on the changed
row, so a users delta query is a keyset scan over `ver`. Users are kept as pre-serialised Graph
JSON. One connection is shared by all threads under a lock; every write is one transaction
that either applies whole or raises `StoreError` and changes nothing. Object ids are kept in
lower case and looked up in any case (`keys.object_key`); userPrincipalNames compare without case.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from syncd.directory.fake import schema
from syncd.directory.fake.errors import StoreError
from syncd.directory.fake.keys import object_key
from syncd.directory.fake.mutations import Mutations

Row = tuple[Any, ...]


def changed_since(after: int, *, since: int, start: int, bounded: bool, live: str) -> tuple[str, list[Any]]:
    """The WHERE clause (on `ver`) of one delta read's rows after the cursor `after`.

    A read began at change `start`; `since` is where its round starts (0 for a first, full round).
    A full round gives the live rows (`live`), and the rows removed after the read began (so no
    removal falls between this read and the next round). A `bounded` read leaves every change
    after `start` to the next round.
    """
    sql, args = "ver > ?", [max(since, after)]
    if bounded:
        sql += " AND ver <= ?"
        args.append(start)
    if since == 0:
        if bounded:
            sql += f" AND {live}"
        else:
            sql += f" AND ({live} OR ver > ?)"
            args.append(start)
    return sql, args


class TenantStore(Mutations):
    def __init__(self, conn: sqlite3.Connection, path: str | None) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, path: str | None) -> TenantStore:
        """Open (creating if needed) a tenant at `path`, or an empty in-memory tenant for None."""
        conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        if path:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.executescript(schema.TABLES + schema.BULK_INDEXES)
        schema.upgrade(conn)
        store = cls(conn, path)
        if store.meta("secret") is None:
            with store._tx():
                store._init_meta({})
        return store

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ----------------------------------------------------------------- plumbing
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold writes off: the reads inside see one state of the tenant (a page and its token)."""
        with self._lock:
            yield

    def stamp(self) -> tuple[int, int]:
        """A mark of the tenant's state that every write moves on: the rows this store's connection
        has changed, and SQLite's count of commits by other connections to the same file. A read
        made while the mark was the current one is still the tenant's answer."""
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()
            return self._conn.total_changes, int(version[0])

    def _one(self, sql: str, args: Iterable[Any] = ()) -> Row | None:
        with self._lock:
            row: Row | None = self._conn.execute(sql, tuple(args)).fetchone()
            return row

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[Row]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def _init_meta(self, values: dict[str, str]) -> None:
        base = {
            "secret": secrets.token_hex(16),
            "change": "0",
            "epoch": "1",
            "tenant_id": "00000000-0000-0000-0000-000000000000",
            "tenant_name": "Empty tenant",
            "domain": "contoso.onmicrosoft.com",
        }
        base.update(values)
        self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", base.items())

    def _next_change(self) -> int:
        """The next change number; call inside `_tx`."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'change'").fetchone()
        change = int(row[0]) + 1
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'change'", (str(change),))
        return change

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        """Keep (or, with None, drop) a value of the tenant's own, such as the fake Entra's registrations."""
        with self._tx() as c:
            if value is None:
                c.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def change(self) -> int:
        """The tenant's current change number (the newest change)."""
        return int(self.meta("change") or 0)

    @property
    def epoch(self) -> int:
        return int(self.meta("epoch") or 1)

    @property
    def secret(self) -> str:
        return self.meta("secret") or ""

    def expire_delta_tokens(self) -> int:
        """Make every delta and skip token issued so far unknown (they then get 410)."""
        with self._tx() as c:
            epoch = int(c.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]) + 1
            c.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (str(epoch),))
        return epoch

    # ----------------------------------------------------------------- bulk load
    @contextmanager
    def bulk(self, meta: dict[str, str]) -> Iterator[BulkLoad]:
        """Replace the whole tenant in one transaction (big tables loaded without their indexes)."""
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                _script(c, schema.CLEAR + schema.DROP_BULK_INDEXES)
                loader = BulkLoad(c)
                yield loader
                _script(c, schema.BULK_INDEXES)
                self._init_meta({**meta, "change": str(loader.ver)})
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            if self.path:
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ----------------------------------------------------------------- user reads
    def _find_user(self, cols: str, key: str, where: str) -> Row | None:
        row = self._one(f"SELECT {cols} FROM users WHERE id = ? AND {where}", (object_key(key),))
        if row is None and "@" in key:  # upn compares without case (COLLATE NOCASE)
            row = self._one(f"SELECT {cols} FROM users WHERE upn = ? AND {where}", (key,))
        return row

    def user(self, key: str) -> bytes | None:
        """An active user's JSON by id or userPrincipalName."""
        row = self._find_user("blob", key, "state = 0")
        return None if row is None else bytes(row[0])

    def user_row(self, key: str) -> Row | None:
        """(id, state, blob) of any user that is not hard-deleted, by id or UPN."""
        return self._find_user("id, state, blob", key, "state < 2")

    def _user_where(self, enabled: bool | None, guest: bool | None) -> tuple[str, list[Any]]:
        where, args = ["state = 0"], []
        if enabled is not None:
            where.append("enabled = ?")
            args.append(int(enabled))
        if guest is not None:
            where.append("guest = ?")
            args.append(int(guest))
        return " AND ".join(where), args

    def users_page(
        self, after: int, limit: int, *, enabled: bool | None = None, guest: bool | None = None
    ) -> list[Row]:
        """(seq, blob) of active users after the keyset cursor `after`, in creation order."""
        where, args = self._user_where(enabled, guest)
        return self._all(
            f"SELECT seq, blob FROM users WHERE seq > ? AND {where} ORDER BY seq LIMIT ?",
            [after, *args, limit],
        )

    def users_by_ids(
        self,
        ids: Iterable[str],
        after: int,
        limit: int,
        *,
        enabled: bool | None = None,
        guest: bool | None = None,
    ) -> list[Row]:
        """(seq, blob) of the active users among `ids` (canonical ids) after the cursor `after`, in
        creation order (a users list with `$filter=id in (...)`)."""
        keys = list(dict.fromkeys(ids))
        if not keys:
            return []
        where, args = self._user_where(enabled, guest)
        marks = ",".join("?" * len(keys))
        return self._all(
            f"SELECT seq, blob FROM users WHERE id IN ({marks}) AND seq > ? AND {where} ORDER BY seq LIMIT ?",
            [*keys, after, *args, limit],
        )

    def users_count(self, *, enabled: bool | None = None, guest: bool | None = None) -> int:
        where, args = self._user_where(enabled, guest)
        row = self._one(f"SELECT count(*) FROM users WHERE {where}", args)
        return int(row[0]) if row else 0

    def users_delta(self, after: int, limit: int, *, since: int, start: int, bounded: bool) -> list[Row]:
        """(ver, id, state, blob) of a users delta read's users after cursor `after`, by `ver`
        (see `changed_since`): a full round gives active users, later rounds removals too."""
        where, args = changed_since(after, since=since, start=start, bounded=bounded, live="state = 0")
        return self._all(
            f"SELECT ver, id, state, blob FROM users WHERE {where} ORDER BY ver LIMIT ?", [*args, limit]
        )

    def user_later_in_read(
        self, after: int, offset: int, *, since: int, start: int, bounded: bool
    ) -> Row | None:
        """(id, prev) of the user `offset` places after cursor `after` in the same delta read."""
        where, args = changed_since(after, since=since, start=start, bounded=bounded, live="state = 0")
        return self._one(
            f"SELECT id, prev FROM users WHERE {where} ORDER BY ver LIMIT 1 OFFSET ?", [*args, offset]
        )

    def user_by_seq(self, seq: int) -> Row | None:
        """(id, state, blob) of the user with this creation number (for random picks)."""
        return self._one("SELECT id, state, blob FROM users WHERE seq = ?", (seq,))

    def max_user_seq(self) -> int:
        row = self._one("SELECT max(seq) FROM users")
        return int(row[0] or 0) if row else 0

    def soft_deleted_ids(self, limit: int) -> list[str]:
        return [
            str(r[0])
            for r in self._all("SELECT id FROM users WHERE state = 1 ORDER BY seq LIMIT ?", (limit,))
        ]

    def member_at(self, group_id: str, offset: int) -> str | None:
        """The id of a group's `offset`-th direct member (for random picks)."""
        row = self._one(
            "SELECT member_id FROM members WHERE group_id = ? AND removed = 0 ORDER BY seq LIMIT 1 OFFSET ?",
            (group_id, offset),
        )
        return None if row is None else str(row[0])

    def user_group_ids(self, user_id: str) -> list[str]:
        """The groups a user is an active direct member of."""
        rows = self._all(
            "SELECT group_id FROM members WHERE member_id = ? AND removed = 0 ORDER BY seq",
            (object_key(user_id),),
        )
        return [str(r[0]) for r in rows]

    def member_of(self, key: str) -> list[tuple[str, bytes]] | None:
        """(kind, JSON) of the groups and directory roles an active user (by id or UPN) is a direct
        member of (``GET /users/{id}/memberOf``), groups first; None when there is no such user."""
        row = self._find_user("id", key, "state = 0")
        if row is None:
            return None
        uid = str(row[0])
        groups = self._all(
            "SELECT g.blob FROM members m JOIN groups g ON g.id = m.group_id "
            "WHERE m.member_id = ? AND m.removed = 0 ORDER BY m.seq",
            (uid,),
        )
        roles = self._all(
            "SELECT r.blob FROM role_members m JOIN roles r ON r.id = m.role_id WHERE m.member_id = ? ORDER BY m.seq",
            (uid,),
        )
        return [("group", bytes(r[0])) for r in groups] + [("directoryRole", bytes(r[0])) for r in roles]

    def member_count(self, group_id: str) -> int:
        row = self._one("SELECT count(*) FROM members WHERE group_id = ? AND removed = 0", (group_id,))
        return int(row[0]) if row else 0

    def group_ids(self) -> list[str]:
        return [str(r[0]) for r in self._all("SELECT id FROM groups ORDER BY seq")]

    def role_ids(self) -> list[str]:
        return [str(r[0]) for r in self._all("SELECT id FROM roles ORDER BY seq")]

    def role_member_ids(self, role_id: str) -> list[str]:
        return [
            str(r[0])
            for r in self._all(
                "SELECT member_id FROM role_members WHERE role_id = ? ORDER BY seq", (role_id,)
            )
        ]

    def deleted_users(self) -> list[bytes]:
        return [bytes(r[0]) for r in self._all("SELECT blob FROM users WHERE state = 1 ORDER BY seq")]

    # ----------------------------------------------------------------- other reads
    def groups(self) -> list[bytes]:
        return [bytes(r[0]) for r in self._all("SELECT blob FROM groups ORDER BY seq")]

    def group(self, group_id: str) -> bytes | None:
        row = self._one("SELECT blob FROM groups WHERE id = ?", (object_key(group_id),))
        return None if row is None else bytes(row[0])

    def group_by_seq(self, seq: int) -> Row | None:
        """(id, blob) of a group by its creation number."""
        return self._one("SELECT id, blob FROM groups WHERE seq = ?", (seq,))

    def max_group_seq(self) -> int:
        row = self._one("SELECT max(seq) FROM groups")
        return int(row[0] or 0) if row else 0

    def next_changed_group(
        self, after_seq: int, since: int, *, upto_seq: int | None = None, ids: tuple[str, ...] = ()
    ) -> Row | None:
        """(seq, id, blob) of the first group after `after_seq` in creation order that changed after
        `since` (every group, for since 0); only groups up to `upto_seq` if given, among `ids` if given."""
        where, args = "seq > ? AND ver > ?", list[Any]([after_seq, since])
        if upto_seq is not None:
            where += " AND seq <= ?"
            args.append(upto_seq)
        if ids:
            where += f" AND id IN ({','.join('?' * len(ids))})"
            args += ids
        return self._one(f"SELECT seq, id, blob FROM groups WHERE {where} ORDER BY seq LIMIT 1", args)

    def member_changes(
        self, group_id: str, after: int, limit: int, *, since: int, start: int, bounded: bool
    ) -> list[Row]:
        """(seq, member_id, kind, removed) of a group's membership changes in one groups delta read,
        after the member cursor `after`, by `seq` (see `changed_since`; suspended counts as removed)."""
        where, args = changed_since(0, since=since, start=start, bounded=bounded, live="removed = 0")
        return self._all(
            f"SELECT seq, member_id, kind, removed FROM members WHERE group_id = ? AND seq > ? AND {where} "
            "ORDER BY seq LIMIT ?",
            [group_id, after, *args, limit],
        )

    def _objects(self, rows: list[Row]) -> list[Row]:
        """Attach each (seq, kind, id, user blob or None) row's object JSON; drops inactive users."""
        out: list[Row] = []
        for seq, kind, member_id, blob, state in rows:
            if kind == "user":
                if blob is None or state != 0:
                    continue
            elif kind == "group":
                blob = self.group(member_id)
            else:
                blob = self.service_principal(member_id)
            if blob is not None:
                out.append((seq, kind, bytes(blob)))
        return out

    def members_page(
        self, group_id: str, after: int, limit: int, *, owners: bool = False
    ) -> tuple[list[Row], int | None]:
        """(seq, kind, blob) of a group's direct members (or owners) after cursor `after`, and the
        cursor for the next page (None at the end). Inactive users are left out of the page."""
        group_id = object_key(group_id)
        table, col = ("owners", "owner_id") if owners else ("members", "member_id")
        removed = "" if owners else " AND m.removed = 0"
        rows = self._all(
            f"SELECT m.seq, m.kind, m.{col}, u.blob, u.state FROM {table} m "
            f"LEFT JOIN users u ON m.kind = 'user' AND u.id = m.{col} "
            f"WHERE m.group_id = ? AND m.seq > ?{removed} ORDER BY m.seq LIMIT ?",
            (group_id, after, limit),
        )
        return self._objects(rows), (rows[-1][0] if len(rows) == limit else None)

    def roles(self) -> list[bytes]:
        return [bytes(r[0]) for r in self._all("SELECT blob FROM roles ORDER BY seq")]

    def role(self, key: str) -> Row | None:
        """(id, blob) of an activated role by object id or role template id."""
        key = object_key(key)
        return self._one("SELECT id, blob FROM roles WHERE id = ? OR template_id = ?", (key, key))

    def role_members(self, role_id: str) -> list[Row]:
        rows = self._all(
            "SELECT m.seq, m.kind, m.member_id, u.blob, u.state FROM role_members m "
            "LEFT JOIN users u ON m.kind = 'user' AND u.id = m.member_id "
            "WHERE m.role_id = ? ORDER BY m.seq",
            (role_id,),
        )
        return self._objects(rows)

    def skus(self) -> list[Row]:
        """(skuId, consumedUnits, prepaidUnits) of the subscribed SKUs."""
        return self._all("SELECT sku_id, consumed, prepaid FROM skus ORDER BY rowid")

    def service_principal(self, sp_id: str) -> bytes | None:
        row = self._one("SELECT blob FROM service_principals WHERE id = ?", (sp_id,))
        return None if row is None else bytes(row[0])

    def service_principals(self, app_id: str | None = None) -> list[bytes]:
        if app_id is not None:
            rows = self._all("SELECT blob FROM service_principals WHERE app_id = ?", (object_key(app_id),))
        else:
            rows = self._all("SELECT blob FROM service_principals ORDER BY seq")
        return [bytes(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        """Sizes of the tenant, for summaries."""
        q = {
            "users": "SELECT count(*) FROM users WHERE state = 0",
            "deleted_users": "SELECT count(*) FROM users WHERE state = 1",
            "groups": "SELECT count(*) FROM groups",
            "memberships": "SELECT count(*) FROM members WHERE removed = 0",
            "service_principals": "SELECT count(*) FROM service_principals",
        }
        return {k: int(self._one(v)[0]) for k, v in q.items()}  # type: ignore[index]


def _script(conn: sqlite3.Connection, script: str) -> None:
    """Run `;`-separated statements inside the open transaction (executescript would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


class BulkLoad:
    """Writes a whole new tenant; hands out change numbers in insertion order."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn
        self.ver = 0

    def _stamp(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            self.ver += 1
            yield (*row, self.ver)

    def users(self, rows: Iterable[Row]) -> None:
        """Rows of (id, upn, enabled, guest, blob)."""
        self._c.executemany(
            "INSERT INTO users(id, upn, enabled, guest, blob, ver) VALUES (?, ?, ?, ?, ?, ?)",
            self._stamp(rows),
        )

    def groups(self, rows: Iterable[Row]) -> None:
        """Rows of (id, blob)."""
        self._c.executemany("INSERT INTO groups(id, blob, ver) VALUES (?, ?, ?)", self._stamp(rows))

    def members(self, rows: Iterable[Row]) -> None:
        """Rows of (group_id, member_id, kind)."""
        self._c.executemany(
            "INSERT INTO members(group_id, member_id, kind, ver) VALUES (?, ?, ?, ?)", self._stamp(rows)
        )

    def owners(self, rows: Iterable[Row]) -> None:
        self._c.executemany("INSERT INTO owners(group_id, owner_id, kind) VALUES (?, ?, ?)", rows)

    def roles(self, rows: Iterable[Row]) -> None:
        """Rows of (id, template_id, blob)."""
        self._c.executemany("INSERT INTO roles(id, template_id, blob) VALUES (?, ?, ?)", rows)

    def role_members(self, rows: Iterable[Row]) -> None:
        self._c.executemany("INSERT INTO role_members(role_id, member_id, kind) VALUES (?, ?, ?)", rows)

    def skus(self, rows: Iterable[Row]) -> None:
        """Rows of (sku_id, consumed, prepaid)."""
        self._c.executemany("INSERT INTO skus(sku_id, consumed, prepaid) VALUES (?, ?, ?)", rows)

    def service_principals(self, rows: Iterable[Row]) -> None:
        """Rows of (id, app_id, blob)."""
        self._c.executemany("INSERT INTO service_principals(id, app_id, blob) VALUES (?, ?, ?)", rows)


__all__ = ["TenantStore", "StoreError", "BulkLoad"]
