"""Every holder of an environment's run lock, as real processes, on SQLite as on PostgreSQL.

`syncd sync`, `syncd env set` (a change of security group) and the daemon's runs take the
environment's lock; one that does not get it is refused and writes nothing. A holder killed
with SIGKILL leaves no stale lock, and the next run closes the run it left 'running'.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lock_holder import holding, kill
from procs import Proc, Stack, base_env, group_id, runs_of, syncd, wait_for
from sqlalchemy import text
from sqlalchemy.orm import Session

from syncd.dataverse import db
from syncd.dataverse.schema import SyncState

BUSY = (
    "syncd: error: environment 'prod' is being synced by another process (a `syncd run` replica?); "
    "try again when that run ends"
)
GROUP_BUSY = (
    "syncd: error: environment 'prod' is being synced; its security group can be changed when that run ends"
)


def environment(db_url: str, name: str = "prod") -> dict[str, Any]:
    engine = db.make_engine(db_url)
    with engine.connect() as c:
        row = c.execute(text("SELECT * FROM environment WHERE name = :n"), {"n": name}).mappings().one()
        state = c.execute(text("SELECT count(*) FROM sync_state WHERE environment_id = :e"), {"e": row["id"]})
        out = dict(row) | {"checkpoints": int(state.scalar_one())}
    engine.dispose()
    return out


def outcomes(db_url: str) -> list[str]:
    engine = db.make_engine(db_url)
    with engine.connect() as c:
        got = [str(r[0]) for r in c.execute(text("SELECT outcome FROM sync_run ORDER BY id"))]
    engine.dispose()
    return got


def assert_refused(proc: subprocess.CompletedProcess[str], line: str) -> None:
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines() == [line], proc.stderr


# -- a process holding the lock (light: no directory) ------------------------------------------


def test_env_set_group_refused_while_another_process_holds_the_lock(db_url: str, tmp_path: Path) -> None:
    """`syncd env set --no-security-group` while a run of another process holds the environment:
    exit 2, nothing changed (the group and the checkpoints stay); other settings don't wait."""
    base = base_env(
        SYNCD_DATABASE_URL=db_url,
        SYNCD_DIRECTORY_URL="http://127.0.0.1:9/v1.0",  # nothing listens: the group is not checked
        SYNCD_LOG_LEVEL="warning",
    )
    group = "00000000-0000-4000-8000-00000000a001"
    syncd(["env", "create", "prod", "--security-group", group], base, tmp_path)
    before = environment(db_url)
    engine = db.make_engine(db_url)
    with Session(engine) as session, session.begin():  # a checkpoint of the scope a new group would drop
        session.add(SyncState(environment_id=before["id"], key="users_delta_link", value="http://x/delta"))
    engine.dispose()
    with holding(db_url, before["id"]) as holder:
        refused = syncd(["env", "set", "prod", "--no-security-group"], base, tmp_path, check=False)
        assert_refused(refused, GROUP_BUSY)
        after = environment(db_url)
        assert after["security_group_id"] == group and after["checkpoints"] == 1
        # A setting that does not change the scope does not wait for the run.
        assert syncd(["env", "set", "prod", "--sales"], base, tmp_path).returncode == 0
        kill(holder)
    # The lock dies with its holder (on PostgreSQL once the server notices the dead connection).
    done = wait_for(
        lambda: syncd(["env", "set", "prod", "--no-security-group"], base, tmp_path, check=False).stdout,
        30,
        "the change of group after the holder was killed",
        0.2,
    )
    assert "the next run is a full run" in done
    after = environment(db_url)
    assert after["security_group_id"] is None and after["checkpoints"] == 0 and after["is_sales"]


# -- real runs against the fake Graph server ---------------------------------------------------


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, db_url, delta_interval=5)
    try:
        yield s
    finally:
        s.close()


def slow_directory(stack: Stack, users: int = 1200) -> str:
    """The fake Graph server, slow enough that a full run lasts several seconds; its main group."""
    stack.start_directory(users=users)
    with stack.graph_client() as g:
        group = group_id(g, "Dataverse Users")
    stack.create_env("prod", "--security-group", group)
    stack.sim("POST", "faults", {"latency_ms": 700})
    return group


def running(stack: Stack) -> bool:
    return any(r["outcome"] == "running" for r in runs_of(stack.engine()))


def spawn_sync(stack: Stack, name: str) -> Proc:
    proc = stack._spawn(name, ["sync", "prod", "--full"], stack.env(SYNCD_LOG_LEVEL="warning"))
    stack.daemons.append(proc)  # killed at the end of the test, like the daemons
    return proc


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_syncs_of_one_environment_one_runs_and_a_killed_one_is_closed(stack: Stack, db_url: str) -> None:
    """The newcomer's report on SQLite: two `syncd sync prod --full` at once both ran and created
    every user twice; a change of group mid-run was lost; a SIGKILLed run stayed 'running'."""
    group = slow_directory(stack)
    first = spawn_sync(stack, "first")
    wait_for(lambda: running(stack), 60, f"the first run:\n{first.tail()}", 0.02)
    env = stack.env(SYNCD_LOG_LEVEL="warning")
    assert_refused(syncd(["sync", "prod", "--full"], env, stack.workdir, check=False), BUSY)
    assert_refused(
        syncd(["env", "set", "prod", "--no-security-group"], env, stack.workdir, check=False), GROUP_BUSY
    )
    assert first.popen.wait(120) == 0, first.tail()
    assert outcomes(db_url) == ["succeeded"]
    with stack.engine().connect() as c:
        created = c.execute(text("SELECT created FROM sync_run")).scalar_one()
        creates = c.execute(text("SELECT count(*) FROM sync_event WHERE action = 'create'")).scalar_one()
        assert 0 < created == creates  # one run's creates, once each
    assert environment(db_url)["security_group_id"] == group

    killed = spawn_sync(stack, "killed")
    wait_for(lambda: running(stack), 60, f"the second run:\n{killed.tail()}", 0.02)
    killed.signal(signal.SIGKILL)
    killed.popen.wait(10)
    assert outcomes(db_url) == ["succeeded", "running"]
    stack.sim("DELETE", "faults")
    # On PostgreSQL the server may take a moment to notice the dead connection and drop its lock.
    wait_for(
        lambda: syncd(["sync", "prod", "--full"], env, stack.workdir, check=False).returncode == 0,
        30,
        "a run after the kill",
        0.2,
    )
    assert outcomes(db_url) == ["succeeded", "abandoned", "succeeded"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_daemons_run_holds_the_lock_and_a_killed_daemon_leaves_none(stack: Stack, db_url: str) -> None:
    slow_directory(stack)
    daemon, _ = stack.start_daemon()
    wait_for(lambda: running(stack), 60, f"the daemon's first run:\n{daemon.tail()}", 0.02)
    env = stack.env(SYNCD_LOG_LEVEL="warning")
    assert_refused(syncd(["sync", "prod"], env, stack.workdir, check=False), BUSY)
    assert_refused(
        syncd(["env", "set", "prod", "--no-security-group"], env, stack.workdir, check=False), GROUP_BUSY
    )
    assert running(stack), "the daemon's run was still in progress"
    daemon.signal(signal.SIGKILL)
    daemon.popen.wait(10)
    stack.sim("DELETE", "faults")
    wait_for(
        lambda: syncd(["sync", "prod", "--full"], env, stack.workdir, check=False).returncode == 0,
        30,
        "a run after the kill",
        0.2,
    )
    got = outcomes(db_url)
    assert got[-1] == "succeeded" and "running" not in got and "abandoned" in got, got
