"""The fake Microsoft Graph v1.0 server: a Starlette app over a TenantStore.

`create_app(store)` is the one entry point; the daemon's Graph client runs it in-process
through an ASGI transport, and `syncd entra serve` runs it with uvicorn.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.directory.fake import graphio
from syncd.directory.fake.batch import batch_endpoint
from syncd.directory.fake.entra import EntraAuth
from syncd.directory.fake.faults import Endpoint, Faults
from syncd.directory.fake.groups_api import DirectoryApi
from syncd.directory.fake.sim import sim_routes
from syncd.directory.fake.store import TenantStore
from syncd.directory.fake.users_api import UsersApi


def _bearer(token: str | None, endpoint: Endpoint) -> Endpoint:
    """Check `Authorization: Bearer <token>` when a token is configured; accept anything otherwise."""
    if token is None:
        return endpoint
    expected = f"Bearer {token}"

    async def handle(request: Request) -> Response:
        if request.headers.get("authorization") != expected:
            return graphio.error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        return await endpoint(request)

    return handle


def _checked(auth: EntraAuth, method: str, path: str, endpoint: Endpoint) -> Endpoint:
    """The endpoint behind Entra's token check (401/403 before the endpoint or its faults run)."""

    async def handle(request: Request) -> Response:
        denied = auth.check(request, method, path)
        if denied is not None:
            return denied
        return await endpoint(request)

    return handle


def create_app(
    store: TenantStore,
    *,
    token: str | None = None,
    faults: Faults | None = None,
    auth: EntraAuth | None = None,
) -> Starlette:
    """The Graph look-alike over `store`. `token`: the only bearer token accepted (None: any or none).
    `auth`: check Entra-issued access tokens instead (and serve the token endpoint); `token` is then
    ignored."""
    faults = faults or Faults()
    users, directory = UsersApi(store, faults), DirectoryApi(store, faults)
    graph: list[tuple[str, str, Endpoint]] = [
        ("GET", "/users", users.list),
        ("POST", "/users", users.create),
        ("GET", "/users/delta", users.delta),
        ("GET", "/users/delta()", users.delta),
        ("GET", "/users/{key}", users.get),
        ("PATCH", "/users/{key}", users.patch),
        ("DELETE", "/users/{key}", users.delete),
        ("POST", "/users/{key}/assignLicense", users.assign_license),
        ("GET", "/users/{key}/memberOf", directory.member_of),
        ("GET", "/directory/deletedItems/microsoft.graph.user", users.deleted_users),
        ("GET", "/directory/deletedItems/{id}", users.deleted_item),
        ("POST", "/directory/deletedItems/{id}/restore", users.restore),
        ("DELETE", "/directory/deletedItems/{id}", users.purge),
        ("GET", "/groups", directory.groups),
        ("POST", "/groups", directory.create_group),
        ("GET", "/groups/delta", directory.groups_delta),
        ("GET", "/groups/delta()", directory.groups_delta),
        ("GET", "/groups/{gid}", directory.group),
        ("GET", "/groups/{gid}/members", directory.members),
        ("GET", "/groups/{gid}/owners", directory.owners),
        ("POST", "/groups/{gid}/members/$ref", directory.add_member),
        ("POST", "/groups/{gid}/owners/$ref", directory.add_owner),
        ("DELETE", "/groups/{gid}/members/{mid}/$ref", directory.remove_member),
        ("DELETE", "/groups/{gid}/owners/{mid}/$ref", directory.remove_owner),
        ("GET", "/directoryRoles", directory.roles),
        ("GET", "/directoryRoles/{rid}", directory.role),
        ("GET", "/directoryRoles/{rid}/members", directory.role_members),
        ("POST", "/directoryRoles/{rid}/members/$ref", directory.add_role_member),
        ("DELETE", "/directoryRoles/{rid}/members/{mid}/$ref", directory.remove_role_member),
        ("GET", "/subscribedSkus", directory.subscribed_skus),
        ("GET", "/servicePrincipals", directory.service_principals),
        ("GET", "/organization", directory.organization),
        # JSON batching: each sub-request is dispatched through these same routes (batch.py).
        ("POST", "/$batch", batch_endpoint(faults)),
    ]

    def guard(method: str, path: str, endpoint: Endpoint) -> Endpoint:
        return _bearer(token, endpoint) if auth is None else _checked(auth, method, path, endpoint)

    routes = [
        Route("/v1.0" + path, guard(method, path, faults.wrap(f"{method} /v1.0{path}", fn)), methods=[method])
        for method, path, fn in graph
    ]
    routes += sim_routes(store, faults, auth)
    if auth is not None:
        routes += auth.routes()

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return graphio.error(405, "Request_BadRequest", f"Method {request.method} is not allowed here.")
        return graphio.error(
            status,
            "Request_ResourceNotFound" if status == 404 else "UnknownError",
            f"Resource not found for the segment '{request.url.path}'."
            if status == 404
            else "An error occurred.",
        )

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.store = store
    app.state.faults = faults
    app.state.auth = auth
    return app
