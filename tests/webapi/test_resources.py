"""The resources of an environment's Web API over HTTP (in process): paging, records, errors,
metadata, navigation, $batch, WhoAmI, and environment names that need percent-encoding."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, insert, select

from syncd.dataverse.schema import Base
from syncd.directory.transport import InProcessTransport
from syncd.webapi import create_webapi_app
from syncd.webapi.entities import entity_types
from syncd.webapi.urls import env_segment, web_api_url
from tests.webapi.conftest import (
    ALICE,
    API,
    OBJ_ALICE,
    OTHER_ENV_USER,
    ROWS,
    add_env,
    add_users,
    bearer,
    env_id,
)

FORMATTED = "@OData.Community.Display.V1.FormattedValue"


def all_pages(client: httpx.Client, url: str, params: dict[str, str], page: int) -> list[list[dict]]:
    pages = []
    headers = {"Prefer": f"odata.maxpagesize={page}"}
    r = client.get(url, params=params, headers=headers)
    while True:
        assert r.status_code == 200, r.text
        assert r.headers["Preference-Applied"] == f"odata.maxpagesize={page}"
        body = r.json()
        pages.append(body["value"])
        link = body.get("@odata.nextLink")
        if not link:
            return pages
        assert link.startswith("http://testserver/prod/api/data/v9.2/")
        r = client.get(link, headers=headers)


@pytest.mark.parametrize(
    "orderby",
    [None, "fullname", "fullname desc", "jobtitle desc,fullname", "accessmode,createdon desc", "isdisabled"],
)
def test_paging_walks_every_row_once_in_order(client: httpx.Client, orderby: str | None) -> None:
    params = {"$select": "fullname,jobtitle,accessmode,createdon,isdisabled"}
    if orderby:
        params["$orderby"] = orderby
    whole = client.get(API + "systemusers", params=params).json()["value"]
    pages = all_pages(client, API + "systemusers", params, 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [r["systemuserid"] for p in pages for r in p] == [r["systemuserid"] for r in whole]
    assert len(whole) == len(ROWS)
    if orderby == "fullname":  # NULL first ascending, as Dataverse orders
        assert whole[0]["fullname"] is None
    if orderby == "fullname desc":
        assert whole[-1]["fullname"] is None


def test_records_shape(client: httpx.Client) -> None:
    r = client.get(
        API + "systemusers", params={"$select": "fullname", "$filter": "fullname eq 'Alice Adams'"}
    )
    body = r.json()
    assert body["@odata.context"] == "http://testserver/prod/api/data/v9.2/$metadata#systemusers(fullname)"
    [rec] = body["value"]
    assert rec["systemuserid"] == str(ALICE)  # the primary key, though not selected
    assert rec["@odata.etag"].startswith('W/"') and rec["@odata.etag"].endswith('"')
    assert set(rec) == {"@odata.etag", "fullname", "systemuserid"}
    assert r.headers["OData-Version"] == "4.0"


def test_all_columns_when_nothing_is_selected(client: httpx.Client) -> None:
    [rec] = client.get(API + "systemusers", params={"$filter": "fullname eq 'Alice Adams'"}).json()["value"]
    table = Base.metadata.tables["systemuser"]
    attrs = entity_types()["systemuser"].attributes.values()
    assert set(rec) - {"@odata.etag"} == {a.property for a in attrs}  # a lookup is _<column>_value
    assert {a.logical_name for a in attrs} == {c.name for c in table.columns} - {"environment_id"}
    assert rec["azureactivedirectoryobjectid"] == str(OBJ_ALICE)
    assert rec["createdon"] == "2026-01-10T08:00:00Z"


def test_top_count_and_the_page_size_cap(client: httpx.Client) -> None:
    r = client.get(
        API + "systemusers",
        params={"$top": "3", "$count": "true", "$orderby": "domainname"},
        headers={"Prefer": "odata.maxpagesize=2"},
    )
    body = r.json()
    assert body["@odata.count"] == len(ROWS)  # $count ignores $top
    assert len(body["value"]) == 2
    second = client.get(body["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=2"}).json()
    assert [v["domainname"] for v in second["value"]] == ["carol@fabrikam.org"]
    assert "@odata.nextLink" not in second
    big = client.get(
        API + "systemusers", params={"$count": "true"}, headers={"Prefer": "odata.maxpagesize=99999"}
    )
    assert big.headers["Preference-Applied"] == "odata.maxpagesize=5000"
    assert big.json()["@odata.count"] == len(ROWS)
    assert client.get(API + "systemusers/$count").text == str(len(ROWS))
    assert client.get(API + "systemusers", params={"$top": "0"}).json()["value"] == []


def test_a_tampered_skiptoken_is_a_bad_request(client: httpx.Client) -> None:
    r = client.get(API + "systemusers", headers={"Prefer": "odata.maxpagesize=2"})
    link = r.json()["@odata.nextLink"]
    token = parse_qs(urlsplit(link).query)["$skiptoken"][0]
    assert client.get(API + "systemusers", params={"$skiptoken": token + "x"}).status_code == 400
    bad = client.get(API + "systemusers", params={"$skiptoken": token, "$orderby": "fullname"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "0x80060888"


def test_formatted_values(client: httpx.Client) -> None:
    prefer = 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'
    r = client.get(
        API + f"systemusers({ALICE})",
        params={"$select": "accessmode,isdisabled,islicensed,createdon,fullname"},
        headers={"Prefer": prefer},
    )
    rec = r.json()
    assert rec["accessmode" + FORMATTED] == "Read-Write"
    assert rec["isdisabled" + FORMATTED] == "Enabled"
    assert rec["islicensed" + FORMATTED] == "Yes"
    assert rec["createdon" + FORMATTED] == "1/10/2026 8:00 AM"
    assert "fullname" + FORMATTED not in rec
    assert "odata.include-annotations" in r.headers["Preference-Applied"]
    plain = client.get(API + f"systemusers({ALICE})", params={"$select": "accessmode"}).json()
    assert not any(k.endswith(FORMATTED) for k in plain)


def test_one_record_by_id_and_by_object_id(client: httpx.Client) -> None:
    by_id = client.get(API + f"systemusers({str(ALICE).upper()})", params={"$select": "domainname"})
    assert by_id.status_code == 200
    body = by_id.json()
    assert body["@odata.context"].endswith("$metadata#systemusers(domainname)/$entity")
    assert body["domainname"] == "alice@contoso.com" and body["systemuserid"] == str(ALICE)
    by_object = client.get(API + f"systemusers(azureactivedirectoryobjectid={OBJ_ALICE})")
    assert by_object.json()["systemuserid"] == str(ALICE)
    quoted = client.get(API + f"systemusers(azureactivedirectoryobjectid='{OBJ_ALICE}')")
    assert quoted.json()["systemuserid"] == str(ALICE)
    value = client.get(API + f"systemusers({ALICE})/fullname").json()
    assert value["value"] == "Alice Adams"


def test_errors_in_dataverses_shape(client: httpx.Client) -> None:
    missing = uuid.UUID(int=1)
    r = client.get(API + f"systemusers({missing})")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "0x80040217",
        "message": f"Entity 'systemuser' With Id = {missing} Does Not Exist",
    }
    r = client.get(API + "systemusers", params={"$select": "fullname,Name"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "0x0")
    assert r.json()["error"]["message"] == (
        "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.systemuser'."
    )
    r = client.get(API + "systemusers", params={"$orderby": "nosuch desc"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "0x0")
    r = client.get(API + "SystemUsers")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "0x8006088a",
        "message": "Resource not found for the segment 'SystemUsers'.",
    }
    assert client.get(API + "systemusers", params={"$skip": "2"}).status_code == 400
    assert client.get(API + "systemusers", params={"$top": "-1"}).status_code == 400
    assert client.get(API + "systemusers(not-a-guid)").status_code == 400
    assert client.get(API + "systemusers(fullname='x')").status_code == 400
    assert client.get("/nosuchenv/api/data/v9.2/systemusers").status_code == 404
    # Writes: see test_writes; PUT of a record and POST to a record are not methods of the resource,
    # and the other tables take no writes.
    for method in ("POST", "PUT"):
        r = client.request(method, API + f"systemusers({ALICE})", json={"fullname": "x"})
        assert r.status_code == 405, method
        assert r.json()["error"]["code"] == "0x80060888"
    for method in ("POST", "PATCH", "PUT", "DELETE"):
        r = client.request(method, API + "roles", json={"name": "x"}, headers={"If-Match": "*"})
        assert r.status_code == 501, method
        assert r.json()["error"]["code"] == "0x80060888"
    assert client.post(API + "WhoAmI").status_code == 405


def test_entity_definitions(client: httpx.Client) -> None:
    r = client.get(
        API + "EntityDefinitions",
        params={
            "$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
            "$filter": "LogicalName eq 'systemuser'",
        },
    )
    assert r.status_code == 200
    [one] = r.json()["value"]
    assert {k: one[k] for k in ("LogicalName", "EntitySetName", "PrimaryIdAttribute")} == {
        "LogicalName": "systemuser",
        "EntitySetName": "systemusers",
        "PrimaryIdAttribute": "systemuserid",
    }
    role = client.get(API + "EntityDefinitions(LogicalName='role')").json()
    assert role["EntitySetName"] == "roles" and role["PrimaryNameAttribute"] == "name"
    attrs = client.get(API + "EntityDefinitions(LogicalName='systemuser')/Attributes").json()["value"]
    table = Base.metadata.tables["systemuser"]
    assert {a["LogicalName"] for a in attrs} == {c.name for c in table.columns} - {"environment_id"}
    domain = next(a for a in attrs if a["LogicalName"] == "domainname")
    assert domain["MaxLength"] == table.c.domainname.type.length
    access = client.get(
        API + "EntityDefinitions(LogicalName='systemuser')/Attributes(LogicalName='accessmode')"
    )
    assert access.json()["AttributeType"] == "Picklist"
    assert {o["Value"] for o in access.json()["OptionSet"]["Options"]} == {0, 1, 2, 3, 4, 5}
    none = client.get(API + "EntityDefinitions", params={"$filter": "LogicalName eq 'account'"}).json()
    assert none["value"] == []


def test_roles_and_the_users_roles(filled: Engine, client: httpx.Client) -> None:
    roles = Base.metadata.tables["role"]
    links = Base.metadata.tables["systemuserroles"]
    prod = env_id(filled, "prod")
    with filled.begin() as conn:
        admin = conn.execute(
            select(roles.c.roleid).where(
                roles.c.environment_id == prod, roles.c.name == "System Administrator"
            )
        ).scalar_one()
        conn.execute(insert(links).values(systemuserid=ALICE, roleid=admin))
    listed = client.get(API + "roles", params={"$select": "name", "$orderby": "name"}).json()["value"]
    with filled.connect() as conn:
        names = sorted(conn.execute(select(roles.c.name).where(roles.c.environment_id == prod)).scalars())
    assert [r["name"] for r in listed] == names
    assert all("roleid" in r for r in listed)
    mine = client.get(API + f"systemusers({ALICE})/systemuserroles_association", params={"$select": "name"})
    assert mine.status_code == 200
    assert mine.json()["@odata.context"].endswith("$metadata#roles(name)")
    assert [r["name"] for r in mine.json()["value"]] == ["System Administrator"]
    assert client.get(API + f"systemusers({uuid.UUID(int=5)})/systemuserroles_association").status_code == 404
    holders = client.get(API + f"roles({admin})/systemuserroles_association", params={"$select": "fullname"})
    assert [u["fullname"] for u in holders.json()["value"]] == ["Alice Adams"]


def test_who_am_i(client: httpx.Client) -> None:
    body = client.get(API + "WhoAmI", headers=bearer(oid=str(OBJ_ALICE))).json()
    assert set(body) == {"@odata.context", "BusinessUnitId", "UserId", "OrganizationId"}
    assert body["UserId"] == str(ALICE)
    again = client.get(API + "WhoAmI()", headers=bearer(oid=str(OBJ_ALICE))).json()
    assert again["OrganizationId"] == body["OrganizationId"]
    other = client.get("/other/api/data/v9.2/WhoAmI", headers=bearer(oid=str(OBJ_ALICE))).json()
    assert other["UserId"] == str(OTHER_ENV_USER) and other["OrganizationId"] != body["OrganizationId"]


def test_who_am_i_refuses_a_caller_who_is_no_enabled_user_of_the_environment(
    filled: Engine, client: httpx.Client
) -> None:
    """Dataverse: 403 0x80072560 "The user is not a member of the organization." for a caller with
    no row (an app without an application user, say), 403 0x80040225 for a disabled user."""
    stranger = client.get(API + "WhoAmI", headers=bearer(oid=str(uuid.uuid4())))
    assert stranger.status_code == 403
    assert stranger.json()["error"] == {
        "code": "0x80072560",
        "message": "The user is not a member of the organization.",
    }
    app_id = uuid.uuid4()
    assert client.get(API + "WhoAmI", headers=bearer(appid=str(app_id))).status_code == 403
    add_users(
        filled,
        env_id(filled, "prod"),
        [{**ROWS[3], "systemuserid": uuid.UUID(int=77), "applicationid": app_id, "domainname": "app@x"}],
    )
    app = client.get(API + "WhoAmI", headers=bearer(appid=str(app_id), oid=str(uuid.uuid4())))
    assert app.status_code == 200 and app.json()["UserId"] == str(uuid.UUID(int=77))
    bob = ROWS[1]  # disabled
    disabled = client.get(API + "WhoAmI", headers=bearer(oid=str(bob["azureactivedirectoryobjectid"])))
    assert disabled.status_code == 403 and disabled.json()["error"]["code"] == "0x80040225"
    assert f"SystemUserId={bob['systemuserid']}" in disabled.json()["error"]["message"]
    # No token, or one that names no one: no caller to answer for.
    for headers in ({}, bearer(name="nobody"), {"Authorization": "Bearer not-a-jwt"}):
        r = client.get(API + "WhoAmI", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "0x8005F101"
    # Without --require-token, reads stay open to any caller.
    assert client.get(API + "systemusers", headers=bearer(oid=str(uuid.uuid4()))).status_code == 200


def _batch_body(boundary: str, urls: list[str]) -> str:
    parts = []
    for url in urls:
        parts.append(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"GET {url} HTTP/1.1\r\nAccept: application/json\r\n\r\n"
        )
    return "".join(parts) + f"--{boundary}--\r\n"


def test_batch_of_gets(client: httpx.Client) -> None:
    body = _batch_body(
        "batch_x",
        [
            "http://testserver/prod/api/data/v9.2/systemusers?$count=true&$select=fullname&$filter=fullname eq 'Alice Adams'",
            "systemusers(00000000-0000-0000-0000-000000000001)",
            "/prod/api/data/v9.2/systemusers?$top=1",
            "/other/api/data/v9.2/systemusers",
        ],
    )
    ctype = {"Content-Type": 'multipart/mixed; boundary="batch_x"'}
    r = client.post(API + "$batch", content=body, headers={**ctype, "Prefer": "odata.continue-on-error"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    from PowerPlatform.Dataverse.data._batch_base import _BatchBase  # the SDK's own parser

    result = _BatchBase._parse_batch_response(None, r)  # type: ignore[arg-type]
    statuses = [item.status_code for item in result.responses]
    assert statuses == [200, 404, 200, 404]
    assert result.responses[0].data["@odata.count"] == 1
    assert result.responses[1].error_code == "0x80040217"
    assert len(result.responses[2].data["value"]) == 1
    stopped = client.post(API + "$batch", content=body, headers=ctype)  # stops at the first failure
    assert [i.status_code for i in _BatchBase._parse_batch_response(None, stopped).responses] == [200, 404]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a/b c'd", "100% ünïcode", "x?y#z", "api"])
def test_environment_names_that_need_encoding(filled: Engine, name: str) -> None:
    env = add_env(filled, name)
    add_users(filled, env, [{**ROWS[0], "systemuserid": uuid.uuid4(), "domainname": "only@x.com"}])
    root = web_api_url("http://testserver", name)
    assert f"/{env_segment(name)}/" in root and "/" not in env_segment(name)
    transport = InProcessTransport(create_webapi_app(lambda: filled))
    with httpx.Client(transport=transport) as c:
        r = c.get(
            root + "systemusers", params={"$select": "domainname"}, headers={"Prefer": "odata.maxpagesize=1"}
        )
        assert r.status_code == 200, r.text
        assert [v["domainname"] for v in r.json()["value"]] == ["only@x.com"]
        assert r.json()["@odata.context"].startswith(root)
        assert c.get(root + "WhoAmI", headers=bearer(oid=str(OBJ_ALICE))).status_code == 200


def test_a_batch_of_more_than_a_thousand_requests_is_refused(client: httpx.Client) -> None:
    """Dataverse's limit: 1,000 requests a batch (each of which may read 5,000 rows)."""
    ctype = {"Content-Type": 'multipart/mixed; boundary="batch_x"'}
    ok = client.post(
        API + "$batch", content=_batch_body("batch_x", ["systemusers?$top=1"] * 1000), headers=ctype
    )
    assert ok.status_code == 200
    too_many = client.post(
        API + "$batch", content=_batch_body("batch_x", ["systemusers?$top=1"] * 1001), headers=ctype
    )
    assert too_many.status_code == 400 and "limited to 1000" in too_many.json()["error"]["message"]


def test_an_empty_select_is_refused(client: httpx.Client) -> None:
    r = client.get(API + "systemusers", params={"$select": ""})
    assert r.status_code == 400 and "$select" in r.json()["error"]["message"]


ATTRS = API + "EntityDefinitions(LogicalName='systemuser')/Attributes"
PICKLIST = "Microsoft.Dynamics.CRM.PicklistAttributeMetadata"


def test_one_attribute_cast_to_its_type(client: httpx.Client) -> None:
    """As "Reference Dataverse schema definitions by name" retrieves a column's choices."""
    r = client.get(
        f"{ATTRS}(LogicalName='accessmode')/{PICKLIST}",
        params={
            "$select": "LogicalName",
            "$expand": "OptionSet($select=Options),GlobalOptionSet($select=Options)",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@odata.context"] == (
        "http://testserver/prod/api/data/v9.2/$metadata#EntityDefinitions('systemuser')/Attributes/"
        f"{PICKLIST}(LogicalName,OptionSet(Options),GlobalOptionSet(Options))/$entity"
    )
    assert set(body) == {"@odata.context", "MetadataId", "LogicalName", "OptionSet", "GlobalOptionSet"}
    assert body["LogicalName"] == "accessmode" and body["GlobalOptionSet"] is None
    assert {o["Value"] for o in body["OptionSet"]["Options"]} == {0, 1, 2, 3, 4, 5}
    plain = client.get(f"{ATTRS}(LogicalName='accessmode')/{PICKLIST}", params={"$select": "LogicalName"})
    assert plain.json()["@odata.context"].endswith(f"/Attributes/{PICKLIST}(LogicalName)/$entity")
    whole = client.get(f"{ATTRS}(LogicalName='accessmode')/{PICKLIST}").json()
    assert whole["@odata.context"].endswith(f"/Attributes/{PICKLIST}/$entity")
    assert whole["AttributeType"] == "Picklist" and "@odata.type" not in whole
    by_id = client.get(f"{ATTRS}({whole['MetadataId']})/{PICKLIST}")
    assert by_id.status_code == 200 and by_id.json()["LogicalName"] == "accessmode"
    for base in ("Microsoft.Dynamics.CRM.EnumAttributeMetadata", "Microsoft.Dynamics.CRM.AttributeMetadata"):
        assert client.get(f"{ATTRS}(LogicalName='accessmode')/{base}").status_code == 200, base
    listed = client.get(f"{ATTRS}/{PICKLIST}", params={"$select": "LogicalName"}).json()["value"]
    assert "accessmode" in {a["LogicalName"] for a in listed}


def test_one_attribute_cast_to_another_type_is_not_found(client: httpx.Client) -> None:
    """OData's "Addressing Derived Types": an instance that is not of the cast's type is 404."""
    for url, segment in (
        (f"{ATTRS}(LogicalName='fullname')/{PICKLIST}", PICKLIST),
        (f"{ATTRS}(LogicalName='accessmode')/Microsoft.Dynamics.CRM.StringAttributeMetadata", None),
        (f"{ATTRS}(LogicalName='accessmode')/Microsoft.Dynamics.CRM.NoSuchMetadata", None),
        (f"{ATTRS}(LogicalName='accessmode')/{PICKLIST}/OptionSet", None),
    ):
        r = client.get(url)
        assert r.status_code == 404, (url, r.text)
        assert r.json()["error"]["code"] == "0x8006088a"
        if segment:
            assert r.json()["error"]["message"] == f"Resource not found for the segment '{segment}'."
    missing = client.get(f"{ATTRS}(LogicalName='nosuchcolumn')/{PICKLIST}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "0x80040217"
