"""Graph's group, directory role, SKU, service principal and organization endpoints."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from syncd.directory import catalogue
from syncd.directory.catalogue import SkuKind
from syncd.directory.fake import graphio, tokens
from syncd.directory.fake.errors import not_found
from syncd.directory.fake.keys import object_key
from syncd.directory.fake.store import Row, TenantStore
from syncd.directory.fake.userfields import USER_FIELDS, parse_select, project
from syncd.directory.fake.users_api import gone

ODATA_TYPES = {
    "user": b'{"@odata.type":"#microsoft.graph.user",',
    "group": b'{"@odata.type":"#microsoft.graph.group",',
    "servicePrincipal": b'{"@odata.type":"#microsoft.graph.servicePrincipal",',
}


def typed(rows: list[Row], fields: tuple[str, ...] | None) -> list[bytes]:
    """Directory objects with their `@odata.type`; users narrowed to `$select`."""
    out = []
    for _seq, kind, blob in rows:
        body = project(blob, fields) if kind == "user" else blob
        out.append(ODATA_TYPES[kind] + body[1:])
    return out


class DirectoryApi:
    def __init__(self, store: TenantStore) -> None:
        self.store = store

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
        after = 0
        if (skip := q.get("$skiptoken")) is not None:
            decoded = tokens.decode(store.secret, kind, skip)
            if decoded is None:
                raise graphio.bad_request("The $skiptoken is invalid.")
            after = decoded[0]
        rows, cursor = store.members_page(gid, after, size, owners=owners)
        next_link = None
        if cursor is not None:
            params = {k: q[k] for k in ("$select", "$top") if k in q}
            params["$skiptoken"] = tokens.encode(store.secret, kind, cursor)
            path = f"/v1.0/groups/{gid}/{'owners' if owners else 'members'}"
            next_link = graphio.link(request, path, params)
        ctx = graphio.context(request, "directoryObjects")
        return graphio.raw(graphio.page(ctx, typed(rows, fields), next_link=next_link))

    async def members(self, request: Request) -> Response:
        return await self._members(request, owners=False)

    async def owners(self, request: Request) -> Response:
        return await self._members(request, owners=True)

    async def groups_delta(self, request: Request) -> Response:
        q, store = request.query_params, self.store
        secret, epoch, path = store.secret, store.epoch, "/v1.0/groups/delta"
        size = graphio.max_page_size(request)
        cur_seq = cur_ver = mcursor = 0
        if (skip := q.get("$skiptoken")) is not None:
            state = tokens.decode(secret, "gs", skip)
            if state is None or state[0] != epoch:
                return gone(request, path)
            _, since, upto, after, cur_seq, cur_ver, mcursor = state
        elif (token := q.get("$deltatoken")) is not None:
            if token == "latest":
                link = graphio.link(
                    request, path, {"$deltatoken": tokens.encode(secret, "gd", epoch, store.change)}
                )
                return graphio.raw(graphio.page(graphio.context(request, "groups"), [], delta_link=link))
            state = tokens.decode(secret, "gd", token)
            if state is None or state[0] != epoch:
                return gone(request, path)
            since, upto, after = state[1], store.change, 0
        else:
            since, upto, after = 0, store.change, 0
        items: list[bytes] = []
        budget = size
        while budget > 0:
            if not cur_seq:
                rows = store.groups_delta(since, upto, after, 1)
                if not rows:
                    break
                cur_ver, _, _, cur_seq = rows[0]
                mcursor = 0
            found = store.group_by_seq(cur_seq)
            if found is None:  # cannot happen: groups are never deleted
                after, cur_seq = cur_ver, 0
                continue
            gid, blob = found
            changes = store.member_changes(gid, since, mcursor, budget)
            more_members = len(changes) == budget
            entries = [
                ODATA_TYPES[kind]
                + b'"id":"'
                + mid.encode()
                + (b'","@removed":{"reason":"deleted"}}' if removed else b'"}')
                for _seq, mid, kind, removed in changes
            ]
            if mcursor == 0 or entries:
                items.append(bytes(blob)[:-1] + b',"members@delta":[' + b",".join(entries) + b"]}")
            budget -= 1 + len(changes)
            if more_members:
                mcursor = changes[-1][0]
            else:
                after, cur_seq = cur_ver, 0
        ctx = graphio.context(request, "groups")
        if cur_seq or store.groups_delta(since, upto, after, 1):
            skip_token = tokens.encode(secret, "gs", epoch, since, upto, after, cur_seq, cur_ver, mcursor)
            return graphio.raw(
                graphio.page(ctx, items, next_link=graphio.link(request, path, {"$skiptoken": skip_token}))
            )
        link = graphio.link(request, path, {"$deltatoken": tokens.encode(secret, "gd", epoch, upto)})
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
