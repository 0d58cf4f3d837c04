"""The fake Graph read by the official Microsoft Graph SDK for Python, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from kiota_abstractions.authentication import AnonymousAuthenticationProvider
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.group import Group
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.user import User
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from syncd.directory.fake.generator import ROLE_TEMPLATES
from syncd.directory.fake.store import TenantStore

USERS = 400  # conftest's tenant


def client_for(served: Any) -> GraphServiceClient:
    adapter = GraphRequestAdapter(AnonymousAuthenticationProvider())
    adapter.base_url = f"{served.base}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def test_users_paging(served: Any) -> None:
    async def run() -> list[User]:
        client = client_for(served)
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            top=57, select=["id", "userPrincipalName", "accountEnabled"]
        )
        page = await client.users.get(request_configuration=RequestConfiguration(query_parameters=query))
        users: list[User] = []
        pages = 0
        while page is not None:
            users += page.value or []
            pages += 1
            if not page.odata_next_link:
                break
            page = await client.users.with_url(page.odata_next_link).get()
        assert pages == -(-USERS // 57)
        return users

    users = asyncio.run(run())
    assert len(users) == USERS
    assert len({u.id for u in users}) == USERS
    assert all(u.display_name is None and u.user_principal_name for u in users)  # $select carried along


def test_users_delta_removed_and_delta_link(served: Any, store: TenantStore) -> None:
    async def read(client: GraphServiceClient, url: str | None) -> tuple[list[User], str]:
        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Prefer", "odata.maxpagesize=64")
        builder = client.users.delta if url is None else client.users.delta.with_url(url)
        page = await builder.get(request_configuration=config)
        out: list[User] = []
        while True:
            assert page is not None
            out += page.value or []
            if page.odata_next_link:
                page = await client.users.delta.with_url(page.odata_next_link).get(
                    request_configuration=config
                )
                continue
            assert page.odata_delta_link and page.odata_delta_link.startswith(served.base)
            return out, page.odata_delta_link

    async def run() -> None:
        client = client_for(served)
        first, link = await read(client, None)
        assert len(first) == USERS
        soft, hard, edited = first[0].id, first[1].id, first[2].id
        assert soft and hard and edited
        store.soft_delete_user(soft)
        store.soft_delete_user(hard)
        store.hard_delete_user(hard)
        store.update_user(edited, {"jobTitle": "Überprüferin"})
        changes, link2 = await read(client, link)
        by_id = {u.id: u for u in changes}
        assert set(by_id) == {soft, hard, edited}
        assert by_id[soft].additional_data["@removed"] == {"reason": "changed"}
        assert by_id[hard].additional_data["@removed"] == {"reason": "deleted"}
        assert by_id[edited].job_title == "Überprüferin"
        nothing, _ = await read(client, link2)
        assert nothing == []

    asyncio.run(run())


def test_group_members_roles_and_skus(served: Any, summary: dict[str, Any]) -> None:
    async def run() -> None:
        client = client_for(served)
        main = summary["groups"]["main"]
        builder = client.groups.by_group_id(main["id"]).members
        page = await builder.get()
        members: list[Any] = []
        while page is not None:
            members += page.value or []
            page = await builder.with_url(page.odata_next_link).get() if page.odata_next_link else None
        assert len(members) == main["members"]
        assert sum(isinstance(m, Group) for m in members) == 1
        assert sum(isinstance(m, ServicePrincipal) for m in members) == 1
        assert all(m.user_principal_name for m in members if isinstance(m, User))
        owners = await client.groups.by_group_id(main["id"]).owners.get()
        assert owners and {o.id for o in owners.value or []} == set(main["owners"])

        roles = await client.directory_roles.get()
        assert roles and {r.role_template_id for r in roles.value or []} == {t for t, _, _ in ROLE_TEMPLATES}
        for role in roles.value or []:
            assert role.id and role.display_name
            held = await client.directory_roles.by_directory_role_id(role.id).members.get()
            expected = summary["roles"][role.display_name]
            assert held and {m.id for m in held.value or []} == set(
                expected["licensed"] + expected["unlicensed"]
            )

        skus = await client.subscribed_skus.get()
        assert skus and skus.value
        parts = {s.sku_part_number for s in skus.value}
        assert {"ENTERPRISEPACK", "DYN365_MARKETING_APP"} <= parts
        e3 = next(s for s in skus.value if s.sku_part_number == "ENTERPRISEPACK")
        assert str(e3.sku_id) == "6fd2c87f-b296-42f0-b197-1e91e994b900"
        assert e3.service_plans and all(p.service_plan_id and p.service_plan_name for p in e3.service_plans)

        org = await client.organization.get()
        assert org and org.value and org.value[0].id == summary["tenant_id"]

    asyncio.run(run())
