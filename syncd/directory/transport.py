"""Run an ASGI app (the fake directory) inside the process, behind a synchronous httpx transport.

The embedded default of the daemon talks to the fake Graph server without a
socket::

    GraphClient("http://fake-entra.local/v1.0", token_provider=StaticToken("x"),
                transport=InProcessTransport(create_app(store)))

An event loop runs in a background thread (an anyio blocking portal); each
request is handed to ``httpx.ASGITransport`` on that loop and its response is
read whole before it comes back. The transport is thread-safe. ``close()``
(called by ``httpx.Client.close``) stops the loop and joins its thread.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal


class InProcessTransport(httpx.BaseTransport):
    def __init__(self, app: Any, *, root_path: str = "") -> None:
        # An exception in the app becomes a 500, as it would over a socket.
        self._asgi = httpx.ASGITransport(app=app, root_path=root_path, raise_app_exceptions=False)
        self._lock = threading.Lock()
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._closed = False

    def _ensure_portal(self) -> BlockingPortal:
        with self._lock:
            if self._closed:
                raise RuntimeError("the in-process transport is closed")
            if self._portal is None:
                self._portal_cm = start_blocking_portal(name="syncd-inprocess-graph")
                self._portal = self._portal_cm.__enter__()
            return self._portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        portal = self._ensure_portal()
        body = request.read()
        async_request = httpx.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=body,
            extensions=request.extensions,
        )
        status, headers, content = portal.call(self._send, async_request)
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _send(self, request: httpx.Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        response = await self._asgi.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        return response.status_code, response.headers.raw, content

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            cm, self._portal_cm, self._portal = self._portal_cm, None, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def __repr__(self) -> str:
        return f"InProcessTransport(closed={self._closed})"
