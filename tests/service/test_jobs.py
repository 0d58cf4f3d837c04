"""A scheduled run under the environment's lock: skips, pending full runs, metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from service_helpers import FakeSync, add_env, add_run
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from syncd.dataverse.schema import SyncRun
from syncd.service.jobs import EnvironmentBusy, RunRequest, SyncJobs
from syncd.service.locks import locks_for
from syncd.service.metrics import Metrics
from syncd.service.scheduler import Target


@pytest.fixture
def env(engine: Engine) -> Target:
    return Target(add_env(engine, "prod"), "prod")


@pytest.fixture
def jobs(engine: Engine) -> Iterator[SyncJobs]:
    yield SyncJobs(lambda: engine, locks_for(engine), FakeSync(engine), Metrics(), threading.Event())


def sync_of(jobs: SyncJobs) -> FakeSync:
    assert isinstance(jobs.sync, FakeSync)
    return jobs.sync


def counter(jobs: SyncJobs, name: str, **labels: str) -> float:
    return jobs.metrics.registry.get_sample_value(name, labels) or 0.0


def test_scheduled_run_goes_through_and_is_counted(jobs: SyncJobs, env: Target) -> None:
    report = jobs.scheduled(env, "auto")
    assert report.outcome == "succeeded"
    assert sync_of(jobs).calls[0][1] == RunRequest(kind="auto", trigger="schedule")
    assert counter(jobs, "syncd_runs_total", environment="prod", kind="full", outcome="succeeded") == 1


def test_busy_environment_is_skipped_and_a_skipped_full_stays_pending(
    jobs: SyncJobs, env: Target, engine: Engine
) -> None:
    with jobs.locks.hold(env.id) as held:
        assert held
        assert jobs.scheduled(env, "full") is None
        assert jobs.scheduled(env, "auto") is None
        with pytest.raises(EnvironmentBusy):
            jobs.run(env, RunRequest(kind="delta", trigger="api"))
    assert sync_of(jobs).calls == []
    assert counter(jobs, "syncd_runs_skipped_total", environment="prod", reason="locked") == 2
    assert env.id in jobs.full_pending()
    # The next delta tick runs the full run that was skipped, then the pending mark is gone.
    jobs.scheduled(env, "auto")
    assert sync_of(jobs).calls[-1][1].kind == "full"
    assert jobs.full_pending() == {}


def test_pending_full_dropped_when_another_replica_ran_one(
    jobs: SyncJobs, env: Target, engine: Engine
) -> None:
    with jobs.locks.hold(env.id):
        jobs.scheduled(env, "full")
    add_run(engine, env.id, kind="full")  # another replica's full run, after the skip
    jobs.scheduled(env, "auto")
    assert sync_of(jobs).calls[-1][1].kind == "auto"
    assert jobs.full_pending() == {}


def test_delta_skipped_right_after_another_run(engine: Engine, env: Target) -> None:
    jobs = SyncJobs(
        lambda: engine, locks_for(engine), FakeSync(engine), Metrics(), threading.Event(), min_gap_s=30
    )
    add_run(engine, env.id, ago_s=0)
    assert jobs.scheduled(env, "auto") is None
    assert counter(jobs, "syncd_runs_skipped_total", environment="prod", reason="recent") == 1
    # An explicit full run or an API run is never skipped for that.
    assert jobs.scheduled(env, "full") is not None
    assert jobs.run(env, RunRequest(kind="delta", trigger="api")) is not None


def test_no_scheduled_run_once_stopping(jobs: SyncJobs, env: Target) -> None:
    jobs.stop.set()
    assert jobs.scheduled(env, "auto") is None
    assert sync_of(jobs).calls == []


def test_a_raising_sync_is_counted_and_releases_the_lock(engine: Engine, env: Target) -> None:
    def boom(target: Target, request: RunRequest, stop: threading.Event, lease: object) -> None:
        raise RuntimeError("engine bug")

    jobs = SyncJobs(lambda: engine, locks_for(engine), boom, Metrics(), threading.Event())
    with pytest.raises(RuntimeError):
        jobs.scheduled(env, "auto")
    assert counter(jobs, "syncd_runs_total", environment="prod", kind="auto", outcome="error") == 1
    with jobs.locks.hold(env.id) as held:
        assert held


def test_a_partial_run_is_counted_under_its_own_outcome(engine: Engine, env: Target) -> None:
    # A run in which some rows failed reports "partial" (the engine's report is faked here).
    jobs = SyncJobs(
        lambda: engine, locks_for(engine), FakeSync(outcome="partial"), Metrics(), threading.Event()
    )
    with jobs.locks.hold(env.id):
        assert jobs.scheduled(env, "full") is None  # skipped: a full run is pending
    assert env.id in jobs.full_pending()
    assert jobs.scheduled(env, "auto").outcome == "partial"
    assert jobs.full_pending() == {}  # it read the directory to its end: the pending full run is done
    assert counter(jobs, "syncd_runs_total", environment="prod", kind="full", outcome="partial") == 1
    assert counter(jobs, "syncd_runs_total", environment="prod", kind="full", outcome="succeeded") == 0
    jobs.metrics.observe_run("prod", "full", "sideways", 0.1)  # an outcome nobody knows: one label for all
    assert counter(jobs, "syncd_runs_total", environment="prod", kind="full", outcome="unknown") == 1


def test_replicas_run_one_scheduled_full_run_per_interval(engine: Engine, env: Target) -> None:
    """Three replicas whose full-run timers fire one after another (each after the previous run ended)
    run one full run between them: the database, not each process, says when a full run is due."""
    sync = FakeSync(engine)
    replicas = [
        SyncJobs(lambda: engine, locks_for(engine), sync, Metrics(), threading.Event(), min_full_gap_s=30)
        for _ in range(3)
    ]
    reports = [r.scheduled(env, "full") for r in replicas]
    assert [rep is not None for rep in reports] == [True, False, False]
    assert [req.kind for _, req in sync.calls] == ["full"]
    for r in replicas[1:]:
        assert counter(r, "syncd_runs_skipped_total", environment="prod", reason="recent") == 1
    # A person's full run counts as well; a failed full run does not.
    other = SyncJobs(
        lambda: engine, locks_for(engine), FakeSync(engine), Metrics(), threading.Event(), min_full_gap_s=30
    )
    with Session(engine) as session, session.begin():
        session.execute(delete(SyncRun))
    add_run(engine, env.id, kind="full", outcome="failed", ago_s=1)
    assert other.scheduled(env, "full") is not None
    # Once the gap has passed, the next scheduled full run goes through.
    with Session(engine) as session, session.begin():
        session.execute(delete(SyncRun))
    add_run(engine, env.id, kind="full", ago_s=31)
    assert replicas[1].scheduled(env, "full") is not None
    # An explicit full run (the API's, a person's) is never skipped for that.
    assert replicas[2].run(env, RunRequest(kind="full", trigger="api")) is not None


def test_a_full_run_skipped_as_locked_just_after_another_full_run_stays_not_due(
    engine: Engine, env: Target
) -> None:
    """A replica's full tick that finds the lock still held by a full run that has already recorded
    its end is not promoted into a second full run by the next delta tick."""
    jobs = SyncJobs(
        lambda: engine, locks_for(engine), FakeSync(engine), Metrics(), threading.Event(), min_full_gap_s=30
    )
    add_run(engine, env.id, kind="full", ago_s=0.5)  # another replica's full run, its row closed
    with jobs.locks.hold(env.id):  # ...and its lock not yet released
        assert jobs.scheduled(env, "full") is None
    assert env.id in jobs.full_pending()
    jobs.scheduled(env, "auto")
    assert [req.kind for _, req in sync_of(jobs).calls] == ["auto"]
    assert jobs.full_pending() == {}
