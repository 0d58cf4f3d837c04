"""Users delta as untidy as Graph's: changes during a read, repeats across pages, empty pages, 410 mid-read.

Graph never drops a live object from a delta read: an object changed during a read comes in that
read (possibly twice; the last copy wins) or in the next round, and a removal is never lost.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fake_helpers import active_users, fold, items_of, pages

from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.store import TenantStore


def faults(http: httpx.Client, **settings: Any) -> None:
    r = http.post("/_sim/faults", json=settings)
    assert r.status_code == 200, r.text


def user_ids(store: TenantStore) -> list[str]:
    """Active user ids in creation order (a fresh tenant's delta order too)."""
    return [orjson.loads(b)["id"] for _, b in store.users_page(0, 10**9)]


def test_a_user_changed_during_a_full_read_comes_in_that_read(http: httpx.Client, store: TenantStore) -> None:
    read = pages(http, "/v1.0/users/delta", 50)
    first = next(read)["value"]
    seen, unseen = first[0]["id"], user_ids(store)[-1]
    assert unseen not in {u["id"] for u in first}
    store.update_user(seen, {"jobTitle": "Changed while paging"})
    store.update_user(unseen, {"jobTitle": "Changed before its page"})
    rest = [u for body in read for u in body["value"]]
    assert [u["jobTitle"] for u in rest if u["id"] == seen] == ["Changed while paging"]
    assert [u["jobTitle"] for u in rest if u["id"] == unseen] == ["Changed before its page"]
    assert fold({}, first + rest) == active_users(store)


def test_a_user_removed_during_a_full_read_is_a_tombstone_in_that_read(
    http: httpx.Client, store: TenantStore
) -> None:
    read = pages(http, "/v1.0/users/delta", 50)
    first = next(read)["value"]
    soft, hard, unseen = first[0]["id"], first[1]["id"], user_ids(store)[-1]
    store.soft_delete_user(soft)
    store.soft_delete_user(hard)
    store.hard_delete_user(hard)
    store.soft_delete_user(unseen)
    bodies = list(read)
    rest = [u for body in bodies for u in body["value"]]
    removed = {u["id"]: u["@removed"]["reason"] for u in rest if "@removed" in u}
    assert removed == {soft: "changed", hard: "deleted", unseen: "changed"}
    assert fold({}, first + rest) == active_users(store)  # the read alone is exact
    # Its deltaLink covers exactly what the read returned: nothing falls between, nothing comes twice.
    assert items_of(http, bodies[-1]["@odata.deltaLink"]) == []


def test_deferred_changes_come_in_the_next_round_and_removals_are_never_lost(
    http: httpx.Client, store: TenantStore
) -> None:
    faults(http, defer_mid_read_changes=True)
    before = active_users(store)
    read = pages(http, "/v1.0/users/delta", 50)
    first = next(read)["value"]
    edited, soft, unseen = first[0]["id"], first[1]["id"], user_ids(store)[-1]
    store.update_user(edited, {"jobTitle": "Deferred"})
    store.soft_delete_user(soft)
    store.soft_delete_user(unseen)
    store.hard_delete_user(unseen)
    bodies = list(read)
    rest = [u for body in bodies for u in body["value"]]
    this_read = fold({}, first + rest)
    assert this_read.keys() == before.keys() - {unseen}  # bounded by the read's start
    assert this_read[edited] == before[edited]
    changes = items_of(http, bodies[-1]["@odata.deltaLink"])
    by_id = {u["id"]: u for u in changes}
    assert by_id.keys() == {edited, soft, unseen}
    assert by_id[edited]["jobTitle"] == "Deferred"
    assert by_id[soft]["@removed"] == {"reason": "changed"}
    assert by_id[unseen]["@removed"] == {"reason": "deleted"}
    assert fold(this_read, changes) == active_users(store)


@pytest.mark.parametrize("defer", [False, True], ids=["in-the-read", "deferred"])
def test_churn_between_pages_never_loses_a_change(
    http: httpx.Client, store: TenantStore, defer: bool
) -> None:
    faults(http, defer_mid_read_changes=defer, delta_repeat_ratio=0.3, empty_page_ratio=0.2, seed=3)
    state: dict[str, dict[str, Any]] = {}
    link = "/v1.0/users/delta"
    for round_no in range(4):
        churn = round_no < 3
        for k, body in enumerate(pages(http, link, 37)):
            fold(state, body["value"])
            if churn and "@odata.nextLink" in body and k % 2 == 0:
                apply_churn(store, 12, seed=round_no * 100 + k)
            last = body
        link = last["@odata.deltaLink"]
        if not defer or not churn:
            assert state == active_users(store), round_no


def test_repeats_carry_the_previous_version_and_the_current_copy_comes_later(
    http: httpx.Client, store: TenantStore
) -> None:
    before = active_users(store)
    for i, uid in enumerate(before):
        store.update_user(uid, {"jobTitle": f"Version 2 of {i}"})
    faults(http, delta_repeat_ratio=1, seed=5)
    bodies = list(pages(http, "/v1.0/users/delta", 50))
    # 400 users in pages of 50: each page but the last holds 49 users and one older copy.
    assert len(bodies) == 9 and all(len(b["value"]) == 50 for b in bodies[:-1])
    for p, body in enumerate(bodies[:-1]):
        later = {u["id"] for b in bodies[p + 1 :] for u in b["value"]}
        repeats = [u for u in body["value"] if u["id"] in later]
        assert len(repeats) == 1
        assert repeats[0] == before[repeats[0]["id"]]  # the older copy: the user's previous version
    assert len({u["id"] for u in bodies[-1]["value"]}) == len(bodies[-1]["value"])
    assert fold({}, (u for b in bodies for u in b["value"])) == active_users(store)
    assert http.get("/_sim/counters").json()["repeated"] == 8


def test_repeats_without_a_previous_version_are_tombstones(http: httpx.Client, store: TenantStore) -> None:
    faults(http, delta_repeat_ratio=1, seed=6)
    bodies = list(pages(http, "/v1.0/users/delta?$select=displayName", 64))
    for p, body in enumerate(bodies[:-1]):
        later = {u["id"] for b in bodies[p + 1 :] for u in b["value"]}
        repeats = [u for u in body["value"] if u["id"] in later]
        assert repeats == [{"id": repeats[0]["id"], "@removed": {"reason": "changed"}}]
    assert all(set(u) <= {"id", "displayName", "@removed"} for b in bodies for u in b["value"])
    state = fold({}, (u for b in bodies for u in b["value"]))
    assert state.keys() == active_users(store).keys()


def test_repeats_in_a_later_round(http: httpx.Client, store: TenantStore, read_delta: Any) -> None:
    first, link = read_delta(http, "/v1.0/users/delta")
    state = fold({}, first)
    done = apply_churn(store, 120, seed=2)
    faults(http, delta_repeat_ratio=1, seed=7)
    bodies = list(pages(http, link, 10))
    items = [u for b in bodies for u in b["value"]]
    assert len(items) == len(set(done["users"]["changed"])) + len(bodies) - 1
    assert fold(state, items) == active_users(store)


def test_empty_pages_continue_where_the_page_would_have(
    http: httpx.Client, store: TenantStore, summary: dict[str, Any]
) -> None:
    main = summary["groups"]["main"]["id"]
    reads = {
        "users delta": ("/v1.0/users/delta", 40),
        "groups delta": ("/v1.0/groups/delta", 40),
        "users": ("/v1.0/users?$top=40&$select=displayName", 0),
        "members": (f"/v1.0/groups/{main}/members?$top=20", 0),
        "owners": (f"/v1.0/groups/{main}/owners?$top=1", 0),
    }

    def read_all() -> dict[str, tuple[list[dict[str, Any]], int]]:
        out = {}
        for name, (url, size) in reads.items():
            bodies = list(pages(http, url, size or 50))
            assert "@odata.nextLink" not in bodies[-1]
            empties = sum(not b["value"] and "@odata.nextLink" in b for b in bodies)
            out[name] = [i for b in bodies for i in b["value"]], empties
        return out

    clean = read_all()
    assert all(empties == 0 for _, empties in clean.values())
    faults(http, empty_page_ratio=0.5, seed=8)
    untidy = read_all()
    for name in reads:
        assert untidy[name][0] == clean[name][0], name
        assert untidy[name][1] > 0, name
    assert http.get("/_sim/counters").json()["empty_pages"] == sum(e for _, e in untidy.values())


@pytest.mark.parametrize("path", ["/v1.0/users/delta", "/v1.0/groups/delta"])
def test_gone_in_the_middle_of_a_read(http: httpx.Client, path: str, read_delta: Any) -> None:
    _, delta_link = read_delta(http, path)
    faults(http, gone_mid_read_ratio=1)
    first = http.get(f"{path}?$select=id", headers={"Prefer": "odata.maxpagesize=10"})
    assert first.status_code == 200  # a read's first request has no skip token
    r = http.get(first.json()["@odata.nextLink"])
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "syncStateNotFound"
    location = r.headers["location"]
    assert location.startswith(str(http.base_url).rstrip("/") + path)
    assert "$skiptoken" not in location and "$deltatoken" not in location
    assert http.get(delta_link).status_code == 200  # a deltaLink is not a nextLink
    faults(http, gone_mid_read_ratio=0.5, seed=1)
    statuses = []
    for _ in range(20):
        url = http.get(path, headers={"Prefer": "odata.maxpagesize=10"}).json()["@odata.nextLink"]
        statuses.append(http.get(url).status_code)
    assert set(statuses) == {200, 410}
    assert http.get("/_sim/counters").json()["gone_mid_read"] == 1 + statuses.count(410)


def test_new_fault_settings_are_validated(http: httpx.Client) -> None:
    for bad in (
        {"delta_repeat_ratio": 1.5},
        {"empty_page_ratio": -0.1},
        {"gone_mid_read_ratio": "half"},
        {"defer_mid_read_changes": 1},
        {"delta_repeat_ratio": True},
    ):
        assert http.post("/_sim/faults", json=bad).status_code == 400, bad
    settings = http.get("/_sim/faults").json()
    assert settings["delta_repeat_ratio"] == settings["empty_page_ratio"] == 0
    assert settings["gone_mid_read_ratio"] == 0 and settings["defer_mid_read_changes"] is False
