"""`syncd dataverse serve` as a real process over HTTPS, read by Microsoft's SDK; and the same
routes on `syncd run`'s HTTP endpoint with SYNCD_DATAVERSE_API=true, shown by `syncd env show`."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from syncd.dataverse.schema import Environment, SystemUser
from syncd.webapi.urls import organization_url, web_api_url
from tests.service.procs import Stack, free_port, syncd, wait_for
from tests.webapi.sdk_server import FakeCredential

dataverse = pytest.importorskip("PowerPlatform.Dataverse.client")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ODD = "a b/c'd"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
    try:
        s.start_directory(users=40)
        s.upgrade()
        for name in ("prod", ODD):
            s.create_env(name)
            syncd(["sync", name], s.env(), s.workdir)
        yield s
    finally:
        s.close()


def _users(stack: Stack, env: str) -> dict[str, str]:
    with stack.engine().connect() as conn:
        rows = conn.execute(
            select(SystemUser.systemuserid, SystemUser.domainname)
            .join(Environment, Environment.id == SystemUser.environment_id)
            .where(Environment.name == env)
        )
        return {str(r.systemuserid): r.domainname for r in rows}


def test_dataverse_serve_over_https_read_by_the_sdk(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    tls = stack.workdir / "tls"
    proc = stack._spawn(
        "webapi", ["dataverse", "serve", "--port", str(port), "--tls-dir", str(tls)], stack.env()
    )
    try:
        origin = f"https://127.0.0.1:{port}"
        ca = tls / "ca.pem"
        wait_for(
            lambda: (
                httpx.get(
                    web_api_url(origin, "prod"), verify=ssl.create_default_context(cafile=ca), timeout=2
                ).status_code
                == 200
            ),
            30,
            f"the Web API:\n{proc.tail()}",
        )
        log = proc.tail()
        assert f"REQUESTS_CA_BUNDLE={ca.resolve()}" in log
        assert organization_url(origin, ODD) in log
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
        for env in ("prod", ODD):
            client = dataverse.DataverseClient(organization_url(origin, env), FakeCredential())
            got = {
                r["systemuserid"]: r["domainname"]
                for page in client.records.list_pages("systemuser", select=["domainname"], page_size=9)
                for r in page
            }
            client.close()
            assert got == _users(stack, env)
    finally:
        assert proc.stop() == 0


def test_the_daemon_serves_the_web_api_when_told(stack: Stack) -> None:
    _, port = stack.start_daemon(SYNCD_DATAVERSE_API="true")
    base = f"http://127.0.0.1:{port}"
    r = httpx.get(web_api_url(base, ODD) + "systemusers", params={"$select": "domainname"}, timeout=10)
    assert r.status_code == 200, r.text
    assert {v["systemuserid"] for v in r.json()["value"]} == set(_users(stack, ODD))
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{base}/api/environments", timeout=5).status_code == 200
    shown = syncd(
        ["env", "show", ODD, "--json"],
        stack.env(SYNCD_DATAVERSE_API="true", SYNCD_DATAVERSE_API_URL=base),
        stack.workdir,
    )
    assert json.loads(shown.stdout)["web_api_url"] == web_api_url(base, ODD)
    hidden = syncd(["env", "show", ODD, "--json"], stack.env(), stack.workdir)
    assert "web_api_url" not in json.loads(hidden.stdout)


def test_without_the_setting_the_daemon_does_not(stack: Stack) -> None:
    _, port = stack.start_daemon()
    r = httpx.get(web_api_url(f"http://127.0.0.1:{port}", "prod") + "systemusers", timeout=10)
    assert r.status_code == 404
