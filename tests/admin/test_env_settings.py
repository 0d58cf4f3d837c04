"""An environment's settings after its creation: `syncd env set` and `PATCH /api/environments/{name}`.

A new security group makes the next run a full run (R5, R24); a security group id is checked
against the directory when it can be read; bad values are one-line errors (400 in the API) and
write nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from admin_helpers import Cli, Tenant, make_env
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from syncd.context import AppContext
from syncd.dataverse import environments as envs
from syncd.dataverse.schema import Environment, SyncGroupMember, SyncState
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.service import openapi
from syncd.service.admin_routes import routes
from syncd.service.locks import locks_for
from syncd.settings import Settings
from tests.api_schema import checked

TOKEN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNREACHABLE = "http://127.0.0.1:9/v1.0"  # the discard port: nothing listens there


def checkpoint_rows(db_url: str, env: str) -> tuple[int, int]:
    """(sync_state rows, sync_group_member rows) of the environment."""
    engine = create_engine(db_url)
    with engine.connect() as c:
        env_id = c.execute(text("SELECT id FROM environment WHERE name = :n"), {"n": env}).scalar_one()
        state = c.execute(text("SELECT count(*) FROM sync_state WHERE environment_id = :e"), {"e": env_id})
        n_state = int(state.scalar_one())
        mirror = c.execute(
            text("SELECT count(*) FROM sync_group_member WHERE environment_id = :e"), {"e": env_id}
        )
        n_mirror = int(mirror.scalar_one())
    engine.dispose()
    return n_state, n_mirror


# -- the command line --------------------------------------------------------------------------


def test_env_set_changes_each_setting(cli: Cli, cli_tenant: Tenant) -> None:
    assert cli("env", "create", "prod")[0] == 0
    creator = cli_tenant.user("maker")
    code, out = cli.json(
        "env",
        "set",
        "prod",
        "--type",
        "Developer",
        "--created-by",
        creator["id"].upper(),
        "--app-pass-capacity",
        "3",
        "--sales",
        "--allow-role-assignment-on-disabled-users",
        "--marketing",
    )
    assert code == 0, out
    env = out["environment"]
    assert (env["type"], env["created_by_object_id"], env["app_pass_capacity"]) == (
        "developer",
        creator["id"],
        3,
    )
    assert (
        env["is_sales"]
        and env["allow_role_assignment_on_disabled_users"]
        and env["tenant_has_marketing_licence"]
    )
    # A new type (and creator, app passes, Marketing licence) changes who the background sync adds.
    assert out["full_run_next"] is True and out["changed"]["type"] == {
        "old": "production",
        "new": "developer",
    }
    assert out["scope_changed"] == [
        "type",
        "created_by_object_id",
        "app_pass_capacity",
        "tenant_has_marketing_licence",
    ]
    code, out = cli.json("env", "set", "prod", "--no-sales", "--no-allow-role-assignment-on-disabled-users")
    assert code == 0 and set(out["changed"]) == {"is_sales", "allow_role_assignment_on_disabled_users"}
    assert out["full_run_next"] is False and out["scope_changed"] == []
    code, text_, _ = cli("env", "set", "prod", "--no-sales")
    assert code == 0 and "nothing changed" in text_
    code, out = cli.json("env", "show", "prod")
    assert out["is_sales"] is False and out["app_pass_capacity"] == 3


def test_env_set_bad_values_are_one_line_exit_2_and_write_nothing(cli: Cli, cli_tenant: Tenant) -> None:
    assert cli("env", "create", "prod", "--app-pass-capacity", "5")[0] == 0
    unknown_group = "00000000-0000-4000-8000-0000000000aa"
    for args, needle in [
        (("--type", "bogus"), "'bogus'"),
        (("--app-pass-capacity", "-1"), "-1"),
        (("--security-group", "nope"), "'nope'"),
        (("--created-by", "x1"), "'x1'"),
        (("--security-group", unknown_group), f"unknown security group '{unknown_group}'"),
        (("--security-group", unknown_group, "--no-security-group"), "exclude each other"),
        (("--type", "developer"), "needs --created-by"),
        ((), "nothing to change"),
    ]:
        # Each with a good value besides, which is not written either.
        code, out, err = cli("env", "set", "prod", *(("--app-pass-capacity", "1", *args) if args else ()))
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and needle in err and out == "", (args, err)
    code, _, err = cli("env", "set", "nope", "--sales")
    assert code == 2 and "no environment named 'nope'" in err
    code, out = cli.json("env", "show", "prod")
    assert out["app_pass_capacity"] == 5 and out["type"] == "production" and out["security_group_id"] is None


def test_env_create_checks_the_security_group(
    cli: Cli, cli_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = cli_tenant.group("Dataverse")
    unknown = "00000000-0000-4000-8000-0000000000bb"
    code, _, err = cli("env", "create", "scoped", "--security-group", unknown)
    assert code == 2 and f"unknown security group '{unknown}'" in err and len(err.strip().splitlines()) == 1
    assert cli.json("env", "list")[1] == []
    code, out = cli.json("env", "create", "scoped", "--security-group", group.upper())
    assert code == 0 and out["security_group_id"] == group
    # A directory that can't be read: a warning, and the id is accepted.
    monkeypatch.setenv("SYNCD_DIRECTORY_URL", UNREACHABLE)
    code, out, err = cli("env", "create", "offline", "--security-group", unknown, "--json")
    assert code == 0 and "syncd: warning: security group" in err and "not checked" in err
    code, out, err = cli("env", "set", "offline", "--security-group", group, "--json")
    assert code == 0 and "not checked" in err


def test_a_new_security_group_makes_the_next_run_a_full_run(
    cli: Cli, cli_tenant: Tenant, db_url: str
) -> None:
    # R5, R24: the delta checkpoints and the group mirror belong to the old scope; they go, in the
    # same transaction as the change.
    first, second = cli_tenant.group("First"), cli_tenant.group("Second")
    inside = cli_tenant.user("inside")
    cli_tenant.member(first, inside["id"])
    cli_tenant.member(second, inside["id"])
    assert cli("env", "create", "prod", "--security-group", first)[0] == 0
    code, out = cli.json("sync", "prod")
    assert code == 0 and out["kind"] == "full", out
    code, out = cli.json("sync", "prod")
    assert code == 0 and out["kind"] == "delta", out
    state, mirror = checkpoint_rows(db_url, "prod")
    assert state > 0 and mirror > 0
    code, out = cli.json("env", "set", "prod", "--security-group", second.upper())
    assert code == 0 and out["full_run_next"] is True
    assert out["changed"]["security_group_id"] == {"old": first, "new": second}
    assert checkpoint_rows(db_url, "prod") == (0, 0)
    code, out = cli.json("sync", "prod")
    assert code == 0 and (out["kind"], out["requested_kind"]) == ("full", "auto"), out
    # Setting the group it already has changes nothing and keeps the checkpoints.
    before = checkpoint_rows(db_url, "prod")
    code, out = cli.json("env", "set", "prod", "--security-group", second)
    assert code == 0 and out["changed"] == {} and out["full_run_next"] is False
    assert checkpoint_rows(db_url, "prod") == before
    # No group any more: every user is in scope, from a full run.
    code, out, _ = cli("env", "set", "prod", "--no-security-group")
    assert code == 0 and "the next run is a full run" in out
    assert checkpoint_rows(db_url, "prod") == (0, 0)
    assert cli.json("sync", "prod")[1]["kind"] == "full"


def test_a_new_type_makes_the_next_run_a_full_run(cli: Cli, cli_tenant: Tenant, db_url: str) -> None:
    # R7b, R7: a trial environment's background sync adds no one; made a production environment, its
    # next run must add every entitled user, so it is a full run (a delta run would add only the
    # users changed since, here none).
    assert cli("env", "create", "t1", "--type", "trial")[0] == 0
    code, out = cli.json("sync", "t1")
    assert code == 0 and out["kind"] == "full" and out["counts"]["created"] == 0, out
    code, out = cli.json("sync", "t1")
    assert code == 0 and out["kind"] == "delta", out
    assert checkpoint_rows(db_url, "t1")[0] > 0
    code, out, err = cli("env", "set", "t1", "--type", "production")
    assert code == 0, err
    assert "the type changed who the background sync adds or keeps: the next run is a full run" in out
    assert checkpoint_rows(db_url, "t1") == (0, 0)
    code, out = cli.json("sync", "t1")
    assert code == 0 and (out["kind"], out["requested_kind"]) == ("full", "auto"), out
    assert out["counts"]["created"] > 0
    # Nothing in the scope changed: the checkpoints stay, and the next run is a delta run.
    code, out = cli.json("env", "set", "t1", "--type", "PRODUCTION", "--sales", "--app-pass-capacity", "0")
    assert code == 0 and out["full_run_next"] is False and out["scope_changed"] == [], out
    assert checkpoint_rows(db_url, "t1")[0] > 0
    assert cli.json("sync", "t1")[1]["kind"] == "delta"


def test_a_new_creator_of_a_developer_environment_makes_the_next_run_a_full_run(
    cli: Cli, cli_tenant: Tenant, db_url: str
) -> None:
    # R7d: only the creator is added; another creator is added at the next run, a full run.
    first, second = cli_tenant.user("first"), cli_tenant.user("second")
    assert cli("env", "create", "dev", "--type", "developer", "--created-by", first["id"])[0] == 0
    code, out = cli.json("sync", "dev")
    assert code == 0 and out["counts"]["created"] == 1, out
    assert cli.json("sync", "dev")[1]["kind"] == "delta"
    code, out = cli.json("env", "set", "dev", "--created-by", second["id"])
    assert code == 0 and out["full_run_next"] is True and out["scope_changed"] == ["created_by_object_id"]
    assert checkpoint_rows(db_url, "dev") == (0, 0)
    code, out = cli.json("sync", "dev")
    assert code == 0 and out["kind"] == "full" and out["counts"]["created"] == 1, out
    code, out = cli.json("user", "diagnose", "dev", second["id"])
    assert code == 0 and out["row"] is not None and out["row"]["isdisabled"] is False
    # The creator of a production environment decides nothing: no full run for it.
    assert cli("env", "create", "prod")[0] == 0
    assert cli.json("sync", "prod")[0] == 0
    code, out = cli.json("env", "set", "prod", "--created-by", first["id"])
    assert code == 0 and out["full_run_next"] is False and "created_by_object_id" in out["changed"]


def test_app_passes_running_out_make_the_next_run_a_full_run(
    cli: Cli, cli_tenant: Tenant, db_url: str
) -> None:
    # R4b, R7a: a row added on demand through app passes alone is kept by the background sync only
    # while passes are left; when they run out, every such row must be revisited.
    assert cli("env", "create", "prod", "--app-pass-capacity", "2")[0] == 0
    u = cli_tenant.user("passholder", licence=None)
    assert cli.json("user", "add", "prod", u["id"])[1]["via_app_pass"] is True
    assert cli.json("sync", "prod")[1]["kind"] == "full"
    assert cli.json("sync", "prod")[1]["kind"] == "delta"
    code, out = cli.json("env", "set", "prod", "--app-pass-capacity", "1")
    assert code == 0 and out["full_run_next"] is False  # still some left: nothing to revisit
    code, out = cli.json("env", "set", "prod", "--app-pass-capacity", "0")
    assert code == 0 and out["full_run_next"] is True and out["scope_changed"] == ["app_pass_capacity"]
    code, out = cli.json("sync", "prod", "--allow-mass-disable")
    assert code == 0 and out["kind"] == "full" and out["counts"]["disabled"] == 1, out


# -- the admin API -----------------------------------------------------------------------------


def _client(db_url: str, directory: GraphClient, token: str | None = TOKEN, locks: Any = None) -> TestClient:
    settings = Settings(database_url=db_url, admin_token=SecretStr(token) if token else None)
    appctx = AppContext(settings)
    app = Starlette(routes=routes(appctx, directory=lambda: nullcontext(directory), locks=locks))
    return checked(TestClient(app), openapi.document(app.routes))


@pytest.fixture
def api(db_url: str, engine: Engine, directory: GraphClient) -> Iterator[TestClient]:
    make_env(engine)
    with _client(db_url, directory) as client:
        yield client


def _env(engine: Engine) -> dict[str, Any]:
    with Session(engine) as s:
        return envs.describe(envs.get_environment(s, "prod"))


def test_patch_changes_settings_and_needs_the_token(
    api: TestClient, engine: Engine, tenant: Tenant, db_url: str, directory: GraphClient
) -> None:
    group = tenant.group("Dataverse")
    body = {"type": "sandbox", "security_group_id": group.upper(), "app_pass_capacity": 2, "is_sales": True}
    assert api.patch("/api/environments/prod", json=body).status_code == 401
    with _client(db_url, directory, token=None) as closed:
        assert closed.patch("/api/environments/prod", json=body, headers=AUTH).status_code == 403
    assert _env(engine)["type"] == "production"
    r = api.patch("/api/environments/prod", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["environment"]["security_group_id"] == group and out["full_run_next"] is True
    assert out["warnings"] == [] and set(out["changed"]) == set(body)
    env = _env(engine)
    assert (env["type"], env["security_group_id"], env["app_pass_capacity"], env["is_sales"]) == (
        "sandbox",
        group,
        2,
        True,
    )
    r = api.patch("/api/environments/prod", json={"security_group_id": None}, headers=AUTH)
    assert r.status_code == 200 and r.json()["environment"]["security_group_id"] is None


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"type": "bogus"}, 400, "'bogus'"),
        ({"app_pass_capacity": -1}, 400, "-1"),
        ({"app_pass_capacity": "3"}, 400, "'3'"),
        # A 32-bit column: 0..2147483647 on both backends (it used to be a 500 in plain text on
        # PostgreSQL, and an OverflowError on SQLite for a larger number).
        ({"app_pass_capacity": 2147483648}, 400, "invalid app-pass capacity 2147483648"),
        ({"app_pass_capacity": 99999999999999999999999}, 400, "99999999999999999999999"),
        ({"app_pass_capacity": -99999999999999999999999}, 400, "-99999999999999999999999"),
        ({"app_pass_capacity": 1e23}, 400, "invalid app-pass capacity 1e+23"),
        ({"app_pass_capacity": 3.0}, 400, "3.0"),
        ({"app_pass_capacity": True}, 400, "True"),
        ({"security_group_id": 12345678901234567890123456789012}, 400, "invalid security group id"),
        ({"created_by_object_id": ["x"]}, 400, "invalid creator id"),
        ({"type": 5}, 400, "unknown environment type 5"),
        ({"is_sales": "yes"}, 400, "'yes'"),
        ({"security_group_id": "nope"}, 400, "'nope'"),
        ({"security_group_id": "00000000-0000-4000-8000-0000000000cc"}, 400, "unknown security group"),
        ({"name": "renamed"}, 400, "unknown environment setting 'name'"),
        ({"has_database": False}, 400, "unknown environment setting 'has_database'"),
        ({}, 400, "nothing to change"),
    ],
)
def test_patch_bad_values_are_400_and_write_nothing(
    api: TestClient, engine: Engine, body: dict[str, Any], status: int, needle: str
) -> None:
    before = _env(engine)
    r = api.patch("/api/environments/prod", json=body, headers=AUTH)
    assert r.status_code == status and r.json()["error"] == "bad request" and needle in r.json()["detail"], (
        r.text
    )
    assert _env(engine) == before


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"app_pass_capacity": 99999999999999999999999}', "99999999999999999999999"),
        (b'{"app_pass_capacity": 1E+23}', "invalid app-pass capacity 1E+23"),
        (b'{"app_pass_capacity": NaN}', "not a JSON object"),
        (b'{"app_pass_capacity": Infinity}', "not a JSON object"),
        (b'{"app_pass_capacity": 1' + b"0" * 5000 + b"}", "not a JSON object"),
        (b"[" * 100_000, "larger than"),
        (b"[" * 60_000, "not a JSON object"),
        (b'{"is_sales": tru', "not a JSON object"),
    ],
)
def test_patch_numbers_as_given_are_400_json(
    api: TestClient, engine: Engine, raw: bytes, needle: str
) -> None:
    before = _env(engine)
    r = api.patch("/api/environments/prod", content=raw, headers=AUTH | {"Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
    assert r.json()["error"] == "bad request" and needle in r.json()["detail"], r.text
    assert _env(engine) == before


def test_patch_the_largest_capacity_and_an_unexpected_failure_answers_json(
    api: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = api.patch("/api/environments/prod", json={"app_pass_capacity": 2147483647}, headers=AUTH)
    assert r.status_code == 200 and r.json()["environment"]["app_pass_capacity"] == 2147483647, r.text
    assert _env(engine)["app_pass_capacity"] == 2147483647
    # A name no environment can have (PostgreSQL refuses a NUL in a query) is unknown, not a failure.
    r = api.patch("/api/environments/a%00b", json={"is_sales": True}, headers=AUTH)
    assert r.status_code == 404 and r.json()["error"] == "not found", r.text

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("syncd.admin.env_settings.set_environment", boom)
    r = api.patch("/api/environments/prod", json={"is_sales": True}, headers=AUTH)
    assert r.status_code == 500 and r.json()["error"] == "internal error", r.text


def test_patch_a_new_type_makes_the_next_run_a_full_run_and_waits_for_a_run(
    api: TestClient, engine: Engine, db_url: str, directory: GraphClient
) -> None:
    locks = locks_for(engine)
    with Session(engine) as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == "prod"))
        s.add(SyncState(environment_id=env_id, key="users_delta_link", value="http://x/delta"))
        s.commit()
    with _client(db_url, directory, locks=locks) as client, locks.hold(env_id) as held:
        assert held
        r = client.patch("/api/environments/prod", json={"type": "trial"}, headers=AUTH)
        assert r.status_code == 409 and "being synced" in r.json()["detail"] and "type" in r.json()["detail"]
    assert _env(engine)["type"] == "production"
    r = api.patch("/api/environments/prod", json={"type": "trial"}, headers=AUTH)
    assert (
        r.status_code == 200 and r.json()["full_run_next"] is True and r.json()["scope_changed"] == ["type"]
    )
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(SyncState)) == 0


def test_patch_unknown_environment_unreachable_directory_and_a_run_in_progress(
    api: TestClient, engine: Engine, db_url: str
) -> None:
    r = api.patch("/api/environments/nope", json={"is_sales": True}, headers=AUTH)
    assert r.status_code == 404 and "'nope'" in r.json()["detail"]
    group = "00000000-0000-4000-8000-0000000000dd"
    offline = GraphClient(UNREACHABLE, token_provider=StaticToken("x"), max_retries=0)
    with _client(db_url, offline) as client:
        r = client.patch("/api/environments/prod", json={"security_group_id": group}, headers=AUTH)
    offline.close()
    assert r.status_code == 200 and r.json()["environment"]["security_group_id"] == group
    assert len(r.json()["warnings"]) == 1 and "not checked" in r.json()["warnings"][0]
    # A run of the environment holds its lock: the scope can't change under it.
    locks = locks_for(engine)
    with Session(engine) as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == "prod"))
        s.add(SyncState(environment_id=env_id, key="users_delta_link", value="http://x/delta"))
        s.add(SyncGroupMember(environment_id=env_id, member_id=group, relation="member"))
        s.commit()
    with _client(db_url, offline, locks=locks) as client, locks.hold(env_id) as held:
        assert held
        r = client.patch("/api/environments/prod", json={"security_group_id": None}, headers=AUTH)
        assert r.status_code == 409 and "being synced" in r.json()["detail"]
        r = client.patch("/api/environments/prod", json={"is_sales": True}, headers=AUTH)
        assert r.status_code == 200  # other settings don't wait for the run
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(SyncState)) == 1
        assert s.scalar(select(func.count()).select_from(SyncGroupMember)) == 1
    with _client(db_url, offline, locks=locks) as client:
        r = client.patch("/api/environments/prod", json={"security_group_id": None}, headers=AUTH)
        assert r.status_code == 200 and r.json()["full_run_next"] is True
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(SyncState)) == 0
        assert s.scalar(select(func.count()).select_from(SyncGroupMember)) == 0
