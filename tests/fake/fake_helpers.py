"""Helpers for the fake tenant's tests: read a collection page by page, and fold a delta read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import orjson

from syncd.directory.fake.store import TenantStore


def pages(http: httpx.Client, url: str, page_size: int = 50) -> Iterator[dict[str, Any]]:
    """Each page body of a read (following nextLinks), as it is fetched. A nextLink never repeats
    a URL of the same read (the daemon's client rejects a read that does)."""
    seen = {url}
    while True:
        r = http.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        yield body
        url = body.get("@odata.nextLink")  # type: ignore[assignment]
        if url is None:
            assert "@odata.deltaLink" in body or "/delta" not in str(r.request.url)
            return
        assert url not in seen, "a nextLink repeats a URL of this read"
        seen.add(url)


def items_of(http: httpx.Client, url: str, page_size: int = 50) -> list[dict[str, Any]]:
    return [item for body in pages(http, url, page_size) for item in body["value"]]


def fold(state: dict[str, dict[str, Any]], items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Apply users-delta items to `state` in order: the last copy of a user wins."""
    for item in items:
        if "@removed" in item:
            state.pop(item["id"], None)
        else:
            state[item["id"]] = item
    return state


def fold_groups(state: dict[str, set[str]], items: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Apply groups-delta items to `state` (group id -> direct member ids) in order."""
    for group in items:
        members = state.setdefault(group["id"], set())
        for m in group.get("members@delta", []):
            if "@removed" in m:
                members.discard(m["id"])
            else:
                members.add(m["id"])
    return state


def active_users(store: TenantStore) -> dict[str, dict[str, Any]]:
    """Every active user as Graph returns it, by id."""
    return {u["id"]: u for u in (orjson.loads(b) for _, b in store.users_page(0, 10**9))}


def direct_members(http: httpx.Client, group_id: str, what: str = "members") -> set[str]:
    """The ids `/groups/{id}/members` (or `/owners`) lists, over all its pages."""
    return {m["id"] for m in items_of(http, f"/v1.0/groups/{group_id}/{what}?$top=999")}
