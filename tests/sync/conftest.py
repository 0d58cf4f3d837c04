"""Fixtures for sync runs: a generated in-memory tenant served in-process, and environments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.settings import Settings, load_settings


@pytest.fixture
def store() -> Iterator[TenantStore]:
    s = TenantStore.open(None)
    yield s
    s.close()


@pytest.fixture
def tenant(store: TenantStore) -> dict[str, Any]:
    return generate_tenant(store, users=120, seed=7, group_size=40)


@pytest.fixture
def directory(store: TenantStore) -> Iterator[GraphClient]:
    client = GraphClient(
        "http://fake-entra.local/v1.0",
        token_provider=StaticToken("t"),
        transport=InProcessTransport(create_app(store)),
        page_size=25,
    )
    yield client
    client.close()


@pytest.fixture
def settings(db_url: str, clean_env: Any) -> Settings:
    return load_settings(database_url=db_url, batch_size=16, allow_mass_disable=True)
