"""The ASGI app of the Web API, and `mount_webapi` to serve it beside another app.

Paths are read from the raw request path (`raw_path`), so an environment name percent-encoded
with '/' in it (`a%2Fb`) stays one segment. `/<env>/api/data/v9.2/...` goes to the Web API; with
`mount_webapi`, every other path goes to the app it wraps (the daemon's own routes).

Every response carries `OData-Version: 4.0`. An unknown environment is a 404 in Dataverse's error
shape, like an unknown entity set. Any bearer token is accepted, unless the app is given a
`TokenCheck` (`--require-token`, see `auth`): then only the fake Entra ID's tokens for the
organization are, and any other request is 401 before anything is looked up; and the token's
caller must be an enabled user of the environment, or every request is 403 (see `caller`, which
also says who the caller is without a token check).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import structlog
from sqlalchemy import Engine, MetaData
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.webapi.auth import TokenCheck, Unauthorized
from syncd.webapi.batch import run_batch, split_url
from syncd.webapi.caller import find_caller
from syncd.webapi.entities import EntityType, build_entity_types, entity_types
from syncd.webapi.errors import ODataError, bad_query, no_segment
from syncd.webapi.query import parse_prefer
from syncd.webapi.service import Environment, Request, Response, error_response, find_environment, handle
from syncd.webapi.urls import API_PATH, env_segment

log = structlog.get_logger(__name__)

_API = re.compile(r"^/(?P<env>[^/]+)/" + re.escape(API_PATH) + r"(?:/(?P<rest>.*))?$", re.DOTALL)
MAX_BATCH_BYTES = 16 * 1024 * 1024


def is_webapi_path(raw_path: str) -> bool:
    return _API.match(raw_path) is not None


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if raw:
        return raw.decode("latin-1").split("?", 1)[0]
    return quote(scope.get("path", "/"))


def _headers(scope: Scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


def _params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params:
            raise bad_query(f"The query parameter '{key}' is specified more than once.")
        params[key] = value
    return params


class WebApi:
    """The ASGI app: `/<env>/api/data/v9.2/<resource>`."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        entities: dict[str, EntityType] | None = None,
        auth: TokenCheck | None = None,
        *,
        writes: bool = True,
    ) -> None:
        self.engine = engine
        self.entities = entities if entities is not None else entity_types()
        self.auth = auth
        self.writes = writes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            response = await self._respond(scope, receive)
            content = response.content()
        except ODataError as exc:
            response = error_response(exc)
            if isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = exc.challenge
            content = response.content()
        except Exception as exc:  # logged, and answered as Dataverse answers what it did not foresee
            log.error(
                "webapi_internal_error",
                path=scope.get("path"),
                error=str(exc)[:500],
                error_type=type(exc).__name__,
            )
            response = Response(
                500, {"error": {"code": "0x80040216", "message": "An unexpected error occurred."}}
            )
            content = response.content()
        await _send(send, response, content)

    async def _respond(self, scope: Scope, receive: Receive) -> Response:
        m = _API.match(_raw_path(scope))
        if m is None:
            raise no_segment(_raw_path(scope).strip("/").split("/")[0] or "/")
        segment = m.group("env")
        headers = _headers(scope)
        host = (headers.get("host") or ["localhost"])[0]
        claims = None
        if self.auth is not None:  # before anything is looked up
            claims = self.auth.check(
                (headers.get("authorization") or [""])[0], f"{scope.get('scheme', 'http')}://{host}/{segment}"
            )
        try:
            name = unquote(segment, errors="strict")
        except UnicodeDecodeError:
            raise no_segment(segment) from None
        if "\x00" in name:  # no environment's name holds one; PostgreSQL cannot even compare it
            raise no_segment(segment)
        engine = self.engine()
        env = await run_in_threadpool(find_environment, engine, name)
        if env is None:
            raise no_segment(segment)
        if claims is not None:  # a checked token: its caller must be an enabled user here
            await run_in_threadpool(self._check_member, engine, env, claims)
        root = f"{scope.get('scheme', 'http')}://{host}/{env_segment(env.name)}/{API_PATH}/"
        rest = m.group("rest") or ""
        method = scope["method"].upper()
        if rest == "$batch":
            if method != "POST":
                raise ODataError(405, "0x80060888", "The $batch resource takes POST only.")
            body = await _read_body(receive)
            ctype = (headers.get("content-type") or [""])[0]

            def execute(inner_method: str, url: str, inner_headers: dict[str, list[str]]) -> Response:
                inner_headers.setdefault("authorization", headers.get("authorization", []))
                return self._inner(engine, env, root, segment, inner_method, url, inner_headers)

            prefer = parse_prefer(headers.get("prefer", []))
            content, content_type = await run_in_threadpool(
                partial(run_batch, continue_on_error="odata.continue-on-error" in prefer),
                body.decode("utf-8", errors="replace"),
                ctype,
                execute,
            )
            return Response(200, content, {"Content-Type": content_type})
        query = scope.get("query_string", b"").decode("latin-1")
        body = await _read_body(receive) if method in ("PATCH", "POST", "PUT", "MERGE") else b""
        request = Request(
            method, _segments(rest), _params(query), headers, root, env, self.entities, body, self.writes
        )
        return await run_in_threadpool(handle, engine, request)

    def _check_member(self, engine: Engine, env: Environment, claims: dict[str, Any]) -> None:
        """403 unless the token's caller is an enabled user of `env` (see `caller`)."""
        with engine.connect() as conn:
            find_caller(conn, self.entities, env.id, env.name, claims)

    def _inner(
        self,
        engine: Engine,
        env: Environment,
        root: str,
        segment: str,
        method: str,
        url: str,
        headers: dict[str, list[str]],
    ) -> Response:
        """One request of a $batch, for the same environment only."""
        if method.upper() != "GET":
            raise ODataError(
                501,
                "0x80060888",
                "Writes inside $batch are not served by this simulated environment: send the PATCH alone.",
            )
        path, query = split_url(url)
        if path.startswith("/"):
            m = _API.match(path)
            if m is None or unquote(m.group("env")) != env.name:
                raise no_segment(path.strip("/").split("/")[0])
            rest = m.group("rest") or ""
        else:
            rest = path
        request = Request(method.upper(), _segments(rest), _params(query), headers, root, env, self.entities)
        return handle(engine, request)


def _segments(rest: str) -> list[str]:
    return [unquote(s) for s in rest.split("/")] if rest else []


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BATCH_BYTES:
            raise ODataError(413, "0x80060888", "The $batch request is too large.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Send, response: Response, content: bytes) -> None:
    headers = [
        (b"content-type", response.content_type().encode()),
        (b"odata-version", b"4.0"),
        (b"content-length", str(len(content)).encode()),
    ]
    for k, v in response.headers.items():
        if k.lower() != "content-type":
            headers.append((k.lower().encode(), v.encode("latin-1")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def create_webapi_app(
    engine: Callable[[], Engine], metadata: MetaData | None = None, *, auth: TokenCheck | None = None
) -> WebApi:
    """The Web API alone (what `syncd dataverse serve` runs); the entity types come from `metadata`,
    syncd's schema unless told otherwise. With `auth`, only the tokens it accepts are served."""
    return WebApi(engine, build_entity_types(metadata) if metadata is not None else None, auth)


def mount_webapi(app: ASGIApp, engine: Callable[[], Engine]) -> ASGIApp:
    """`app`, with `/<env>/api/data/v9.2/...` answered by the Web API instead: reads only, since the
    daemon's endpoint checks no token for them (writes: `syncd dataverse serve`)."""
    webapi = WebApi(engine, writes=False)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_webapi_path(_raw_path(scope)):
            await webapi(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
