"""The schedule, with an injected job: fixed ids, one instance, coalescing, errors logged, rescans."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from syncd.service.scheduler import RESCAN_JOB_ID, SyncScheduler, Target

A = Target(1, "alpha")
B = Target(2, "beta")


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Recorder:
    def __init__(self, delay: float = 0.0, fail_first: int = 0) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.delay = delay
        self.fail_first = fail_first
        self.running = 0
        self.max_running: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, target: Target, kind: str, trigger: str) -> None:
        key = f"{kind}:{target.name}"
        with self.lock:
            self.calls.append((target.name, kind, trigger))
            self.running += 1
            self.max_running[key] = max(self.max_running.get(key, 0), self.running)
            n = len(self.calls)
        try:
            if self.delay:
                time.sleep(self.delay)
            if n <= self.fail_first:
                raise RuntimeError(f"boom {n}")
        finally:
            with self.lock:
                self.running -= 1

    def count(self, name: str, kind: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c[0] == name and c[1] == kind)


@pytest.fixture
def make() -> Iterator[Callable[..., SyncScheduler]]:
    made: list[SyncScheduler] = []

    def _make(job: Recorder, targets: Callable[[], list[Target]], **kw: float) -> SyncScheduler:
        opts: dict[str, float] = {"delta_interval_s": 0.2, "full_interval_s": 3600.0, "delta_jitter_s": 0.0}
        opts.update(kw)
        s = SyncScheduler(job, targets, **opts)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield _make
    for s in made:
        s.shutdown(wait=True)


def test_fixed_job_ids_and_options(make: Callable[..., SyncScheduler]) -> None:
    s = make(Recorder(), lambda: [A, B], delta_interval_s=60, delta_jitter_s=None)
    s.start()
    assert s.job_ids() == sorted(["delta:alpha", "delta:beta", "full:alpha", "full:beta", RESCAN_JOB_ID])
    for job in s.scheduler.get_jobs():
        assert job.max_instances == 1
        assert job.coalesce is True
    delta = s.scheduler.get_job("delta:alpha")
    full = s.scheduler.get_job("full:alpha")
    assert delta.args == (A, "auto", "schedule")
    assert full.args == (A, "full", "schedule")
    assert delta.trigger.interval.total_seconds() == 60
    assert full.trigger.interval.total_seconds() == 3600
    assert full.trigger.jitter == 300  # a tenth of the interval, at most five minutes
    assert delta.trigger.jitter == 6
    # Rescanning again with the same environments changes nothing.
    before = {j.id: j.next_run_time for j in s.scheduler.get_jobs()}
    s.rescan()
    assert {j.id: j.next_run_time for j in s.scheduler.get_jobs()} == before


def test_first_delta_runs_at_once_then_every_interval(make: Callable[..., SyncScheduler]) -> None:
    rec = Recorder()
    s = make(rec, lambda: [A])
    s.start()
    wait_for(lambda: rec.count("alpha", "auto") >= 3)
    assert rec.count("alpha", "full") == 0
    assert all(c[2] == "schedule" for c in rec.calls)


def test_one_instance_per_job(make: Callable[..., SyncScheduler]) -> None:
    rec = Recorder(delay=0.7)
    s = make(rec, lambda: [A], delta_interval_s=0.1)
    with capture_logs() as logs:
        s.start()
        wait_for(lambda: rec.count("alpha", "auto") >= 2)
    assert rec.max_running["auto:alpha"] == 1
    assert any(e["event"] == "job_skipped" and e["job_id"] == "delta:alpha" for e in logs)


def test_error_listener_logs_and_keeps_going(make: Callable[..., SyncScheduler]) -> None:
    rec = Recorder(fail_first=2)
    s = make(rec, lambda: [A])
    with capture_logs() as logs:
        s.start()
        wait_for(lambda: rec.count("alpha", "auto") >= 4)
    failures = [e for e in logs if e["event"] == "job_failed"]
    assert len(failures) == 2
    assert failures[0]["job_id"] == "delta:alpha"
    assert failures[0]["error_type"] == "RuntimeError"
    assert failures[0]["log_level"] == "error"
    assert s.errors == 2
    assert s.running


def test_new_environment_picked_up_and_removed_one_dropped(make: Callable[..., SyncScheduler]) -> None:
    envs = [A]
    rec = Recorder()
    s = make(rec, lambda: list(envs), delta_interval_s=0.2, rescan_interval_s=0.2)
    s.start()
    wait_for(lambda: rec.count("alpha", "auto") >= 1)
    envs.append(B)
    wait_for(lambda: rec.count("beta", "auto") >= 1)  # picked up by the rescan job
    assert "delta:beta" in s.job_ids() and "full:beta" in s.job_ids()
    envs.remove(A)
    wait_for(lambda: "delta:alpha" not in s.job_ids())
    assert "full:alpha" not in s.job_ids()


def test_coalesce_runs_a_missed_backlog_once(make: Callable[..., SyncScheduler]) -> None:
    rec = Recorder()
    s = make(rec, lambda: [A], delta_interval_s=0.1)
    s.start()
    wait_for(lambda: rec.count("alpha", "auto") >= 1)
    s.scheduler.pause()
    time.sleep(1.0)  # ten fire times pass while paused
    n = rec.count("alpha", "auto")
    s.scheduler.resume()
    time.sleep(0.15)
    assert rec.count("alpha", "auto") - n <= 2  # the backlog ran once, not ten times


def test_a_failing_environment_listing_keeps_the_schedule(make: Callable[..., SyncScheduler]) -> None:
    state = {"fail": False}

    def targets() -> list[Target]:
        if state["fail"]:
            raise RuntimeError("database went away")
        return [A]

    rec = Recorder()
    s = make(rec, targets, rescan_interval_s=0.1)
    s.start()
    state["fail"] = True
    with capture_logs() as logs:
        wait_for(lambda: any(e["event"] == "rescan_failed" for e in logs))
    assert "delta:alpha" in s.job_ids()
    n = rec.count("alpha", "auto")
    wait_for(lambda: rec.count("alpha", "auto") > n)


def test_full_run_cadence_survives_a_restart(make: Callable[..., SyncScheduler]) -> None:
    """The first full run comes a full interval after the last one any replica finished."""
    now = datetime.now(UTC)
    last = {"alpha": now - timedelta(seconds=1000), "beta": now - timedelta(seconds=7200)}
    s = make(
        Recorder(),
        lambda: [A, B, Target(3, "gamma")],
        delta_interval_s=60,
        full_interval_s=3600,
        last_full=lambda t: last.get(t.name),
    )
    s.start()
    alpha = s.scheduler.get_job("full:alpha").next_run_time
    beta = s.scheduler.get_job("full:beta").next_run_time
    gamma = s.scheduler.get_job("full:gamma").next_run_time
    assert abs((alpha - (last["alpha"] + timedelta(seconds=3600))).total_seconds()) < 1
    assert timedelta(0) < beta - now <= timedelta(seconds=61)  # overdue: soon, after the first delta
    assert timedelta(seconds=3599) <= gamma - now <= timedelta(seconds=3601)  # never: the first delta is full


def test_next_runs_says_when_each_job_of_an_environment_fires(make: Callable[..., SyncScheduler]) -> None:
    s = make(Recorder(), lambda: [A], delta_interval_s=600, first_delta_delay_s=300)
    assert s.next_runs("alpha") == {}  # not started: nothing scheduled
    s.start()
    when = s.next_runs("alpha")
    assert set(when) == {"delta", "full"}
    assert when["delta"] == s.scheduler.get_job("delta:alpha").next_run_time
    assert when["full"] == s.scheduler.get_job("full:alpha").next_run_time
    assert when["delta"] > datetime.now(UTC) and when["delta"].tzinfo is not None
    assert s.next_runs("beta") == {}
