"""A real HTTP server on 127.0.0.1 for fake tenants: one per test process, its tenant swapped per test.

``GraphServer`` runs uvicorn in a thread on a free port and serves whichever tenant was mounted
last (``mount(store)``); with none mounted every request is a Graph-style 503. Swapping the
tenant instead of starting a server per test keeps a test's tenant cheap, and the URL is a real
socket, so a ``syncd run`` process or any HTTP client (the Graph SDK included) can reach it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.directory.fake.faults import Faults
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.service.server import HttpServer

_NO_TENANT = orjson.dumps(
    {"error": {"code": "serviceNotAvailable", "message": "No fake tenant is mounted on this server."}}
)


class _Switch:
    """The ASGI app that forwards to the mounted tenant's Graph app."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.target
        if target is not None:
            await target(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": _NO_TENANT})


class GraphServer:
    """The fake Graph over HTTP at ``origin`` (``http://127.0.0.1:PORT``); ``graph_url`` adds ``/v1.0``.

    ``start()`` binds a free port (raises ``SyncdError`` when it cannot); ``mount(store)`` serves a
    tenant (with fresh fault settings and counters) and returns its ``Faults``; ``unmount()``;
    ``stop()``.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._switch = _Switch()
        self._http = HttpServer(self._switch, host, 0)
        self.host = host
        self.port = 0

    def start(self) -> GraphServer:
        self._http.start()
        self.port = self._http.bound_port
        return self

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def graph_url(self) -> str:
        return self.origin + "/v1.0"

    def mount(self, store: TenantStore) -> Faults:
        faults = Faults()
        self._switch.target = create_app(store, faults=faults)
        return faults

    def unmount(self) -> None:
        self._switch.target = None

    def stop(self) -> None:
        self.unmount()
        self._http.stop()

    def __enter__(self) -> GraphServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
