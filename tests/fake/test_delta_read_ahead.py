"""The users delta reads the page a nextLink asks for before it is asked for; a page so read is
served only while nothing in the tenant has changed since, whoever changed it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
from fake_helpers import pages

from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore


def _tenant(tmp_path: Path, users: int = 30) -> TenantStore:
    store = TenantStore.open(str(tmp_path / "tenant.db"))
    generate_tenant(store, users, 3, group_size=5)
    return store


def _ids(store: TenantStore, n: int) -> list[str]:
    return [orjson.loads(b)["id"] for _, b in store.users_page(0, n)]


def test_the_stamp_moves_with_a_write_of_this_store_or_of_another_connection(tmp_path: Path) -> None:
    store = _tenant(tmp_path)
    other = TenantStore.open(str(tmp_path / "tenant.db"))
    try:
        first = store.stamp()
        store.users_delta(0, 10, since=0, start=store.change, bounded=False)
        assert store.stamp() == first  # reads leave it
        user = _ids(store, 1)[0]
        store.update_user(user, {"jobTitle": "Buyer"})
        second = store.stamp()
        assert second != first
        other.update_user(user, {"jobTitle": "Seller"})
        assert store.stamp() != second
    finally:
        other.close()
        store.close()


def _read_while(
    http: httpx.Client, change: Any, page_size: int = 5
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A full users delta read that calls `change()` once, after its first page: (first page, rest)."""
    read = pages(http, "/v1.0/users/delta", page_size)
    first = next(read)["value"]
    change()
    rest = [item for body in read for item in body["value"]]
    return first, rest


def test_a_change_by_another_connection_between_pages_is_in_the_next_page(tmp_path: Path, serve: Any) -> None:
    store = _tenant(tmp_path)
    other = TenantStore.open(str(tmp_path / "tenant.db"))
    second_page = _ids(store, 10)[5:]  # a fresh tenant's delta comes in creation order
    try:
        with serve(create_app(store)) as served, httpx.Client(base_url=served.base, timeout=30) as http:
            first, rest = _read_while(http, lambda: other.update_user(second_page[2], {"jobTitle": "Buyer"}))
    finally:
        other.close()
        store.close()
    copies = [u for u in rest if u["id"] == second_page[2]]
    assert [u["jobTitle"] for u in copies] == ["Buyer"]  # once, at its new place: the end
    assert rest[-1]["id"] == second_page[2]
    assert [u["id"] for u in rest[:4]] == [i for i in second_page if i != second_page[2]]
    assert len(first) + len(rest) == 30


def test_a_removal_between_pages_is_in_the_read(tmp_path: Path, serve: Any) -> None:
    store = _tenant(tmp_path)
    gone = _ids(store, 10)[7]
    try:
        with serve(create_app(store)) as served, httpx.Client(base_url=served.base, timeout=30) as http:
            first, rest = _read_while(http, lambda: store.soft_delete_user(gone))
    finally:
        store.close()
    assert [u for u in rest if u["id"] == gone] == [{"id": gone, "@removed": {"reason": "changed"}}]
    assert len(first) + len(rest) == 30


def test_pages_read_ahead_are_the_pages_read_when_asked(tmp_path: Path, serve: Any) -> None:
    """The same reads (all fields, and a $select) from a server that reads ahead and from fresh
    servers, one a page, that cannot have."""
    store = _tenant(tmp_path, users=23)
    try:
        for url in ("/v1.0/users/delta", "/v1.0/users/delta?$select=displayName,jobTitle"):
            with serve(create_app(store)) as served, httpx.Client(base_url=served.base, timeout=30) as http:
                ahead = [body["value"] for body in pages(http, url, 4)]
            fresh: list[list[dict[str, Any]]] = []
            link: str | None = url
            while link is not None:
                with serve(create_app(store)) as served, httpx.Client(timeout=30) as http:
                    path = link.split("/v1.0", 1)[1]
                    r = http.get(f"{served.base}/v1.0{path}", headers={"Prefer": "odata.maxpagesize=4"})
                    body = r.json()
                fresh.append(body["value"])
                link = body.get("@odata.nextLink")
            assert ahead == fresh
            assert sum(map(len, ahead)) == 23
    finally:
        store.close()
