"""The daemon as real processes on PostgreSQL, against the fake Graph server over HTTP.

End to end: a directory change reaches the SystemUser row within two delta intervals.
Replicas: three daemons share several environments, one is SIGKILLed mid-run, and still
every environment syncs, no two runs of one environment overlap, and nothing is lost.
SIGTERM mid-run exits 0, and a restart converges.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from procs import (
    Stack,
    admin_ids,
    disable_user,
    enabled_regular_users,
    group_id,
    is_disabled,
    pg_database,
    remove_licences,
    remove_member,
    runs_of,
    syncd,
    wait_for,
)
from sqlalchemy import text

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(240)]

INTERVAL = 5
#: The error of a run closed by a later run of its environment (the process running it had died).
REAPED = "the process running it ended before it finished"


@pytest.fixture
def stack(pg_server: str, tmp_path: Path) -> Iterator[Stack]:
    with pg_database(pg_server) as url:
        s = Stack(tmp_path, url.replace("postgresql+psycopg://", "postgresql://", 1), delta_interval=INTERVAL)
        try:
            yield s
        finally:
            s.close()


def succeeded_runs(stack: Stack, env: str, after_id: int = 0) -> list[dict[str, Any]]:
    return [
        r
        for r in runs_of(stack.engine())
        if r["environment"] == env and r["outcome"] == "succeeded" and r["id"] > after_id
    ]


def last_run_id(stack: Stack) -> int:
    runs = runs_of(stack.engine())
    return runs[-1]["id"] if runs else 0


def assert_converged(stack: Stack, envs: list[str]) -> None:
    """A full run would change nothing (no lost rows), and no object id has two rows (no duplicates)."""
    with stack.engine().connect() as conn:
        dupes = conn.execute(
            text(
                "SELECT environment_id, azureactivedirectoryobjectid, count(*) FROM systemuser "
                "WHERE azureactivedirectoryobjectid IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1"
            )
        ).all()
    assert dupes == []
    for env in envs:
        proc = syncd(["sync", env, "--full", "--check"], stack.env(), stack.workdir, check=False)
        assert proc.returncode == 0, f"{env}: a full run would still change rows:\n{proc.stdout[-3000:]}"


def test_directory_change_reaches_the_row_within_two_intervals(stack: Stack) -> None:
    stack.start_directory(users=400)
    stack.upgrade()
    with stack.graph_client() as g:
        main_group = group_id(g, "Dataverse Users")
        admins = admin_ids(g)
    stack.create_env("scoped", "--security-group", main_group)
    daemon, port = stack.start_daemon()
    wait_for(lambda: succeeded_runs(stack, "scoped"), 60, "the first run")
    users = enabled_regular_users(stack.engine(), "scoped", admins)
    assert len(users) >= 3, users

    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["environments"] == {"scoped": "succeeded"}
    assert "syncd_runs_total" in http.get("/metrics").text
    assert "scoped" in http.get("/").text

    with stack.graph_client() as g:
        changes = [
            (users[0], lambda u: disable_user(g, u)),
            (users[1], lambda u: remove_licences(g, u)),
            (users[2], lambda u: remove_member(g, main_group, u)),
        ]
        for user, change in changes:
            change(user)
            changed_at = time.monotonic()
            wait_for(
                lambda u=user: is_disabled(stack.engine(), "scoped", u),
                2 * INTERVAL,
                f"{user} disabled",
                0.05,
            )
            assert time.monotonic() - changed_at <= 2 * INTERVAL

    metrics = http.get("/metrics").text
    assert 'syncd_runs_total{environment="scoped",kind="delta",outcome="succeeded"}' in metrics
    assert 'syncd_directory_requests_total{status="200"}' in metrics
    http.close()
    assert daemon.stop() == 0, daemon.tail()


def test_three_replicas_one_killed_mid_run(stack: Stack) -> None:
    envs = ["env-a", "env-b", "env-c", "env-d"]
    stack.start_directory(users=1500)
    stack.upgrade()
    for env in envs:
        stack.create_env(env)
    # Slow answers, so runs last long enough to overlap and to be killed in the middle of one.
    stack.sim("POST", "faults", {"latency_ms": 120})
    replicas = [stack.start_daemon(f"replica-{i}")[0] for i in (1, 2, 3)]

    def holder() -> str | None:
        with stack.engine().connect() as conn:
            return conn.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 1937337955 "
                    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND a.application_name LIKE 'replica-%' LIMIT 1"
                )
            ).scalar()

    victim_name = wait_for(holder, 60, "a replica in the middle of a run", 0.02)
    victim = next(r for r in replicas if r.name == victim_name)
    killed_at = datetime.now(UTC)  # taken before the kill: the victim's runs end no earlier
    victim.signal(signal.SIGKILL)
    victim.popen.wait(10)
    mark = last_run_id(stack)

    stack.sim("POST", "churn", {"changes": 60, "seed": 3})
    for env in envs:
        wait_for(lambda e=env: succeeded_runs(stack, e, mark), 90, f"{env} synced after the kill")
    time.sleep(INTERVAL)  # and once more, picking up the churn everywhere
    for env in envs:
        wait_for(lambda e=env: succeeded_runs(stack, e, last_run_id(stack) - 50), 60, f"{env} synced again")
    for r in replicas:
        if r is not victim:
            assert r.stop() == 0, r.tail()

    runs = runs_of(stack.engine())
    # The killed replica's runs never finished: each is left 'running', or closed ('abandoned') by
    # the next run of its environment, which stamps it when it finds it, just after its own start.
    dead = [r for r in runs if r["outcome"] == "running" or r["error"] == REAPED]
    by_env: dict[str, list[tuple[datetime, datetime]]] = {}
    for r in runs:
        end = killed_at if r in dead else r["finished_at"]
        by_env.setdefault(r["environment"], []).append((r["started_at"], end))
    # Only the killed replica's runs (it may have been running several environments) never finished.
    assert len({r["environment"] for r in dead}) == len(dead)
    assert all(r["started_at"] <= killed_at for r in dead)
    for env, spans in by_env.items():
        spans.sort()
        for (s1, e1), (s2, _) in zip(spans, spans[1:], strict=False):
            assert e1 <= s2, f"two runs of {env} overlap: {s1}..{e1} and {s2}"
    assert set(by_env) == set(envs)
    stack.sim("DELETE", "faults")
    assert_converged(stack, envs)


def test_sigterm_mid_run_exits_0_and_a_restart_converges(stack: Stack) -> None:
    stack.start_directory(users=3000)
    stack.upgrade()
    stack.create_env("prod")
    stack.sim("POST", "faults", {"latency_ms": 400})
    daemon, _ = stack.start_daemon()

    def running() -> bool:
        return any(r["outcome"] == "running" for r in runs_of(stack.engine()))

    wait_for(running, 60, "a run in progress", 0.05)
    time.sleep(0.5)
    assert daemon.stop(timeout=30) == 0, daemon.tail()
    runs = runs_of(stack.engine())
    assert runs and all(r["outcome"] != "running" for r in runs), runs
    assert runs[-1]["outcome"] == "interrupted", runs[-1]

    stack.sim("DELETE", "faults")
    stack.sim("POST", "churn", {"changes": 40, "seed": 5})
    mark = last_run_id(stack)
    again, _ = stack.start_daemon("restarted")
    wait_for(lambda: len(succeeded_runs(stack, "prod", mark)) >= 2, 60, "runs after the restart")
    assert again.stop() == 0, again.tail()
    assert_converged(stack, ["prod"])
