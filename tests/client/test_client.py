"""The Graph client against a scripted Graph (httpx.MockTransport): paging, links, retries, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest
from client_helpers import BASE, ScriptedGraph, Sleeps, error, page, user

from syncd.directory.auth import StaticToken, TokenProvider
from syncd.directory.client import USER_SELECT, GraphClient
from syncd.directory.errors import (
    DirectoryError,
    DirectoryUnavailable,
    FullResyncRequired,
    GraphError,
    MalformedResponse,
)
from syncd.directory.models import Deletion, DirectoryUser, GroupMember, MemberKind, RemovedUser

MakeClient = Callable[..., GraphClient]


def ids(pages: list[list[DirectoryUser]]) -> list[list[str]]:
    return [[u.id for u in p] for p in pages]


# -- paging and requests -------------------------------------------------------------------------


def test_iter_users_follows_next_links_page_by_page(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on(
        "/users",
        page([user("a"), user("b")], next_link=f"{BASE}/users?$skiptoken=1"),
        page([user("c")], next_link=f"{BASE}/users?$skiptoken=2"),
        page([]),
    )
    pages = client.iter_users()
    first = next(pages)
    assert [u.id for u in first] == ["a", "b"]
    assert len(graph.requests) == 1  # streaming: the second page is not fetched yet
    assert ids(list(pages)) == [["c"], []]
    q = graph.requests[0].url.params
    assert q["$select"] == USER_SELECT and q["$top"] == "999"
    assert graph.requests[1].url.params["$skiptoken"] == "1"
    assert client.stats.requests == 3 and client.stats.retries == 0


def test_requests_carry_the_bearer_token_and_no_prefer_header_outside_delta(
    graph: ScriptedGraph, client: GraphClient
) -> None:
    graph.on("/users", page([]))
    list(client.iter_users())
    req = graph.requests[0]
    assert req.headers["Authorization"] == "Bearer secret-token-value"
    assert "Prefer" not in req.headers


def test_token_provider_is_asked_on_every_request(graph: ScriptedGraph, make_client: MakeClient) -> None:
    class Rotating:
        n = 0

        def token(self) -> str:
            self.n += 1
            return f"t{self.n}"

    provider = Rotating()
    assert isinstance(provider, TokenProvider)
    graph.on("/users", page([user("a")], next_link=f"{BASE}/users?$skiptoken=1"), page([]))
    list(make_client(token_provider=provider).iter_users())
    assert [r.headers["Authorization"] for r in graph.requests] == ["Bearer t1", "Bearer t2"]


def test_tokens_never_show_in_reprs() -> None:
    token = StaticToken("super-secret")
    client = GraphClient(BASE, token_provider=token, transport=httpx.MockTransport(lambda r: page([])))
    with client:
        assert "super-secret" not in repr(token) + str(token) + repr(client)
    with pytest.raises(ValueError):
        StaticToken("")


def test_custom_select_keeps_the_required_fields(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users", page([{"id": "a", "userPrincipalName": "a@x", "accountEnabled": True}]))
    (only,) = list(client.iter_users(select=["displayName"]))
    assert only[0].display_name is None
    fields = graph.requests[0].url.params["$select"].split(",")
    assert set(fields) == {"id", "userPrincipalName", "accountEnabled", "displayName"}


def test_filter_is_sent_and_encoded(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users", page([]))
    list(client.iter_users(filter="userType eq 'Guest'"))
    assert graph.requests[0].url.params["$filter"] == "userType eq 'Guest'"


def test_page_size_bounds() -> None:
    for bad in (0, 1000):
        with pytest.raises(ValueError):
            GraphClient(BASE, token_provider=StaticToken("x"), page_size=bad)
    with pytest.raises(ValueError):
        GraphClient("ftp://x/v1.0", token_provider=StaticToken("x"))


# -- links ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.test/v1.0/users?$skiptoken=1",
        "http://graph.test/v1.0/users?$skiptoken=1",  # another scheme
        "https://graph.test:8443/v1.0/users?$skiptoken=1",  # another port
        "/v1.0/users?$skiptoken=1",  # not absolute
    ],
)
def test_next_link_to_another_origin_is_malformed(
    graph: ScriptedGraph, client: GraphClient, link: str
) -> None:
    graph.on("/users", page([user("a")], next_link=link))
    pages = client.iter_users()
    with pytest.raises(MalformedResponse) as info:
        next(pages)  # the page carrying the bad link is not handed out either
    assert info.value.url.startswith(f"{BASE}/users")
    assert len(graph.requests) == 1


def test_default_port_is_the_same_origin(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on(
        "/users", page([user("a")], next_link="https://GRAPH.test:443/v1.0/users?$skiptoken=1"), page([])
    )
    assert ids(list(client.iter_users())) == [["a"], []]


def test_a_next_link_that_loops_is_malformed(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users", page([user("a")], next_link=f"{BASE}/users?$skiptoken=1"))
    pages = client.iter_users()
    next(pages)
    with pytest.raises(MalformedResponse, match="repeats"):
        next(pages)


def test_a_stored_delta_link_to_another_host_is_refused(graph: ScriptedGraph, client: GraphClient) -> None:
    with pytest.raises(MalformedResponse, match="another host"):
        client.users_delta("https://evil.test/v1.0/users/delta?$deltatoken=x")
    with pytest.raises(MalformedResponse, match="another host"):
        client.groups_delta("https://evil.test/v1.0/groups/delta?$deltatoken=x")
    assert graph.requests == []


# -- malformed pages -----------------------------------------------------------------------------


def test_malformed_second_page_raises_after_the_good_first(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on(
        "/users",
        page([user("a")], next_link=f"{BASE}/users?$skiptoken=1"),
        page([user("b"), user("c", businessPhones="555")]),
    )
    pages = client.iter_users()
    assert [u.id for u in next(pages)] == ["a"]
    with pytest.raises(MalformedResponse) as info:
        next(pages)
    assert "$skiptoken=1" in info.value.url
    assert "businessPhones" in info.value.reason and "id=c" in info.value.reason


@pytest.mark.parametrize(
    "body", [b"<html>oops</html>", b'{"value": "x"}', b'{"values": []}', b'{"value": [{"id": 1}]}']
)
def test_malformed_bodies(graph: ScriptedGraph, client: GraphClient, body: bytes) -> None:
    graph.on("/users", httpx.Response(200, content=body))
    with pytest.raises(MalformedResponse):
        list(client.iter_users())


# -- errors --------------------------------------------------------------------------------------


def test_graph_error_carries_code_and_message(graph: ScriptedGraph, client: GraphClient) -> None:
    # (A 403 Authorization_RequestDenied is a DirectoryAuthError that names the permission: test_auth.py.)
    graph.on("/users", error(400, "Request_UnsupportedQuery", "Unsupported query"))
    with pytest.raises(GraphError) as info:
        list(client.iter_users())
    err = info.value
    assert (err.status, err.code, err.message) == (400, "Request_UnsupportedQuery", "Unsupported query")
    assert isinstance(err, DirectoryError) and err.url.startswith(f"{BASE}/users")
    assert "secret-token-value" not in str(err)


def test_graph_error_without_a_graph_body(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users", httpx.Response(500, content=b"boom"))
    with pytest.raises(GraphError) as info:
        list(client.iter_users())
    assert info.value.status == 500 and info.value.code == "unknown"


def test_get_user_by_upn_and_404(graph: ScriptedGraph, client: GraphClient) -> None:
    upn = "bob_fabrikam.com#EXT#@contoso.onmicrosoft.com"
    graph.on(f"/users/{upn}", httpx.Response(200, json=user("b", userPrincipalName=upn)))
    got = client.get_user(upn)
    assert got is not None and got.user_principal_name == upn
    assert "%23EXT%23@" in str(graph.requests[0].url)  # '#' must not end the path
    assert client.get_user("nobody") is None
    graph.on("/users/broken", httpx.Response(200, json={"id": "broken"}))
    with pytest.raises(MalformedResponse):
        client.get_user("broken")


def test_410_is_a_full_resync_signal(graph: ScriptedGraph, client: GraphClient) -> None:
    location = f"{BASE}/users/delta?$select=id"
    graph.on("/users/delta", error(410, "syncStateNotFound", "gone", headers={"Location": location}))
    reader = client.users_delta(f"{BASE}/users/delta?$deltatoken=old")
    with pytest.raises(FullResyncRequired) as info:
        list(reader)
    assert info.value.location == location and "$deltatoken=old" in info.value.url
    assert reader.delta_link is None


# -- retries -------------------------------------------------------------------------------------


def test_retry_after_is_honoured_on_429_503_504(
    graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps
) -> None:
    statuses: list[int] = []
    client = make_client(on_request=statuses.append)
    graph.on(
        "/users",
        error(429, "TooManyRequests", headers={"Retry-After": "7"}),
        error(503, headers={"Retry-After": "2"}),
        error(504, headers={"Retry-After": "0"}),
        page([user("a")]),
    )
    assert ids(list(client.iter_users())) == [["a"]]
    assert sleeps.delays == [7.0, 2.0]  # a zero Retry-After retries at once
    assert statuses == [429, 503, 504, 200]
    s = client.stats
    assert (s.requests, s.throttled, s.unavailable, s.retries) == (4, 1, 2, 3)


def test_retry_after_as_http_date_and_capped(
    graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps
) -> None:
    client = make_client(retry_after_max=60.0)
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    graph.on(
        "/users",
        error(429, headers={"Retry-After": soon}),
        error(429, headers={"Retry-After": "86400"}),
        page([]),
    )
    list(client.iter_users())
    assert 25 <= sleeps.delays[0] <= 30
    assert sleeps.delays[1] == 60.0


def test_backoff_is_exponential_bounded_and_fully_jittered(
    graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps
) -> None:
    client = make_client(max_retries=8, backoff_base=0.5, backoff_max=10.0, rand=lambda: 1.0)
    graph.on("/users", *[error(503)] * 8, page([]))
    list(client.iter_users())
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    jittered = Sleeps()
    graph2 = ScriptedGraph()
    graph2.on("/users", error(429), page([]))
    rolls = iter([0.25])
    client2 = make_client(
        transport=httpx.MockTransport(graph2.handler), sleep=jittered, rand=lambda: next(rolls)
    )
    list(client2.iter_users())
    assert jittered.delays == [0.125]


def test_retries_run_out(graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client(max_retries=3)
    graph.on("/users", error(429, headers={"Retry-After": "1"}))
    with pytest.raises(DirectoryUnavailable) as info:
        list(client.iter_users())
    err = info.value
    assert (err.status, err.attempts) == (429, 4) and err.url.startswith(f"{BASE}/users")
    assert sleeps.delays == [1.0, 1.0, 1.0]
    assert client.stats.requests == 4 and client.stats.throttled == 4


def test_transport_errors_are_retried_then_reported(make_client: MakeClient, sleeps: Sleeps) -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise httpx.ConnectError("refused", request=request)
        return page([user("a")])

    statuses: list[int] = []
    client = make_client(transport=httpx.MockTransport(flaky), on_request=statuses.append)
    assert ids(list(client.iter_users())) == [["a"]]
    assert statuses == [0, 0, 200] and len(sleeps.delays) == 2

    def dead(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = make_client(transport=httpx.MockTransport(dead), max_retries=2)
    with pytest.raises(DirectoryUnavailable) as info:
        list(client.iter_users())
    assert info.value.status is None and info.value.attempts == 3


def test_500_is_not_retried(graph: ScriptedGraph, client: GraphClient, sleeps: Sleeps) -> None:
    graph.on("/users", error(500, "generalException"), page([]))
    with pytest.raises(GraphError):
        list(client.iter_users())
    assert sleeps.delays == []


# -- delta ---------------------------------------------------------------------------------------


def test_users_delta_pages_removed_users_and_final_link(
    graph: ScriptedGraph, make_client: MakeClient
) -> None:
    client = make_client(page_size=2)
    final = f"{BASE}/users/delta?$deltatoken=t2"
    graph.on(
        "/users/delta",
        page(
            [user("a"), {"id": "s", "@removed": {"reason": "changed"}}],
            next_link=f"{BASE}/users/delta?$skiptoken=1",
        ),
        page([{"id": "h", "@removed": {"reason": "deleted"}}], delta_link=final),
    )
    reader = client.users_delta()
    first = next(reader)
    assert [u.id for u in first.users] == ["a"]
    assert first.removed == [RemovedUser("s", Deletion.SOFT)]
    assert reader.delta_link is None  # not earned yet
    second = next(reader)
    assert second.users == [] and second.removed == [RemovedUser("h", Deletion.HARD)]
    assert reader.delta_link is None  # handed out only when the read is exhausted
    assert list(reader) == []
    assert reader.delta_link == final and reader.pages == 2
    assert all(r.headers["Prefer"] == "odata.maxpagesize=2" for r in graph.requests)
    assert graph.requests[0].url.params["$select"] == USER_SELECT


def test_users_delta_from_a_stored_link(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users/delta", page([user("a")], delta_link=f"{BASE}/users/delta?$deltatoken=t3"))
    reader = client.users_delta(f"{BASE}/users/delta?$deltatoken=t2")
    assert [p.users[0].id for p in reader] == ["a"]
    assert graph.requests[0].url.params["$deltatoken"] == "t2"
    assert reader.delta_link == f"{BASE}/users/delta?$deltatoken=t3"


def test_delta_without_a_final_link_is_malformed(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users/delta", page([user("a")]))
    reader = client.users_delta()
    with pytest.raises(MalformedResponse, match="deltaLink"):
        list(reader)
    assert reader.delta_link is None


def test_foreign_delta_link_is_malformed(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users/delta", page([user("a")], delta_link="https://evil.test/v1.0/users/delta?$deltatoken=1"))
    reader = client.users_delta()
    with pytest.raises(MalformedResponse, match="another host"):
        next(reader)
    assert reader.delta_link is None


def test_partial_delta_users_are_fetched_whole_never_guessed(
    graph: ScriptedGraph, client: GraphClient
) -> None:
    p, gone, full = (f"00000000-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))
    graph.on(
        "/users/delta",
        page(
            [{"id": p, "displayName": "Changed"}, {"id": gone, "accountEnabled": False}, user(full)],
            delta_link=f"{BASE}/users/delta?$deltatoken=t",
        ),
    )
    whole = user(p, displayName="Changed", accountEnabled=False)
    graph.on(
        "/$batch",
        httpx.Response(200, json={"responses": [{"id": "1", "status": 200, "body": {"value": [whole]}}]}),
    )
    (only,) = list(client.users_delta())
    assert sorted(u.id for u in only.users) == [p, full]
    got = next(u for u in only.users if u.id == p)
    assert got.account_enabled is False and got.display_name == "Changed"
    # Both partly sent users are read whole in one batch; the one not found has left the directory
    # since (the next delta says so).
    assert graph.paths() == ["/users/delta", "/$batch"]
    (sub,) = orjson.loads(graph.requests[1].content)["requests"]
    assert f"id in ('{p}','{gone}')" in httpx.URL("https://x" + sub["url"]).params["$filter"]


def test_latest_delta_link(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/users/delta", page([], delta_link=f"{BASE}/users/delta?$deltatoken=now"))
    assert client.latest_users_delta_link() == f"{BASE}/users/delta?$deltatoken=now"
    assert graph.requests[0].url.params["$deltatoken"] == "latest"


def test_groups_delta(graph: ScriptedGraph, client: GraphClient) -> None:
    u = "#microsoft.graph.user"
    graph.on(
        "/groups/delta",
        page(
            [{"id": "g", "members@delta": [{"@odata.type": u, "id": "a"}]}],
            next_link=f"{BASE}/groups/delta?$skiptoken=1",
        ),
        page(
            [
                {
                    "id": "g",
                    "members@delta": [{"@odata.type": u, "id": "b", "@removed": {"reason": "deleted"}}],
                },
                {"id": "old", "@removed": {"reason": "deleted"}},
            ],
            delta_link=f"{BASE}/groups/delta?$deltatoken=g1",
        ),
    )
    reader = client.groups_delta(group_id="g'1")
    pages = list(reader)
    assert pages[0][0].added == [GroupMember("a", MemberKind.USER)]
    assert pages[1][0].removed == [GroupMember("b", MemberKind.USER)]
    assert pages[1][1].removed_group
    assert reader.delta_link == f"{BASE}/groups/delta?$deltatoken=g1"
    assert graph.requests[0].url.params["$filter"] == "id eq 'g''1'"


# -- members, roles, skus, service principals, organization --------------------------------------


def test_group_members_users_in_full_and_others_as_ids(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on(
        "/groups/g1/members",
        page(
            [
                {"@odata.type": "#microsoft.graph.user", **user("a")},
                {"@odata.type": "#microsoft.graph.group", "id": "nested"},
                {"@odata.type": "#microsoft.graph.servicePrincipal", "id": "sp"},
                {"@odata.type": "#microsoft.graph.device", "id": "dev"},
            ]
        ),
    )
    (members,) = list(client.iter_group_members("g1"))
    assert isinstance(members[0], DirectoryUser) and members[0].id == "a"
    assert members[1:] == [
        GroupMember("nested", MemberKind.GROUP),
        GroupMember("sp", MemberKind.SERVICE_PRINCIPAL),
    ]
    (ids_only,) = list(client.iter_group_members("g1", select=None))
    assert ids_only[0] == GroupMember("a", MemberKind.USER)


def test_member_without_odata_type_is_malformed(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on("/groups/g1/owners", page([{"id": "a"}]))
    with pytest.raises(MalformedResponse, match="odata.type"):
        list(client.iter_group_owners("g1"))


def test_roles_skus_service_principals_organization(graph: ScriptedGraph, client: GraphClient) -> None:
    graph.on(
        "/directoryRoles",
        page([{"id": "r1", "displayName": "Global Administrator",
               "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10"}]),
    )  # fmt: skip
    graph.on("/directoryRoles/r1/members", page([{"@odata.type": "#microsoft.graph.user", "id": "a"}]))
    graph.on(
        "/subscribedSkus",
        page([{"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "skuPartNumber": "ENTERPRISEPACK",
               "servicePlans": []}]),
    )  # fmt: skip
    graph.on("/servicePrincipals", page([{"id": "sp", "appId": "app-1", "displayName": "App"}]))
    graph.on("/organization", page([{"id": "tenant-1", "displayName": "Contoso"}]))
    assert [r.role_template_id for r in client.directory_roles()] == ["62e90394-69f5-4237-9190-012177145e10"]
    assert list(client.iter_role_members("r1")) == [[GroupMember("a", MemberKind.USER)]]
    assert client.subscribed_skus()[0].sku_part_number == "ENTERPRISEPACK"
    assert client.service_principals(app_id="app-1")[0].app_id == "app-1"
    assert graph.requests[-1].url.params["$filter"] == "appId eq 'app-1'"
    assert client.organization()["id"] == "tenant-1"


def test_a_slow_answer_is_cut_at_the_deadline() -> None:
    """A run's deadline bounds each request's timeout, not only the waits between retries: Graph
    answering slowly cannot hold a run past it."""
    import time

    from syncd.directory.errors import DeadlineReached

    timeouts: list[float] = []

    def slow(request: httpx.Request) -> httpx.Response:
        read = request.extensions["timeout"]["read"]
        timeouts.append(read)
        time.sleep(read)  # the answer does not come in time
        raise httpx.ReadTimeout("no answer", request=request)

    client = GraphClient(
        BASE, token_provider=StaticToken("t"), transport=httpx.MockTransport(slow), timeout=60
    )
    client.deadline = time.monotonic() + 1.0
    started = time.monotonic()
    with pytest.raises(DeadlineReached):
        list(client.iter_users())
    client.close()
    assert time.monotonic() - started < 3.0
    assert timeouts and all(t <= 1.0 for t in timeouts)
