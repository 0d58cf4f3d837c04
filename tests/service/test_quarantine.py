"""Quarantine (after Entra's provisioning quarantine): what counts, the backoff, the scheduled skip,
resume, and where it shows (/readyz, the status page, /metrics, the API, `syncd env show`)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import FakeSync, add_env, add_run
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from syncd.cli import main
from syncd.context import AppContext
from syncd.dataverse.schema import Environment
from syncd.service.app import create_app
from syncd.service.daemon import Daemon, DaemonOptions
from syncd.service.jobs import RunRequest, SyncJobs
from syncd.service.locks import locks_for
from syncd.service.metrics import Metrics
from syncd.service.quarantine import (
    FinishedRun,
    QuarantineGate,
    QuarantinePolicy,
    quarantine_state,
    read_state,
    read_states,
    resume,
)
from syncd.service.scheduler import Target
from syncd.settings import load_settings

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = QuarantinePolicy(after_failures=3, delta_interval_s=60, max_backoff_s=3600)
TOKEN = "s3cret-admin-token"


def history(*outcomes: str, kind: str = "delta") -> list[FinishedRun]:
    """Runs a minute apart, oldest first, the last one finishing at T0."""
    n = len(outcomes)
    return [FinishedRun(o, T0 - timedelta(minutes=n - 1 - i), kind) for i, o in enumerate(outcomes)]


# -- the pure function -------------------------------------------------------------------------


def test_below_the_threshold_counts_but_does_not_quarantine() -> None:
    state = quarantine_state(history("succeeded", "failed", "failed"), POLICY)
    assert (state.quarantined, state.consecutive_failures) == (False, 2)
    assert state.next_attempt_at is None and state.backoff_s == 0
    assert not state.holds_back(T0)
    assert state.last_failure_at == T0


def test_n_failures_in_a_row_quarantine_with_twice_the_interval() -> None:
    runs = history("succeeded", "failed", "failed", "failed")
    state = quarantine_state(runs, POLICY)
    assert state.quarantined and state.consecutive_failures == 3
    assert state.since == runs[-1].finished_at  # the third failure started it
    assert state.backoff_s == 120
    assert state.next_attempt_at == T0 + timedelta(seconds=120)
    assert state.holds_back(T0 + timedelta(seconds=119))
    assert not state.holds_back(T0 + timedelta(seconds=120))


def test_each_further_failure_doubles_the_wait_up_to_the_cap() -> None:
    waits = [quarantine_state(history(*["failed"] * n), POLICY).backoff_s for n in range(1, 10)]
    assert waits == [0, 0, 120, 240, 480, 960, 1920, 3600, 3600]
    since = quarantine_state(history(*["failed"] * 6), POLICY).since
    assert since == T0 - timedelta(minutes=3)  # the third of the six
    # Far past the cap, the arithmetic stays sane.
    assert POLICY.backoff_s(10_000) == 3600


@pytest.mark.parametrize("reset", ["succeeded", "partial"])
def test_a_success_or_partial_run_ends_the_count(reset: str) -> None:
    state = quarantine_state(history("failed", "failed", "failed", "failed", reset), POLICY)
    assert (state.quarantined, state.consecutive_failures) == (False, 0)
    state = quarantine_state(history("failed", "failed", "failed", reset, "failed"), POLICY)
    assert (state.quarantined, state.consecutive_failures) == (False, 1)


@pytest.mark.parametrize("neutral", ["blocked", "dry_run", "interrupted", "abandoned", "running"])
def test_neutral_outcomes_neither_count_nor_reset(neutral: str) -> None:
    state = quarantine_state(history("failed", neutral, "failed", neutral, neutral, "failed"), POLICY)
    assert state.quarantined and state.consecutive_failures == 3


def test_one_user_operations_are_neutral() -> None:
    runs = history("failed", "failed", "failed")
    runs.append(FinishedRun("succeeded", T0 + timedelta(seconds=5), kind="user"))
    runs.append(FinishedRun("failed", T0 + timedelta(seconds=6), kind="user"))
    state = quarantine_state(runs, POLICY)
    assert state.quarantined and state.consecutive_failures == 3
    assert state.last_failure_at == T0


def test_order_of_the_input_does_not_matter() -> None:
    runs = history("failed", "succeeded", "failed", "blocked", "failed", "failed")
    shuffled = list(runs)
    random.Random(7).shuffle(shuffled)
    assert quarantine_state(shuffled, POLICY) == quarantine_state(runs, POLICY)
    assert quarantine_state(runs, POLICY).consecutive_failures == 3


def test_failures_up_to_the_resume_no_longer_count() -> None:
    runs = history("failed", "failed", "failed", "failed")
    state = quarantine_state(runs, POLICY, resumed_at=runs[-2].finished_at)
    assert (state.quarantined, state.consecutive_failures) == (False, 1)
    assert state.resumed_at == runs[-2].finished_at
    state = quarantine_state(runs, POLICY, resumed_at=T0 + timedelta(seconds=1))
    assert (state.quarantined, state.consecutive_failures) == (False, 0)


def test_zero_switches_quarantine_off_but_failures_are_still_counted() -> None:
    off = QuarantinePolicy(after_failures=0, delta_interval_s=60, max_backoff_s=3600)
    state = quarantine_state(history(*["failed"] * 20), off)
    assert (state.quarantined, state.consecutive_failures, state.backoff_s) == (False, 20, 0)


def test_naive_datetimes_are_utc_and_the_dict_is_json() -> None:
    naive = [FinishedRun("failed", (T0 - timedelta(minutes=i)).replace(tzinfo=None)) for i in range(3)]
    state = quarantine_state(naive, POLICY)
    assert state.next_attempt_at == T0 + timedelta(seconds=120)
    body = json.loads(json.dumps(state.as_dict()))
    assert body["quarantined"] is True and body["next_attempt_at"] == "2026-11-30T12:02:00+00:00"
    assert "quarantined since 2026-11-30T12:00:00+00:00 (3 consecutive failed runs)" in state.describe()


def test_policy_from_settings(clean_env: Path) -> None:
    s = load_settings()
    assert QuarantinePolicy.from_settings(s) == QuarantinePolicy(3, 60.0, 86400.0)  # Entra: once a day


def test_settings_are_validated(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from syncd.errors import ConfigError

    monkeypatch.setenv("SYNCD_QUARANTINE_AFTER_FAILURES", "5")
    monkeypatch.setenv("SYNCD_QUARANTINE_MAX_BACKOFF_SECONDS", "7200")
    s = load_settings()
    assert (s.quarantine_after_failures, s.quarantine_max_backoff_seconds) == (5, 7200)
    with pytest.raises(ConfigError, match="quarantine_after_failures=-1"):
        load_settings(quarantine_after_failures=-1)
    with pytest.raises(ConfigError, match="quarantine_max_backoff_seconds=30.*delta_interval_seconds=60"):
        load_settings(quarantine_max_backoff_seconds=30)


# -- the database ------------------------------------------------------------------------------


def fail(engine: Engine, env_id: int, *ago_s: float) -> None:
    for ago in ago_s:
        add_run(engine, env_id, outcome="failed", error="directory unavailable", ago_s=ago)


def set_resumed(engine: Engine, env_id: int, at: datetime) -> None:
    with Session(engine) as session, session.begin():
        session.execute(update(Environment).where(Environment.id == env_id).values(sync_resumed_at=at))


def test_read_states_follows_the_runs_of_each_environment(engine: Engine) -> None:
    prod, test, idle = add_env(engine, "prod"), add_env(engine, "test"), add_env(engine, "idle")
    add_run(engine, prod, kind="full", ago_s=600)
    fail(engine, prod, 300, 200)
    add_run(engine, prod, outcome="blocked", ago_s=150)
    add_run(engine, prod, kind="user", outcome="succeeded", ago_s=120)
    fail(engine, prod, 100)
    fail(engine, test, 50, 40)
    add_run(engine, test, ago_s=30)
    fail(engine, test, 20)
    with Session(engine) as session:
        states = read_states(session, POLICY)
        assert read_state(session, prod, POLICY) == states[prod]
        assert read_state(session, 999_999, POLICY).quarantined is False
    assert states[prod].quarantined and states[prod].consecutive_failures == 3
    assert states[prod].backoff_s == 120
    assert (states[test].quarantined, states[test].consecutive_failures) == (False, 1)
    assert (states[idle].quarantined, states[idle].consecutive_failures) == (False, 0)
    # The resume column: failures that finished before it stop counting.
    set_resumed(engine, prod, datetime.now(UTC) - timedelta(seconds=250))
    with Session(engine) as session:
        state = read_state(session, prod, POLICY)
    assert (state.quarantined, state.consecutive_failures) == (False, 2)


def test_resume_clears_the_count_once_and_is_idempotent(engine: Engine) -> None:
    prod = add_env(engine, "prod")
    fail(engine, prod, 30, 20, 10, 5)
    done = resume(engine, "prod", POLICY)
    assert (done.changed, done.was_quarantined, done.failures_cleared) == (True, True, 4)
    assert "left quarantine" in done.describe()
    again = resume(engine, "prod", POLICY)
    assert (again.changed, again.was_quarantined, again.failures_cleared) == (False, False, 0)
    assert again.resumed_at == done.resumed_at  # nothing written the second time
    assert "nothing to do" in again.describe()
    with Session(engine) as session:
        assert read_state(session, prod, POLICY).consecutive_failures == 0
    fail(engine, prod, 0)  # a failure after the resume counts again
    with Session(engine) as session:
        assert read_state(session, prod, POLICY).consecutive_failures == 1
    from syncd.errors import NotFound

    with pytest.raises(NotFound, match="no environment named 'nope'"):
        resume(engine, "nope", POLICY)


# -- the scheduled path ------------------------------------------------------------------------


@pytest.fixture
def env(engine: Engine) -> Target:
    return Target(add_env(engine, "prod"), "prod")


@pytest.fixture
def jobs(engine: Engine) -> Iterator[SyncJobs]:
    gate = QuarantineGate(lambda: engine, POLICY)
    yield SyncJobs(
        lambda: engine, locks_for(engine), FakeSync(engine), Metrics(), threading.Event(), quarantine=gate
    )


def skipped(jobs: SyncJobs, reason: str = "quarantined") -> float:
    value = jobs.metrics.registry.get_sample_value(
        "syncd_runs_skipped_total", {"environment": "prod", "reason": reason}
    )
    return value or 0.0


def calls(jobs: SyncJobs) -> list[tuple[str, RunRequest]]:
    assert isinstance(jobs.sync, FakeSync)
    return jobs.sync.calls


def test_scheduled_runs_of_a_quarantined_environment_wait_for_the_backoff(
    jobs: SyncJobs, env: Target, engine: Engine
) -> None:
    fail(engine, env.id, 30, 20, 10)  # quarantined; the next attempt 120 s after the last failure
    with capture_logs() as logs:
        assert jobs.scheduled(env, "auto") is None
        assert jobs.scheduled(env, "full") is None
    assert calls(jobs) == []
    assert skipped(jobs) == 2
    said = [e for e in logs if e["event"] == "run_skipped"]
    assert said[0]["reason"] == "quarantined" and said[0]["log_level"] == "info"
    assert said[0]["consecutive_failures"] == 3
    assert datetime.fromisoformat(said[0]["next_attempt_at"]) > datetime.now(UTC) + timedelta(seconds=100)
    assert said[1]["log_level"] == "debug"  # said once per next attempt, not at every tick
    # A person's run is never held back; its success ends the quarantine.
    assert jobs.run(env, RunRequest(kind="delta", trigger="api")).outcome == "succeeded"
    assert jobs.scheduled(env, "auto") is not None
    assert len(calls(jobs)) == 2 and skipped(jobs) == 2


def test_a_scheduled_run_goes_ahead_once_the_backoff_is_over(engine: Engine, env: Target) -> None:
    gate = QuarantineGate(lambda: engine, POLICY)
    sync = FakeSync(engine, outcome="failed")
    jobs = SyncJobs(lambda: engine, locks_for(engine), sync, Metrics(), threading.Event(), quarantine=gate)
    fail(engine, env.id, 300, 200, 130)  # next attempt 120 s after the last: 10 s ago
    assert jobs.scheduled(env, "auto") is not None
    assert skipped(jobs) == 0
    # It failed again: four in a row, and the wait doubles to 240 s from its end.
    with Session(engine) as session:
        state = read_state(session, env.id, POLICY)
    assert state.consecutive_failures == 4 and state.backoff_s == 240
    assert jobs.scheduled(env, "auto") is None and skipped(jobs) == 1
    assert len(sync.calls) == 1


def test_resume_makes_the_next_tick_run(jobs: SyncJobs, env: Target, engine: Engine) -> None:
    fail(engine, env.id, 3, 2, 1)
    assert jobs.scheduled(env, "auto") is None
    resume(engine, "prod", POLICY)
    assert jobs.scheduled(env, "auto") is not None
    assert len(calls(jobs)) == 1


def test_below_the_threshold_or_switched_off_nothing_is_held_back(engine: Engine, env: Target) -> None:
    off = QuarantineGate(lambda: engine, QuarantinePolicy(0, 60, 3600))
    jobs = SyncJobs(
        lambda: engine, locks_for(engine), FakeSync(engine), Metrics(), threading.Event(), quarantine=off
    )
    fail(engine, env.id, 5, 4, 3, 2, 1)
    assert jobs.scheduled(env, "auto") is not None
    fail(engine, env.id, 0)
    on = QuarantineGate(lambda: engine, QuarantinePolicy(10, 60, 3600))
    jobs.quarantine = on
    assert jobs.scheduled(env, "auto") is not None  # 6 < 10


def test_a_database_that_cannot_be_read_lets_the_run_go_ahead(engine: Engine, env: Target) -> None:
    def broken() -> Engine:
        raise RuntimeError("database away")

    gate = QuarantineGate(broken, POLICY)
    with capture_logs() as logs:
        assert gate.holds_back(env, Metrics()) is False
    assert logs[0]["event"] == "quarantine_unknown"


def test_the_daemon_holds_back_a_quarantined_environment(db_url: str, clean_env: Path) -> None:
    appctx = AppContext(
        load_settings(database_url=db_url, directory_url="http://127.0.0.1:9/v1.0", http_port=0)
    )
    engine = appctx.engine()
    prod = add_env(engine, "prod")
    fail(engine, prod, 3, 2, 1)
    sync = FakeSync(engine)
    daemon = Daemon(appctx, DaemonOptions(sync=sync, install_signal_handlers=False, churn_interval_s=0))
    try:
        daemon.start()  # the first delta tick of each environment fires at once
        assert daemon.metrics is not None
        registry = daemon.metrics.registry
        labels = {"environment": "prod", "reason": "quarantined"}
        deadline = time.monotonic() + 10
        while (
            not registry.get_sample_value("syncd_runs_skipped_total", labels) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert registry.get_sample_value("syncd_runs_skipped_total", labels) == 1
        assert sync.calls == []
        assert registry.get_sample_value("syncd_environment_quarantined", {"environment": "prod"}) == 1
    finally:
        daemon.shutdown()
        appctx.close()


# -- where it shows ----------------------------------------------------------------------------


class Stack:
    def __init__(self, db_url: str) -> None:
        self.appctx = AppContext(load_settings(database_url=db_url, admin_token=TOKEN))
        self.engine: Engine = self.appctx.engine()
        policy = QuarantinePolicy.from_settings(self.appctx.settings)
        self.metrics = Metrics(lambda: self.engine, quarantine=policy)
        self.jobs = SyncJobs(
            lambda: self.engine,
            locks_for(self.engine),
            FakeSync(self.engine),
            self.metrics,
            threading.Event(),
        )
        self.client = TestClient(create_app(self.appctx, self.metrics, self.jobs, info={"pid": 1}))
        self.prod = add_env(self.engine, "prod")
        self.test = add_env(self.engine, "test")
        add_run(self.engine, self.prod, kind="full", ago_s=600)
        fail(self.engine, self.prod, 30, 20, 10, 5)
        fail(self.engine, self.test, 5)

    def close(self) -> None:
        self.client.close()
        self.appctx.close()


@pytest.fixture
def stack(db_url: str, clean_env: Path) -> Iterator[Stack]:
    s = Stack(db_url)
    yield s
    s.close()


def test_readyz_shows_quarantine_and_stays_ready(stack: Stack) -> None:
    r = stack.client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True and "problems" not in body
    assert body["environments"] == {"prod": "failed", "test": "failed"}
    assert list(body["quarantined"]) == ["prod"]
    prod = body["quarantined"]["prod"]
    assert prod["quarantined"] is True and prod["consecutive_failures"] == 4 and prod["backoff_s"] == 240
    resume(stack.engine, "prod", QuarantinePolicy.from_settings(stack.appctx.settings))
    assert stack.client.get("/readyz").json()["quarantined"] == {}


def test_the_overview_marks_the_quarantined_environment(stack: Stack) -> None:
    page = stack.client.get("/").text
    prod = page[page.index('<section class="env" aria-label="prod">') :]
    test = page[page.index('<section class="env" aria-label="test">') :]
    assert '<span class="state s-quarantined">quarantined</span>' in prod.split("</section>")[0]
    # test: one failure, not quarantined
    assert '<span class="state s-failing">failing</span>' in test.split("</section>")[0]
    env_page = stack.client.get("/environments/prod").text
    assert "<td>quarantined since " in env_page and "next scheduled run not before " in env_page
    assert ".s-quarantined {" in stack.client.get("/static/syncd.css").text


def test_metrics_have_a_quarantine_gauge_per_environment(stack: Stack) -> None:
    text = stack.client.get("/metrics").text
    samples = {
        (s.name, s.labels.get("environment")): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert samples[("syncd_environment_quarantined", "prod")] == 1
    assert samples[("syncd_environment_quarantined", "test")] == 0
    assert samples[("syncd_environment_consecutive_failures", "prod")] == 4
    assert samples[("syncd_environment_consecutive_failures", "test")] == 1
    next_at = samples[("syncd_environment_next_attempt_timestamp_seconds", "prod")]
    assert time.time() + 200 < next_at < time.time() + 240
    assert ("syncd_environment_next_attempt_timestamp_seconds", "test") not in samples


def test_api_environment_views_carry_the_quarantine(stack: Stack) -> None:
    envs = {e["name"]: e for e in stack.client.get("/api/environments").json()}
    assert envs["prod"]["quarantine"]["quarantined"] is True
    assert envs["test"]["quarantine"]["consecutive_failures"] == 1
    one = stack.client.get("/api/environments/prod").json()
    assert one["quarantine"]["consecutive_failures"] == 4


def test_api_resume(stack: Stack) -> None:
    path = "/api/environments/prod/resume"
    assert stack.client.post(path).status_code == 401
    assert stack.client.post(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = stack.client.post(path, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["environment"], body["changed"], body["was_quarantined"], body["failures_cleared"]) == (
        "prod",
        True,
        True,
        4,
    )
    r = stack.client.post(path, headers=auth)
    assert r.status_code == 200 and r.json()["changed"] is False
    assert stack.client.get("/api/environments/prod").json()["quarantine"]["quarantined"] is False
    r = stack.client.post("/api/environments/nope/resume", headers=auth)
    assert r.status_code == 404 and "nope" in r.json()["detail"]


# -- the CLI -----------------------------------------------------------------------------------


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_env_show_and_resume(
    db_url: str, engine: Engine, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", db_url]
    prod = add_env(engine, "prod")
    fail(engine, prod, 30, 20, 10)
    code, out, _ = run(base + ["env", "show", "prod", "--json"], capsys)
    assert code == 0
    shown = json.loads(out)["quarantine"]
    assert shown["quarantined"] is True and shown["consecutive_failures"] == 3 and shown["backoff_s"] == 120
    code, out, _ = run(base + ["env", "show", "prod"], capsys)
    assert code == 0 and "quarantined since" in " ".join(out.split())

    code, out, err = run(base + ["env", "resume", "prod"], capsys)
    assert code == 0, err
    assert out.strip() == (
        "environment 'prod' left quarantine: its 3 consecutive failed runs no longer count; "
        "the next scheduled run goes ahead"
    )
    code, out, _ = run(base + ["env", "resume", "prod"], capsys)
    assert code == 0 and "nothing to do" in out
    code, out, _ = run(base + ["env", "resume", "prod", "--json"], capsys)
    assert code == 0 and json.loads(out)["changed"] is False
    code, out, _ = run(base + ["env", "show", "prod", "--json"], capsys)
    assert json.loads(out)["quarantine"]["quarantined"] is False
    code, out, _ = run(base + ["env", "show", "prod"], capsys)
    assert "not quarantined" in out


def test_env_resume_of_an_unknown_environment_is_one_line_exit_2(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["--database-url", db_url, "env", "resume", "nope"], capsys)
    assert code == 2 and out == ""
    assert "no environment named 'nope'" in err and len(err.strip().splitlines()) == 1


def test_config_show_lists_the_quarantine_settings(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["config", "show", "--json"], capsys)
    values: dict[str, Any] = json.loads(out)
    assert code == 0
    assert (values["quarantine_after_failures"], values["quarantine_max_backoff_seconds"]) == (3, 86400)
