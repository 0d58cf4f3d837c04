"""Fixtures of the admin tests: a small fake tenant, served in-process to a Graph client, and `syncd`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_helpers import Cli, Tenant

from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    store = TenantStore.open(None)
    summary = generate_tenant(store, users=20, seed=11)
    yield Tenant(store, summary)
    store.close()


@pytest.fixture
def directory(tenant: Tenant) -> Iterator[GraphClient]:
    client = GraphClient(
        "http://fake-entra.local/v1.0",
        token_provider=StaticToken("x"),
        transport=InProcessTransport(create_app(tenant.store)),
    )
    yield client
    client.close()


@pytest.fixture
def cli_tenant(clean_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenant]:
    """A small fake tenant in a file, as the embedded directory of `syncd` run in-process."""
    path = clean_env / "tenant.db"
    store = TenantStore.open(str(path))
    summary = generate_tenant(store, users=10, seed=5)
    monkeypatch.setenv("SYNCD_DATABASE_URL", db_url)
    monkeypatch.setenv("SYNCD_DIRECTORY_STORE", str(path))
    monkeypatch.setenv("SYNCD_LOG_LEVEL", "warning")
    yield Tenant(store, summary)
    store.close()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)
