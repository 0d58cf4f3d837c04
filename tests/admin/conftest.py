"""Fixtures of the admin tests: a small fake tenant, served in-process to a Graph client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from admin_helpers import Tenant

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
