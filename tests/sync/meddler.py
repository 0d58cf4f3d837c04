"""A transport between the Graph client and the fake tenant that does what the real Graph sometimes does.

It forwards every request to the fake (served in-process) and lets a test change the answers in
the ways Graph documents: an older copy of a user on an early page of a delta read, a change made
while a read is paging, a 410 in the middle of a read, ids in upper case. The fake itself stays
real; only the scripted answers differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport

BASE = "http://fake-entra.local/v1.0"


class Meddler(httpx.BaseTransport):
    """Forwards to the fake; hooks see (request, page number within the current read, parsed body)."""

    def __init__(self, store: TenantStore) -> None:
        self.app = create_app(store)  # its fault settings: self.app.state.faults
        self.inner = InProcessTransport(self.app)
        self.requests: list[str] = []
        # Called for each users delta page of a read that starts from scratch: (page index, body) -> body.
        self.full_read_page: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None
        self.gone_on_page: int | None = None  # answer 410 instead of this page of the next full read, once
        self.upper_case_ids = False
        self._page = -1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(f"{request.method} {request.url.path}")
        path = request.url.path
        full_read = "/users/delta" in path and "deltatoken" not in url
        if full_read:
            self._page = 0 if "skiptoken" not in url else self._page + 1
            if self.gone_on_page is not None and self._page == self.gone_on_page:
                self.gone_on_page = None
                body = {"error": {"code": "syncStateNotFound", "message": "The delta token has expired."}}
                return httpx.Response(410, json=body, request=request)
        response = self.inner.handle_request(request)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return response
        body = orjson.loads(response.content)
        if full_read and self.full_read_page is not None and isinstance(body, dict):
            body = self.full_read_page(self._page, body)
        if self.upper_case_ids:
            body = _upper_ids(body)
        return httpx.Response(200, content=orjson.dumps(body), headers={"content-type": "application/json"})

    def close(self) -> None:
        self.inner.close()


def _upper_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (v.upper() if k == "id" and isinstance(v, str) else _upper_ids(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_upper_ids(v) for v in value]
    return value


def meddled_client(store: TenantStore, page_size: int = 25) -> tuple[GraphClient, Meddler]:
    meddler = Meddler(store)
    client = GraphClient(BASE, token_provider=StaticToken("t"), transport=meddler, page_size=page_size)
    return client, meddler
