"""One run per environment: PostgreSQL advisory locks across connections, in-process locks on SQLite."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from syncd.dataverse import db
from syncd.service.locks import SYNCD_LOCK_CLASS, AdvisoryLocks, LocalLocks, lock_key, locks_for


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
                    "AND classid = :c AND objid = :o"
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
        with AdvisoryLocks(other).hold(env) as got:
            assert got
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
            text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :c AND objid = :o"),
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
    assert isinstance(chosen, AdvisoryLocks if engine.dialect.name == "postgresql" else LocalLocks)
