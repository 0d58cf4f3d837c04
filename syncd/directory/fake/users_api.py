"""Graph's user endpoints over the tenant store: list, get, delta, and the writes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from syncd.directory.fake import graphio, tokens
from syncd.directory.fake.errors import StoreError, not_found
from syncd.directory.fake.store import TenantStore
from syncd.directory.fake.userfields import USER_FIELDS, parse_select, project

_REMOVED = {1: b'","@removed":{"reason":"changed"}}', 2: b'","@removed":{"reason":"deleted"}}'}


def gone(request: Request, path: str) -> Response:
    """410 for an unknown or expired delta or skip token, pointing at a fresh full delta."""
    params = {"$select": request.query_params.get("$select")}
    return graphio.error(
        410,
        "syncStateNotFound",
        "The delta token is unknown or has expired; start again with a full delta query.",
        {"Location": graphio.link(request, path, {k: v for k, v in params.items() if v})},
    )


class UsersApi:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

    # ----------------------------------------------------------------- reads
    async def list(self, request: Request) -> Response:
        q = request.query_params
        fields = parse_select(q.get("$select"), USER_FIELDS)
        size = graphio.top(request)
        filt = graphio.parse_filter(q.get("$filter"), {"accountEnabled": bool, "userType": str})
        user_type = filt.get("userType")
        if user_type is not None and user_type not in ("Member", "Guest"):
            raise graphio.bad_request("userType must be 'Member' or 'Guest'.")
        enabled = filt.get("accountEnabled")
        guest = None if user_type is None else user_type == "Guest"
        after = 0
        if (skip := q.get("$skiptoken")) is not None:
            decoded = tokens.decode(self.store.secret, "ul", skip)
            if decoded is None:
                raise graphio.bad_request("The $skiptoken is invalid.")
            after = decoded[0]
        count = None
        if q.get("$count", "").lower() == "true":
            if request.headers.get("consistencylevel", "").lower() != "eventual":
                raise graphio.bad_request("$count requires the header ConsistencyLevel: eventual.")
            count = self.store.users_count(enabled=enabled, guest=guest)
        rows = self.store.users_page(after, size + 1, enabled=enabled, guest=guest)
        next_link = None
        if len(rows) > size:
            rows = rows[:size]
            params = {k: q[k] for k in ("$select", "$filter", "$top", "$count") if k in q}
            params["$skiptoken"] = tokens.encode(self.store.secret, "ul", rows[-1][0])
            next_link = graphio.link(request, "/v1.0/users", params)
        items = [project(bytes(r[1]), fields) for r in rows]
        return graphio.raw(
            graphio.page(graphio.context(request, "users"), items, next_link=next_link, count=count)
        )

    async def get(self, request: Request) -> Response:
        key = request.path_params["key"]
        blob = self.store.user(key)
        if blob is None:
            raise not_found("user", key)
        fields = parse_select(request.query_params.get("$select"), USER_FIELDS)
        body = project(blob, fields)
        ctx = graphio.context(request, "users/$entity").encode()
        return graphio.raw(b'{"@odata.context":"' + ctx + b'",' + body[1:])

    async def delta(self, request: Request) -> Response:
        q, store = request.query_params, self.store
        secret, epoch, path = store.secret, store.epoch, "/v1.0/users/delta"
        fields = parse_select(q.get("$select"), USER_FIELDS)
        size = graphio.max_page_size(request)
        base = {"$select": q["$select"]} if "$select" in q else {}
        if (skip := q.get("$skiptoken")) is not None:
            state = tokens.decode(secret, "us", skip)
            if state is None or state[0] != epoch:
                return gone(request, path)
            _, since, upto, after = state
        elif (token := q.get("$deltatoken")) is not None:
            if token == "latest":
                link = graphio.link(
                    request, path, {**base, "$deltatoken": tokens.encode(secret, "ud", epoch, store.change)}
                )
                return graphio.raw(graphio.page(graphio.context(request, "users"), [], delta_link=link))
            state = tokens.decode(secret, "ud", token)
            if state is None or state[0] != epoch:
                return gone(request, path)
            since, upto, after = state[1], store.change, 0
        else:
            since, upto, after = 0, store.change, 0
        rows = store.users_delta(since, upto, after, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        items: list[bytes] = []
        for _ver, user_id, state_code, blob in rows:
            if state_code == 0:
                items.append(project(bytes(blob), fields))
            else:
                items.append(b'{"id":"' + user_id.encode() + _REMOVED[state_code])
        ctx = graphio.context(request, "users")
        if more:
            skip_token = tokens.encode(secret, "us", epoch, since, upto, rows[-1][0])
            link = graphio.link(request, path, {**base, "$skiptoken": skip_token})
            return graphio.raw(graphio.page(ctx, items, next_link=link))
        link = graphio.link(request, path, {**base, "$deltatoken": tokens.encode(secret, "ud", epoch, upto)})
        return graphio.raw(graphio.page(ctx, items, delta_link=link))

    # ----------------------------------------------------------------- writes
    async def create(self, request: Request) -> Response:
        blob = self.store.create_user(await graphio.body_json(request))
        return graphio.raw(blob, 201)

    async def patch(self, request: Request) -> Response:
        self.store.update_user(request.path_params["key"], await graphio.body_json(request))
        return Response(status_code=204)

    async def delete(self, request: Request) -> Response:
        self.store.soft_delete_user(request.path_params["key"])
        return Response(status_code=204)

    async def assign_license(self, request: Request) -> Response:
        return graphio.raw(
            self.store.assign_licenses(request.path_params["key"], await graphio.body_json(request))
        )

    async def restore(self, request: Request) -> Response:
        blob = self.store.restore_user(request.path_params["id"])
        return graphio.raw(b'{"@odata.type":"#microsoft.graph.user",' + blob[1:])

    async def deleted_item(self, request: Request) -> Response:
        row = self.store.user_row(request.path_params["id"])
        if row is None or row[1] != 1:
            raise not_found("deletedItem", request.path_params["id"])
        return graphio.raw(b'{"@odata.type":"#microsoft.graph.user",' + bytes(row[2])[1:])

    async def purge(self, request: Request) -> Response:
        self.store.hard_delete_user(request.path_params["id"])
        return Response(status_code=204)

    async def deleted_users(self, request: Request) -> Response:
        items = [b'{"@odata.type":"#microsoft.graph.user",' + b[1:] for b in self.store.deleted_users()]
        return graphio.raw(graphio.page(graphio.context(request, "directoryObjects"), items))


__all__ = ["UsersApi", "StoreError", "gone"]
