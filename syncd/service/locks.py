"""One run per environment at a time, across replicas.

On PostgreSQL a run holds a session-level advisory lock on a connection of its own, kept
open for the whole run: `pg_try_advisory_lock(SYNCD_LOCK_CLASS, environment_id)`. The lock
is released when the run ends, and by the server when the holder's connection dies (a
killed replica leaves no stale lock). A replica that does not get the lock skips the tick.

On SQLite (one process) an in-process lock per environment is enough.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import structlog
from sqlalchemy import Connection, Engine, text

log = structlog.get_logger(__name__)

#: The first half of syncd's two-key advisory locks ("sync" in ASCII), so that syncd's locks
#: never collide with another application's single-key locks on the same database.
SYNCD_LOCK_CLASS = 0x73796E63


class EnvironmentLocks(Protocol):
    def hold(self, environment_id: int) -> AbstractContextManager[bool]:
        """A context manager yielding True when this caller holds the environment's lock."""
        ...


def lock_key(environment_id: int) -> tuple[int, int]:
    """The (class, object) pair of int4 keys of an environment's advisory lock."""
    if not 0 <= environment_id <= 0x7FFFFFFF:
        raise ValueError(f"environment id {environment_id} does not fit an advisory lock key")
    return SYNCD_LOCK_CLASS, environment_id


def try_advisory_lock(conn: Connection, environment_id: int) -> bool:
    cls, obj = lock_key(environment_id)
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:c, :o)"), {"c": cls, "o": obj}).scalar())


def advisory_unlock(conn: Connection, environment_id: int) -> bool:
    cls, obj = lock_key(environment_id)
    return bool(conn.execute(text("SELECT pg_advisory_unlock(:c, :o)"), {"c": cls, "o": obj}).scalar())


class AdvisoryLocks:
    """PostgreSQL session-level advisory locks, one dedicated connection per held lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def hold(self, environment_id: int) -> Iterator[bool]:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = try_advisory_lock(conn, environment_id)
        except Exception:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            yield False
            return
        try:
            yield True
        finally:
            self._release(conn, environment_id)

    def _release(self, conn: Connection, environment_id: int) -> None:
        try:
            if not advisory_unlock(conn, environment_id):
                log.warning("advisory_lock_not_held", environment_id=environment_id)
                conn.invalidate()
        except Exception as exc:
            # The connection is unusable; dropping it makes the server release the lock.
            log.warning("advisory_unlock_failed", environment_id=environment_id, error=str(exc))
            conn.invalidate()
        finally:
            conn.close()


class LocalLocks:
    """In-process locks: enough for SQLite, where one process owns the database."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}

    @contextmanager
    def hold(self, environment_id: int) -> Iterator[bool]:
        with self._guard:
            lock = self._locks.setdefault(environment_id, threading.Lock())
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()


def locks_for(engine: Engine) -> AdvisoryLocks | LocalLocks:
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine)
    return LocalLocks()
