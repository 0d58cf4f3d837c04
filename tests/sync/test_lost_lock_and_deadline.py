"""A run that loses its lock or its connection, and a run past its deadline (issue: one run per environment).

- On PostgreSQL a run writes on the connection whose session holds the environment's advisory lock:
  ended with ``pg_terminate_backend``, the run writes nothing more, a second run may go through, and
  the first one's row says ``failed`` with the reason, not ``running`` and not ``interrupted``.
- On both backends a run whose connection is lost records its true outcome on a fresh connection.
- A run has a deadline: a wait to retry Graph that would pass it, or a run still reading past it,
  ends the run as ``failed`` with the reason, the checkpoint unmoved and the lock free.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sync_helpers import make_env, run

from syncd.directory.client import GraphClient
from syncd.directory.fake.store import TenantStore
from syncd.service.locks import SYNCD_LOCK_CLASS, locks_for
from syncd.settings import Settings
from syncd.sync.run import RunOptions, RunReport, sync_environment

ENV = "prod"


def _env_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT id FROM environment WHERE name = :n"), {"n": ENV}).scalar_one())


def _runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, outcome, error, started_at, finished_at FROM sync_run ORDER BY id")
        ).mappings()
        return [dict(r) for r in rows]


def _events_of(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM sync_event WHERE run_id = :r"), {"r": run_id}
            ).scalar_one()
        )


def _state(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT key, value FROM sync_state")).all())  # type: ignore[arg-type]


def _faults(directory: GraphClient, **faults: Any) -> None:
    r = directory._http.post("http://fake-entra.local/_sim/faults", json=faults)
    assert r.status_code == 200, r.text


class Paused:
    """A progress hook that stops the run at its first call until released, after ``on_pause``."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, _what: str, _n: int) -> None:
        self.calls += 1
        if self.calls == 1:
            self.reached.set()
            assert self.release.wait(30), "the test never released the run"


def _in_thread(fn: Callable[[], RunReport]) -> tuple[threading.Thread, list[RunReport | BaseException]]:
    out: list[RunReport | BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # surfaced by the test
            out.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def test_a_run_that_lost_its_lock_writes_nothing_more_and_says_so(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant: dict[str, Any], settings: Settings
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "an advisory lock lives on a PostgreSQL session; a SQLite file lock dies only with its process"
        )
    make_env(engine, ENV)
    env_id = _env_id(engine)
    locks = locks_for(engine)
    paused = Paused()

    def first() -> RunReport:
        with locks.hold(env_id) as lease:
            assert lease is not None and lease.connection is not None
            return sync_environment(
                engine,
                directory,
                ENV,
                settings,
                RunOptions(kind="full", holds_lock=True),
                progress=paused,
                connection=lease.connection,
            )

    thread, out = _in_thread(first)
    assert paused.reached.wait(30), out
    first_run = _runs(engine)[0]
    events_before = _events_of(engine, first_run["id"])
    # End the session that holds the first run's lock, as an operator (or a failover) would.
    with engine.connect() as conn:
        pids = (
            conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :c AND objid = :o "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"c": SYNCD_LOCK_CLASS, "o": env_id},
            )
            .scalars()
            .all()
        )
        assert len(pids) == 1
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pids[0]}).scalar()
    # The lock is free: a second run of the environment takes it and completes.
    deadline = time.monotonic() + 10
    while True:
        with locks.hold(env_id) as lease:
            if lease is not None:
                second = sync_environment(
                    engine,
                    directory,
                    ENV,
                    settings,
                    RunOptions(kind="full", holds_lock=True),
                    connection=lease.connection,
                )
                break
        assert time.monotonic() < deadline, "the lock was never released"
        time.sleep(0.05)
    assert second.outcome == "succeeded", second.error
    paused.release.set()
    thread.join(30)
    report = out[0]
    assert isinstance(report, RunReport), report
    assert report.outcome == "failed"
    assert report.error is not None and "lost the database connection" in report.error
    assert "lock" in report.error
    # The first run wrote nothing after its lock was gone, and its row tells the truth.
    assert _events_of(engine, first_run["id"]) == events_before
    runs = {r["id"]: r for r in _runs(engine)}
    assert runs[first_run["id"]]["outcome"] == "failed"
    assert runs[first_run["id"]]["error"] == report.error
    assert runs[second.run_id]["outcome"] == "succeeded"  # type: ignore[index]
    # The two runs never overlap: the first ended (as far as writing goes) before the second began.
    assert runs[first_run["id"]]["finished_at"] <= runs[second.run_id]["started_at"]  # type: ignore[index]
    # Every user has one create event: no run wrote twice.
    with engine.connect() as conn:
        twice = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT azureactivedirectoryobjectid FROM sync_event WHERE action = 'create' "
                "GROUP BY azureactivedirectoryobjectid HAVING count(*) > 1) t"
            )
        ).scalar_one()
    assert twice == 0


def test_a_lost_connection_is_recorded_as_failed_not_left_running(
    engine: Engine, directory: GraphClient, tenant: dict[str, Any], settings: Settings
) -> None:
    make_env(engine, ENV)
    run(engine, directory, ENV, settings)  # a checkpoint: the next run is a delta run
    state = _state(engine)
    store_churn = directory._http.post("http://fake-entra.local/_sim/churn", json={"changes": 10, "seed": 3})
    assert store_churn.status_code == 200, store_churn.text
    raw = engine.raw_connection()
    conn = raw.driver_connection

    def lose(_what: str, _n: int) -> None:
        if engine.dialect.name == "postgresql":
            with engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": conn.info.backend_pid})
        else:
            conn.close()

    try:
        report = sync_environment(
            engine, directory, ENV, settings, RunOptions(), progress=lose, connection=conn
        )
    finally:
        raw.invalidate()
        raw.close()
    assert report.outcome == "failed", report
    runs = _runs(engine)
    assert [r["outcome"] for r in runs] == ["succeeded", "failed"]
    assert runs[-1]["error"] == report.error and runs[-1]["finished_at"] is not None
    assert _state(engine) == state  # the checkpoint did not move
    assert run(engine, directory, ENV, settings).outcome == "succeeded"


@pytest.mark.parametrize("kind", ["delta", "full"])
def test_a_wait_past_the_deadline_fails_the_run_and_frees_the_lock(
    kind: str, engine: Engine, directory: GraphClient, tenant: dict[str, Any], settings: Settings
) -> None:
    make_env(engine, ENV)
    run(engine, directory, ENV, settings)
    state = _state(engine)
    settings = settings.model_copy(
        update={"delta_run_deadline_seconds": 60, "full_run_deadline_seconds": 120}
    )
    # Graph throttles every request and asks for 5 minutes (the most the client waits per attempt);
    # the run's deadline is sooner.
    _faults(directory, throttle_ratio=1.0, retry_after=300)
    env_id = _env_id(engine)
    locks = locks_for(engine)
    started = time.monotonic()
    with locks.hold(env_id) as lease:
        assert lease is not None
        report = sync_environment(
            engine,
            directory,
            ENV,
            settings,
            RunOptions(kind=kind, holds_lock=True),
            connection=lease.connection,
        )
    assert time.monotonic() - started < 30, "the run waited instead of stopping at its deadline"
    assert report.outcome == "failed"
    budget = settings.delta_run_deadline_seconds if kind == "delta" else settings.full_run_deadline_seconds
    assert report.error is not None
    assert f"deadline of the {kind} run ({budget} s)" in report.error, report.error
    assert "HTTP 429" in report.error and "checkpoint did not move" in report.error
    assert _runs(engine)[-1]["outcome"] == "failed" and _runs(engine)[-1]["error"] == report.error
    assert _state(engine) == state
    with locks.hold(env_id) as again:
        assert again is not None, "the lock was not freed"
    _faults(directory)
    assert directory.deadline is None  # the client is left as it was found


def test_a_run_still_reading_at_its_deadline_fails(
    engine: Engine,
    directory: GraphClient,
    tenant: dict[str, Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_env(engine, ENV)
    real = time.monotonic
    skew = [0.0]

    def clock() -> float:
        return real() + skew[0]

    def late(_what: str, _n: int) -> None:
        skew[0] = settings.full_run_deadline_seconds + 1.0  # the read has taken longer than the budget

    monkeypatch.setattr("syncd.sync.run.time.monotonic", clock)
    report = sync_environment(engine, directory, ENV, settings, RunOptions(kind="full"), progress=late)
    assert report.outcome == "failed"
    assert report.error == (
        f"the full run passed its deadline of {settings.full_run_deadline_seconds} s "
        "(the full_run_deadline_seconds setting); stopped, the checkpoint did not move"
    )
    assert _state(engine) == {}
    assert _runs(engine)[-1]["outcome"] == "failed"


def test_a_connection_lost_before_the_run_row_is_written_is_a_failed_report(
    engine: Engine, directory: GraphClient, tenant: dict[str, Any], settings: Settings
) -> None:
    """The lock's connection may die between taking the lock and the run's first statement: the run
    reports failed (no traceback) and leaves no row behind."""
    make_env(engine, ENV)
    raw = engine.raw_connection()
    conn = raw.driver_connection
    if engine.dialect.name == "postgresql":
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": conn.info.backend_pid})
    else:
        conn.close()
    try:
        report = sync_environment(engine, directory, ENV, settings, RunOptions(), connection=conn)
    finally:
        raw.invalidate()
        raw.close()
    assert report.outcome == "failed" and report.run_id is None
    assert report.error is not None
    assert _runs(engine) == []
