"""The fake Graph's `$filter=id in (...)` on users and JSON batching (`POST /v1.0/$batch`), over HTTP.

Graph's limits: at most 15 values in an `in` (its default; more is 400 Request_UnsupportedQuery), at
most 20 requests in a batch; each request inside a batch is evaluated on its own (faults, auth).
"""

from __future__ import annotations

from typing import Any

import httpx
from fake_helpers import active_users

from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore

MISSING = "00000000-0000-4000-8000-00000000abcd"


def in_filter(ids: list[str]) -> str:
    return "id in (" + ",".join(f"'{i}'" for i in ids) + ")"


def test_users_id_in_filter(http: httpx.Client, store: TenantStore) -> None:
    users = sorted(active_users(store))
    wanted = users[:5]
    deleted = users[5]
    store.soft_delete_user(deleted)
    asked = [wanted[0].upper(), *wanted[1:], MISSING, deleted]  # any case; unknown and soft-deleted ids
    r = http.get("/v1.0/users", params={"$filter": in_filter(asked), "$select": "id,displayName"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(u["id"] for u in body["value"]) == wanted  # canonical ids, the others simply absent
    assert all(set(u) == {"id", "displayName"} for u in body["value"])
    assert "@odata.nextLink" not in body
    # With another clause, and paged by $top (the nextLink carries the filter).
    enabled = http.get(
        "/v1.0/users", params={"$filter": in_filter(wanted) + " and accountEnabled eq true", "$top": "2"}
    ).json()
    seen = [u["id"] for u in enabled["value"]]
    assert len(seen) == 2 and "@odata.nextLink" in enabled
    while "@odata.nextLink" in enabled:
        enabled = http.get(enabled["@odata.nextLink"]).json()
        seen += [u["id"] for u in enabled["value"]]
    assert sorted(seen) == sorted(u for u in wanted if active_users(store)[u]["accountEnabled"])


def test_users_id_in_filter_limits(http: httpx.Client, store: TenantStore) -> None:
    users = sorted(active_users(store))
    assert http.get("/v1.0/users", params={"$filter": in_filter(users[:15])}).status_code == 200
    r = http.get("/v1.0/users", params={"$filter": in_filter(users[:16])})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "Request_UnsupportedQuery",
        "message": "Too many child clauses specified in search filter expression containing 'OR' "
        "operators: 16. Max allowed: 15.",
    }
    for bad in ("id in ()", "id in ('not-a-guid')", f"id in ({users[0]})"):
        assert http.get("/v1.0/users", params={"$filter": bad}).status_code == 400, bad


def batch(http: httpx.Client, requests: list[dict[str, Any]], **headers: str) -> httpx.Response:
    return http.post("/v1.0/$batch", json={"requests": requests}, headers=headers)


def by_id(r: httpx.Response) -> dict[str, dict[str, Any]]:
    assert r.status_code == 200, r.text
    return {x["id"]: x for x in r.json()["responses"]}


def test_batch_shapes(http: httpx.Client, store: TenantStore) -> None:
    users = sorted(active_users(store))
    requests = [
        {"id": "1", "method": "GET", "url": f"/users?$select=id&$filter={in_filter(users[:15])}"},
        {"id": "2", "method": "GET", "url": f"users/{users[20]}?$select=id,displayName"},  # no leading /
        {"id": "3", "method": "GET", "url": "/users/nobody@nowhere.example"},
        {"id": "4", "method": "GET", "url": "/$batch"},
        {
            "id": "5",
            "method": "PATCH",
            "url": f"/users/{users[21]}",
            "headers": {"Content-Type": "application/json"},
            "body": {"jobTitle": "Batched"},
            "dependsOn": ["2"],  # accepted and ignored: sub-requests run in the order given
        },
    ]
    got = by_id(batch(http, requests))
    assert set(got) == {"1", "2", "3", "4", "5"}
    assert got["1"]["status"] == 200 and got["1"]["headers"]["Content-Type"].startswith("application/json")
    assert sorted(u["id"] for u in got["1"]["body"]["value"]) == users[:15]
    assert got["2"]["status"] == 200 and got["2"]["body"]["id"] == users[20]
    assert got["3"]["status"] == 404 and got["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert got["4"]["status"] == 400
    assert got["5"]["status"] == 204 and "body" not in got["5"]
    assert active_users(store)[users[21]]["jobTitle"] == "Batched"
    counters = http.get("/_sim/counters").json()["by_endpoint"]
    assert counters["POST /v1.0/$batch"]["requests"] == 1
    assert counters["GET /v1.0/users"]["requests"] == 1 and counters["GET /v1.0/users/{key}"]["requests"] == 2


def test_batch_limits(http: httpx.Client) -> None:
    twenty = [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(20)]
    assert len(by_id(batch(http, twenty))) == 20
    r = batch(http, [*twenty, {"id": "20", "method": "GET", "url": "/organization"}])
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    for bad in (
        {"requests": []},
        {"nope": 1},
        {"requests": [{"id": "1", "method": "GET", "url": "/organization"}] * 2},  # the same id twice
        {"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}]},
        {"requests": [{"id": "1", "method": "GET"}]},
    ):
        assert http.post("/v1.0/$batch", json=bad).status_code == 400, bad


def test_batch_faults_hit_sub_requests_one_by_one(http: httpx.Client) -> None:
    http.post("/_sim/faults", json={"throttle_ratio": 0.5, "retry_after": 2, "seed": 11})
    statuses: list[int] = []
    for _ in range(10):  # the batch itself may be throttled too, as any request
        r = batch(http, [{"id": str(i), "method": "GET", "url": "/organization"} for i in range(20)])
        if r.status_code == 429:
            continue
        for sub in by_id(r).values():
            statuses.append(sub["status"])
            if sub["status"] == 429:
                assert sub["headers"]["Retry-After"] == "2"
                assert sub["body"]["error"]["code"] == "TooManyRequests"
    assert 429 in statuses and 200 in statuses
    http.delete("/_sim/faults")
    counters = http.get("/_sim/counters").json()["by_endpoint"]
    assert counters["GET /v1.0/organization"]["throttled"] == statuses.count(429)


def test_batch_sub_requests_carry_the_batch_authorization(store: TenantStore, serve: Any) -> None:
    with serve(create_app(store, token="s3cret")) as s, httpx.Client(base_url=s.base) as http:
        sub = [{"id": "1", "method": "GET", "url": "/organization"}]
        assert batch(http, sub).status_code == 401
        got = by_id(batch(http, sub, Authorization="Bearer s3cret"))
        assert got["1"]["status"] == 200
        # A sub-request's own Authorization does not replace the batch's.
        sub[0]["headers"] = {"Authorization": "Bearer wrong"}
        assert by_id(batch(http, sub, Authorization="Bearer s3cret"))["1"]["status"] == 200
