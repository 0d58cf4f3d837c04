"""The generator: deterministic, and as varied as a real tenant."""

from __future__ import annotations

from typing import Any

import orjson

from syncd.directory import catalogue
from syncd.directory.catalogue import SkuKind
from syncd.directory.fake.generator import ROLE_TEMPLATES, generate_tenant
from syncd.directory.fake.store import TenantStore


def users_of(store: TenantStore) -> list[bytes]:
    return [bytes(b) for _, b in store.users_page(0, 10**9)]


def make(users: int, seed: int, **opts: Any) -> tuple[TenantStore, dict[str, Any]]:
    store = TenantStore.open(None)
    return store, generate_tenant(store, users, seed, **opts)


def test_same_seed_same_tenant_byte_for_byte() -> None:
    a, sa = make(800, 11)
    b, sb = make(800, 11)
    assert users_of(a) == users_of(b)
    assert (
        a.groups() == b.groups()
        and a.roles() == b.roles()
        and a.service_principals() == b.service_principals()
    )
    sa.pop("seconds"), sb.pop("seconds")
    assert sa == sb


def test_different_seed_different_tenant() -> None:
    a, _ = make(300, 1)
    b, _ = make(300, 2)
    ids_a = {orjson.loads(u)["id"] for u in users_of(a)}
    ids_b = {orjson.loads(u)["id"] for u in users_of(b)}
    assert not ids_a & ids_b


def test_variety(store: TenantStore, summary: dict[str, Any]) -> None:
    users = [orjson.loads(u) for u in users_of(store)]
    text = " ".join(f"{u['displayName']} {u['city']} {u['streetAddress']}" for u in users)
    for ch in "éøß":
        assert ch in text
    assert any("\u4e00" <= c <= "\u9fff" for c in text)  # CJK
    guests = [u for u in users if u["userType"] == "Guest"]
    assert guests and all("#EXT#" in u["userPrincipalName"] for u in guests)
    assert any(not u["accountEnabled"] for u in users)
    assert any(not u["assignedLicenses"] for u in users)
    assert any(u["givenName"] in (None, "") for u in users)
    assert all(u["userPrincipalName"].isascii() for u in users)
    dv_plans = set(catalogue.PLAN_GRANTS)
    assert any(set(lic["disabledPlans"]) & dv_plans for u in users for lic in u["assignedLicenses"])
    kinds = [{catalogue.SKUS_BY_ID[lic["skuId"]].kind for lic in u["assignedLicenses"]} for u in users]
    assert {SkuKind.OFFICE_ONLY} in kinds
    e3 = catalogue.SKUS_BY_PART["ENTERPRISEPACK"].sku_id
    assert any([lic["skuId"] for lic in u["assignedLicenses"]] == [e3] for u in users)
    # Licensed and unlicensed admins of each of the three roles (R6).
    assert {r["roleTemplateId"] for r in summary["roles"].values()} == {t for t, _, _ in ROLE_TEMPLATES}
    by_id = {u["id"]: u for u in users}
    for role in summary["roles"].values():
        assert role["licensed"] and role["unlicensed"]
        assert all(by_id[i]["assignedLicenses"] for i in role["licensed"])
        assert all(not by_id[i]["assignedLicenses"] for i in role["unlicensed"])
    # The tenant-level Marketing SKU is subscribed; service principals exist.
    assert catalogue.is_marketing_tenant(s for s, _, _ in store.skus())
    assert len(store.service_principals()) == len(summary["service_principals"]) >= 3
    assert summary["groups"]["main"]["members"] == 150 + 2  # group_size users, a nested group, an app


def test_group_size_is_controllable() -> None:
    store, summary = make(2000, 3, group_size=1234)
    main = summary["groups"]["main"]["id"]
    assert store.member_count(main) == 1234 + 2
