"""docker-compose.yml and the Dockerfile: the services, their health checks and order, real commands."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SYNCD = Path(sys.executable).with_name("syncd")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def command_text(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def syncd_invocations(text: str) -> list[list[str]]:
    """Each `syncd ...` in a command line, cut before its first option or shell operator."""
    out = []
    tokens = shlex.split(text.replace(";", " ; ").replace("{", " ").replace("}", " "))
    for i, tok in enumerate(tokens):
        if tok != "syncd":
            continue
        words = []
        for t in tokens[i + 1 :]:
            if t.startswith("-") or t in {"&&", "||", ";", "|", ">", "2>&1"} or t.startswith(">"):
                break
            words.append(t)
        out.append(words)
    return out


def test_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "fake-entra", "migrate", "syncd"}


def test_postgres_15_with_a_pg_isready_healthcheck(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    assert pg["image"] == "postgres:15"
    check = pg["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert "pg_isready" in " ".join(check["test"])
    assert int(check["retries"]) > 0


def test_fake_entra_generates_then_serves_with_a_healthcheck(compose: dict[str, Any]) -> None:
    fe = compose["services"]["fake-entra"]
    calls = syncd_invocations(command_text(fe))
    assert [c[:2] for c in calls] == [["entra", "generate"], ["entra", "serve"]]
    text = command_text(fe)
    assert "--host 0.0.0.0" in text and "--port 8000" in text
    assert "healthcheck" in fe and "8000" in " ".join(fe["healthcheck"]["test"])


def test_migrate_is_a_one_shot_upgrade(compose: dict[str, Any]) -> None:
    mig = compose["services"]["migrate"]
    calls = syncd_invocations(command_text(mig))
    assert calls[0] == ["db", "upgrade"]
    assert mig["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mig.get("restart", "no") == "no"


def test_syncd_waits_for_its_dependencies(compose: dict[str, Any]) -> None:
    s = compose["services"]["syncd"]
    assert syncd_invocations(command_text(s)) == [["run"]]
    assert s["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
        "fake-entra": {"condition": "service_healthy"},
    }
    env = s["environment"]
    assert (
        env["SYNCD_DATABASE_URL"].startswith("postgresql://")
        and "@postgres:5432/" in env["SYNCD_DATABASE_URL"]
    )
    assert env["SYNCD_DIRECTORY_URL"] == "https://fake-entra:8000/v1.0"
    assert env["SYNCD_DIRECTORY_AUTHORITY"] == "https://fake-entra:8000"
    assert env["SYNCD_HTTP_HOST"] == "0.0.0.0"
    assert any(str(p).endswith("8080:8080") for p in s["ports"])
    assert compose["services"]["migrate"]["environment"]["SYNCD_DATABASE_URL"] == env["SYNCD_DATABASE_URL"]


def test_every_syncd_command_in_the_file_exists(compose: dict[str, Any]) -> None:
    calls = [c for svc in compose["services"].values() for c in syncd_invocations(command_text(svc))]
    assert len(calls) >= 5
    for words in calls:
        proc = subprocess.run(
            [str(SYNCD), *words, "--help"], capture_output=True, text=True, env=os.environ.copy(), timeout=60
        )
        assert proc.returncode == 0, (words, proc.stderr)
        assert "Usage: syncd" in proc.stdout


def test_dockerfile_installs_the_project_in_app() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^WORKDIR /app$", text, re.M)
    assert "pip install -e ." in text
    copied = re.findall(r"^COPY (.+) \S+$", text, re.M)
    for needed in ("pyproject.toml", "alembic.ini", "syncd"):
        assert any(needed in c.split() for c in copied), needed
        assert (ROOT / needed).exists()


def _resolve(value: str) -> str:
    """A compose value with its ${VAR:-default} interpolated from the defaults (the demo's)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_the_demo_runs_as_real_processes_with_tls_and_auth(compose: dict[str, Any], tmp_path: Path) -> None:
    """The fake-entra service's command, its health check, the migration and a sync with the syncd
    service's settings, as processes here: only the volume paths, the port and the host names change."""
    from procs import base_env, free_port, wait_for

    services = compose["services"]
    port = free_port()
    data, db = tmp_path / "data", tmp_path / "syncd.db"
    data.mkdir()

    def local(text: str) -> str:
        return (
            text.replace("/tenant/tls/", "/data/tls/")
            .replace("/data", str(data))
            .replace("--host 0.0.0.0", "--host 127.0.0.1")
            .replace("--port 8000", f"--port {port}")
            .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            .replace("fake-entra:8000", f"127.0.0.1:{port}")
            .replace("$$", "$")
        )

    fake = services["fake-entra"]
    fake_env = base_env(**{k: _resolve(str(v)) for k, v in fake["environment"].items()})
    fake_env["PATH"] = f"{SYNCD.parent}:{fake_env['PATH']}"
    log = (tmp_path / "fake-entra.log").open("wb")
    server = subprocess.Popen(["sh", "-c", local(fake["command"][2])], env=fake_env, stdout=log, stderr=log)
    try:
        health = [local(part) for part in fake["healthcheck"]["test"][1:]]
        wait_for(
            lambda: (
                subprocess.run([sys.executable, *health[1:]], capture_output=True, timeout=10).returncode == 0
            ),
            120,
            "the fake-entra health check",
        )
        assert (data / "tls" / "ca.pem").is_file()
        settings = {k: local(_resolve(str(v))) for k, v in services["syncd"]["environment"].items()}
        settings["SYNCD_DATABASE_URL"] = f"sqlite:///{db}"
        env = base_env(**settings)
        migrate = services["migrate"]["command"][2]
        done = subprocess.run(
            ["sh", "-c", migrate],
            env=env | {"PATH": f"{SYNCD.parent}:{env['PATH']}"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        sync = subprocess.run(
            [str(SYNCD), "sync", "demo", "--full", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sync.returncode == 0, sync.stderr
        import json

        assert json.loads(sync.stdout)["counts"]["created"] > 0
        assert settings["SYNCD_DIRECTORY_CLIENT_SECRET"] not in sync.stdout + sync.stderr
    finally:
        server.terminate()
        server.wait(20)
        log.close()
