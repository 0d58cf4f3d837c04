"""`syncd run`: its options, bad values refused, and the embedded default as a newcomer runs it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from procs import SYNCD, base_env, free_port, wait_for

from syncd.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_run_is_mounted_with_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["run", "--help"], capsys)
    assert code == 0
    for opt in ("--delta-interval", "--full-interval", "--http-host", "--http-port", "--admin-token"):
        assert opt in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--delta-interval", "2"], "delta_interval_seconds=2"),
        (["run", "--http-port", "70000"], "http_port=70000"),
    ],
)
def test_bad_options_are_one_line_errors(
    clean_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run(args, capsys)
    assert code == 2
    assert needle in err and err.count("\n") == 1


def test_a_database_not_at_head_is_refused(
    clean_env: Path, empty_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["--database-url", empty_db_url, "run", "--http-port", "0"], capsys)
    assert code == 2 and "syncd db upgrade" in err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_embedded_default_as_a_newcomer_runs_it(clean_env: Path) -> None:
    """No settings: SQLite and the built-in tenant are created, the `default` environment syncs,
    the hint names the status page, and Ctrl-C (SIGINT) exits 0."""
    port = free_port()
    log = clean_env / "out.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [SYNCD, "run", "--http-port", str(port), "--delta-interval", "5", "--churn-interval", "2"],
            cwd=clean_env,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def delta_with_changes() -> bool:
            runs = httpx.get(f"{base}/api/runs", timeout=5).json()
            return any(r["kind"] == "delta" and r["counts"]["read"] > 0 for r in runs)

        wait_for(delta_with_changes, 60, "a delta run reading the churned users", 0.5)
        envs = httpx.get(f"{base}/api/environments", timeout=5).json()
        assert [e["name"] for e in envs] == ["default"]
        assert envs[0]["users"]["enabled"] > 0
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert f"status page: http://127.0.0.1:{port}/" in text
    assert "syncd runs" in text
    assert (clean_env / "syncd.db").exists() and (clean_env / "syncd-tenant.db").exists()


def test_run_and_sync_started_at_once_on_a_fresh_folder(clean_env: Path) -> None:
    """The embedded default's first use (the migration, the tenant, the `default` environment) is
    done once when `syncd run` and `syncd sync` start together: the sync runs or is refused as busy,
    never a traceback, and no user gets two create events."""
    port = free_port()
    log = clean_env / "run.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [SYNCD, "run", "--http-port", str(port), "--churn-interval", "0"],
            cwd=clean_env,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        sync = subprocess.run(
            [SYNCD, "--log-level", "warning", "sync", "default", "--full", "--json"],
            cwd=clean_env,
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sync.returncode in (0, 2), sync.stderr
        assert "Traceback" not in sync.stderr, sync.stderr
        if sync.returncode == 2:
            assert "is being synced by another process" in sync.stderr
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200, 60, "ready"
        )
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert "Traceback" not in log.read_text()
    import sqlite3

    with sqlite3.connect(clean_env / "syncd.db") as db:
        assert db.execute("SELECT count(*) FROM environment").fetchone() == (1,)
        twice = db.execute(
            "SELECT count(*) FROM (SELECT azureactivedirectoryobjectid FROM sync_event WHERE action = 'create' "
            "GROUP BY environment_id, azureactivedirectoryobjectid HAVING count(*) > 1)"
        ).fetchone()
        assert twice == (0,)
