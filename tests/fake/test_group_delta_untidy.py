"""Groups delta and the member lists agree at every moment: soft deletes suspend memberships, restores
bring them back, hard deletes end them, and membership changes during a read are never lost."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_helpers import direct_members, fold_groups, items_of, pages

from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.store import TenantStore


def assert_agree(http: httpx.Client, state: dict[str, set[str]], when: str) -> None:
    """The accumulated groups delta says what `/groups/{id}/members` says, for every group."""
    assert state
    for gid, members in state.items():
        assert members == direct_members(http, gid), f"{when}: group {gid}"


def a_member_that_owns(http: httpx.Client, summary: dict[str, Any]) -> str:
    main = summary["groups"]["main"]
    owners = set(main["owners"]) & direct_members(http, main["id"])
    assert owners
    return owners.pop()


def test_soft_delete_restore_and_hard_delete_round_by_round(
    http: httpx.Client, store: TenantStore, summary: dict[str, Any]
) -> None:
    main, sales = summary["groups"]["main"]["id"], summary["groups"]["sales"]["id"]
    user = a_member_that_owns(http, summary)
    if user not in direct_members(http, sales):
        store.add_group_member(sales, user)
    state: dict[str, set[str]] = {}
    items = items_of(http, "/v1.0/groups/delta", 60)
    fold_groups(state, items)
    link = pages_link(http, "/v1.0/groups/delta")
    assert_agree(http, state, "initial read")
    assert user in state[main] and user in state[sales]

    store.soft_delete_user(user)
    assert user not in direct_members(http, main) and user not in direct_members(http, main, "owners")
    changes, link = read_round(http, link)
    entries = {m["id"]: m for g in changes if g["id"] == main for m in g["members@delta"]}
    assert "@removed" in entries[user]
    fold_groups(state, changes)
    assert_agree(http, state, "after the soft delete")
    fresh: dict[str, set[str]] = fold_groups({}, items_of(http, "/v1.0/groups/delta", 60))
    assert fresh == state  # a fresh full read leaves the suspended member out too

    http.post(f"/v1.0/directory/deletedItems/{user}/restore").raise_for_status()
    assert user in direct_members(http, main) and user in direct_members(http, main, "owners")
    changes, link = read_round(http, link)
    fold_groups(state, changes)
    assert user in state[main] and user in state[sales]
    assert_agree(http, state, "after the restore")

    store.soft_delete_user(user)
    store.hard_delete_user(user)
    changes, link = read_round(http, link)
    fold_groups(state, changes)
    assert_agree(http, state, "after the hard delete")
    assert user not in state[main] and user not in direct_members(http, main, "owners")
    assert http.post(f"/v1.0/directory/deletedItems/{user}/restore").status_code == 404
    changes, link = read_round(http, link)
    assert all(g["members@delta"] == [] for g in changes)  # nothing more to say about the user


def pages_link(http: httpx.Client, url: str) -> str:
    """The deltaLink at the end of a read."""
    return str(list(pages(http, url, 999))[-1]["@odata.deltaLink"])


def read_round(http: httpx.Client, link: str) -> tuple[list[dict[str, Any]], str]:
    bodies = list(pages(http, link, 60))
    return [g for b in bodies for g in b["value"]], bodies[-1]["@odata.deltaLink"]


def test_churn_rounds_agree(http: httpx.Client, store: TenantStore) -> None:
    state: dict[str, set[str]] = {}
    link = "/v1.0/groups/delta"
    for round_no in range(6):
        changes, link = read_round(http, link)
        fold_groups(state, changes)
        assert_agree(http, state, f"round {round_no}")
        apply_churn(store, 80, seed=round_no)


def test_a_membership_change_during_a_full_read_is_not_lost(
    http: httpx.Client, store: TenantStore, summary: dict[str, Any]
) -> None:
    main, staff = summary["groups"]["main"]["id"], summary["groups"]["staff"]["id"]
    read = pages(http, "/v1.0/groups/delta", 40)
    body = next(read)
    assert [g["id"] for g in body["value"]] == [main]  # the big group spans several pages
    seen = body["value"][0]["members@delta"][0]["id"]
    outsider = next(u for u in direct_members(http, main) if u not in direct_members(http, staff))
    store.remove_group_member(main, seen)  # a member already read
    store.add_group_member(staff, outsider)  # a group not reached yet
    bodies = [body, *read]
    state = fold_groups({}, (g for b in bodies for g in b["value"]))
    assert state[staff] == direct_members(http, staff)  # a group not reached yet comes whole
    changes, _ = read_round(http, bodies[-1]["@odata.deltaLink"])
    fold_groups(state, changes)
    assert seen not in state[main]
    assert_agree(http, state, "the round after")


@pytest.mark.parametrize("defer", [False, True], ids=["in-the-read", "deferred"])
def test_churn_between_pages_never_loses_a_membership(
    http: httpx.Client, store: TenantStore, defer: bool
) -> None:
    r = http.post("/_sim/faults", json={"defer_mid_read_changes": defer, "empty_page_ratio": 0.2, "seed": 2})
    assert r.status_code == 200
    state: dict[str, set[str]] = {}
    link = "/v1.0/groups/delta"
    for round_no in range(4):
        bodies = []
        for k, body in enumerate(pages(http, link, 25)):
            fold_groups(state, body["value"])
            bodies.append(body)
            if round_no < 3 and "@odata.nextLink" in body and k % 2 == 0:
                apply_churn(store, 25, seed=round_no * 100 + k)
        link = bodies[-1]["@odata.deltaLink"]
    assert_agree(http, state, "after a quiet round")


def test_the_churn_summary_names_each_membership_change(
    http: httpx.Client, store: TenantStore, read_delta: Any
) -> None:
    _, link = read_delta(http, "/v1.0/groups/delta")
    done = apply_churn(store, 150, seed=21)
    assert done["counts"]["soft_delete"] and done["counts"]["restore"]
    changes, _ = read_round(http, link)
    touched = {g["id"]: {m["id"] for m in g["members@delta"]} for g in changes if g["members@delta"]}
    assert touched == {gid: set(c["added"]) | set(c["removed"]) for gid, c in done["groups"].items()}


def test_a_tenant_file_of_the_earlier_layout_is_upgraded(tmp_path: Any) -> None:
    path = str(tmp_path / "tenant.db")
    store = TenantStore.open(path)
    main = generate_tenant(store, 60, 4, group_size=30)["groups"]["main"]["id"]
    member = store.member_at(main, 0)
    assert member is not None
    store.soft_delete_user(member)
    # The earlier layout: no users.prev, and a soft-deleted user's memberships left active.
    store._conn.execute("UPDATE members SET removed = 0 WHERE member_id = ?", (member,))
    store._conn.execute("ALTER TABLE users DROP COLUMN prev")
    store.close()
    store = TenantStore.open(path)
    try:
        assert store.user_group_ids(member) == []
        store.restore_user(member)
        assert store.user_group_ids(member) == [main]
        store.update_user(member, {"jobTitle": "Upgraded"})
    finally:
        store.close()
