"""Routing of the daemon's JSON API (``/api/...``): paths matched as sent, and JSON errors.

A name may hold any character (``syncd env create`` takes ``a/b``, ``50%``, ``O'Brien team``), so
a client sends it percent-encoded as one path segment: ``/api/environments/a%2Fb/users``. The ASGI
server decodes ``%2F`` into ``/`` in ``scope["path"]``, after which no route could tell the name's
``/`` from the path's. ``ApiRoute`` matches ``scope["raw_path"]`` instead, segment by segment, and
gives each ``{param}`` its segment percent-decoded.

``api_exception_handlers`` answers the routing's own errors under ``/api/`` (no such route: 404; a
method no route of the path takes: 405, with ``Allow`` listing every method of every route of the
path) as the API answers every other error, JSON ``{"error", "detail"}``; elsewhere they stay
Starlette's plain text (the daemon's app answers those with the status pages' HTML 404 and 405
pages: ``syncd.service.ui.pages.Pages.http_error``).

An ``ApiRoute`` that changes something (``POST``, ``PUT``, ``PATCH``, ``DELETE``) must say what
body it takes: its endpoint comes from ``syncd.service.bodies.mutation`` (a ValueError otherwise).
Every ``ApiRoute`` also says what it answers (``responses``: each success status and its model,
``errors``: the error statuses it may answer besides those every route or every mutation may), a
one-line ``summary`` and, if it reads a query string, its ``query`` model: ``syncd.service.openapi``
builds the API's OpenAPI document from exactly this table, so a route cannot be left out of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from functools import cached_property
from typing import Any, TypeAlias
from urllib.parse import unquote, unquote_to_bytes

from pydantic import BaseModel
from starlette.convertors import StringConvertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Scope

from syncd.service.bodies import MUTATING_METHODS, declares_body

API_PREFIX = "/api/"

#: What one status of a route answers: a model of its JSON body (``syncd.service.responses``), or
#: the media type of a body that is not JSON (``"text/html"``), or a tuple of those when the
#: request chooses among them (``GET /api/events?format=``).
Answer: TypeAlias = type[BaseModel] | str | tuple[type[BaseModel] | str, ...]


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


class SegmentRoute(Route):
    """A Route whose ``{param}`` (``str``, the default convertor) is one path segment as sent,
    percent-decoded: ``/api/environments/a%2Fb`` gives ``name`` ``"a/b"``, ``%25`` gives ``%``.
    Matching, methods (``Match.PARTIAL`` for a method not taken) and convertors are Route's. The
    API's routes and the status pages' are both."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Route's match against the raw path, each string parameter percent-decoded."""
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


class ApiRoute(SegmentRoute):
    """A route of the admin API (a ``SegmentRoute``). A route with a mutating method needs an endpoint that says what body it takes
    (``syncd.service.bodies.mutation``), and every route says what it answers: ``responses``, its
    success statuses (200, 201...) and their models (``Answer``); ``errors``, the error statuses
    (404, 409, 502...) it answers beyond those ``syncd.service.openapi`` adds to every route (500)
    and every mutation (400, 401, 403); ``summary``, one line; ``query``, a model of the query
    parameters it reads (their names, types and bounds), if any. ValueError naming the route when
    it leaves out its body or its responses."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Collection[str] | None = None,
        responses: Mapping[int, Answer] | None = None,
        errors: Collection[int] = (),
        summary: str = "",
        query: type[BaseModel] | None = None,
    ) -> None:
        mutating = sorted(MUTATING_METHODS.intersection(m.upper() for m in methods or ()))
        if mutating and not declares_body(endpoint):
            raise ValueError(
                f"route {' '.join(mutating)} {path!r} does not say what body it takes: "
                "build its endpoint with syncd.service.bodies.mutation"
            )
        if not responses:
            raise ValueError(
                f"route {path!r} does not say what it answers: give its responses (status -> model)"
            )
        super().__init__(path, endpoint, methods=list(methods) if methods is not None else None)
        self.responses: dict[int, Answer] = dict(responses)
        self.errors: tuple[int, ...] = tuple(sorted(set(errors)))
        self.summary = summary
        self.query = query


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
