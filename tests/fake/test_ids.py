"""Object ids and userPrincipalNames are case-insensitive, as in Graph; ids come back in lower case."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_helpers import direct_members, items_of

from syncd.directory.fake.store import TenantStore

E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"


def shout(object_id: str) -> str:
    return object_id.upper()


def braced(object_id: str) -> str:
    return "{" + object_id.upper() + "}"


def ref(object_id: str) -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{object_id}"}


def new_user(http: httpx.Client, upn: str) -> dict[str, Any]:
    r = http.post("/v1.0/users", json={"displayName": upn.split("@")[0], "userPrincipalName": upn})
    assert r.status_code == 201, r.text
    user: dict[str, Any] = r.json()
    return user


@pytest.mark.parametrize("spell", [shout, braced], ids=["upper", "braces"])
def test_users_by_id_in_any_case(http: httpx.Client, spell: Any) -> None:
    user = new_user(http, "Case.Test@contoso7.onmicrosoft.com")
    uid = user["id"]
    assert uid == uid.lower()
    assert http.get(f"/v1.0/users/{spell(uid)}").json()["id"] == uid
    assert http.patch(f"/v1.0/users/{spell(uid)}", json={"city": "Åre"}).status_code == 204
    lic = http.post(
        f"/v1.0/users/{spell(uid)}/assignLicense", json={"addLicenses": [{"skuId": E3}], "removeLicenses": []}
    )
    assert lic.status_code == 200 and lic.json()["id"] == uid
    assert http.delete(f"/v1.0/users/{spell(uid)}").status_code == 204
    deleted = http.get(f"/v1.0/directory/deletedItems/{spell(uid)}")
    assert deleted.status_code == 200 and deleted.json()["id"] == uid
    restored = http.post(f"/v1.0/directory/deletedItems/{spell(uid)}/restore")
    assert restored.status_code == 200 and restored.json()["city"] == "Åre"
    assert http.delete(f"/v1.0/users/{uid}").status_code == 204
    assert http.delete(f"/v1.0/directory/deletedItems/{spell(uid)}").status_code == 204
    assert http.get(f"/v1.0/directory/deletedItems/{uid}").status_code == 404


def test_user_principal_names_in_any_case(http: httpx.Client) -> None:
    user = new_user(http, "Mixed.Case@contoso7.onmicrosoft.com")
    for spelling in ("mixed.case@contoso7.onmicrosoft.com", "MIXED.CASE@CONTOSO7.ONMICROSOFT.COM"):
        r = http.get(f"/v1.0/users/{spelling}")
        assert r.status_code == 200 and r.json()["id"] == user["id"]
        assert r.json()["userPrincipalName"] == "Mixed.Case@contoso7.onmicrosoft.com"  # kept as written
    clash = http.post(
        "/v1.0/users",
        json={"displayName": "Other", "userPrincipalName": "MIXED.case@contoso7.onmicrosoft.com"},
    )
    assert clash.status_code == 400 and clash.json()["error"]["code"] == "Request_BadRequest"
    other = new_user(http, "other@contoso7.onmicrosoft.com")
    taken = http.patch(
        f"/v1.0/users/{other['id']}", json={"userPrincipalName": "mixed.CASE@contoso7.onmicrosoft.com"}
    )
    assert taken.status_code == 400
    own = http.patch(
        f"/v1.0/users/{user['id']}", json={"userPrincipalName": "mixed.case@contoso7.onmicrosoft.com"}
    )
    assert own.status_code == 204  # a user may change the case of its own name
    assert (
        http.patch("/v1.0/users/MIXED.CASE@contoso7.onmicrosoft.com", json={"city": "Oslo"}).status_code
        == 204
    )


@pytest.mark.parametrize("spell", [shout, braced], ids=["upper", "braces"])
def test_groups_and_their_references_by_id_in_any_case(
    http: httpx.Client, summary: dict[str, Any], spell: Any
) -> None:
    gid = summary["groups"]["empty"]["id"]
    created = http.post(
        "/v1.0/groups", json={"displayName": "G", "mailNickname": "g", "securityEnabled": True}
    )
    assert created.status_code == 201 and created.json()["id"] == created.json()["id"].lower()
    uid = new_user(http, f"member.{spell.__name__}@contoso7.onmicrosoft.com")["id"]
    assert http.get(f"/v1.0/groups/{spell(gid)}").json()["id"] == gid
    assert http.post(f"/v1.0/groups/{spell(gid)}/members/$ref", json=ref(spell(uid))).status_code == 204
    assert http.post(f"/v1.0/groups/{gid}/members/$ref", json=ref(uid)).status_code == 400  # already there
    assert direct_members(http, spell(gid)) == {uid}
    assert http.delete(f"/v1.0/groups/{spell(gid)}/members/{spell(uid)}/$ref").status_code == 204
    assert direct_members(http, gid) == set()
    assert http.post(f"/v1.0/groups/{spell(gid)}/owners/$ref", json=ref(spell(uid))).status_code == 204
    assert direct_members(http, spell(gid), "owners") == {uid}
    assert http.delete(f"/v1.0/groups/{spell(gid)}/owners/{spell(uid)}/$ref").status_code == 204
    assert direct_members(http, gid, "owners") == set()


def test_roles_service_principals_and_delta_filter_by_id_in_any_case(
    http: httpx.Client, summary: dict[str, Any]
) -> None:
    role = next(iter(summary["roles"].values()))
    uid = new_user(http, "role.holder@contoso7.onmicrosoft.com")["id"]
    for key in (role["id"], role["roleTemplateId"]):
        assert http.get(f"/v1.0/directoryRoles/{shout(key)}").json()["id"] == role["id"]
    members = f"/v1.0/directoryRoles/{shout(role['id'])}/members"
    assert http.post(f"{members}/$ref", json=ref(braced(uid))).status_code == 204
    assert uid in {m["id"] for m in http.get(members).json()["value"]}
    assert http.delete(f"{members}/{shout(uid)}/$ref").status_code == 204
    assert uid not in {m["id"] for m in http.get(members).json()["value"]}
    sp = summary["service_principals"][0]
    found = http.get("/v1.0/servicePrincipals", params={"$filter": f"appId eq '{shout(sp['appId'])}'"})
    assert [s["id"] for s in found.json()["value"]] == [sp["id"]]
    main = summary["groups"]["main"]
    only = items_of(http, f"/v1.0/groups/delta?$filter=id eq '{shout(main['id'])}'", 500)
    assert {g["id"] for g in only} == {main["id"]}
    assert sum(len(g["members@delta"]) for g in only) == main["members"]
    two = items_of(
        http,
        f"/v1.0/groups/delta?$filter=id eq '{braced(main['id'])}' or id eq '{summary['groups']['sales']['id']}'",
    )
    assert {g["id"] for g in two} == {main["id"], summary["groups"]["sales"]["id"]}
    assert http.get("/v1.0/groups/delta", params={"$filter": "displayName eq 'x'"}).status_code == 400


def test_the_store_answers_in_any_case(store: TenantStore, summary: dict[str, Any]) -> None:
    gid = summary["groups"]["main"]["id"]
    assert store.group(gid.upper()) == store.group(gid) is not None
    uid = next(iter(summary["roles"].values()))["licensed"][0]
    assert store.user(uid.upper()) == store.user(uid) is not None
    assert store.user_row("{" + uid + "}") == store.user_row(uid)
