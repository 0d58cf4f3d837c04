"""Delta queries: churn then delta, groups delta, tokens across restarts, expired tokens."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore


def test_churn_then_delta_returns_exactly_the_changed_users(
    http: httpx.Client, store: TenantStore, read_delta: Any
) -> None:
    first, link = read_delta(http, "/v1.0/users/delta")
    assert len(first) == 400 and not any("@removed" in u for u in first)
    done = apply_churn(store, changes=150, seed=5)
    assert done["changes"] == 150 and sum(done["counts"].values()) == 150
    changes, _ = read_delta(http, link, page_size=7)
    assert {u["id"] for u in changes} == set(done["users"]["changed"])
    assert len(changes) == len(done["users"]["changed"])  # each changed user once
    removed = {u["id"]: u["@removed"]["reason"] for u in changes if "@removed" in u}
    assert {i for i, r in removed.items() if r == "deleted"} == set(done["users"]["hard_deleted"])
    for user_id, reason in removed.items():
        row = store.user_row(user_id)
        assert (reason == "changed") == (row is not None and row[1] == 1)


def test_groups_delta_members_added_and_removed(
    http: httpx.Client, store: TenantStore, summary: dict[str, Any], read_delta: Any
) -> None:
    groups, link = read_delta(http, "/v1.0/groups/delta", page_size=40)
    main = summary["groups"]["main"]
    chunks = [g for g in groups if g["id"] == main["id"]]
    assert len(chunks) > 1  # a large group's members span pages
    assert sum(len(g["members@delta"]) for g in chunks) == main["members"]
    current = set(_members(http, main["id"]))
    added = next(uid for uid in _users(store) if uid not in current)
    gone = _members(http, main["id"])[0]
    store.add_group_member(main["id"], added)
    store.remove_group_member(main["id"], gone)
    changed, _ = read_delta(http, link)
    assert [g["id"] for g in changed] == [main["id"]]
    entries = {m["id"]: m for m in changed[0]["members@delta"]}
    assert set(entries) == {added, gone}
    assert entries[gone]["@removed"] == {"reason": "deleted"} and "@removed" not in entries[added]
    assert entries[added]["@odata.type"] == "#microsoft.graph.user"


def _users(store: TenantStore) -> list[str]:
    return [orjson.loads(b)["id"] for _, b in store.users_page(0, 1000)]


def _members(http: httpx.Client, group_id: str) -> list[str]:
    r = http.get(f"/v1.0/groups/{group_id}/members", params={"$top": "999"})
    return [m["id"] for m in r.json()["value"] if m["@odata.type"] == "#microsoft.graph.user"]


def test_delta_tokens_survive_a_reopen(tmp_path: Any, serve: Any, read_delta: Any) -> None:
    path = str(tmp_path / "tenant.db")
    store = TenantStore.open(path)
    generate_tenant(store, 250, 9)
    with serve(create_app(store)) as s, httpx.Client(base_url=s.base) as http:
        _, link = read_delta(http, "/v1.0/users/delta?$select=displayName,accountEnabled")
        _, mid_link = read_delta(http, "/v1.0/users/delta")
    store.close()
    store = TenantStore.open(path)  # a restart
    done = apply_churn(store, changes=20, seed=1)
    with serve(create_app(store)) as s, httpx.Client(base_url=s.base) as http:
        # Links point at the old port: keep their query only.
        query = link.split("?", 1)[1]
        changes, _ = read_delta(http, f"/v1.0/users/delta?{query}")
        assert {u["id"] for u in changes} == set(done["users"]["changed"])
        assert all(set(u) <= {"id", "displayName", "accountEnabled", "@removed"} for u in changes)
    store.close()


def test_unknown_and_expired_tokens_get_410(http: httpx.Client, read_delta: Any) -> None:
    for path in ("/v1.0/users/delta", "/v1.0/groups/delta"):
        r = http.get(path, params={"$deltatoken": "not-a-token"})
        assert r.status_code == 410
        assert r.json()["error"]["code"] == "syncStateNotFound"
        assert r.headers["location"].endswith(path)
    first = http.get("/v1.0/users/delta", headers={"Prefer": "odata.maxpagesize=10"}).json()
    next_link = first["@odata.nextLink"]
    _, delta_link = read_delta(http, "/v1.0/users/delta")
    assert http.get(delta_link).status_code == 200
    assert http.post("/_sim/expire-delta-tokens").status_code == 200
    for link in (next_link, delta_link):
        r = http.get(link)
        assert r.status_code == 410 and r.json()["error"]["code"] == "syncStateNotFound"
        location = r.headers["location"]
        assert location.startswith(str(http.base_url).rstrip("/")) and "/v1.0/users/delta" in location
    fresh, _ = read_delta(http, r.headers["location"])
    assert len(fresh) == 400


def test_latest_token_gives_no_data(http: httpx.Client, store: TenantStore, read_delta: Any) -> None:
    r = http.get("/v1.0/users/delta", params={"$deltatoken": "latest"}).json()
    assert r["value"] == [] and "@odata.deltaLink" in r
    user = store.create_user(
        {"displayName": "Ségolène Roy", "userPrincipalName": "sego@contoso7.onmicrosoft.com"}
    )
    changes, _ = read_delta(http, r["@odata.deltaLink"])
    assert [u["id"] for u in changes] == [orjson.loads(user)["id"]]
