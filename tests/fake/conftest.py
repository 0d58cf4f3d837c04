"""Fixtures for the fake tenant: a generated store, and the fake Graph served over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore

USERS = 400
SEED = 7


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A uvicorn server for an app, on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Graph server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def tenant() -> Iterator[tuple[TenantStore, dict[str, Any]]]:
    store = TenantStore.open(None)
    summary = generate_tenant(store, USERS, SEED, group_size=150)
    yield store, summary
    store.close()


@pytest.fixture
def store(tenant: tuple[TenantStore, dict[str, Any]]) -> TenantStore:
    return tenant[0]


@pytest.fixture
def summary(tenant: tuple[TenantStore, dict[str, Any]]) -> dict[str, Any]:
    return tenant[1]


@pytest.fixture
def served(store: TenantStore) -> Iterator[Served]:
    with Served(create_app(store)) as s:
        yield s


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        yield client


def _read_delta(http: httpx.Client, url: str, page_size: int = 100) -> tuple[list[dict[str, Any]], str]:
    """Every item of a delta round, and its deltaLink."""
    items: list[dict[str, Any]] = []
    while True:
        r = http.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["value"]
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
        else:
            return items, body["@odata.deltaLink"]


@pytest.fixture
def read_delta() -> Any:
    """read_delta(http, url, page_size=100) -> (items, deltaLink)."""
    return _read_delta


@pytest.fixture
def serve() -> Any:
    """serve(app) -> a context manager running the app on a free loopback port."""
    return Served
