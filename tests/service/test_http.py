"""The HTTP endpoint in-process: health, readiness, metrics, status page, admin API and its token."""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import FakeSync, add_env, add_run
from sqlalchemy import Engine
from starlette.testclient import TestClient

from syncd.context import AppContext
from syncd.service import openapi
from syncd.service.app import create_app
from syncd.service.jobs import SyncJobs
from syncd.service.locks import locks_for
from syncd.service.metrics import Metrics
from syncd.service.responses import Error as Answer
from syncd.settings import load_settings
from tests.api_schema import checked

TOKEN = "s3cret-admin-token"
MUTATIONS = [
    ("/api/environments/prod/sync", {"kind": "delta"}),
    ("/api/environments/prod/approve-mass-disable", None),
]


class Stack:
    def __init__(self, db_url: str, token: str | None) -> None:
        self.appctx = AppContext(load_settings(database_url=db_url, admin_token=token))
        self.engine: Engine = self.appctx.engine()
        self.metrics = Metrics(lambda: self.engine)
        self.sync = FakeSync(self.engine)
        self.stop = threading.Event()
        self.jobs = SyncJobs(lambda: self.engine, locks_for(self.engine), self.sync, self.metrics, self.stop)
        self.app = create_app(self.appctx, self.metrics, self.jobs, info={"pid": 1})
        # Every answer under /api/ is checked against the OpenAPI document (tests/api_schema.py).
        self.client = checked(TestClient(self.app), openapi.document(self.app.routes))

    def close(self) -> None:
        self.client.close()
        self.appctx.close()


@pytest.fixture
def make_stack(clean_env: Any) -> Iterator[Any]:
    made: list[Stack] = []

    def make(db_url: str, token: str | None = TOKEN) -> Stack:
        s = Stack(db_url, token)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def stack(make_stack: Any, db_url: str) -> Stack:
    s: Stack = make_stack(db_url)
    prod = add_env(s.engine, "prod")
    add_env(s.engine, "nodb", has_database=False)
    add_run(s.engine, prod, kind="full", ago_s=60)
    add_run(s.engine, prod, kind="delta", outcome="failed", error="directory unavailable", ago_s=5)
    return s


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_healthz(stack: Stack) -> None:
    r = stack.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_reports_head_and_last_outcomes(stack: Stack) -> None:
    r = stack.client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True
    assert body["database"]["at_head"] is True
    assert body["environments"] == {"nodb": None, "prod": "failed"}


def test_readyz_503_on_a_database_not_at_head(clean_env: Any, empty_db_url: str) -> None:
    appctx = AppContext(load_settings(database_url=empty_db_url))
    appctx.engine(check_head=False)
    app = create_app(appctx, Metrics())
    with TestClient(app) as client:
        r = client.get("/readyz")
    appctx.close()
    assert r.status_code == 503
    assert r.json()["ready"] is False
    assert "not at head" in r.json()["problems"][0]


def test_readyz_503_when_the_database_is_unreachable(clean_env: Any) -> None:
    appctx = AppContext(load_settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    app = create_app(appctx, Metrics())
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["database"]["reachable"] is False


def test_readyz_503_when_the_scheduler_stopped(stack: Stack) -> None:
    app = create_app(stack.appctx, stack.metrics, stack.jobs, scheduler_running=lambda: False)
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["problems"] == ["scheduler not running"]


def test_metrics_in_prometheus_format(stack: Stack) -> None:
    stack.metrics.on_directory_request(200)
    stack.metrics.on_directory_request(429)
    stack.metrics.observe_run("prod", "delta", "succeeded", 0.3)
    r = stack.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }
    assert (
        samples[("syncd_runs_total", (("environment", "prod"), ("kind", "delta"), ("outcome", "succeeded")))]
        == 1
    )
    assert samples[("syncd_directory_requests_total", (("status", "429"),))] == 1
    assert samples[("syncd_directory_throttled_total", ())] == 1
    assert samples[("syncd_run_duration_seconds_count", (("environment", "prod"), ("kind", "delta")))] == 1
    assert samples[("syncd_users", (("environment", "prod"), ("kind", "support"), ("state", "enabled")))] == 1
    assert ("syncd_last_success_timestamp_seconds", (("environment", "prod"),)) in samples
    assert samples[("syncd_database_up", ())] == 1
    # A registry of its own: nothing from the process-wide default registry.
    assert "python_gc_objects_collected_total" not in r.text


def test_api_reads(stack: Stack) -> None:
    envs = stack.client.get("/api/environments").json()
    assert [e["name"] for e in envs] == ["nodb", "prod"]
    prod = envs[1]
    assert prod["users"]["total"] == 2 and prod["last_run"]["outcome"] == "failed"
    assert prod["last_success_at"] is not None
    one = stack.client.get("/api/environments/prod").json()
    assert [r["kind"] for r in one["recent_runs"]] == ["delta", "full"]
    assert stack.client.get("/api/environments/nope").status_code == 404
    runs = stack.client.get("/api/runs", params={"environment": "prod", "limit": 1}).json()
    assert len(runs) == 1 and runs[0]["outcome"] == "failed" and runs[0]["duration_s"] == 1.0
    older = stack.client.get("/api/runs", params={"before": runs[0]["id"]}).json()
    assert [r["kind"] for r in older] == ["full"]
    assert stack.client.get(f"/api/runs/{runs[0]['id']}").json()["error"] == "directory unavailable"
    assert stack.client.get("/api/runs/999999").status_code == 404
    assert stack.client.get("/api/runs", params={"limit": "x"}).status_code == 400


@pytest.mark.parametrize("name", ["%00", "a%00b", "a%01b", "a%1Fb", "%7F"])
def test_an_environment_name_nothing_can_have_is_404_on_every_backend(stack: Stack, name: str) -> None:
    # No environment's name holds a control character (`env create` refuses them): such a name is
    # not found before it reaches the database (PostgreSQL refuses a NUL in a query: it was a 500).
    for method, url, kw in [
        ("GET", f"/api/environments/{name}", {}),
        ("GET", f"/api/runs?environment={name}", {}),
        ("POST", f"/api/environments/{name}/sync", {"json": {"kind": "delta"}, "headers": auth()}),
        ("POST", f"/api/environments/{name}/approve-mass-disable", {"headers": auth()}),
        ("GET", f"/api/environments/{name}/teams", {}),
    ]:
        r = stack.client.request(method, url, **kw)
        assert r.status_code == 404, (method, url, r.text)
        assert r.json()["error"] == "not found" and "no environment" in r.json()["detail"], r.text
    assert stack.sync.calls == []


def test_api_reads_refuse_ids_beyond_64_bits_as_json(stack: Stack) -> None:
    # Run ids are 64-bit: a larger number used to be an OverflowError (SQLite) or an out-of-range
    # error (PostgreSQL), answered 500 in plain text.
    huge = "99999999999999999999999"
    r = stack.client.get("/api/runs", params={"before": huge})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    assert huge in r.json()["detail"]
    r = stack.client.get(f"/api/runs/{huge}")
    assert r.status_code == 404 and r.json() == {"error": "not found", "detail": f"no run {huge}"}
    last = stack.client.get("/api/runs", params={"before": str(2**63 - 1)}).json()
    assert len(last) == 2


def test_an_unexpected_failure_is_answered_as_json(make_stack: Any, db_url: str, monkeypatch: Any) -> None:
    s: Stack = make_stack(db_url)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("syncd.service.runs.recent_runs", boom)
    with TestClient(s.app, raise_server_exceptions=False) as client:
        r = client.get("/api/runs")
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "internal error" and "RuntimeError" in r.json()["detail"]


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
def test_mutations_refused_when_no_token_is_configured(
    make_stack: Any, db_url: str, path: str, body: Any
) -> None:
    s: Stack = make_stack(db_url, token=None)
    add_env(s.engine, "prod")
    for headers in ({}, auth(), auth("")):
        r = s.client.post(path, json=body, headers=headers)
        assert r.status_code == 403
        assert "SYNCD_ADMIN_TOKEN" in r.json()["detail"]
    assert s.sync.calls == []


@pytest.mark.parametrize(("path", "body"), MUTATIONS)
def test_mutations_refused_with_a_missing_or_wrong_token(stack: Stack, path: str, body: Any) -> None:
    for headers in (
        {},
        auth("wrong"),
        auth(TOKEN + "x"),
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ):
        r = stack.client.post(path, json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"] == "unauthorized"
        assert "WWW-Authenticate" in r.headers
    assert stack.sync.calls == []


def test_sync_with_the_token_runs_the_environment(stack: Stack) -> None:
    r = stack.client.post(
        "/api/environments/prod/sync", json={"kind": "full", "dry_run": True}, headers=auth()
    )
    assert r.status_code == 200, r.text
    assert r.json()["environment"] == "prod" and r.json()["outcome"] == "succeeded"
    ((name, req),) = stack.sync.calls
    assert (name, req.kind, req.trigger, req.dry_run, req.allow_mass_disable) == (
        "prod",
        "full",
        "api",
        True,
        None,
    )
    r = stack.client.post("/api/environments/prod/sync", headers=auth())  # no body: a delta run
    assert r.status_code == 200 and stack.sync.calls[-1][1].kind == "delta"


def test_approve_mass_disable_runs_a_full_sync_allowing_it(stack: Stack) -> None:
    r = stack.client.post("/api/environments/prod/approve-mass-disable", headers=auth())
    assert r.status_code == 200, r.text
    _, req = stack.sync.calls[-1]
    assert (req.kind, req.allow_mass_disable, req.trigger) == ("full", True, "api")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/environments/nope/sync", {"kind": "delta"}, 404),
        ("/api/environments/nodb/sync", {"kind": "delta"}, 409),
        ("/api/environments/prod/sync", {"kind": "sideways"}, 400),
        ("/api/environments/prod/sync", {"kind": "delta", "dry_run": "yes"}, 400),
        ("/api/environments/prod/sync", [1, 2], 400),
    ],
)
def test_sync_bad_requests(stack: Stack, path: str, body: Any, status: int) -> None:
    r = stack.client.post(path, json=body, headers=auth())
    assert r.status_code == status, r.text
    assert stack.sync.calls == []


def test_sync_of_a_busy_environment_is_409(stack: Stack) -> None:
    stack.sync.gate = threading.Event()
    first: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: first.update(r=stack.client.post("/api/environments/prod/sync", headers=auth()))
    )
    t.start()
    assert stack.sync.entered.wait(10)
    r = stack.client.post("/api/environments/prod/sync", headers=auth())
    assert r.status_code == 409 and r.json()["error"] == "busy"
    stack.sync.gate.set()
    t.join(10)
    assert first["r"].status_code == 200
    assert len(stack.sync.calls) == 1


def test_reads_need_no_token(stack: Stack) -> None:
    for path in ("/", "/api/environments", "/api/runs", "/metrics", "/readyz", "/healthz"):
        assert stack.client.get(path).status_code == 200, path


def mutation_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path) of the app's API that changes something, with its parameters filled in
    (the HTML pages' forms sign in instead: tests/service/test_ui_pages.py)."""
    out = []
    for route in app.routes:
        if not str(getattr(route, "path", "")).startswith("/api/"):
            continue
        methods = getattr(route, "methods", None) or set()
        for method in sorted(methods - {"GET", "HEAD", "OPTIONS"}):
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: "1" if m.group(2) == ":int" else "x", route.path)
            out.append((method, path))
    return out


def test_admin_user_routes_are_mounted_when_present(stack: Stack) -> None:
    paths = {r.path for r in stack.app.routes if hasattr(r, "path")}
    if importlib.util.find_spec("syncd.service.admin_routes") is None:
        assert "/api/environments/{name}/users/{user}/refresh" not in paths
    else:
        assert "/api/environments/{name}/users/{user}/refresh" in paths


def test_every_mutation_is_refused_without_the_token(make_stack: Any, db_url: str) -> None:
    closed: Stack = make_stack(db_url, token=None)
    guarded: Stack = make_stack(db_url)
    routes = mutation_routes(guarded.app)
    assert ("POST", "/api/environments/x/sync") in routes and len(routes) >= 2
    for method, path in routes:
        r = closed.client.request(method, path, json={}, headers=auth())
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        for headers in ({}, auth("wrong")):
            r = guarded.client.request(method, path, json={}, headers=headers)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
    assert closed.sync.calls == [] and guarded.sync.calls == []


def test_the_sync_body_refuses_unknown_keys(make_stack: Any, db_url: str) -> None:
    s = make_stack(db_url)
    add_env(s.engine, "prod")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for body, needle in [
        ({"kind": "full", "dryrun": True}, "'dryrun'"),
        ({"kind": 1}, "1"),
        ({"dry_run": "yes"}, "'yes'"),
    ]:
        r = s.client.post("/api/environments/prod/sync", json=body, headers=headers)
        assert r.status_code == 400 and needle in r.json()["detail"], (body, r.text)
    assert s.sync.calls == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"json": {"dry_run": True}}, "unknown field 'dry_run'"),
        ({"json": {"allow_mass_disable": False, "x": 1}}, "unknown field 'allow_mass_disable'"),
        ({"content": b"not json"}, "not a JSON object"),
        ({"json": [1]}, "must be a JSON object"),
    ],
)
def test_approve_mass_disable_takes_no_body(stack: Stack, body: dict[str, Any], named: str) -> None:
    # A body it does not take is refused before anything runs: {"dry_run": true} never disables anyone.
    r = stack.client.post("/api/environments/prod/approve-mass-disable", headers=auth(), **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad request" and named in r.json()["detail"], r.text
    assert stack.sync.calls == []
    r = stack.client.post("/api/environments/prod/approve-mass-disable", json={}, headers=auth())
    assert r.status_code == 200, r.text
    assert len(stack.sync.calls) == 1


def test_every_mutation_refuses_an_unknown_key(stack: Stack) -> None:
    # Every route that changes something says what body it takes; none ignores a key it does not know.
    routes = mutation_routes(stack.app)
    assert len(routes) >= 2
    for method, path in routes:
        if method == "POST" and path.endswith("/stubs"):  # a CSV body: its own checks
            continue
        r = stack.client.request(method, path, json={"bogus": 1}, headers=auth())
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert r.json()["error"] == "bad request", (method, path, r.text)
        assert "'bogus'" in r.json()["detail"] and len(r.json()["detail"].splitlines()) == 1, r.text
    assert stack.sync.calls == []


def test_a_mutating_route_must_say_what_body_it_takes() -> None:
    from starlette.responses import JSONResponse

    from syncd.service.routing import ApiRoute

    async def endpoint(request: Any) -> Any:
        return JSONResponse({})

    with pytest.raises(ValueError, match="'/api/x'"):
        ApiRoute("/api/x", endpoint, methods=["POST"], responses={200: Answer})
    ApiRoute("/api/x", endpoint, methods=["GET"], responses={200: Answer})  # a read takes no body to check


def test_a_route_must_say_what_it_answers() -> None:
    # The OpenAPI document is built from the route table: a route without its answers can't be in it.
    from starlette.responses import JSONResponse

    from syncd.service.routing import ApiRoute

    async def endpoint(request: Any) -> Any:
        return JSONResponse({})

    with pytest.raises(ValueError, match="'/api/x' does not say what it answers"):
        ApiRoute("/api/x", endpoint, methods=["GET"])


def test_405_allows_every_method_of_the_path(stack: Stack) -> None:
    # One path, several routes (one per method): Allow lists them all.
    admin = importlib.util.find_spec("syncd.service.admin_routes") is not None
    cases = [
        ("OPTIONS", "/api/environments/prod", {"GET", "HEAD"} | ({"PATCH"} if admin else set())),
        ("PUT", "/api/environments/prod/sync", {"POST"}),
    ]
    if admin:
        cases.append(("DELETE", "/api/environments/prod/teams", {"GET", "HEAD", "POST"}))
    for method, path, allowed in cases:
        r = stack.client.request(method, path, headers=auth())
        assert r.status_code == 405, (method, path, r.text)
        assert set(r.headers["allow"].split(", ")) == allowed, (method, path, r.headers["allow"])
        assert r.headers["allow"] in r.json()["detail"], r.text
