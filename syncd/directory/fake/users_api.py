"""Graph's user endpoints over the tenant store: list, get, delta, and the writes.

The users delta is as untidy as Graph's (see `faults.FaultSettings`): a read is not bounded, so a
user changed while it pages comes in it (again, at its new place), and a user removed after a full
read began comes as a removal in it; the deltaLink is made with the last page, under the store's
lock, so that nothing falls between a read and the next round. Pages may repeat an older copy of
a user who comes later in the read, come empty, or (on a nextLink) answer 410.

Once a delta page has been sent, the rows of the page its nextLink asks for are read while the
client takes that page in (`_ReadAhead`); the next request takes them only if nothing in the tenant
has changed since (`TenantStore.stamp`), so a page is the same as one read when it is asked for.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from syncd.directory.fake import graphio, tokens
from syncd.directory.fake.errors import StoreError, not_found
from syncd.directory.fake.faults import Faults
from syncd.directory.fake.store import Row, TenantStore
from syncd.directory.fake.userfields import USER_FIELDS, parse_select, project

_REMOVED = {1: b'","@removed":{"reason":"changed"}}', 2: b'","@removed":{"reason":"deleted"}}'}


def removed(user_id: str, state: int) -> bytes:
    """A users delta removal: `changed` (soft-deleted, restorable) for state 1, `deleted` for 2."""
    return b'{"id":"' + user_id.encode() + _REMOVED[state]


def gone(request: Request, path: str) -> Response:
    """410 for an unknown or expired delta or skip token, pointing at a fresh full delta."""
    q = request.query_params
    params = {"$select": q.get("$select"), "$filter": q.get("$filter")}
    return graphio.error(
        410,
        "syncStateNotFound",
        "The delta token is unknown or has expired; start again with a full delta query.",
        {"Location": graphio.link(request, path, {k: v for k, v in params.items() if v})},
    )


def delta_items(rows: list[Row], fields: tuple[str, ...] | None) -> list[bytes]:
    """The JSON of users delta rows (ver, id, state, blob): a user, projected, or a removal."""
    if fields is None:  # the stored JSON as it is
        return [bytes(blob) if st == 0 else removed(uid, st) for _, uid, st, blob in rows]
    return [project(bytes(blob), fields) if st == 0 else removed(uid, st) for _, uid, st, blob in rows]


# A users delta page's query: (cursor, limit, since, start, bounded, $select fields).
DeltaQuery = tuple[int, int, int, int, bool, tuple[str, ...] | None]


class _ReadAhead(NamedTuple):
    """The rows (and their JSON) of one users delta page, read before they were asked for, and the
    tenant's stamp when they were read."""

    query: DeltaQuery
    stamp: tuple[int, int]
    rows: list[Row]
    items: list[bytes]


class UsersApi:
    def __init__(self, store: TenantStore, faults: Faults) -> None:
        self.store = store
        self.faults = faults
        self._ahead: _ReadAhead | None = None

    async def _read_ahead(self, query: DeltaQuery) -> None:
        """Read the page a nextLink asks for, once the page that carries it has been sent (the
        event loop has nothing else to do while the client takes that page in)."""
        after, limit, since, start, bounded, fields = query
        try:
            with self.store.reading():
                stamp = self.store.stamp()
                rows = self.store.users_delta(after, limit, since=since, start=start, bounded=bounded)
        except sqlite3.Error:  # the store closed meanwhile: the page is read when asked for
            return
        self._ahead = _ReadAhead(query, stamp, rows, delta_items(rows[: limit - 1], fields))

    def _take_ahead(self, query: DeltaQuery) -> _ReadAhead | None:
        """The read-ahead of this very page (None when there is none); call under the store's lock.
        It holds only while nothing in the tenant has changed since it was read."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead.query != query or ahead.stamp != self.store.stamp():
            return None
        return ahead

    # ----------------------------------------------------------------- reads
    async def list(self, request: Request) -> Response:
        q = request.query_params
        fields = parse_select(q.get("$select"), USER_FIELDS)
        size = graphio.top(request)
        ids, rest = graphio.split_id_in(q.get("$filter"))
        filt = graphio.parse_filter(rest, {"accountEnabled": bool, "userType": str})
        user_type = filt.get("userType")
        if user_type is not None and user_type not in ("Member", "Guest"):
            raise graphio.bad_request("userType must be 'Member' or 'Guest'.")
        enabled = filt.get("accountEnabled")
        guest = None if user_type is None else user_type == "Guest"
        after = n = 0
        if (skip := q.get("$skiptoken")) is not None:
            decoded = tokens.decode(self.store.secret, "ul", skip, 2)
            if decoded is None:
                raise graphio.bad_request("The $skiptoken is invalid.")
            after, n = decoded
        params = {k: q[k] for k in ("$select", "$filter", "$top", "$count") if k in q}
        ctx = graphio.context(request, "users")
        count = None
        if q.get("$count", "").lower() == "true":
            if request.headers.get("consistencylevel", "").lower() != "eventual":
                raise graphio.bad_request("$count requires the header ConsistencyLevel: eventual.")
            count = (
                self.store.users_count(enabled=enabled, guest=guest)
                if ids is None
                else len(self.store.users_by_ids(ids, 0, len(ids), enabled=enabled, guest=guest))
            )
        if self.faults.chance(request, "empty_pages", self.faults.settings.empty_page_ratio):
            params["$skiptoken"] = tokens.encode(self.store.secret, "ul", after, n + 1)
            same_place = graphio.link(request, "/v1.0/users", params)
            return graphio.raw(graphio.page(ctx, [], next_link=same_place, count=count))
        if ids is None:
            rows = self.store.users_page(after, size + 1, enabled=enabled, guest=guest)
        else:  # `id in (...)`: the active users among them (unknown and soft-deleted ids are absent)
            rows = self.store.users_by_ids(ids, after, size + 1, enabled=enabled, guest=guest)
        next_link = None
        if len(rows) > size:
            rows = rows[:size]
            params["$skiptoken"] = tokens.encode(self.store.secret, "ul", rows[-1][0], n + 1)
            next_link = graphio.link(request, "/v1.0/users", params)
        items = [project(bytes(r[1]), fields) for r in rows]
        return graphio.raw(graphio.page(ctx, items, next_link=next_link, count=count))

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
        q, store, faults = request.query_params, self.store, self.faults
        settings = faults.settings
        secret, epoch, path = store.secret, store.epoch, "/v1.0/users/delta"
        fields = parse_select(q.get("$select"), USER_FIELDS)
        size = graphio.max_page_size(request)
        base = {"$select": q["$select"]} if "$select" in q else {}
        ctx = graphio.context(request, "users")
        # A read's state: the round's start `since`, the change it began at, its cursor, whether it
        # is bounded by its beginning, and a page counter (so no nextLink repeats a URL of the read).
        after = n = 0
        bounded = settings.defer_mid_read_changes
        if (skip := q.get("$skiptoken")) is not None:
            state = tokens.decode(secret, "us", skip, 6)
            if state is None or state[0] != epoch:
                return gone(request, path)
            if faults.chance(request, "gone_mid_read", settings.gone_mid_read_ratio):
                return gone(request, path)
            _, since, start, after, bounded_flag, n = state
            bounded = bool(bounded_flag)
        elif (token := q.get("$deltatoken")) is not None:
            if token == "latest":
                latest = tokens.encode(secret, "ud", epoch, store.change)
                link = graphio.link(request, path, {**base, "$deltatoken": latest})
                return graphio.raw(graphio.page(ctx, [], delta_link=link))
            state = tokens.decode(secret, "ud", token, 2)
            if state is None or state[0] != epoch:
                return gone(request, path)
            since, start = state[1], store.change
        else:
            since, start = 0, store.change

        def next_link(cursor: int) -> str:
            state = (epoch, since, start, cursor, int(bounded), n + 1)
            return graphio.link(request, path, {**base, "$skiptoken": tokens.encode(secret, "us", *state)})

        if faults.chance(request, "empty_pages", settings.empty_page_ratio):
            return graphio.raw(graphio.page(ctx, [], next_link=next_link(after)))

        def later(cursor: int, offset: int) -> Row | None:
            return store.user_later_in_read(cursor, offset, since=since, start=start, bounded=bounded)

        older = None
        items: list[bytes] | None
        with store.reading():  # the last page and the change number its deltaLink carries, as one
            if (ahead := self._take_ahead((after, size + 1, since, start, bounded, fields))) is not None:
                rows, items = ahead.rows, ahead.items
            else:
                rows = store.users_delta(after, size + 1, since=since, start=start, bounded=bounded)
                items = None
            end = start if bounded else store.change
            more = len(rows) > size
            if len(rows) >= size > 1 and faults.chance(request, "repeated", settings.delta_repeat_ratio):
                rows, more = rows[: size - 1], True
                older = later(rows[-1][0], faults.randrange(size)) or later(rows[-1][0], 0)
            else:
                rows = rows[:size]
        items = delta_items(rows, fields) if items is None else items[: len(rows)]
        if older is not None:  # an older copy of a user who comes again later in this read
            uid, prev = older
            copy = removed(uid, 1) if prev is None else project(bytes(prev), fields)
            items.insert(faults.randrange(len(items) + 1), copy)
        if more:
            response = graphio.raw(graphio.page(ctx, items, next_link=next_link(rows[-1][0])))
            response.background = BackgroundTask(
                self._read_ahead, (rows[-1][0], size + 1, since, start, bounded, fields)
            )
            return response
        link = graphio.link(request, path, {**base, "$deltatoken": tokens.encode(secret, "ud", epoch, end)})
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
