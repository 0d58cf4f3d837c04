"""Routing of the daemon's JSON API (``/api/...``): paths matched as sent, and JSON errors.

A name may hold any character (``syncd env create`` takes ``a/b``, ``50%``, ``O'Brien team``), so
a client sends it percent-encoded as one path segment: ``/api/environments/a%2Fb/users``. The ASGI
server decodes ``%2F`` into ``/`` in ``scope["path"]``, after which no route could tell the name's
``/`` from the path's. ``ApiRoute`` matches ``scope["raw_path"]`` instead, segment by segment, and
gives each ``{param}`` its segment percent-decoded.

``api_exception_handlers`` answers the routing's own errors under ``/api/`` (no such route: 404; a
method no route of the path takes: 405, with ``Allow`` listing every method of every route of the
path) as the API answers every other error, JSON ``{"error", "detail"}``; elsewhere they stay
Starlette's plain text.

An ``ApiRoute`` that changes something (``POST``, ``PUT``, ``PATCH``, ``DELETE``) must say what
body it takes: its endpoint comes from ``syncd.service.bodies.mutation`` (a ValueError otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from functools import cached_property
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from starlette.convertors import StringConvertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from syncd.service.bodies import MUTATING_METHODS, declares_body

API_PREFIX = "/api/"


def _segment(raw: bytes) -> str:
    """One raw path segment decoded, with ``%`` and ``/`` kept encoded so the segment stays one."""
    text = unquote_to_bytes(raw).decode("utf-8", "replace")
    return text.replace("%", "%25").replace("/", "%2F")


def route_path(scope: Scope) -> str | None:
    """The request's path below its root path, every segment decoded but for ``%`` and ``/``
    (``%25``, ``%2F``); None when the server gave no ``raw_path``."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes):
        return None
    root = str(scope.get("root_path", "")).encode("utf-8")
    if root and raw.startswith(root):
        raw = raw[len(root) :]
    return "/".join(_segment(s) for s in raw.split(b"/"))


class ApiRoute(Route):
    """A Route whose ``{param}`` (``str``, the default convertor) is one path segment as sent,
    percent-decoded: ``/api/environments/a%2Fb`` gives ``env`` ``"a/b"``, ``%25`` gives ``%``.
    Matching, methods (``Match.PARTIAL`` for a method not taken) and convertors are Route's.
    A route with a mutating method needs an endpoint that says what body it takes
    (``syncd.service.bodies.mutation``): ValueError naming the route otherwise."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, methods: Collection[str] | None = None
    ) -> None:
        mutating = sorted(MUTATING_METHODS.intersection(m.upper() for m in methods or ()))
        if mutating and not declares_body(endpoint):
            raise ValueError(
                f"route {' '.join(mutating)} {path!r} does not say what body it takes: "
                "build its endpoint with syncd.service.bodies.mutation"
            )
        super().__init__(path, endpoint, methods=list(methods) if methods is not None else None)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = route_path(scope) if scope["type"] == "http" else None
        if path is None:
            return super().matches(scope)
        match, child = super().matches({**scope, "path": path, "root_path": ""})
        if match is not Match.NONE:
            params: Mapping[str, Any] = child["path_params"]
            child["path_params"] = {
                k: unquote(v) if k in self._raw_params and isinstance(v, str) else v
                for k, v in params.items()
            }
        return match, child

    @cached_property
    def _raw_params(self) -> frozenset[str]:
        return frozenset(k for k, c in self.param_convertors.items() if isinstance(c, StringConvertor))


def _api_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405 under ``/api/`` as JSON ``{"error", "detail"}``; plain text elsewhere."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if not (path + "/").startswith(API_PREFIX):
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):  # as sent, so that ``a%2Fb`` reads as one segment
        path = raw.decode("utf-8", "replace")
    headers = exc.headers
    if exc.status_code == 404:
        body = {"error": "not found", "detail": f"no route {path!r} in the API"}
    elif exc.status_code == 405:
        allowed = _allowed(request) or (exc.headers or {}).get("Allow", "")
        headers = {**(exc.headers or {}), "Allow": allowed}
        body = {
            "error": "method not allowed",
            "detail": f"method {request.method} is not allowed on {path!r}: expected one of {allowed}",
        }
    else:
        body = {"error": str(exc.detail).lower(), "detail": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _allowed(request: Request) -> str:
    """Every method some route of the request's path takes (Starlette's 405 names only the first
    such route's), as an ``Allow`` header's value."""
    methods: set[str] = set()
    app = request.scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        taken = getattr(route, "methods", None)
        if taken and isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= taken
    return ", ".join(sorted(methods))


def api_exception_handlers() -> dict[Any, Any]:
    """Starlette ``exception_handlers`` for the routing's errors (``HTTPException``: 404, 405)."""
    return {HTTPException: _api_error}
