"""The simulator's own controls under /_sim/ (not Graph): generate, churn, faults, token expiry, counters,
and (with Entra authentication on) registered apps, token revocation and claims challenges."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.directory.fake import graphio
from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.entra import AuthConfigError, EntraAuth
from syncd.directory.fake.errors import StoreError
from syncd.directory.fake.faults import Faults, FaultSettings
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.store import TenantStore

_GENERATE_OPTIONS = {"users", "seed", "group_size", "admins_per_role", "marketing"}


def _int(body: dict[str, Any], key: str, default: int | None = None, *, required: bool = False) -> int | None:
    value = body.get(key, default)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StoreError("Request_BadRequest", f"{key!r} must be an integer >= 0.")
    return value


async def _object(request: Request) -> dict[str, Any]:
    body = await graphio.body_json(request) if await request.body() else {}
    if not isinstance(body, dict):
        raise StoreError("Request_BadRequest", "The body must be a JSON object.")
    return body


_APP_FIELDS = {"client_id", "secret", "certificate", "permissions"}


def _auth_routes(auth: EntraAuth | None) -> list[tuple[str, Any, str]]:
    """/_sim/apps and /_sim/auth/...: 409 when the server runs without authentication."""

    def need_auth() -> EntraAuth:
        if auth is None:
            raise StoreError(
                "Request_BadRequest",
                "This server does not authenticate; start it with --require-auth to use the auth controls.",
                409,
            )
        return auth

    async def list_apps(request: Request) -> Response:
        return graphio.json({"value": need_auth().apps()})

    async def add_app(request: Request) -> Response:
        entra = need_auth()
        body = await _object(request)
        if set(body) - _APP_FIELDS:
            raise StoreError("Request_BadRequest", f"Unknown field; use {sorted(_APP_FIELDS)}.")
        client_id, secret, cert = body.get("client_id"), body.get("secret"), body.get("certificate")
        permissions = body.get("permissions")
        if not isinstance(client_id, str) or not client_id:
            raise StoreError("Request_BadRequest", "'client_id' must be a non-empty string.")
        if secret is not None and not isinstance(secret, str):
            raise StoreError("Request_BadRequest", "'secret' must be a string.")
        if cert is not None and not isinstance(cert, str):
            raise StoreError("Request_BadRequest", "'certificate' must be PEM text.")
        if permissions is not None and not isinstance(permissions, list):
            raise StoreError("Request_BadRequest", "'permissions' must be a list of permission names.")
        try:
            app = entra.register(
                client_id, secret=secret, certificates=[cert] if cert else [], permissions=permissions
            )
        except AuthConfigError as exc:
            raise StoreError("Request_BadRequest", f"{exc}.") from None
        return graphio.json(app.as_dict())

    async def delete_app(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        if not need_auth().remove(client_id):
            raise StoreError("Request_ResourceNotFound", f"No app with client id {client_id!r}.", 404)
        return graphio.json({"value": need_auth().apps()})

    async def revoke(request: Request) -> Response:
        entra = need_auth()
        body = await _object(request)
        if set(body) - {"after_requests"}:
            raise StoreError("Request_BadRequest", "Unknown field; use ['after_requests'].")
        return graphio.json(entra.revoke(_int(body, "after_requests", 0) or 0))

    async def challenge(request: Request) -> Response:
        entra = need_auth()
        body = await _object(request)
        if set(body) - {"count", "after_requests"}:
            raise StoreError("Request_BadRequest", "Unknown field; use ['after_requests', 'count'].")
        count = _int(body, "count", required=True) or 0
        return graphio.json(entra.challenge(count, _int(body, "after_requests", 0) or 0))

    async def counters(request: Request) -> Response:
        return graphio.json(need_auth().counters())

    async def reset(request: Request) -> Response:
        return graphio.json(need_auth().reset_counters())

    return [
        ("/_sim/apps", list_apps, "GET"),
        ("/_sim/apps", add_app, "POST"),
        ("/_sim/apps/{client_id}", delete_app, "DELETE"),
        ("/_sim/auth/revoke", revoke, "POST"),
        ("/_sim/auth/challenge", challenge, "POST"),
        ("/_sim/auth/counters", counters, "GET"),
        ("/_sim/auth/counters/reset", reset, "POST"),
    ]


def sim_routes(store: TenantStore, faults: Faults, auth: EntraAuth | None = None) -> list[Route]:
    async def generate(request: Request) -> Response:
        body = await _object(request)
        if set(body) - _GENERATE_OPTIONS:
            raise StoreError("Request_BadRequest", f"Unknown option; use {sorted(_GENERATE_OPTIONS)}.")
        users = _int(body, "users", required=True)
        summary = await run_in_threadpool(
            generate_tenant,
            store,
            users or 0,
            _int(body, "seed", 0) or 0,
            group_size=_int(body, "group_size"),
            admins_per_role=_int(body, "admins_per_role"),
            marketing=bool(body.get("marketing", True)),
        )
        return graphio.json(summary)

    async def churn(request: Request) -> Response:
        body = await _object(request)
        changes = _int(body, "changes", required=True) or 0
        summary = await run_in_threadpool(apply_churn, store, changes, _int(body, "seed", 0) or 0)
        return graphio.json(summary)

    async def get_faults(request: Request) -> Response:
        return graphio.json(faults.as_dict())

    async def set_faults(request: Request) -> Response:
        faults.set(FaultSettings.parse(await _object(request)))
        return graphio.json(faults.as_dict())

    async def clear_faults(request: Request) -> Response:
        faults.clear()
        return graphio.json(faults.as_dict())

    async def expire(request: Request) -> Response:
        return graphio.json({"epoch": store.expire_delta_tokens()})

    async def counters(request: Request) -> Response:
        return graphio.json(faults.counters())

    async def reset_counters(request: Request) -> Response:
        faults.reset_counters()
        return graphio.json(faults.counters())

    async def tenant(request: Request) -> Response:
        return graphio.json(
            {
                "change": store.change,
                "epoch": store.epoch,
                **store.counts(),
                "tenant_id": store.meta("tenant_id"),
                "domain": store.meta("domain"),
                "auth": auth is not None,
            }
        )

    def guarded(fn: Any) -> Any:
        async def handle(request: Request) -> Response:
            try:
                response: Response = await fn(request)
                return response
            except StoreError as exc:
                return graphio.error(exc.status, exc.code, exc.message)
            except ValueError as exc:
                return graphio.error(400, "Request_BadRequest", str(exc))

        return handle

    return [
        *(Route(path, guarded(fn), methods=[method]) for path, fn, method in _auth_routes(auth)),
        Route("/_sim/generate", guarded(generate), methods=["POST"]),
        Route("/_sim/churn", guarded(churn), methods=["POST"]),
        Route("/_sim/faults", guarded(get_faults), methods=["GET"]),
        Route("/_sim/faults", guarded(set_faults), methods=["POST"]),
        Route("/_sim/faults", guarded(clear_faults), methods=["DELETE"]),
        Route("/_sim/expire-delta-tokens", guarded(expire), methods=["POST"]),
        Route("/_sim/counters", guarded(counters), methods=["GET"]),
        Route("/_sim/counters/reset", guarded(reset_counters), methods=["POST"]),
        Route("/_sim/tenant", guarded(tenant), methods=["GET"]),
    ]
