"""One run per environment at a time, across threads, processes and replicas.

Every holder of an environment's run lock takes it without waiting: the daemon's scheduled
runs and the admin API's (through ``SyncJobs``), `syncd sync`, and a change of security group
(`syncd env set`, ``PATCH /api/environments/{name}``). One that does not get it is refused (or
skips the tick); none waits.

On PostgreSQL a run holds a session-level advisory lock on a connection of its own, kept
open for the whole run: `pg_try_advisory_lock(SYNCD_LOCK_CLASS, environment_id)`. The lock
is released when the run ends, and by the server when the holder's connection dies (a
killed replica leaves no stale lock). A replica that does not get the lock skips the tick.

On a SQLite file, an in-process lock per environment (the threads of one daemon) and then an
OS file lock (``flock``) on ``<database file>.env-<id>.lock`` beside it (other processes). The
kernel drops the file lock with its holder's last descriptor, so a killed process leaves no
stale lock either; the lock file itself stays (removing a lock file others may have open
would break the exclusion). An in-memory SQLite database belongs to its process: the
in-process lock is enough.

Either way a holder knows that no other run of the environment is alive, so the run it starts
may close the environment's runs left 'running' (``RunOptions.holds_lock``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import structlog
from filelock import FileLock, Timeout
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
    """In-process locks: the threads of one process (and all of an in-memory SQLite database)."""

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


class FileLocks:
    """A SQLite file's locks: the in-process lock, then an OS file lock beside the database file.

    Each hold opens the lock file afresh (a filelock object is re-entrant: one shared between
    threads would let a second thread in); the in-process lock keeps this process's threads
    out before they touch the file, and ``flock`` on a new descriptor refuses any other holder,
    in this process or another.
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self._local = LocalLocks()

    def path(self, environment_id: int) -> Path:
        return lock_file(self.database, environment_id)

    @contextmanager
    def hold(self, environment_id: int) -> Iterator[bool]:
        with self._local.hold(environment_id) as held:
            if not held:
                yield False
                return
            # No fall-back to a "soft" lock (a file that exists while held): a killed holder would
            # leave it behind. A file system without flock fails here instead.
            lock = FileLock(
                self.path(environment_id), thread_local=False, blocking=False, fallback_to_soft=False
            )
            try:
                lock.acquire()
            except Timeout:
                yield False
                return
            try:
                yield True
            finally:
                lock.release()


def lock_file(database: Path, environment_id: int) -> Path:
    """The file an environment's run lock is taken on: ``<database file>.env-<id>.lock``."""
    return database.with_name(f"{database.name}.env-{environment_id}.lock")


def sqlite_file(engine: Engine) -> Path | None:
    """The SQLite database's file, absolute and with symbolic links resolved (so that every process
    names one lock file for it); None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a URI filename (?uri=true)
        database = database.removeprefix("file:").split("?", 1)[0]
        if not database or database == ":memory:":
            return None
    return Path(database).resolve()


def locks_for(engine: Engine) -> AdvisoryLocks | FileLocks | LocalLocks:
    """The environments' run locks on this engine's database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine)
    database = sqlite_file(engine)
    return LocalLocks() if database is None else FileLocks(database)
