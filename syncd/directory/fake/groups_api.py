"""Graph's group, directory role, SKU, service principal and organization endpoints.

The groups delta walks the groups in creation order, each once, with its membership changes in
pages (`members@delta`; a member soft-deleted is reported removed until it is restored). Its
deltaLink starts the next round at the change the read began at, so a membership change made
while a read pages is never lost: it comes in that read (if its group is not passed yet) or in the
next round. With `defer_mid_read_changes` a read leaves every change made during it to the next round.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from syncd.directory import catalogue
from syncd.directory.catalogue import SkuKind
from syncd.directory.fake import graphio, tokens
from syncd.directory.fake.errors import not_found
from syncd.directory.fake.faults import Faults
from syncd.directory.fake.keys import object_key
from syncd.directory.fake.store import Row, TenantStore
from syncd.directory.fake.userfields import USER_FIELDS, parse_select, project
from syncd.directory.fake.users_api import gone

ODATA_TYPES = {
    "user": b'{"@odata.type":"#microsoft.graph.user",',
    "group": b'{"@odata.type":"#microsoft.graph.group",',
    "servicePrincipal": b'{"@odata.type":"#microsoft.graph.servicePrincipal",',
    "directoryRole": b'{"@odata.type":"#microsoft.graph.directoryRole",',
}


def typed(rows: list[Row], fields: tuple[str, ...] | None) -> list[bytes]:
    """Directory objects with their `@odata.type`; users narrowed to `$select`."""
    out = []
    for _seq, kind, blob in rows:
        body = project(blob, fields) if kind == "user" else blob
        out.append(ODATA_TYPES[kind] + body[1:])
    return out


def member_entry(kind: str, member_id: str, removed: int) -> bytes:
    """One `members@delta` entry; a removed or suspended membership carries `@removed`."""
    tail = b'","@removed":{"reason":"deleted"}}' if removed else b'"}'
    return ODATA_TYPES[kind] + b'"id":"' + member_id.encode() + tail


class DirectoryApi:
    def __init__(self, store: TenantStore, faults: Faults) -> None:
        self.store = store
        self.faults = faults

    # ----------------------------------------------------------------- groups
    async def groups(self, request: Request) -> Response:
        return graphio.raw(graphio.page(graphio.context(request, "groups"), self.store.groups()))

    async def group(self, request: Request) -> Response:
        blob = self.store.group(request.path_params["gid"])
        if blob is None:
            raise not_found("group", request.path_params["gid"])
        return graphio.raw(blob)

    async def _members(self, request: Request, owners: bool) -> Response:
        q, store = request.query_params, self.store
        gid = object_key(request.path_params["gid"])
        if store.group(gid) is None:
            raise not_found("group", request.path_params["gid"])
        fields = parse_select(q.get("$select"), USER_FIELDS)
        size = graphio.top(request, 100)
        kind = "go" if owners else "gm"
        after = n = 0
        if (skip := q.get("$skiptoken")) is not None:
            decoded = tokens.decode(store.secret, kind, skip, 2)
            if decoded is None:
                raise graphio.bad_request("The $skiptoken is invalid.")
            after, n = decoded
        params = {k: q[k] for k in ("$select", "$top") if k in q}
        path = f"/v1.0/groups/{gid}/{'owners' if owners else 'members'}"
        ctx = graphio.context(request, "directoryObjects")
        if self.faults.chance(request, "empty_pages", self.faults.settings.empty_page_ratio):
            params["$skiptoken"] = tokens.encode(store.secret, kind, after, n + 1)
            return graphio.raw(graphio.page(ctx, [], next_link=graphio.link(request, path, params)))
        rows, cursor = store.members_page(gid, after, size, owners=owners)
        next_link = None
        if cursor is not None:
            params["$skiptoken"] = tokens.encode(store.secret, kind, cursor, n + 1)
            next_link = graphio.link(request, path, params)
        return graphio.raw(graphio.page(ctx, typed(rows, fields), next_link=next_link))

    async def members(self, request: Request) -> Response:
        return await self._members(request, owners=False)

    async def owners(self, request: Request) -> Response:
        return await self._members(request, owners=True)

    async def member_of(self, request: Request) -> Response:
        """`GET /users/{id}/memberOf`: the user's direct groups and directory roles, in one page."""
        key = request.path_params["key"]
        found = self.store.member_of(key)
        if found is None:
            raise not_found("user", key)
        items = [ODATA_TYPES[kind] + blob[1:] for kind, blob in found]
        return graphio.raw(graphio.page(graphio.context(request, "directoryObjects"), items))

    async def groups_delta(self, request: Request) -> Response:
        q, store, faults = request.query_params, self.store, self.faults
        settings = faults.settings
        secret, epoch, path = store.secret, store.epoch, "/v1.0/groups/delta"
        size = graphio.max_page_size(request)
        ids = graphio.parse_id_filter(q.get("$filter"))
        base = {"$filter": q["$filter"]} if "$filter" in q else {}
        ctx = graphio.context(request, "groups")
        # A read's state: the round's start `since`, the change it began at, whether it is bounded
        # by its beginning (and then the last group it covers), the group in hand and the member
        # cursor in it (0: the group is done), and a page counter (no nextLink repeats a URL).
        gmax = gseq = mcursor = n = 0
        bounded = settings.defer_mid_read_changes
        if (skip := q.get("$skiptoken")) is not None:
            state = tokens.decode(secret, "gs", skip, 8)
            if state is None or state[0] != epoch:
                return gone(request, path)
            if faults.chance(request, "gone_mid_read", settings.gone_mid_read_ratio):
                return gone(request, path)
            _, since, start, bounded_flag, gmax, gseq, mcursor, n = state
            bounded = bool(bounded_flag)
        else:
            if (token := q.get("$deltatoken")) is None:
                since = 0
            elif token == "latest":
                latest = tokens.encode(secret, "gd", epoch, store.change)
                link = graphio.link(request, path, {**base, "$deltatoken": latest})
                return graphio.raw(graphio.page(ctx, [], delta_link=link))
            else:
                decoded = tokens.decode(secret, "gd", token, 2)
                if decoded is None or decoded[0] != epoch:
                    return gone(request, path)
                since = decoded[1]
            start, gmax = store.change, store.max_group_seq()

        def next_link() -> str:
            state = (epoch, since, start, int(bounded), gmax, gseq, mcursor, n + 1)
            return graphio.link(request, path, {**base, "$skiptoken": tokens.encode(secret, "gs", *state)})

        if faults.chance(request, "empty_pages", settings.empty_page_ratio):
            return graphio.raw(graphio.page(ctx, [], next_link=next_link()))
        upto_seq = gmax if bounded else None

        def next_group() -> Row | None:
            return store.next_changed_group(gseq, since, upto_seq=upto_seq, ids=ids)

        items: list[bytes] = []
        budget = size
        with store.reading():
            while budget > 0:
                if mcursor == 0:
                    found = next_group()
                    if found is None:
                        break
                    gseq, gid, blob = found
                else:
                    gid, blob = store.group_by_seq(gseq) or ("", b"{}")  # groups are never deleted
                changes = store.member_changes(
                    gid, mcursor, budget, since=since, start=start, bounded=bounded
                )
                entries = [member_entry(kind, mid, dropped) for _seq, mid, kind, dropped in changes]
                if mcursor == 0 or entries:
                    items.append(bytes(blob)[:-1] + b',"members@delta":[' + b",".join(entries) + b"]}")
                mcursor = changes[-1][0] if len(changes) == budget else 0
                budget -= 1 + len(changes)
            more = mcursor != 0 or next_group() is not None
        if more:
            return graphio.raw(graphio.page(ctx, items, next_link=next_link()))
        link = graphio.link(request, path, {**base, "$deltatoken": tokens.encode(secret, "gd", epoch, start)})
        return graphio.raw(graphio.page(ctx, items, delta_link=link))

    async def create_group(self, request: Request) -> Response:
        return graphio.raw(self.store.create_group(await graphio.body_json(request)), 201)

    async def add_member(self, request: Request) -> Response:
        member = graphio.ref_id(await graphio.body_json(request))
        self.store.add_group_member(request.path_params["gid"], member)
        return Response(status_code=204)

    async def add_owner(self, request: Request) -> Response:
        owner = graphio.ref_id(await graphio.body_json(request))
        self.store.add_group_owner(request.path_params["gid"], owner)
        return Response(status_code=204)

    async def remove_member(self, request: Request) -> Response:
        self.store.remove_group_member(request.path_params["gid"], request.path_params["mid"])
        return Response(status_code=204)

    async def remove_owner(self, request: Request) -> Response:
        self.store.remove_group_owner(request.path_params["gid"], request.path_params["mid"])
        return Response(status_code=204)

    # ----------------------------------------------------------------- roles
    async def roles(self, request: Request) -> Response:
        return graphio.raw(graphio.page(graphio.context(request, "directoryRoles"), self.store.roles()))

    async def role(self, request: Request) -> Response:
        found = self.store.role(request.path_params["rid"])
        if found is None:
            raise not_found("directoryRole", request.path_params["rid"])
        return graphio.raw(bytes(found[1]))

    async def role_members(self, request: Request) -> Response:
        found = self.store.role(request.path_params["rid"])
        if found is None:
            raise not_found("directoryRole", request.path_params["rid"])
        fields = parse_select(request.query_params.get("$select"), USER_FIELDS)
        rows = self.store.role_members(found[0])
        return graphio.raw(graphio.page(graphio.context(request, "directoryObjects"), typed(rows, fields)))

    async def add_role_member(self, request: Request) -> Response:
        member = graphio.ref_id(await graphio.body_json(request))
        self.store.add_role_member(request.path_params["rid"], member)
        return Response(status_code=204)

    async def remove_role_member(self, request: Request) -> Response:
        self.store.remove_role_member(request.path_params["rid"], request.path_params["mid"])
        return Response(status_code=204)

    # ----------------------------------------------------------------- tenant
    async def subscribed_skus(self, request: Request) -> Response:
        tenant = self.store.meta("tenant_id")
        items = []
        for sku_id, consumed, prepaid in self.store.skus():
            entry = catalogue.SKUS_BY_ID[sku_id]
            company = entry.kind is SkuKind.MARKETING_TENANT
            items.append(
                {
                    "id": f"{tenant}_{sku_id}",
                    "skuId": sku_id,
                    "skuPartNumber": entry.part_number,
                    "appliesTo": "Company" if company else "User",
                    "capabilityStatus": "Enabled",
                    "consumedUnits": consumed,
                    "prepaidUnits": {"enabled": prepaid, "suspended": 0, "warning": 0, "lockedOut": 0},
                    "servicePlans": [
                        {
                            "servicePlanId": p.service_plan_id,
                            "servicePlanName": p.service_plan_name,
                            "provisioningStatus": "Success",
                            "appliesTo": "Company" if company else p.applies_to,
                        }
                        for p in entry.plans
                    ],
                }
            )
        ctx = graphio.context(request, "subscribedSkus")
        return graphio.raw(graphio.page(ctx, [orjson.dumps(i) for i in items]))

    async def service_principals(self, request: Request) -> Response:
        filt = graphio.parse_filter(request.query_params.get("$filter"), {"appId": str})
        blobs = self.store.service_principals(filt.get("appId"))
        return graphio.raw(graphio.page(graphio.context(request, "servicePrincipals"), blobs))

    async def organization(self, request: Request) -> Response:
        domain = self.store.meta("domain")
        org = {
            "id": self.store.meta("tenant_id"),
            "displayName": self.store.meta("tenant_name"),
            "verifiedDomains": [
                {
                    "name": domain,
                    "isDefault": True,
                    "isInitial": True,
                    "type": "Managed",
                    "capabilities": "Email",
                }
            ],
        }
        return graphio.raw(graphio.page(graphio.context(request, "organization"), [orjson.dumps(org)]))
