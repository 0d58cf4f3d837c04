"""`syncd sync` and `syncd runs` as a user runs them: embedded default, --check, the lock, stale runs."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
from service.lock_holder import holding, kill
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from syncd.cli import main
from syncd.commands import sync_cmd
from syncd.dataverse import db
from syncd.dataverse.schema import SyncRun
from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.store import TenantStore
from syncd.service.locks import locks_for
from syncd.sync.run import RunReport


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_sync_default_works_on_a_fresh_checkout(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--log-level", "warning", "sync", "default", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["outcome"] == "succeeded" and report["kind"] == "full"
    assert report["counts"]["created"] > 500
    assert (clean_env / "syncd.db").exists() and (clean_env / "syncd-tenant.db").exists()

    code, out, _ = run(["--log-level", "warning", "sync", "default", "--check", "--json"], capsys)
    assert code == 0 and json.loads(out)["outcome"] == "dry_run"

    store = TenantStore.open(str(clean_env / "syncd-tenant.db"))
    apply_churn(store, changes=20, seed=2)
    store.close()
    code, out, _ = run(["--log-level", "warning", "sync", "default", "--check", "--json"], capsys)
    plan = json.loads(out)
    assert code == 1 and plan["planned"], "--check exits 1 when something would change"
    code, out, _ = run(["--log-level", "warning", "sync", "default", "--delta", "--json"], capsys)
    assert code == 0 and json.loads(out)["kind"] == "delta"

    code, out, _ = run(["runs", "default", "--json"], capsys)
    runs = json.loads(out)
    assert [r["kind"] for r in runs] == ["delta", "full"]  # dry runs leave no run rows
    assert all(r["outcome"] == "succeeded" for r in runs)


def test_sync_of_an_unknown_environment_is_one_line_exit_2(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["sync", "nope"], capsys)
    assert code == 2 and "no environment named 'nope'" in err and len(err.strip().splitlines()) == 1


def _make_env(db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]) -> int:
    assert run(["--database-url", db_url, "env", "create", "prod"], capsys)[0] == 0
    eng = create_engine(db.make_engine(db_url).url)
    with eng.connect() as c:
        env_id = int(c.execute(text("SELECT id FROM environment WHERE name = 'prod'")).scalar_one())
    eng.dispose()
    return env_id


def _outcomes(db_url: str) -> list[str]:
    engine = db.make_engine(db_url)
    with engine.connect() as c:
        outcomes = [str(r[0]) for r in c.execute(text("SELECT outcome FROM sync_run ORDER BY id"))]
    engine.dispose()
    return outcomes


def _wait_until_free(db_url: str, env_id: int) -> None:
    """A killed holder's lock is gone at once on SQLite; PostgreSQL notices the dead connection a
    moment later."""
    engine = db.make_engine(db_url)
    try:
        deadline = time.monotonic() + 20
        while True:
            with locks_for(engine).hold(env_id) as free:
                if free:
                    return
            assert time.monotonic() < deadline, "the killed holder's lock was not released"
            time.sleep(0.05)
    finally:
        engine.dispose()


def test_sync_refuses_while_another_process_holds_the_environment(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On both backends: another process's run holds the environment; `syncd sync` here is refused
    with one line and writes nothing. Once that process is SIGKILLed, the next run goes through and
    closes the run it left 'running'."""
    env_id = _make_env(db_url, clean_env, capsys)
    with holding(db_url, env_id, running=True) as holder:
        assert _outcomes(db_url) == ["running"]
        code, out, err = run(["--database-url", db_url, "sync", "prod", "--full"], capsys)
        assert code == 2 and out == ""
        assert err.strip().splitlines() == [
            "syncd: error: environment 'prod' is being synced by another process (a `syncd run` replica?); "
            "try again when that run ends"
        ], err
        assert _outcomes(db_url) == ["running"], "a refused run leaves no run row and closes none"
        kill(holder)
    _wait_until_free(db_url, env_id)
    code, out, _ = run(["--database-url", db_url, "--log-level", "warning", "sync", "prod", "--json"], capsys)
    assert code == 0 and json.loads(out)["outcome"] == "succeeded"
    assert _outcomes(db_url) == ["abandoned", "succeeded"]


def test_a_run_under_the_lock_closes_runs_left_running_by_a_dead_process(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_id = _make_env(db_url, clean_env, capsys)
    engine = db.make_engine(db_url)
    with Session(engine) as session, session.begin():
        session.add(SyncRun(environment_id=env_id, kind="full", requested_kind="full", trigger="schedule"))
    engine.dispose()
    code, _, _ = run(["--database-url", db_url, "--log-level", "warning", "sync", "prod", "--json"], capsys)
    assert code == 0
    assert _outcomes(db_url) == ["abandoned", "succeeded"]


def _report(outcome: str, failed: int = 0) -> RunReport:
    counts = dict.fromkeys(
        ("read", "created", "updated", "enabled", "disabled", "unchanged", "failed", "blocked_disables"), 0
    )
    counts |= {"read": 10, "created": 8 - failed, "failed": failed}
    return RunReport(7, "prod", "full", "auto", outcome, counts, 0.1)


@pytest.mark.parametrize(
    ("outcome", "failed", "code"),
    [("succeeded", 0, 0), ("dry_run", 0, 0), ("failed", 0, 1), ("blocked", 0, 3), ("partial", 2, 4)],
)
def test_each_outcome_has_its_exit_code(
    db_url: str,
    clean_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    outcome: str,
    failed: int,
    code: int,
) -> None:
    # A run in which some rows failed is not "succeeded": outcome "partial", exit 4 (the engine's
    # report is faked: the outcome comes from the engine).
    monkeypatch.setattr(sync_cmd, "open_directory", lambda settings: nullcontext(None))
    monkeypatch.setattr(sync_cmd, "sync_environment", lambda *a, **kw: _report(outcome, failed))
    base = ["--database-url", db_url, "--log-level", "warning"]
    assert run([*base, "env", "create", "prod"], capsys)[0] == 0
    got, out, _ = run([*base, "sync", "prod", "--json"], capsys)
    assert got == code and json.loads(out)["outcome"] == outcome
    got, out, _ = run([*base, "sync", "prod"], capsys)
    assert got == code and f"sync prod: {outcome}" in out
    if outcome == "partial":
        assert "2 row(s) failed" in out


def test_sync_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["sync", "--help"], capsys)
    assert code == 0
    lines = out.splitlines()
    for exit_code, word in [
        (0, "succeeded"),
        (1, "failed"),
        (2, "bad input"),
        (3, "blocked"),
        (4, "partial"),
    ]:
        assert any(line.strip().startswith(f"{exit_code}  {word}") for line in lines), (exit_code, out)
