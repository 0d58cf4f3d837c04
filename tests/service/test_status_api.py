"""The status UI's JSON reads: ``GET /api/environments/{name}/users`` and ``GET /api/events`` (a page,
CSV and JSON lines), every answer checked against the OpenAPI document (``tests/api_schema.py``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from syncd.context import AppContext
from syncd.dataverse import db
from syncd.service.app import create_app
from syncd.service.metrics import Metrics
from syncd.settings import load_settings
from tests.api_schema import checked
from tests.dataverse.dataverse_helpers import add_event, add_run, add_user, environment

OID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture
def client(db_url: str, engine: Engine, clean_env: Path) -> Iterator[TestClient]:
    appctx = AppContext(load_settings(database_url=db_url))
    with TestClient(create_app(appctx, Metrics())) as c:
        yield checked(c, c.get("/api/openapi.json").json())  # type: ignore[misc]
    appctx.close()


@pytest.fixture
def data(engine: Engine) -> dict[str, Any]:
    with db.session_factory(engine)() as s, s.begin():
        prod, other = environment(s), environment(s, 'we, "others"')
        ann = add_user(s, prod, "Ann.Lee@contoso.com", "Ann <Lee>", object_id=OID)
        bob = add_user(s, prod, "bob@contoso.com", "Bob")
        app = add_user(s, prod, "app-1", "App", kind="application")
        run = add_run(s, prod)
        add_event(s, prod, row=ann, run=run, action="create", rule="R7", minutes=0)
        add_event(
            s,
            prod,
            row=ann,
            run=run,
            action="disable",
            rule="R9",
            reason='Gone, "deleted"\nfor good',
            changes='{"isdisabled": true}',
            previous='{"isdisabled": false}',
            minutes=1,
        )
        add_event(s, prod, row=bob, run=run, action="update", rule="R10", minutes=2)
        add_event(s, prod, row=app, action="update", rule="R16", minutes=3)
        add_event(s, other, action="create", rule="R7", minutes=4, object_id=None)
        return {"run": run.id, "ann_sid": str(ann.systemuserid), "app_sid": str(app.systemuserid)}


def test_user_search(client: TestClient, data: dict[str, Any]) -> None:
    hits = client.get("/api/environments/prod/users", params={"q": "ANN"}).json()
    assert [h["domainname"] for h in hits] == ["Ann.Lee@contoso.com"]
    assert hits[0]["fullname"] == "Ann <Lee>" and hits[0]["azureactivedirectoryobjectid"] == OID
    assert client.get("/api/environments/prod/users", params={"q": OID[:6]}).json()[0]["domainname"] == (
        "Ann.Lee@contoso.com"
    )
    assert client.get("/api/environments/prod/users").json() == []  # no query, no users
    assert len(client.get("/api/environments/prod/users", params={"q": "b", "limit": 1}).json()) == 1


def test_user_search_errors_name_the_value(client: TestClient, data: dict[str, Any]) -> None:
    r = client.get("/api/environments/nope/users", params={"q": "a"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    r = client.get("/api/environments/prod/users", params={"q": "a", "limit": "many"})
    assert r.status_code == 400 and r.json()["error"] and "limit 'many'" in r.json()["detail"]
    assert client.get("/api/environments/prod/users", params={"limit": "0"}).status_code == 400


def test_events_page_and_each_filter(client: TestClient, data: dict[str, Any]) -> None:
    everything = client.get("/api/events").json()
    assert [e["rule"] for e in everything] == [
        "R7",
        "R16",
        "R10",
        "R9",
        "R7",
    ]  # newest first, every environment
    prod = client.get("/api/events", params={"environment": "prod", "limit": 2}).json()
    assert [e["rule"] for e in prod] == ["R16", "R10"]
    older = client.get("/api/events", params={"environment": "prod", "before": prod[-1]["id"]}).json()
    assert [e["rule"] for e in older] == ["R9", "R7"]
    assert [e["rule"] for e in client.get("/api/events", params={"run": data["run"]}).json()] == [
        "R10",
        "R9",
        "R7",
    ]
    assert [e["rule"] for e in client.get("/api/events", params={"rule": "R9"}).json()] == ["R9"]
    (disable,) = client.get("/api/events", params={"action": "disable", "environment": "prod"}).json()
    assert disable["changes"] == {"isdisabled": {"old": False, "new": True}}
    for user in (OID, OID.upper(), data["ann_sid"], "ann.lee@CONTOSO.com"):
        mine = client.get("/api/events", params={"user": user}).json()
        assert [e["action"] for e in mine] == ["disable", "create"], user
    app = client.get("/api/events", params={"user": data["app_sid"]}).json()
    assert [e["rule"] for e in app] == ["R16"]
    blank = {"environment": "", "run": "", "user": "", "action": "", "rule": "", "since": "", "before": ""}
    assert client.get("/api/events", params=blank).json() == everything  # a form's empty fields
    window = {"since": "2026-11-01T12:01:00Z", "until": "2026-11-01T12:03:00+00:00"}
    assert [e["rule"] for e in client.get("/api/events", params=window).json()] == ["R10", "R9"]


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"environment": "nope"}, 404, "nope"),
        ({"user": "nobody@contoso.com"}, 404, "nobody@contoso.com"),
        ({"action": "explode"}, 400, "explode"),
        ({"rule": "X1"}, 400, "X1"),
        ({"since": "yesterday"}, 400, "yesterday"),
        ({"run": "-1"}, 400, "-1"),
        ({"limit": "x"}, 400, "limit"),
        ({"before": "999999"}, 400, "999999"),
        ({"format": "xml"}, 400, "xml"),
        ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, 400, "since"),
    ],
)
def test_event_errors_name_the_bad_value(
    client: TestClient, data: dict[str, Any], params: dict[str, str], status: int, named: str
) -> None:
    r = client.get("/api/events", params=params)
    assert r.status_code == status
    assert named in r.json()["detail"]


def test_csv_download_streams_every_event_quoted(client: TestClient, data: dict[str, Any]) -> None:
    r = client.get("/api/events", params={"environment": "prod", "format": "csv", "limit": 1})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="syncd-events-prod.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4  # no limit on a download
    (disable,) = [row for row in rows if row["action"] == "disable"]
    assert disable["reason"] == 'Gone, "deleted"\nfor good'
    assert disable["domainname"] == "Ann.Lee@contoso.com"


def test_jsonl_download(client: TestClient, data: dict[str, Any]) -> None:
    r = client.get("/api/events", params={"environment": 'we, "others"', "format": "jsonl"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["content-disposition"] == 'attachment; filename="syncd-events-we_others_.jsonl"'
    lines = r.content.splitlines()
    assert [orjson.loads(line)["environment"] for line in lines] == ['we, "others"']


def test_values_no_row_can_hold_find_nothing(client: TestClient, data: dict[str, Any]) -> None:
    assert client.get("/api/environments/prod/users", params={"q": "a\x00"}).json() == []
    r = client.get("/api/events", params={"user": "a\x00b"})
    assert r.status_code == 404
    r = client.get("/api/events", params={"since": "0001-01-01T00:00:00+01:00"})
    assert r.status_code == 400 and "year" in r.json()["detail"]
