"""The sync engine's storage: one interface (:class:`Storage`), a PostgreSQL and a SQLite implementation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from syncd.sync.storage.base import GroupMirror, Storage


def open_storage(conn: Any, env_id: int, now: datetime) -> Storage:
    """The storage for a DB-API connection (psycopg 3 or sqlite3), for one environment and one run
    whose timestamp is ``now``."""
    if type(conn).__module__.startswith("sqlite3"):
        from syncd.sync.storage.sqlite import SqliteStorage

        return SqliteStorage(conn, env_id, now)
    from syncd.sync.storage.postgres import PostgresStorage

    return PostgresStorage(conn, env_id, now)


__all__ = ["GroupMirror", "Storage", "open_storage"]
