"""InProcessTransport: an ASGI app behind a synchronous httpx transport, without a socket."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.errors import GraphError
from syncd.directory.transport import InProcessTransport

BASE = "http://fake-entra.local/v1.0"


def _app() -> Starlette:
    hits = {"n": 0}

    async def users(request: Request) -> Response:
        hits["n"] += 1
        if request.query_params.get("throttle") == "1" and hits["n"] % 2:
            return JSONResponse({"error": {"code": "TooManyRequests", "message": "slow down"}}, 429,
                                headers={"Retry-After": "0"})  # fmt: skip
        skip = int(request.query_params.get("$skiptoken", "0"))
        body: dict[str, object] = {
            "value": [
                {"id": f"u{skip}", "userPrincipalName": f"ü{skip}@contoso.com", "accountEnabled": True,
                 "displayName": "Zoë Ångström", "auth": request.headers.get("authorization")}
            ]
        }  # fmt: skip
        if skip < 4:
            body["@odata.nextLink"] = f"{BASE}/users?$skiptoken={skip + 1}&throttle=" + (
                request.query_params.get("throttle") or "0"
            )
        return JSONResponse(body)

    async def echo(request: Request) -> Response:
        return Response(await request.body(), 201, headers={"X-Method": request.method})

    return Starlette(routes=[Route("/v1.0/users", users), Route("/v1.0/echo", echo, methods=["POST"])])


def _portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]


def test_graph_client_reads_an_asgi_app_in_process() -> None:
    before = set(_portal_threads())
    transport = InProcessTransport(_app())
    with GraphClient(
        BASE, token_provider=StaticToken("tok"), transport=transport, sleep=lambda s: None
    ) as client:
        pages = list(client.iter_users(filter="x"))
        assert [u.id for p in pages for u in p] == ["u0", "u1", "u2", "u3", "u4"]
        assert pages[0][0].display_name == "Zoë Ångström"
        assert pages[0][0].user_principal_name == "ü0@contoso.com"
    assert set(_portal_threads()) <= before  # the event-loop thread is gone
    with pytest.raises(RuntimeError):
        transport.handle_request(httpx.Request("GET", f"{BASE}/users"))
    transport.close()  # idempotent


def test_retries_work_in_process() -> None:
    transport = InProcessTransport(_app())
    with GraphClient(
        BASE, token_provider=StaticToken("t"), transport=transport, sleep=lambda s: None
    ) as client:
        url = f"{BASE}/users?throttle=1"
        pages = list(client._pages(url))  # the plain pager, for the query the app understands
        assert len(pages) == 5
        assert client.stats.throttled >= 4


def test_request_body_and_method_pass_through_and_threads_share_one_loop() -> None:
    with httpx.Client(transport=InProcessTransport(_app())) as http:
        r = http.post(f"{BASE}/echo", content="héllo".encode())
        assert r.status_code == 201 and r.text == "héllo" and r.headers["x-method"] == "POST"
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: http.post(f"{BASE}/echo", content=str(i)).text, range(40)))
        assert codes == [str(i) for i in range(40)]


def test_an_app_that_raises_is_a_500_as_over_a_socket() -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("bug in the app")

    app = Starlette(routes=[Route("/v1.0/users", boom)])
    with (
        GraphClient(
            BASE,
            token_provider=StaticToken("t"),
            transport=InProcessTransport(app),
            max_retries=1,
            sleep=lambda s: None,
        ) as client,
        pytest.raises(GraphError) as info,
    ):
        list(client.iter_users())
    assert info.value.status == 500
