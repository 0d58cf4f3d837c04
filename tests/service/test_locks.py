"""One run per environment: PostgreSQL advisory locks across connections; on a SQLite file, an
in-process lock and a file lock beside the database; in-process locks for an in-memory database."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lock_holder import holding, kill
from sqlalchemy import Engine, create_engine, text

from syncd.dataverse import db
from syncd.service.locks import (
    SYNCD_LOCK_CLASS,
    AdvisoryLocks,
    FileLocks,
    LocalLocks,
    lock_key,
    locks_for,
    sqlite_file,
)


@pytest.fixture
def pg_engines(pg_server: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines (as two replicas would have) on one PostgreSQL database."""
    a, b = db.make_engine(pg_server), db.make_engine(pg_server)
    yield a, b
    a.dispose()
    b.dispose()


def env_id() -> int:
    return random.randrange(1_000_000, 2_000_000_000)


def holders(engine: Engine, environment_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :c AND objid = :o "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"c": SYNCD_LOCK_CLASS, "o": environment_id},
            ).scalar_one()
        )


def test_lock_key_is_the_syncd_class_and_the_environment_id() -> None:
    assert lock_key(42) == (SYNCD_LOCK_CLASS, 42)
    with pytest.raises(ValueError):
        lock_key(2**31)


def test_second_replica_cannot_take_a_held_lock(pg_engines: tuple[Engine, Engine]) -> None:
    a, b = pg_engines
    env = env_id()
    with AdvisoryLocks(a).hold(env) as got_a:
        assert got_a
        assert holders(a, env) == 1
        with AdvisoryLocks(b).hold(env) as got_b:
            assert not got_b
        # The same replica's second run of the environment is refused too (a new connection each run).
        with AdvisoryLocks(a).hold(env) as again:
            assert not again
        with AdvisoryLocks(b).hold(env + 1) as other_env:
            assert other_env
    assert holders(a, env) == 0
    with AdvisoryLocks(b).hold(env) as got_b:
        assert got_b


def test_released_on_error_inside_the_run(pg_engines: tuple[Engine, Engine]) -> None:
    a, b = pg_engines
    env = env_id()
    with pytest.raises(RuntimeError), AdvisoryLocks(a).hold(env) as got:
        assert got
        raise RuntimeError("run failed")
    with AdvisoryLocks(b).hold(env) as got_b:
        assert got_b


def test_closing_the_holders_connection_releases_it(pg_server: str) -> None:
    env = env_id()
    holder = db.make_engine(pg_server)
    other = db.make_engine(pg_server)
    try:
        conn = holder.connect().execution_options(isolation_level="AUTOCOMMIT")
        assert conn.execute(
            text("SELECT pg_try_advisory_lock(:c, :o)"), {"c": SYNCD_LOCK_CLASS, "o": env}
        ).scalar()
        with AdvisoryLocks(other).hold(env) as got:
            assert not got
        conn.invalidate()  # the socket is closed, as when the holder's process ends
        conn.close()

        def free() -> bool:
            with AdvisoryLocks(other).hold(env) as got:
                return got is not None

        # The server notices the closed socket on its own time (its backend ends, then the lock goes).
        deadline = time.monotonic() + 10
        while not free():
            assert time.monotonic() < deadline, "the lock outlived its holder's connection by 10 s"
            time.sleep(0.05)
    finally:
        holder.dispose()
        other.dispose()


def test_killing_the_holders_backend_releases_it(pg_engines: tuple[Engine, Engine]) -> None:
    """A replica that dies mid-run (SIGKILL, lost network) leaves no stale lock behind."""
    a, b = pg_engines
    env = env_id()
    locked = threading.Event()
    release = threading.Event()

    def hold() -> None:
        try:
            with AdvisoryLocks(a).hold(env) as got:
                assert got
                locked.set()
                release.wait(10)
        except Exception:
            pass  # the connection was killed under us; releasing it fails, as it would in a dead replica

    t = threading.Thread(target=hold)
    t.start()
    assert locked.wait(10)
    with AdvisoryLocks(b).hold(env) as got:
        assert not got
    with b.connect() as conn:
        pid = conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :c AND objid = :o "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"c": SYNCD_LOCK_CLASS, "o": env},
        ).scalar_one()
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    for _ in range(100):
        if holders(b, env) == 0:
            break
        threading.Event().wait(0.05)
    with AdvisoryLocks(b).hold(env) as got:
        assert got
    release.set()
    t.join(10)


def test_local_locks_one_holder_per_environment() -> None:
    locks = LocalLocks()
    with locks.hold(1) as first:
        assert first
        with locks.hold(1) as second:
            assert not second
        with locks.hold(2) as other:
            assert other
    with locks.hold(1) as again:
        assert again


def test_locks_for_picks_by_backend(engine: Engine) -> None:
    chosen = locks_for(engine)
    assert isinstance(chosen, AdvisoryLocks if engine.dialect.name == "postgresql" else FileLocks)


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:mem?mode=memory&uri=true"]
)
def test_an_in_memory_sqlite_database_keeps_the_in_process_lock(url: str) -> None:
    engine = create_engine(url)
    assert sqlite_file(engine) is None and isinstance(locks_for(engine), LocalLocks)
    engine.dispose()


def test_the_lock_file_lies_beside_the_database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    real = (tmp_path / "data" / "syncd.db").resolve()
    # Every spelling of one database file names one lock file, whatever the process's folder.
    for url in (
        "sqlite:///./data/syncd.db",
        f"sqlite:///{tmp_path}/link/syncd.db",
        f"sqlite:///file:{real}?uri=true",
    ):
        locks = locks_for(create_engine(url))
        assert isinstance(locks, FileLocks) and locks.path(7) == real.with_name("syncd.db.env-7.lock"), url
    with locks_for(create_engine("sqlite:///./data/syncd.db")).hold(7) as held:
        assert held and (tmp_path / "data" / "syncd.db.env-7.lock").exists()


def test_file_locks_one_holder_per_environment_in_one_process(tmp_path: Path) -> None:
    """Two lock sets on one file (the daemon's and a command's in one process) and two threads of one
    set exclude each other; the lock file stays after release, and takes the lock again."""
    database = tmp_path / "syncd.db"
    a, b = FileLocks(database), FileLocks(database)
    with a.hold(1) as first:
        assert first
        with a.hold(1) as same_set, b.hold(1) as other_set:
            assert not same_set and not other_set
        with b.hold(2) as other_env:
            assert other_env
        got: list[bool] = []

        def another_thread() -> None:
            with a.hold(1) as held:
                got.append(bool(held))

        t = threading.Thread(target=another_thread)
        t.start()
        t.join(10)
        assert got == [False]
    assert a.path(1).exists()
    with b.hold(1) as again, a.hold(1) as not_twice:
        assert again and not not_twice
    with pytest.raises(RuntimeError), a.hold(1) as held:
        assert held
        raise RuntimeError("run failed")
    with b.hold(1) as after_error:
        assert after_error


def test_a_file_lock_held_by_another_process_dies_with_it(db_url: str, db_backend: str) -> None:
    """Another process holds the lock: refused here; SIGKILLed, it leaves no stale lock (on
    PostgreSQL the server notices the dead connection a moment later)."""
    engine = db.make_engine(db_url)
    env = env_id() if db_backend == "postgresql" else 3
    try:
        with holding(db_url, env) as holder:
            with locks_for(engine).hold(env) as got:
                assert not got
            with locks_for(engine).hold(env + 1) as other_env:
                assert other_env
            kill(holder)
            for _ in range(200):
                with locks_for(engine).hold(env) as got:
                    if got:
                        break
                threading.Event().wait(0.05)
            assert got
    finally:
        engine.dispose()


def test_an_unusable_lock_file_is_a_one_line_error(tmp_path: Path) -> None:
    from syncd.errors import ConfigError

    database = tmp_path / "syncd.db"
    locks = FileLocks(database)
    locks.path(1).mkdir()  # a folder where the lock file goes
    with (
        pytest.raises(ConfigError, match=r"cannot take the run lock file '.*syncd\.db\.env-1\.lock': "),
        locks.hold(1),
    ):
        pass
    with locks.hold(2) as other:  # other environments are not affected
        assert other
