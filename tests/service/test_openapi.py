"""The admin API's OpenAPI 3.1 document (``GET /api/openapi.json``) and its page (``/api/docs``).

The document is valid OpenAPI 3.1, lists every ``ApiRoute`` of the daemon's route table with each
of its methods, and the daemon's real answers match it (here a few representative calls; every
answer of the admin tests is checked too, see ``tests/api_schema.py``; schemathesis fuzzes the
running daemon in ``test_openapi_fuzz.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from service_helpers import add_env, add_run
from sqlalchemy import Engine
from starlette.testclient import TestClient

from syncd.context import AppContext
from syncd.service import api_docs, openapi
from syncd.service.app import create_app
from syncd.service.metrics import Metrics
from syncd.service.routing import ApiRoute
from syncd.settings import load_settings
from tests.api_schema import check_answer, checked

TOKEN = "s3cret"


@pytest.fixture
def app_client(db_url: str, engine: Engine, clean_env: Path) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    appctx = AppContext(load_settings(database_url=db_url, admin_token=TOKEN))
    app = create_app(appctx, Metrics())
    with TestClient(app) as client:
        doc = client.get("/api/openapi.json").json()
        yield checked(client, doc), doc
    appctx.close()


def _document() -> tuple[dict[str, Any], list[ApiRoute]]:
    app = create_app(AppContext(load_settings(database_url="sqlite://")), Metrics())
    return openapi.document(app.routes), [r for r in app.routes if isinstance(r, ApiRoute)]


def test_the_document_is_valid_openapi_3_1() -> None:
    doc, _ = _document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # openapi-spec-validator: OpenAPI 3.1 and its JSON Schema dialect


def test_every_route_of_the_table_is_in_the_document_with_each_method() -> None:
    doc, api = _document()
    assert len(api) > 20  # the admin routes are mounted
    for route in api:
        item = doc["paths"].get(route.path_format)
        assert item is not None, route.path_format
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in item, (method, route.path_format)
    served = {(p, m.upper()) for p, item in doc["paths"].items() for m in item}
    table = {(r.path_format, m) for r in api for m in (r.methods or ()) if m != "HEAD"}
    assert served == table


def test_one_path_names_its_parameters_one_way() -> None:
    """Two paths that differ only in a parameter's name (``/environments/{name}`` and
    ``/environments/{env}``) are one resource to a client generator, which then gets two."""
    doc, _ = _document()
    shapes: dict[str, str] = {}
    for path in doc["paths"]:
        shape = re.sub(r"\{[^}]+\}", "{}", path)
        prefix_clash = [p for s, p in shapes.items() if shape.startswith(s.rstrip("/")) and p != path]
        assert shape not in shapes, f"{path} and {shapes.get(shape)} name one parameter two ways"
        shapes[shape] = path
        for other in prefix_clash:  # /environments/{name}/users under /environments/{name}
            names = re.findall(r"\{([^}]+)\}", other)
            assert re.findall(r"\{([^}]+)\}", path)[: len(names)] == names, (path, other)


# The keywords a schema of the document may use: JSON Schema 2020-12's, and OpenAPI 3.1's own.
SCHEMA_KEYWORDS = {
    "$ref",
    "$defs",
    "type",
    "enum",
    "const",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "additionalProperties",
    "patternProperties",
    "items",
    "prefixItems",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "title",
    "description",
    "default",
    "examples",
    "example",
    "readOnly",
    "writeOnly",
    "deprecated",
    "contentMediaType",
    "discriminator",
}


def _schemas(node: Any, inside: bool = False) -> Iterator[dict[str, Any]]:
    """Every schema object under ``node`` (under a ``schema`` key, in components, and nested)."""
    if isinstance(node, dict):
        if inside:
            yield node
        for key, value in node.items():
            if key in ("schema", "items", "not", "additionalProperties") and isinstance(value, dict):
                yield from _schemas(value, True)
            elif key in ("properties", "$defs", "schemas", "patternProperties") and isinstance(value, dict):
                for sub in value.values():
                    yield from _schemas(sub, True)
            elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
                for sub in value:
                    yield from _schemas(sub, True)
            elif not inside:
                yield from _schemas(value, False)
    elif isinstance(node, list) and not inside:
        for item in node:
            yield from _schemas(item, False)


def test_every_schema_keyword_is_json_schema() -> None:
    """A constraint the model states in pydantic's words (``ge``, ``le``) is no constraint to a
    client: it must come out as ``minimum`` and ``maximum``."""
    doc, _ = _document()
    found = list(_schemas(doc))
    assert len(found) > 50
    for schema in found:
        unknown = set(schema) - SCHEMA_KEYWORDS
        assert not unknown, f"{sorted(unknown)} in {schema}"


def test_closed_sets_are_enums_and_ids_say_their_format() -> None:
    doc, _ = _document()
    runs = {p["name"]: p["schema"] for p in doc["paths"]["/api/runs"]["get"]["parameters"]}
    assert runs["before"]["minimum"] == 0
    defs = doc["components"]["schemas"]
    assert set(defs["SyncBody"]["properties"]["kind"]["enum"]) == {"delta", "full", "auto"}
    assert set(defs["AddBody"]["properties"]["mode"]["enum"]) == {"on_demand", "first_access"}
    for body in ("CreateTeamBody", "GroupRoleBody"):
        assert "members" in defs[body]["properties"]["membership"]["enum"]
    assert defs["CreateTeamBody"]["properties"]["group"]["format"] == "uuid"
    stubs = doc["paths"]["/api/environments/{name}/stubs"]["post"]["requestBody"]
    assert "domainname" in stubs["description"]


def test_each_operation_declares_its_errors_and_security() -> None:
    doc, _ = _document()
    scheme = doc["components"]["securitySchemes"]["adminToken"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert "500" in codes, (method, path)
            if method == "get":
                assert op["security"] == [], path
                continue
            assert op["security"] == [{"adminToken": []}], (method, path)
            assert {"400", "401", "403"} <= codes, (method, path)
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    errors = doc["components"]["schemas"]["Error"]
    assert errors["required"] == ["error", "detail"] and errors["additionalProperties"] is False
    # A path parameter is a string segment (an integer for a run id); a body its model.
    sync = doc["paths"]["/api/environments/{name}/sync"]["post"]
    assert sync["parameters"][0]["name"] == "name" and sync["parameters"][0]["schema"]["type"] == "string"
    assert doc["paths"]["/api/runs/{run_id}"]["get"]["parameters"][0]["schema"]["type"] == "integer"
    body = sync["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SyncBody"}
    assert doc["components"]["schemas"]["SyncBody"]["additionalProperties"] is False
    stubs = doc["paths"]["/api/environments/{name}/stubs"]["post"]["requestBody"]
    assert list(stubs["content"]) == ["text/csv"]
    add = doc["components"]["schemas"]["AddBody"]
    assert add["required"] == ["user"] and add["properties"]["user"]["pattern"] == r"\S"


def test_the_daemon_serves_the_document_and_its_page(app_client: tuple[TestClient, dict[str, Any]]) -> None:
    client, doc = app_client
    assert doc == _document()[0]
    r = client.get("/api/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    # Offline: nothing loaded from elsewhere, no script.
    assert "<script" not in page and "src=" not in page and "http://" not in page and "https://" not in page
    for path in doc["paths"]:
        assert f"<code>{path}</code>" in page
    assert 'id="schema-Diagnosis"' in page


def test_the_page_escapes_what_the_document_says() -> None:
    doc, _ = _document()
    doc["paths"]["/api/environments"]["get"]["summary"] = "<script>alert(1)</script>"
    doc["components"]["schemas"]["Error"]["properties"]["<b>"] = {"type": "string", "description": "&<"}
    page = api_docs.render(doc)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;" in page and "&amp;&lt;" in page


def test_real_answers_match_their_schemas(
    app_client: tuple[TestClient, dict[str, Any]], engine: Engine
) -> None:
    client, doc = app_client  # every answer below is checked by the client's hook (check_answer)
    env_id = add_env(engine, "prod")
    add_env(engine, "a/b")
    add_run(engine, env_id, outcome="failed", error="boom")
    add_run(engine, env_id)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/api/environments").status_code == 200
    assert client.get("/api/environments/prod").status_code == 200
    assert client.get("/api/environments/a%2Fb").status_code == 200
    assert client.get("/api/environments/nope").status_code == 404
    runs = client.get("/api/runs?limit=5").json()
    assert len(runs) == 2
    assert client.get(f"/api/runs/{runs[0]['id']}").status_code == 200
    assert client.get("/api/runs?limit=x").status_code == 400
    assert client.get("/api/runs/999999").status_code == 404
    assert client.get("/api/environments/prod/teams").status_code == 200
    assert client.post("/api/environments/prod/resume", headers=auth).status_code == 200
    assert client.post("/api/environments/prod/resume").status_code == 401
    r = client.patch("/api/environments/prod", json={"is_sales": True}, headers=auth)
    assert r.status_code == 200 and r.json()["changed"] == {"is_sales": {"old": False, "new": True}}
    assert client.patch("/api/environments/prod", json={"bogus": 1}, headers=auth).status_code == 400
    assert client.post("/api/environments/prod/sync", json={"dry_run": 1}, headers=auth).status_code == 400
    assert client.get("/api/nothing-here").status_code == 404
    assert client.put("/api/environments/prod/sync", headers=auth).status_code == 405


def test_an_answer_unlike_its_schema_is_caught(app_client: tuple[TestClient, dict[str, Any]]) -> None:
    # The check itself: a field the model does not declare fails it.
    client, doc = app_client
    r = client.get("/api/environments")
    r._content = b'[{"name": "x"}]'
    with pytest.raises(AssertionError, match="does not match its schema"):
        check_answer(doc, r)


def test_the_page_shows_docstring_literals_as_code_not_backticks() -> None:
    doc, _ = _document()
    page = api_docs.render(doc)
    assert "``" not in page and "<code>syncd env set</code>" in page
    hostile = {"openapi": "3.1.0", "info": {"title": "t", "description": "``<b>x</b>``"}, "paths": {}}
    assert "<code>&lt;b&gt;x&lt;/b&gt;</code>" in api_docs.render(hostile)


def test_the_pages_scrolling_regions_each_have_their_own_name() -> None:
    """axe's landmark-unique: two regions named alike (every operation's "parameters") are one
    landmark twice to a screen reader."""
    doc, _ = _document()
    labels = re.findall(r'role="region" tabindex="0" aria-label="([^"]*)"', api_docs.render(doc))
    assert len(labels) > 50 and len(labels) == len(set(labels))
