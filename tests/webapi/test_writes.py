"""Writes through the Web API: what a Dataverse customer changes on a synced user (R12, R14,
R16-R17), the columns refused, If-Match and the events, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.dataverse.schema import SyncEvent, SystemUser
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.settings import Settings
from syncd.sync.run import RunOptions, sync_environment
from syncd.webapi import create_webapi_app
from tests.webapi.conftest import ALICE, API, OBJ_ALICE

SALES_SKU = "1e1a282c-9c54-43a2-9310-98ef728faace"


def row(engine: Engine, sid: Any) -> SystemUser:
    with Session(engine) as s:
        r = s.get(SystemUser, sid)
        assert r is not None
        s.expunge(r)
        return r


def events(engine: Engine, sid: Any) -> list[SyncEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(SyncEvent).where(SyncEvent.systemuserid == sid).order_by(SyncEvent.id)))


def etag(client: httpx.Client, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return str(r.json()["@odata.etag"])


def test_patch_custom_column_204_moves_modifiedon_and_version_and_records_event(
    client: httpx.Client, filled: Engine
) -> None:
    # R14: a column sync never writes is the customer's to write
    url = f"{API}systemusers({ALICE})"
    before = row(filled, ALICE)
    tag = etag(client, url)
    r = client.patch(url, json={"new_costcentre": "CC-42"}, headers={"If-Match": tag})
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers["OData-EntityId"].endswith(f"/prod/api/data/v9.2/systemusers({ALICE})")
    after = row(filled, ALICE)
    assert after.new_costcentre == "CC-42"
    assert after.versionnumber != before.versionnumber
    assert after.modifiedon > before.modifiedon
    assert etag(client, url) == f'W/"{after.versionnumber}"' != tag
    [event] = events(filled, ALICE)
    assert (event.action, event.rule, event.run_id) == ("update", "R14", None)
    assert "Web API" in event.reason and "new_costcentre" in event.reason
    assert orjson.loads(event.changes or "{}") == {"new_costcentre": "CC-42"}
    assert orjson.loads(event.previous or "{}") == {"new_costcentre": before.new_costcentre}  # old -> new


def test_patch_by_alternate_key_with_return_representation(client: httpx.Client, filled: Engine) -> None:
    url = f"{API}systemusers(azureactivedirectoryobjectid={OBJ_ALICE})"
    r = client.patch(
        url,
        json={"new_costcentre": "CC-7"},
        headers={"Prefer": "return=representation", "If-Match": "*"},
        params={"$select": "new_costcentre,domainname"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["new_costcentre"] == "CC-7" and body["domainname"] == "alice@contoso.com"
    assert body["@odata.etag"] == f'W/"{row(filled, ALICE).versionnumber}"'
    assert r.headers["Preference-Applied"] == "return=representation"


def test_stale_etag_is_412_and_nothing_is_written(client: httpx.Client, filled: Engine) -> None:
    url = f"{API}systemusers({ALICE})"
    tag = etag(client, url)
    assert client.patch(url, json={"new_costcentre": "first"}, headers={"If-Match": tag}).status_code == 204
    before = row(filled, ALICE)
    r = client.patch(
        url, json={"new_costcentre": "second", "internalemailaddress": "x@y.z"}, headers={"If-Match": tag}
    )
    assert r.status_code == 412
    assert r.json() == {
        "error": {
            "code": "0x80060882",
            "message": "The version of the existing record doesn't match the RowVersion property provided.",
        }
    }
    after = row(filled, ALICE)
    assert (after.new_costcentre, after.internalemailaddress, after.versionnumber) == (
        "first",
        before.internalemailaddress,
        before.versionnumber,
    )
    assert len(events(filled, ALICE)) == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        ({"createdon": "2026-01-01T00:00:00Z"}, 400, "0x80040203", "read-only"),
        ({"modifiedon": "2026-01-01T00:00:00Z"}, 400, "0x80040203", "read-only"),
        ({"versionnumber": 1}, 400, "0x80040203", "read-only"),
        ({"systemuserid": str(ALICE)}, 400, "0x80040203", "read-only"),
        ({"azurestate": 2}, 400, "0x80040203", "read-only"),
        ({"isdisabled": True}, 400, "0x80040203", "read-only"),
        ({"syncd_syncedemail": "a@b.c"}, 400, "0x80040203", "read-only"),
        ({"_businessunitid_value": str(ALICE)}, 400, "0x80040203", "SetBusinessSystemUser"),
        (
            {"businessunitid@odata.bind": f"/businessunits({ALICE})"},
            400,
            "0x80040203",
            "SetBusinessSystemUser",
        ),
        # R10: sync owns these
        ({"domainname": "new@contoso.com"}, 400, "0x80040203", "synchronised from Microsoft Entra ID"),
        ({"jobtitle": "Boss"}, 400, "0x80040203", "synchronised from Microsoft Entra ID"),
        ({"fullname": "X"}, 400, "0x80040203", "synchronised from Microsoft Entra ID"),
        ({"new_costcentre": "ok", "firstname": "X"}, 400, "0x80040203", "synchronised"),
        ({"nosuchcolumn": 1}, 400, "0x0", "Could not find a property named 'nosuchcolumn'"),
        ({"new_costcentre": 5}, 400, "0x0", "Cannot convert"),
        ({"new_costcentre": "x" * 5000}, 400, "0x80044331", "maximum allowed length"),
        ({"accessmode": 9}, 400, "0x80040203", "outside the valid range"),
        ({"internalemailaddress": "a\u0000b@contoso.com"}, 400, "0x80040203", "NUL character"),
        ([1, 2], 400, "0x0", "JSON object"),
    ],
)
def test_refused_columns_write_nothing(
    client: httpx.Client, filled: Engine, body: Any, status: int, code: str, words: str
) -> None:
    # R10, R14: read-only and sync-owned columns are refused; nothing else in the request is written
    before = row(filled, ALICE)
    r = client.patch(f"{API}systemusers({ALICE})", json=body, headers={"If-Match": "*"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and words in err["message"], err
    after = row(filled, ALICE)
    assert (after.new_costcentre, after.versionnumber, after.modifiedon) == (
        before.new_costcentre,
        before.versionnumber,
        before.modifiedon,
    )
    assert events(filled, ALICE) == []


def test_missing_user_404_under_if_match_and_upsert_create_refused(
    client: httpx.Client, filled: Engine
) -> None:
    missing = "0a1b2c3d-0000-4000-8000-0000000000aa"
    r = client.patch(f"{API}systemusers({missing})", json={"new_costcentre": "x"}, headers={"If-Match": "*"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "0x80040217"
    r = client.patch(f"{API}systemusers({missing})", json={"new_costcentre": "x"})
    assert r.status_code == 400 and "Creating a systemuser is not allowed" in r.json()["error"]["message"]
    assert "If-Match: *" in r.json()["error"]["message"]
    with Session(filled) as s:
        assert s.scalar(select(func.count()).select_from(SystemUser)) == 6


def test_post_and_delete_of_users_are_refused(client: httpx.Client, filled: Engine) -> None:
    # R9: users are never deleted; creating them is the sync's job
    r = client.post(f"{API}systemusers", json={"domainname": "new@contoso.com"})
    assert r.status_code == 400 and "Creating a systemuser is not allowed" in r.json()["error"]["message"]
    r = client.delete(f"{API}systemusers({ALICE})")
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        "The 'Delete' method does not support entities of type 'systemuser'."
    )
    assert row(filled, ALICE).domainname == "alice@contoso.com"
    # Other tables take no writes.
    assert client.post(f"{API}roles", json={"name": "x"}).status_code == 501
    # Writes inside $batch are not served.
    with Session(filled) as s:
        assert s.scalar(select(func.count()).select_from(SystemUser)) == 6


# -- with the directory: sync after a customer's edit ----------------------------------------------


@pytest.fixture
def store() -> Iterator[TenantStore]:
    s = TenantStore.open(None)
    generate_tenant(s, users=5, seed=3)
    yield s
    s.close()


@pytest.fixture
def directory(store: TenantStore) -> Iterator[GraphClient]:
    c = GraphClient(
        "http://fake-entra.local/v1.0",
        token_provider=StaticToken("x"),
        transport=InProcessTransport(create_app(store)),
    )
    yield c
    c.close()


@pytest.fixture
def webapi(engine: Engine) -> Iterator[httpx.Client]:
    transport = InProcessTransport(create_webapi_app(lambda: engine))
    with httpx.Client(transport=transport, base_url="http://testserver") as c:
        yield c


def new_user(store: TenantStore, alias: str, mail: str) -> dict[str, Any]:
    domain = store.meta("domain")
    body = {
        "displayName": alias.title(),
        "userPrincipalName": f"{alias}@{domain}",
        "accountEnabled": True,
        "givenName": "Given",
        "surname": "Tester",
        "mail": mail,
    }
    user: dict[str, Any] = orjson.loads(store.create_user(body))
    store.assign_licenses(user["id"], {"addLicenses": [{"skuId": SALES_SKU}], "removeLicenses": []})
    return user


def synced(engine: Engine, object_id: str) -> SystemUser:
    with Session(engine) as s:
        r = s.scalar(select(SystemUser).where(SystemUser.domainname.like(f"{object_id}@%")))
        assert r is not None
        s.expunge(r)
        return r


def test_customer_email_edit_is_never_overwritten_by_full_or_delta_sync(
    engine: Engine, store: TenantStore, directory: GraphClient, webapi: httpx.Client
) -> None:
    # R12: once a customer edits the email in Dataverse, sync never writes it again
    with Session(engine) as s, s.begin():
        create_environment(s, EnvironmentSpec(name="prod"))
    ed = new_user(store, "ed", "ed@first.example")
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    r0 = synced(engine, "ed")
    assert r0.internalemailaddress == "ed@first.example"
    r = webapi.patch(
        f"{API}systemusers(azureactivedirectoryobjectid={ed['id']})",
        json={"internalemailaddress": "ed.customer@contoso.example"},
        headers={"If-Match": f'W/"{r0.versionnumber}"'},
    )
    assert r.status_code == 204, r.text
    [event] = [e for e in events(engine, r0.systemuserid) if e.run_id is None]
    assert event.rule == "R12" and "never writes it again" in event.reason
    # The directory's mail changes; full and delta runs leave the customer's email.
    store.update_user(ed["id"], {"mail": "ed@second.example", "jobTitle": "Pilot"})
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    r1 = synced(engine, "ed")
    assert (r1.internalemailaddress, r1.jobtitle) == ("ed.customer@contoso.example", "Pilot")
    store.update_user(ed["id"], {"mail": "ed@third.example", "jobTitle": "Captain"})
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="delta"))
    r2 = synced(engine, "ed")
    assert (r2.internalemailaddress, r2.jobtitle) == ("ed.customer@contoso.example", "Captain")
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    assert synced(engine, "ed").internalemailaddress == "ed.customer@contoso.example"


def test_customer_writing_the_synced_email_again_keeps_it_theirs(
    engine: Engine, store: TenantStore, directory: GraphClient, webapi: httpx.Client
) -> None:
    # R12: an edit that writes the very value sync wrote is an edit all the same
    with Session(engine) as s, s.begin():
        create_environment(s, EnvironmentSpec(name="prod"))
    fay = new_user(store, "fay", "fay@first.example")
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    sid = synced(engine, "fay").systemuserid
    r = webapi.patch(
        f"{API}systemusers({sid})",
        json={"internalemailaddress": "fay@first.example"},
        headers={"If-Match": "*"},
    )
    assert r.status_code == 204, r.text
    store.update_user(fay["id"], {"mail": "fay@second.example"})
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    assert synced(engine, "fay").internalemailaddress == "fay@first.example"


def test_accessmode_through_patch_and_the_eighth_noninteractive_refused(
    engine: Engine, store: TenantStore, directory: GraphClient, webapi: httpx.Client
) -> None:
    # R16: a mode set through the Web API is kept by sync; R17: an eighth non-interactive user is refused
    with Session(engine) as s, s.begin():
        create_environment(s, EnvironmentSpec(name="prod"))
    people = [new_user(store, f"ni{i}", f"ni{i}@example.org") for i in range(8)]
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    rows = [synced(engine, f"ni{i}") for i in range(8)]
    r = webapi.patch(
        f"{API}systemusers({rows[0].systemuserid})", json={"accessmode": 2}, headers={"If-Match": "*"}
    )
    assert r.status_code == 204, r.text
    for ev in events(engine, rows[0].systemuserid)[-1:]:
        assert (ev.rule, ev.run_id) == ("R16", None) and "Web API" in ev.reason
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    assert synced(engine, "ni0").accessmode == 2
    for p in rows[:7]:
        r = webapi.patch(
            f"{API}systemusers({p.systemuserid})", json={"accessmode": 4}, headers={"If-Match": "*"}
        )
        assert r.status_code == 204, r.text
    before = synced(engine, "ni7")
    r = webapi.patch(
        f"{API}systemusers({before.systemuserid})",
        json={"accessmode": 4, "new_costcentre": "CC"},
        headers={"If-Match": "*"},
    )
    assert r.status_code == 400
    assert "R17" in r.json()["error"]["message"] and "non-interactive" in r.json()["error"]["message"]
    after = synced(engine, "ni7")
    assert (after.accessmode, after.new_costcentre, after.versionnumber) == (0, None, before.versionnumber)
    # A built-in user's mode can't be changed (R19).
    with Session(engine) as s:
        support = s.scalar(select(SystemUser).where(SystemUser.kind == "support"))
        assert support is not None
    r = webapi.patch(
        f"{API}systemusers({support.systemuserid})", json={"accessmode": 0}, headers={"If-Match": "*"}
    )
    assert r.status_code == 400 and "R19" in r.json()["error"]["message"]
    assert len(people) == 8


def test_the_daemons_endpoint_takes_no_writes(filled: Engine) -> None:
    from starlette.applications import Starlette

    from syncd.webapi import mount_webapi

    app = mount_webapi(Starlette(), lambda: filled)
    with httpx.Client(transport=InProcessTransport(app), base_url="http://testserver") as c:
        assert c.get(f"{API}systemusers({ALICE})").status_code == 200
        r = c.patch(f"{API}systemusers({ALICE})", json={"new_costcentre": "x"}, headers={"If-Match": "*"})
        assert r.status_code == 501 and "reads only" in r.json()["error"]["message"]
    assert row(filled, ALICE).new_costcentre is None
