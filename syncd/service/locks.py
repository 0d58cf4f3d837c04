"""One run per environment at a time, across threads, processes and replicas.

Every holder of an environment's run lock takes it without waiting: the daemon's scheduled
runs and the admin API's (through ``SyncJobs``), `syncd sync`, and a change of security group
(`syncd env set`, ``PATCH /api/environments/{name}``). One that does not get it is refused (or
skips the tick); none waits.

On PostgreSQL a run holds a session-level advisory lock,
`pg_try_advisory_lock(SYNCD_LOCK_CLASS, environment_id)`, on the connection it writes on: the
lease (:class:`Lease`) hands that connection to the run, which writes on it and on no other. The
lock is released when the run ends, and by the server when the session ends (a killed replica, a
dropped connection, `pg_terminate_backend`): a run that lost its lock has lost the connection it
writes on with it, so its next statement fails and it can never write without the lock. A replica
that does not get the lock skips the tick.

On a SQLite file, an in-process lock per environment (the threads of one daemon) and then an
OS file lock (``flock``) on ``<database file>.env-<id>.lock`` beside it (other processes). The
kernel drops the file lock with its holder's last descriptor, so a killed process leaves no
stale lock either; the lock file itself stays (removing a lock file others may have open
would break the exclusion). An in-memory SQLite database belongs to its process: the
in-process lock is enough.

Either way a holder knows that no other run of the environment is alive, so the run it starts
may close the environment's runs left 'running' (``RunOptions.holds_lock``), as 'abandoned'.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

if TYPE_CHECKING:
    from sqlalchemy import Engine

from syncd.dataverse.db import sqlite_file
from syncd.errors import ConfigError

log = structlog.get_logger(__name__)

#: The first half of syncd's two-key advisory locks ("sync" in ASCII), so that syncd's locks
#: never collide with another application's single-key locks on the same database.
SYNCD_LOCK_CLASS = 0x73796E63


@dataclass(frozen=True)
class Lease:
    """An environment's run lock, held. Always true; a lock not got is None.

    ``connection``: on PostgreSQL, the DB-API (psycopg) connection whose session holds the advisory
    lock, in its default transactional mode and with no transaction open. A run under this lease
    writes on it and on nothing else (``sync_environment(connection=...)``). None for file and
    in-process locks, whose holder may write on any connection.
    """

    environment_id: int
    connection: Any | None = None


class EnvironmentLocks(Protocol):
    def hold(self, environment_id: int) -> AbstractContextManager[Lease | None]:
        """A context manager yielding the lease when this caller holds the environment's lock, else None."""
        ...


def lock_key(environment_id: int) -> tuple[int, int]:
    """The (class, object) pair of int4 keys of an environment's advisory lock."""
    if not 0 <= environment_id <= 0x7FFFFFFF:
        raise ValueError(f"environment id {environment_id} does not fit an advisory lock key")
    return SYNCD_LOCK_CLASS, environment_id


def _advisory(dbapi: Any, function: str, environment_id: int) -> bool:
    """``SELECT function(class, object)`` on a psycopg connection, committed; its boolean result."""
    cls, obj = lock_key(environment_id)
    with dbapi.cursor() as cur:
        cur.execute(f"SELECT {function}(%s, %s)", (cls, obj))
        row = cur.fetchone()
    dbapi.commit()
    return bool(row[0])


class AdvisoryLocks:
    """PostgreSQL session-level advisory locks, each on the connection its run writes on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def hold(self, environment_id: int) -> Iterator[Lease | None]:
        raw = self.engine.raw_connection()
        try:
            got = _advisory(raw.driver_connection, "pg_try_advisory_lock", environment_id)
        except Exception:
            raw.invalidate()
            raw.close()
            raise
        if not got:
            raw.close()
            yield None
            return
        try:
            yield Lease(environment_id, raw.driver_connection)
        finally:
            self._release(raw, environment_id)

    def _release(self, raw: Any, environment_id: int) -> None:
        try:
            raw.driver_connection.rollback()  # whatever the holder left open
            if not _advisory(raw.driver_connection, "pg_advisory_unlock", environment_id):
                # The session that took the lock is gone (the server released it with the session).
                log.warning("advisory_lock_not_held", environment_id=environment_id)
                raw.invalidate()
        except Exception as exc:
            # The connection is unusable; dropping it makes the server release the lock.
            log.warning("advisory_unlock_failed", environment_id=environment_id, error=str(exc)[:300])
            raw.invalidate()
        finally:
            raw.close()


class LocalLocks:
    """In-process locks: the threads of one process (and all of an in-memory SQLite database)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}

    @contextmanager
    def hold(self, environment_id: int) -> Iterator[Lease | None]:
        with self._guard:
            lock = self._locks.setdefault(environment_id, threading.Lock())
        if not lock.acquire(blocking=False):
            yield None
            return
        try:
            yield Lease(environment_id)
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
    def hold(self, environment_id: int) -> Iterator[Lease | None]:
        with self._local.hold(environment_id) as held:
            if not held:
                yield None
                return
            # Imported here: only a SQLite file's runs take a file lock.
            from filelock import FileLock, Timeout

            # No fall-back to a "soft" lock (a file that exists while held): a killed holder would
            # leave it behind. A file system without flock fails here instead.
            lock = FileLock(
                self.path(environment_id), thread_local=False, blocking=False, fallback_to_soft=False
            )
            try:
                lock.acquire()
            except Timeout:
                yield None
                return
            except OSError as exc:  # a folder in the way, no permission, no flock on this file system
                raise ConfigError(
                    f"cannot take the run lock file {str(self.path(environment_id))!r}: "
                    f"{exc.strerror or exc}; it must be a file syncd can create and lock beside the database"
                ) from None
            try:
                yield held
            finally:
                lock.release()


def lock_file(database: Path, environment_id: int) -> Path:
    """The file an environment's run lock is taken on: ``<database file>.env-<id>.lock``."""
    return database.with_name(f"{database.name}.env-{environment_id}.lock")


def locks_for(engine: Engine) -> AdvisoryLocks | FileLocks | LocalLocks:
    """The environments' run locks on this engine's database."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLocks(engine)
    database = sqlite_file(engine)
    return LocalLocks() if database is None else FileLocks(database)
