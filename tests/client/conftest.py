"""Fixtures for the Graph client tests (helpers live in client_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from client_helpers import BASE, ScriptedGraph, Sleeps

from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient


@pytest.fixture
def graph() -> ScriptedGraph:
    return ScriptedGraph()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(graph: ScriptedGraph, sleeps: Sleeps) -> Iterator[Callable[..., GraphClient]]:
    made: list[GraphClient] = []

    def make(**kwargs: Any) -> GraphClient:
        kwargs.setdefault("token_provider", StaticToken("secret-token-value"))
        kwargs.setdefault("transport", httpx.MockTransport(graph.handler))
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("rand", lambda: 1.0)
        client = GraphClient(BASE, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., GraphClient]) -> GraphClient:
    return make_client()
