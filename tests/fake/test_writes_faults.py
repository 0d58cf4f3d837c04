"""Graph writes (bad bodies change nothing), 404s, and the /_sim/ fault controls."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncd.directory.fake.store import TenantStore

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def first_user(http: httpx.Client) -> dict[str, Any]:
    user: dict[str, Any] = http.get("/v1.0/users", params={"$top": "1"}).json()["value"][0]
    return user


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1.0/users", {"displayName": "No UPN"}),
        ("POST", "/v1.0/users", {"displayName": "x", "userPrincipalName": "no-at-sign"}),
        ("PATCH", "/v1.0/users/{uid}", {"accountEnabled": "yes"}),
        ("PATCH", "/v1.0/users/{uid}", {"favouriteColour": "blue"}),
        ("PATCH", "/v1.0/users/{uid}", {"assignedLicenses": []}),
        (
            "POST",
            "/v1.0/users/{uid}/assignLicense",
            {"addLicenses": [{"skuId": "nope"}], "removeLicenses": []},
        ),
        (
            "POST",
            "/v1.0/users/{uid}/assignLicense",
            {"addLicenses": [{"skuId": E3, "disabledPlans": ["x"]}], "removeLicenses": []},
        ),
        ("POST", "/v1.0/groups", {"displayName": "G", "mailNickname": "g", "securityEnabled": False}),
        ("POST", "/v1.0/groups", {"displayName": "G", "mailNickname": "g", "groupTypes": ["Unified"]}),
        (
            "POST",
            "/v1.0/groups",
            {"displayName": "G", "mailNickname": "g", "mailEnabled": True, "groupTypes": ["Dynamic"]},
        ),
        ("POST", "/v1.0/groups/{gid}/members/$ref", {"id": "missing @odata.id"}),
        ("POST", "/v1.0/groups/{gid}/members/$ref", "not an object"),
    ],
)
def test_bad_bodies_are_400_and_change_nothing(
    http: httpx.Client, store: TenantStore, summary: dict[str, Any], method: str, path: str, body: Any
) -> None:
    user = first_user(http)
    url = path.format(uid=user["id"], gid=summary["groups"]["main"]["id"])
    before = store.change
    r = http.request(method, url, json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()["error"]) == {"code", "message"}
    assert store.change == before
    assert http.get(f"/v1.0/users/{user['id']}").json()["jobTitle"] == user["jobTitle"]


def test_microsoft_365_groups(http: httpx.Client) -> None:
    # R25: a Microsoft 365 group (groupTypes ["Unified"], mail-enabled), as Graph creates one.
    body = {
        "displayName": "Project",
        "mailNickname": "project",
        "mailEnabled": True,
        "groupTypes": ["Unified"],
    }
    r = http.post("/v1.0/groups", json=body)
    assert r.status_code == 201, r.text
    group = http.get(f"/v1.0/groups/{r.json()['id']}").json()
    assert group["groupTypes"] == ["Unified"] and group["mailEnabled"] is True
    assert group["securityEnabled"] is False and group["mail"].startswith("project@")


def test_invalid_json_is_400(http: httpx.Client) -> None:
    r = http.post("/v1.0/users", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"


def test_404s_have_graph_bodies(http: httpx.Client) -> None:
    for path in (
        "/v1.0/users/00000000-0000-0000-0000-000000000001",
        "/v1.0/users/nobody@nowhere.example",
        "/v1.0/groups/nope",
        "/v1.0/groups/nope/members",
        "/v1.0/directoryRoles/nope/members",
        "/v1.0/no/such/thing",
    ):
        r = http.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "Request_ResourceNotFound"


def test_write_round_trip(http: httpx.Client, summary: dict[str, Any]) -> None:
    r = http.post(
        "/v1.0/users",
        json={
            "displayName": "Jürgen Groß",
            "userPrincipalName": "jg@contoso7.example",
            "accountEnabled": True,
            "mailNickname": "jg",
            "passwordProfile": {"password": "x"},
        },
    )
    assert r.status_code == 201
    uid = r.json()["id"]
    assert http.get("/v1.0/users/jg@contoso7.example").json()["id"] == uid
    assert http.patch(f"/v1.0/users/{uid}", json={"city": "Tromsø"}).status_code == 204
    lic = http.post(
        f"/v1.0/users/{uid}/assignLicense", json={"addLicenses": [{"skuId": E3}], "removeLicenses": []}
    )
    assert lic.json()["assignedLicenses"] == [{"disabledPlans": [], "skuId": E3}]
    gid = summary["groups"]["empty"]["id"]
    ref = {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{uid}"}
    assert http.post(f"/v1.0/groups/{gid}/members/$ref", json=ref).status_code == 204
    assert http.post(f"/v1.0/groups/{gid}/members/$ref", json=ref).status_code == 400  # already there
    assert [m["id"] for m in http.get(f"/v1.0/groups/{gid}/members").json()["value"]] == [uid]
    assert http.delete(f"/v1.0/groups/{gid}/members/{uid}/$ref").status_code == 204
    rid = "62e90394-69f5-4237-9190-012177145e10"
    assert http.post(f"/v1.0/directoryRoles/{rid}/members/$ref", json=ref).status_code == 204
    assert http.delete(f"/v1.0/directoryRoles/{rid}/members/{uid}/$ref").status_code == 204
    assert http.delete(f"/v1.0/users/{uid}").status_code == 204
    assert http.get(f"/v1.0/users/{uid}").status_code == 404
    assert http.post(f"/v1.0/directory/deletedItems/{uid}/restore").status_code == 200
    assert http.delete(f"/v1.0/users/{uid}").status_code == 204
    assert http.delete(f"/v1.0/directory/deletedItems/{uid}").status_code == 204
    assert http.post(f"/v1.0/directory/deletedItems/{uid}/restore").status_code == 404
    sp = summary["service_principals"][0]
    found = http.get("/v1.0/servicePrincipals", params={"$filter": f"appId eq '{sp['appId']}'"}).json()[
        "value"
    ]
    assert [s["id"] for s in found] == [sp["id"]]


def test_users_filter_and_count(http: httpx.Client, store: TenantStore) -> None:
    r = http.get(
        "/v1.0/users",
        params={"$filter": "userType eq 'Guest'", "$count": "true", "$top": "999"},
        headers={"ConsistencyLevel": "eventual"},
    ).json()
    assert r["@odata.count"] == len(r["value"]) == store.users_count(guest=True) > 0
    assert all(u["userType"] == "Guest" for u in r["value"])
    r = http.get("/v1.0/users", params={"$filter": "accountEnabled eq true", "$top": "999"}).json()
    assert all(u["accountEnabled"] for u in r["value"])
    assert http.get("/v1.0/users", params={"$count": "true"}).status_code == 400  # no ConsistencyLevel
    assert http.get("/v1.0/users", params={"$top": "1000"}).status_code == 400
    assert http.get("/v1.0/users", params={"$filter": "startswith(displayName,'A')"}).status_code == 400


def test_faults(http: httpx.Client) -> None:
    assert http.post("/_sim/faults", json={"throttle_ratio": 2}).status_code == 400
    assert http.post("/_sim/faults", json={"bogus": 1}).status_code == 400
    http.post("/_sim/counters/reset")
    assert http.post("/_sim/faults", json={"throttle_ratio": 1, "retry_after": 3}).status_code == 200
    assert http.get("/_sim/faults").json()["throttle_ratio"] == 1
    r = http.get("/v1.0/users")
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert r.json()["error"]["code"] == "TooManyRequests"
    assert http.get("/_sim/counters").status_code == 200  # /_sim/ is never faulted
    http.post("/_sim/faults", json={"unavailable_ratio": 1})
    assert http.get("/v1.0/organization").status_code == 503
    http.post("/_sim/faults", json={"throttle_ratio": 0.5, "seed": 4})
    codes = [http.get("/v1.0/organization").status_code for _ in range(40)]
    assert 5 < codes.count(429) < 35 and set(codes) == {200, 429}
    http.post("/_sim/faults", json={"malformed": "invalid_json"})
    with pytest.raises(ValueError):
        http.get("/v1.0/users").json()
    http.post("/_sim/faults", json={"malformed": "missing_id"})
    assert "id" not in http.get("/v1.0/users").json()["value"][0]
    http.post("/_sim/faults", json={"malformed": "wrong_type"})
    assert isinstance(http.get("/v1.0/users").json()["value"], str)
    http.post("/_sim/faults", json={"malformed": "foreign_next_link"})
    assert not http.get("/v1.0/users/delta").json()["@odata.nextLink"].startswith(str(http.base_url))
    assert http.delete("/_sim/faults").json()["malformed"] is None
    assert http.get("/v1.0/users").status_code == 200
    counters = http.get("/_sim/counters").json()
    assert counters["throttled"] >= 1 + codes.count(429) and counters["unavailable"] == 1
    assert counters["malformed"] == 4
    assert counters["by_endpoint"]["GET /v1.0/users"]["throttled"] == 1


def test_sim_generate_and_churn(http: httpx.Client) -> None:
    r = http.post("/_sim/generate", json={"users": 120, "seed": 3})
    assert r.status_code == 200 and r.json()["users"] == 120
    assert len(http.get("/v1.0/users", params={"$top": "999"}).json()["value"]) == 120
    c = http.post("/_sim/churn", json={"changes": 10, "seed": 3}).json()
    assert c["changes"] == 10 and c["users"]["changed"]
    assert http.post("/_sim/generate", json={"seed": 3}).status_code == 400


def test_bearer_token_when_configured(store: TenantStore, serve: Any) -> None:
    from syncd.directory.fake.server import create_app

    with serve(create_app(store, token="s3cret")) as s, httpx.Client(base_url=s.base) as http:
        assert http.get("/v1.0/organization").status_code == 401
        ok = http.get("/v1.0/organization", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
