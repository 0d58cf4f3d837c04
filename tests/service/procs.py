"""Real processes for the service tests and the latency benchmark.

A fresh PostgreSQL database, `syncd entra generate` + `syncd entra serve` on a free port,
`syncd db upgrade`, `syncd env create`, and `syncd run` daemons, each writing its output to
a file. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

SYNCD = str(Path(sys.executable).with_name("syncd"))
PG_ADMIN_URL = os.environ.get("SYNCD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

ADMIN_ROLE_TEMPLATES = {
    "62e90394-69f5-4237-9190-012177145e10",  # Global Administrator
    "11648597-926c-4cf3-9c36-bcebb0ba8dcc",  # Power Platform Administrator
    "44367163-eba1-44c3-98af-f5787879f96a",  # Dynamics 365 Administrator
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def base_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["SYNCD_LOG_FORMAT"] = "json"
    env.update(settings)
    return env


@contextlib.contextmanager
def pg_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A brand-new, empty PostgreSQL database; dropped afterwards."""
    name = f"syncd_svc_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def syncd(
    args: list[str], env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([SYNCD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"syncd {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(
                f"{self.name} did not stop on SIGTERM within {timeout}s:\n{self.tail()}"
            ) from None


@dataclass
class Stack:
    """The fake directory and any number of daemons on one database (PostgreSQL, or a SQLite file)."""

    workdir: Path
    database_url: str
    delta_interval: int = 5
    graph_port: int = 0
    graph: Proc | None = None
    daemons: list[Proc] = field(default_factory=list)
    _engine: Engine | None = None

    @property
    def graph_url(self) -> str:
        return f"http://127.0.0.1:{self.graph_port}/v1.0"

    @property
    def store(self) -> Path:
        return self.workdir / "tenant.db"

    def env(self, **extra: str) -> dict[str, str]:
        settings = {
            "SYNCD_DATABASE_URL": self.database_url,
            "SYNCD_DIRECTORY_URL": self.graph_url,
            "SYNCD_DELTA_INTERVAL_SECONDS": str(self.delta_interval),
        }
        return base_env(**(settings | extra))

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(
                self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
            )
        return self._engine

    def start_directory(self, users: int, seed: int = 7, group_size: int | None = None) -> None:
        args = ["entra", "generate", "--users", str(users), "--seed", str(seed), "--store", str(self.store)]
        if group_size is not None:
            args += ["--group-size", str(group_size)]
        syncd(args, base_env(), self.workdir)
        self.graph_port = free_port()
        self.graph = self._spawn(
            "graph",
            [
                "entra",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.graph_port),
                "--store",
                str(self.store),
            ],
            base_env(),
        )
        wait_for(
            lambda: httpx.get(f"{self.graph_url}/organization", timeout=2).status_code == 200,
            30,
            "fake Graph",
        )

    def upgrade(self) -> None:
        syncd(["db", "upgrade"], self.env(), self.workdir)

    def create_env(self, name: str, *extra: str) -> None:
        syncd(["env", "create", name, *extra], self.env(), self.workdir)

    def start_daemon(self, name: str | None = None, **extra: str) -> tuple[Proc, int]:
        port = free_port()
        name = name or f"syncd-{len(self.daemons) + 1}"
        url = self.database_url
        if url.startswith("postgresql"):  # the replica's name, as pg_stat_activity shows it
            url += ("&" if "?" in url else "?") + f"application_name={name}"
        proc = self._spawn(name, ["run", "--http-port", str(port)], self.env(SYNCD_DATABASE_URL=url, **extra))
        self.daemons.append(proc)
        wait_for(
            lambda: (
                proc.popen.poll() is None
                and httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            ),
            30,
            f"{name} to answer /healthz:\n{proc.tail()}",
        )
        return proc, port

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        log = self.workdir / f"{name}.log"
        out = log.open("wb")
        popen = subprocess.Popen(
            [SYNCD, *args], env=env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        return Proc(name, popen, log)

    def graph_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.graph_url, timeout=30, headers={"Authorization": "Bearer t"})

    def sim(self, method: str, what: str, body: Any = None) -> Any:
        """The fake server's /_sim/ controls (faults, churn, ...)."""
        r = httpx.request(method, f"http://127.0.0.1:{self.graph_port}/_sim/{what}", json=body, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        for p in [*self.daemons, *([self.graph] if self.graph else [])]:
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait(10)
        if self._engine is not None:
            self._engine.dispose()


# -- the directory side of a test --------------------------------------------------------------------


def admin_ids(client: httpx.Client) -> set[str]:
    out: set[str] = set()
    for role in client.get("/directoryRoles").json()["value"]:
        if role.get("roleTemplateId") in ADMIN_ROLE_TEMPLATES:
            url: str | None = f"/directoryRoles/{role['id']}/members"
            while url:
                page = client.get(url).json()
                out |= {m["id"] for m in page["value"]}
                url = page.get("@odata.nextLink")
    return out


def group_id(client: httpx.Client, display_name: str) -> str:
    for g in client.get("/groups").json()["value"]:
        if g["displayName"] == display_name:
            return str(g["id"])
    raise AssertionError(f"no group {display_name!r}")


def disable_user(client: httpx.Client, user_id: str) -> None:
    r = client.patch(f"/users/{user_id}", json={"accountEnabled": False})
    assert r.status_code in (200, 204), r.text


def remove_licences(client: httpx.Client, user_id: str) -> None:
    user = client.get(f"/users/{user_id}", params={"$select": "id,assignedLicenses"}).json()
    skus = [lic["skuId"] for lic in user.get("assignedLicenses", [])]
    r = client.post(f"/users/{user_id}/assignLicense", json={"addLicenses": [], "removeLicenses": skus})
    assert r.status_code == 200, r.text


def remove_member(client: httpx.Client, group: str, user_id: str) -> None:
    r = client.delete(f"/groups/{group}/members/{user_id}/$ref")
    assert r.status_code == 204, r.text


# -- the database side -------------------------------------------------------------------------------


def enabled_regular_users(engine: Engine, env_name: str, exclude: set[str]) -> list[str]:
    """Object ids of enabled, licensed (read-write) directory users of an environment."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT u.azureactivedirectoryobjectid FROM systemuser u JOIN environment e "
                "ON e.id = u.environment_id WHERE e.name = :n AND u.syncd_kind = 'regular' AND NOT u.isdisabled "
                "AND u.accessmode = 0 AND u.azureactivedirectoryobjectid IS NOT NULL ORDER BY 1"
            ),
            {"n": env_name},
        ).all()
    return [str(r[0]) for r in rows if str(r[0]) not in exclude]


def is_disabled(engine: Engine, env_name: str, object_id: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT u.isdisabled FROM systemuser u JOIN environment e ON e.id = u.environment_id "
                    "WHERE e.name = :n AND u.azureactivedirectoryobjectid = :o"
                ),
                {"n": env_name, "o": object_id},
            ).scalar()
        )


def runs_of(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.id, e.name AS environment, r.kind, r.outcome, r.started_at, r.finished_at, r.trigger, r.error "
                "FROM sync_run r JOIN environment e ON e.id = r.environment_id ORDER BY r.id"
            )
        ).mappings()
        return [dict(r) for r in rows]
