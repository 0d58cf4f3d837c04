"""The admin API: every mutation refused without the token, working with it; JSON errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import Tenant, make_env
from pydantic import SecretStr
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from syncd.context import AppContext
from syncd.directory.client import GraphClient
from syncd.service import openapi
from syncd.service.admin_routes import routes
from syncd.settings import Settings
from tests.api_schema import checked

TOKEN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(db_url: str, directory: GraphClient, token: str | None) -> tuple[TestClient, AppContext]:
    settings = Settings(database_url=db_url, admin_token=SecretStr(token) if token else None)
    appctx = AppContext(settings)
    app = Starlette(routes=routes(appctx, directory=lambda: nullcontext(directory)))
    return checked(TestClient(app), openapi.document(app.routes)), appctx


@pytest.fixture
def api(db_url: str, engine: Engine, directory: GraphClient) -> Iterator[TestClient]:
    make_env(engine)
    client, appctx = _client(db_url, directory, TOKEN)
    with client:
        yield client
    appctx.close()


def mutations(tenant: Tenant) -> list[tuple[str, str, dict[str, Any]]]:
    u = tenant.user("zoe")
    upn = u["userPrincipalName"]
    sp = tenant.service_principals[0]
    base = "/api/environments/prod"
    return [
        ("POST", base + "/users", {"json": {"user": upn}}),
        ("POST", base + f"/users/{upn}/refresh", {}),
        ("PUT", base + f"/users/{upn}/access-mode", {"json": {"mode": "read"}}),
        ("POST", base + "/app-users", {"json": {"app_id": sp["appId"]}}),
        ("POST", base + "/stubs", {"content": b"domainname,fullname\nold@legacy.example,Old\n"}),
        ("POST", base + "/roles", {"json": {"user": upn, "role": "Basic User"}}),
        ("POST", base + "/stubs/old@legacy.example/reassign", {"json": {"target": upn}}),
        ("DELETE", base + f"/roles/Basic User/users/{upn}", {}),
    ]


def test_every_mutation_needs_the_token_and_works_with_it(api: TestClient, tenant: Tenant) -> None:
    calls = mutations(tenant)
    for method, url, kw in calls:
        assert api.request(method, url, **kw).status_code == 401, url
        bad = {"Authorization": "Bearer wrong"}
        assert api.request(method, url, headers=bad, **kw).status_code == 401, url
    expected = [201, 200, 200, 201, 201, 200, 200, 200]
    for (method, url, kw), status in zip(calls, expected, strict=True):
        r = api.request(method, url, headers=AUTH, **kw)
        assert r.status_code == status, (url, r.text)
    body = api.get(f"/api/environments/prod/users/{calls[0][2]['json']['user']}/diagnose").json()
    assert body["row"]["accessmode"] == 2 and body["row"]["roles"] == []
    actions = [e["action"] for e in body["events"]]
    assert actions[:3] == ["remove_role", "reassign", "assign_role"]


def test_no_token_configured_refuses_every_mutation(
    db_url: str, engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    make_env(engine)
    client, appctx = _client(db_url, directory, None)
    with client:
        for method, url, kw in mutations(tenant):
            assert client.request(method, url, headers=AUTH, **kw).status_code == 403, url
    appctx.close()


def test_errors_are_json_with_status_codes(api: TestClient, tenant: Tenant) -> None:
    # R8 refusal is 409 with the failed checks; unknown is 404; bad input is 400
    u = tenant.user("yann", licence=None)
    r = api.post("/api/environments/prod/users", json={"user": u["id"]}, headers=AUTH)
    assert r.status_code == 409
    assert r.json()["error"] == "refused" and {c["rule"] for c in r.json()["checks"]} >= {"R4"}
    r = api.post("/api/environments/nope/users", json={"user": u["id"]}, headers=AUTH)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = api.post("/api/environments/prod/users", json={"user": "nobody@nowhere.example"}, headers=AUTH)
    assert r.status_code == 404
    r = api.post("/api/environments/prod/users", json={"user": u["id"], "mode": "sideways"}, headers=AUTH)
    assert r.status_code == 400 and "sideways" in r.json()["detail"]
    r = api.post("/api/environments/prod/users", content=b"[1", headers=AUTH)
    assert r.status_code == 400
    r = api.put(f"/api/environments/prod/users/{u['id']}/access-mode", json={"mode": "up"}, headers=AUTH)
    assert r.status_code == 400
    r = api.post("/api/environments/prod/stubs", content=b"domainname,fullname\nbad,X\n", headers=AUTH)
    assert r.status_code == 400 and r.json()["lines"][0]["line"] == 2
    r = api.get("/api/environments/prod/users/nobody@nowhere.example/diagnose")
    assert r.status_code == 404
    app = "00000000-0000-4000-8000-000000000000"
    r = api.post("/api/environments/prod/app-users", json={"app_id": app}, headers=AUTH)
    assert r.status_code == 404


def test_first_access_and_eighth_noninteractive_over_http(api: TestClient, tenant: Tenant) -> None:
    # R7c via mode first_access; R17 refusal is 409
    people = [tenant.user(f"api{i}") for i in range(8)]
    for p in people:
        r = api.post(
            "/api/environments/prod/users", json={"user": p["id"], "mode": "first_access"}, headers=AUTH
        )
        assert r.status_code == 201 and r.json()["operation"] == "access"
    for i, p in enumerate(people):
        r = api.put(
            f"/api/environments/prod/users/{p['id']}/access-mode",
            json={"mode": "non-interactive"},
            headers=AUTH,
        )
        assert r.status_code == (200 if i < 7 else 409)
    assert r.json()["checks"][0]["rule"] == "R17"


def test_the_daemons_app_mounts_the_routes(db_url: str, engine: Engine, clean_env: Path) -> None:
    from syncd.directory.fake.generator import generate_tenant
    from syncd.directory.fake.store import TenantStore
    from syncd.service.app import create_app
    from syncd.service.metrics import Metrics

    make_env(engine)
    store_path = clean_env / "tenant.db"
    store = TenantStore.open(str(store_path))
    generate_tenant(store, users=10, seed=3)
    store.close()
    settings = Settings(database_url=db_url, admin_token=SecretStr(TOKEN), directory_store=str(store_path))
    appctx = AppContext(settings)
    with TestClient(create_app(appctx, Metrics())) as client:
        r = client.post("/api/environments/prod/users", json={"user": "a@b.example"})
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = client.put(
            "/api/environments/prod/users/a@b.example/access-mode", json={"mode": "read"}, headers=AUTH
        )
        assert r.status_code == 404 and "a@b.example" in r.json()["detail"]
    appctx.close()


def test_ids_in_paths_and_bodies_take_any_spelling(api: TestClient, tenant: Tenant) -> None:
    # One spelling per id: the admin API's paths and bodies name the same object in any case.
    u = tenant.user("upper")
    oid, base = u["id"], "/api/environments/prod"
    r = api.post(base + "/users", json={"user": oid.upper()}, headers=AUTH)
    assert r.status_code == 201 and r.json()["row"]["azureactivedirectoryobjectid"] == oid
    r = api.post(base + f"/users/{oid.upper()}/refresh", headers=AUTH)
    assert r.status_code == 200 and r.json()["action"] == "keep" and r.json()["row"]["isdisabled"] is False
    r = api.get(base + f"/users/{{{oid.upper()}}}/diagnose")
    assert (
        r.status_code == 200 and r.json()["user"]["object_id"] == oid and r.json()["next"]["action"] == "keep"
    )
    r = api.put(base + f"/users/{oid.upper()}/access-mode", json={"mode": "read"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["mode"] == 2
    r = api.post(base + "/roles", json={"user": oid.upper(), "role": "Basic User"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["roles"] == ["Basic User"]
    r = api.delete(base + f"/roles/Basic User/users/{oid.upper()}", headers=AUTH)
    assert r.status_code == 200 and r.json()["roles"] == []
    sp = tenant.service_principals[0]
    r = api.post(base + "/app-users", json={"app_id": sp["appId"].upper()}, headers=AUTH)
    assert r.status_code == 201 and r.json()["app_id"] == sp["appId"].lower()
    r = api.post(
        base + "/stubs", content=b"domainname,fullname,records\nold@legacy.example,Old,a:b\n", headers=AUTH
    )
    assert r.status_code == 201
    r = api.post(base + "/stubs/old@legacy.example/reassign", json={"target": oid.upper()}, headers=AUTH)
    assert r.status_code == 200 and r.json()["records"] == 1


def test_a_malformed_id_is_400_with_a_json_error_and_nothing_written(
    api: TestClient, tenant: Tenant, engine: Engine
) -> None:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from syncd.dataverse.schema import SyncRun, SystemUser

    bad, base = "not-quite-a-guid-0000", "/api/environments/prod"
    calls = [
        ("POST", base + "/users", {"json": {"user": bad}}),
        ("POST", base + f"/users/{bad}/refresh", {}),
        ("GET", base + f"/users/{bad}/diagnose", {}),
        ("PUT", base + f"/users/{bad}/access-mode", {"json": {"mode": "read"}}),
        ("POST", base + "/app-users", {"json": {"app_id": bad}}),
        ("POST", base + "/roles", {"json": {"user": bad, "role": "Basic User"}}),
        ("DELETE", base + f"/roles/Basic User/users/{bad}", {}),
        ("POST", base + f"/stubs/{bad}/reassign", {"json": {"target": "a@b.example"}}),
        ("POST", base + "/stubs/a@b.example/reassign", {"json": {"target": bad}}),
        ("PATCH", base, {"json": {"security_group_id": bad}}),
    ]
    for method, url, kw in calls:
        r = api.request(method, url, headers=AUTH, **kw)
        assert r.status_code == 400, (method, url, r.text)
        assert r.json()["error"] == "bad request" and repr(bad) in r.json()["detail"], r.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 0
        assert s.scalar(select(func.count()).select_from(SystemUser).where(SystemUser.kind == "regular")) == 0


def test_csv_import_refuses_an_object_id_for_a_upn(api: TestClient, tenant: Tenant, engine: Engine) -> None:
    # R20, one spelling per id: the stub file carries no object ids (a stub stands for a user who is
    # not in the directory); an id where the UPN goes is a bad line, in any spelling, and nothing is imported.
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from syncd.dataverse.schema import SystemUser

    oid = tenant.user("real")["id"]
    body = f"domainname,fullname\nok@legacy.example,Ok\n{oid.upper()},Real\n{{{oid}}},Braced\n".encode()
    r = api.post("/api/environments/prod/stubs", content=body, headers=AUTH)
    assert r.status_code == 400
    lines = r.json()["lines"]
    assert [x["line"] for x in lines] == [3, 4] and "is an object id" in lines[0]["message"]
    assert repr(oid.upper()) in lines[0]["message"]
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(SystemUser).where(SystemUser.kind == "stub")) == 0


ODD_NAMES = ["a/b", "50% off", "O'Brien team", 'say "hi"', "x%2Fy"]


def test_every_route_reaches_an_environment_whatever_its_name(
    db_url: str, engine: Engine, directory: GraphClient, tenant: Tenant
) -> None:
    # A name is one path segment, percent-encoded: `/` (%2F), `%` (%25), spaces and quotes included.
    from urllib.parse import quote

    client, appctx = _client(db_url, directory, TOKEN)
    u = tenant.user("odd")
    upn = u["userPrincipalName"]
    gid = tenant.group("Odd/Team 100%")
    with client:
        for name in ODD_NAMES:
            make_env(engine, name)
            base = "/api/environments/" + quote(name, safe="")
            calls = [
                ("POST", base + "/users", {"json": {"user": upn, "mode": "first_access"}}, 201),
                ("GET", base + f"/users/{upn}/diagnose", {}, 200),
                ("POST", base + f"/users/{upn}/refresh", {}, 200),
                ("PUT", base + f"/users/{upn}/access-mode", {"json": {"mode": "read"}}, 200),
                ("POST", base + "/roles", {"json": {"user": upn, "role": "Basic User"}}, 200),
                ("DELETE", base + f"/roles/Basic%20User/users/{upn}", {}, 200),
                (
                    "POST",
                    base + "/app-users",
                    {"json": {"app_id": tenant.service_principals[0]["appId"]}},
                    201,
                ),
                ("POST", base + "/stubs", {"content": b"domainname,fullname\nold@legacy.example,Old\n"}, 201),
                ("POST", base + "/stubs/old@legacy.example/reassign", {"json": {"target": upn}}, 200),
                ("PATCH", base, {"json": {"is_sales": True}}, 200),
                ("POST", base + "/resume", {}, 200),
                ("POST", base + "/teams", {"json": {"group": gid}}, 201),
                ("GET", base + "/teams", {}, 200),
                ("GET", base + "/teams/" + quote("Odd/Team 100%", safe=""), {}, 200),
                (
                    "POST",
                    base + "/teams/" + quote("Odd/Team 100%", safe="") + "/roles",
                    {"json": {"role": "Basic User"}},
                    200,
                ),
                ("DELETE", base + f"/teams/{gid}/roles/Basic%20User", {}, 200),
                (
                    "POST",
                    base + f"/groups/{gid}/roles",
                    {"json": {"role": "Basic User", "membership": "owners"}},
                    201,
                ),
            ]
            for method, url, kw, status in calls:
                r = client.request(method, url, headers=AUTH, **kw)
                assert r.status_code == status, (name, method, url, r.text)
                body = r.json()
                env = body.get("environment") if isinstance(body, dict) else None
                assert env in (name, None) or env["name"] == name, (method, url, body)
        r = client.get("/api/environments/" + quote("no/such", safe="") + "/teams")
        assert r.status_code == 404 and "'no/such'" in r.json()["detail"]
    appctx.close()


def test_the_daemons_api_reaches_odd_names_and_answers_json_404_and_405(
    db_url: str, engine: Engine, clean_env: Path
) -> None:
    from urllib.parse import quote

    from syncd.service.app import create_app
    from syncd.service.metrics import Metrics

    for name in ODD_NAMES:
        make_env(engine, name)
    settings = Settings(
        database_url=db_url, admin_token=SecretStr(TOKEN), directory_store=str(clean_env / "t.db")
    )
    appctx = AppContext(settings)
    with TestClient(create_app(appctx, Metrics())) as client:
        for name in ODD_NAMES:
            base = "/api/environments/" + quote(name, safe="")
            r = client.get(base)
            assert r.status_code == 200 and r.json()["name"] == name, (name, r.text)
            assert client.get(base + "/teams").json()["environment"] == name
            r = client.get("/api/runs", params={"environment": name})
            assert r.status_code == 200
        for method, url, status in [
            ("GET", "/api/nothing-here", 404),
            ("GET", "/api/environments/prod/users/a@b.example/nothing", 404),
            ("POST", "/api/environments/a%2Fb/nothing", 404),
            ("DELETE", "/api/environments/a%2Fb/teams", 405),
            ("GET", "/api/environments/a%2Fb/sync", 405),  # GET .../users is the user search (issue 15)
            ("PUT", "/api/environments/a%2Fb", 405),
            ("POST", "/api/runs", 405),
        ]:
            r = client.request(method, url, headers=AUTH)
            assert r.status_code == status, (method, url, r.text)
            assert r.headers["content-type"] == "application/json", (method, url, r.text)
            body = r.json()
            assert set(body) == {"error", "detail"} and len(body["detail"].splitlines()) == 1, body
            assert repr(url) in body["detail"], body
            if status == 405:
                assert method in body["detail"] and r.headers["allow"], body
        r = client.get("/nothing-here")  # outside /api/: the status pages' 404 page
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    appctx.close()


def test_every_body_refuses_unknown_keys_and_wrong_types(api: TestClient, tenant: Tenant) -> None:
    # Each body takes its fields exactly: an unknown key or a value of the wrong type is a 400 naming it.
    u = tenant.user("strict")
    upn, base = u["userPrincipalName"], "/api/environments/prod"
    app_id = tenant.service_principals[0]["appId"]
    cases: list[tuple[str, str, Any, list[str]]] = [
        ("POST", "/users", {"user": upn, "mod": "first_access"}, ["unknown field 'mod'"]),
        ("POST", "/users", {"user": upn, "mode": 1}, ["'mode'", "1"]),
        ("POST", "/users", {"user": 12}, ["'user'", "12"]),
        (
            "POST",
            "/users",
            {"user": upn, "mode": "sideways"},
            ["'sideways'", "'on_demand' or 'first_access'"],
        ),
        ("PUT", f"/users/{upn}/access-mode", {"mode": "read", "force": True}, ["unknown field 'force'"]),
        ("PUT", f"/users/{upn}/access-mode", {"mode": 2}, ["'mode'", "2"]),
        ("PUT", f"/users/{upn}/access-mode", {"mode": "up"}, ["invalid access mode 'up'", "read-write (0)"]),
        ("POST", "/app-users", {"app_id": app_id, "name": "x"}, ["unknown field 'name'"]),
        ("POST", "/app-users", {"app_id": [app_id]}, ["'app_id'"]),
        ("POST", "/roles", {"user": upn, "role": "Basic User", "scope": "bu"}, ["unknown field 'scope'"]),
        ("POST", "/roles", {"user": upn, "role": 3.5}, ["'role'", "3.5"]),
        ("POST", "/stubs/old@legacy.example/reassign", {"target": upn, "x": 1}, ["unknown field 'x'"]),
        ("POST", "/stubs/old@legacy.example/reassign", {"target": None}, ["'target'", "None"]),
        ("PATCH", "", {"is_sales": True, "colour": "red"}, ["'colour'"]),
        ("PATCH", "", {"is_sales": "yes"}, ["is_sales", "'yes'"]),
    ]
    for method, url, body, needles in cases:
        r = api.request(method, base + url, headers=AUTH, json=body)
        assert r.status_code == 400, (method, url, body, r.text)
        detail = r.json()["detail"]
        assert r.json()["error"] == "bad request" and len(detail.splitlines()) == 1, detail
        assert all(n in detail for n in needles), (body, detail)
    r = api.get(f"{base}/users/{upn}/diagnose")
    assert r.status_code == 200 and r.json()["row"] is None  # nothing was written


def test_routes_without_a_body_refuse_one(api: TestClient, tenant: Tenant) -> None:
    # resume, refresh and the DELETEs take no body: a key they don't know is a 400 naming it, and
    # nothing is done; an empty body or {} is fine.
    upn = tenant.user("nobody-body")["userPrincipalName"]
    base = "/api/environments/prod"
    r = api.post(base + "/users", json={"user": upn}, headers=AUTH)
    assert r.status_code == 201, r.text
    r = api.post(base + "/roles", json={"user": upn, "role": "Basic User"}, headers=AUTH)
    assert r.status_code == 200, r.text
    refused: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/resume", {"json": {"bogus": 1}}, "unknown field 'bogus'"),
        ("POST", "/resume", {"content": b"not json"}, "not a JSON object"),
        ("POST", "/resume", {"json": "x"}, "must be a JSON object"),
        ("POST", f"/users/{upn}/refresh", {"json": {"dry_run": True, "bogus": 1}}, "unknown field 'dry_run'"),
        ("DELETE", f"/roles/Basic User/users/{upn}", {"json": {"force": True}}, "unknown field 'force'"),
    ]
    for method, path, kw, named in refused:
        r = api.request(method, base + path, headers=AUTH, **kw)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"] == "bad request" and named in r.json()["detail"], (path, r.text)
    assert api.get(base + f"/users/{upn}/diagnose").json()["row"]["roles"] == ["Basic User"]
    for method, path, kw in [
        ("POST", "/resume", {"json": {}}),
        ("POST", "/resume", {"content": b""}),
        ("POST", f"/users/{upn}/refresh", {"json": {}}),
        ("DELETE", f"/roles/Basic User/users/{upn}", {}),
    ]:
        r = api.request(method, base + path, headers=AUTH, **kw)
        assert r.status_code == 200, (path, r.text)


def test_every_bad_request_has_one_label(api: TestClient) -> None:
    # A CSV with bad lines is a 400 like any other: "error": "bad request".
    base = "/api/environments/prod"
    for r in [
        api.post(base + "/stubs", content=b"domainname,fullname\nbad,X\n", headers=AUTH),
        api.post(base + "/users", json={"user": 1}, headers=AUTH),
        api.patch(base, json={"nope": 1}, headers=AUTH),
    ]:
        assert r.status_code == 400 and r.json()["error"] == "bad request", r.text
