"""R25 group teams through `syncd team ...`, `syncd role assign-group` and the admin API: output,
--json, exit codes (0 done, 2 bad input, nothing written), the admin token on every mutation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import nullcontext

import pytest
from admin_helpers import Cli, Tenant, make_env
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

from syncd.context import AppContext
from syncd.dataverse.schema import Team, TeamMembership
from syncd.directory.client import GraphClient
from syncd.service import openapi
from syncd.service.admin_routes import routes
from syncd.settings import Settings
from tests.api_schema import checked

TOKEN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_r25_team_commands(cli: Cli, cli_tenant: Tenant) -> None:
    assert cli("env", "create", "prod")[0] == 0
    gid = cli_tenant.group("Field Sales")
    u = cli_tenant.user("teamcli")
    cli_tenant.member(gid, u["id"])
    code, out = cli.json(
        "team", "create", "prod", "--group", gid, "--membership", "members", "--role", "Basic User"
    )
    assert code == 0 and out["created"] is True
    team = out["team"]
    assert (team["name"], team["teamtype"], team["membershiptype"], team["roles"]) == (
        "Field Sales",
        2,
        1,
        ["Basic User"],
    )
    code, text, _ = cli("team", "list", "prod")
    assert code == 0 and "Field Sales" in text and "Entra security group" in text and "Basic User" in text
    code, out = cli.json("team", "list", "prod")
    assert code == 0 and [t["teamid"] for t in out["teams"]] == [team["teamid"]]
    code, out = cli.json("user", "access", "prod", u["userPrincipalName"])
    assert (
        code == 0
        and [t["name"] for t in out["teams"]["added"]] == ["Field Sales"]
        and out["row"]["app_access"]["passed"]
    )
    code, out = cli.json("team", "show", "prod", "Field Sales")
    assert code == 0 and [m["domainname"] for m in out["team"]["members"]] == [u["userPrincipalName"]]
    code, text, _ = cli("user", "diagnose", "prod", u["id"])
    assert code == 0 and "roles held directly: none" in text
    assert f"roles through team Field Sales (group {gid}, members): Basic User" in text
    code, out = cli.json("team", "role", "remove", "prod", gid, "Basic User")
    assert code == 0 and out["team"]["roles"] == []
    code, text, _ = cli("team", "role", "assign", "prod", team["teamid"], "Basic User")
    assert code == 0 and "role Basic User assigned" in text


def test_r25_role_assign_group_creates_the_team_just_in_time(cli: Cli, cli_tenant: Tenant) -> None:
    cli("env", "create", "prod")
    gid = cli_tenant.group("Helpdesk")
    code, text, _ = cli("role", "assign-group", "prod", gid, "Basic User")
    assert code == 0 and "team created just in time" in text and "Helpdesk" in text
    code, out = cli.json("role", "assign-group", "prod", gid, "Basic User")
    assert code == 0 and out["created"] is False and out["changed"] is False
    code, out = cli.json("role", "assign-group", "prod", gid, "Basic User", "--membership", "owners")
    assert code == 0 and out["created"] is True and out["team"]["membershiptype"] == 2


def test_r25_team_bad_input_exits_2_with_one_line_and_writes_nothing(cli: Cli, cli_tenant: Tenant) -> None:
    cli("env", "create", "prod")
    gid = cli_tenant.group("Dupes")
    unknown = str(uuid.uuid4())
    for args, needle in [
        (("team", "create", "prod", "--group", "not-a-guid"), "'not-a-guid'"),
        (("team", "create", "prod", "--group", unknown), unknown),
        (("team", "create", "prod", "--group", gid, "--membership", "admins"), "'admins'"),
        (("team", "create", "prod", "--group", gid, "--role", "Overlord"), "'Overlord'"),
        (("team", "create", "nope", "--group", gid), "'nope'"),
        (("team", "show", "prod", "Nobody"), "'Nobody'"),
        (("team", "role", "assign", "prod", "Nobody", "Basic User"), "'Nobody'"),
        (("role", "assign-group", "prod", "xyz", "Basic User"), "'xyz'"),
        (("role", "assign-group", "prod", gid, "Overlord"), "'Overlord'"),
    ]:
        code, _, err = cli(*args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and needle in err, (args, err)
    code, out = cli.json("team", "list", "prod")
    assert out["teams"] == []
    assert cli("team", "create", "prod", "--group", gid)[0] == 0
    code, _, err = cli("team", "create", "prod", "--group", gid)
    assert code == 2 and len(err.strip().splitlines()) == 1 and gid in err and "already has a team" in err
    code, out = cli.json("team", "list", "prod")
    assert len(out["teams"]) == 1


# -- the admin API ---------------------------------------------------------------------------------


@pytest.fixture
def api(db_url: str, engine: Engine, directory: GraphClient) -> Iterator[TestClient]:
    make_env(engine)
    appctx = AppContext(Settings(database_url=db_url, admin_token=SecretStr(TOKEN)))
    app = Starlette(routes=routes(appctx, directory=lambda: nullcontext(directory)))
    with checked(TestClient(app), openapi.document(app.routes)) as client:
        yield client
    appctx.close()


def test_r25_team_api(api: TestClient, engine: Engine, tenant: Tenant) -> None:
    gid = tenant.group("Api Team")
    u = tenant.user("apiteam")
    tenant.member(gid, u["id"])
    base = "/api/environments/prod"
    calls = [
        ("POST", base + "/teams", {"json": {"group": gid, "membership": "members", "roles": ["Basic User"]}}),
        ("POST", base + "/teams/Api Team/roles", {"json": {"role": "Basic User"}}),
        ("DELETE", base + "/teams/Api Team/roles/Basic User", {}),
        ("POST", base + f"/groups/{gid}/roles", {"json": {"role": "Basic User", "membership": "owners"}}),
    ]
    for method, url, kw in calls:
        assert api.request(method, url, **kw).status_code == 401, url
    r = api.post(
        base + "/teams", headers=AUTH, json={"group": gid, "membership": "members", "roles": ["Basic User"]}
    )
    assert r.status_code == 201, r.text
    team = r.json()["team"]
    assert (team["name"], team["teamtype"], team["membershiptype"]) == ("Api Team", 2, 1)
    listed = api.get(base + "/teams").json()["teams"]
    assert [t["teamid"] for t in listed] == [team["teamid"]]
    r = api.post(base + "/users", headers=AUTH, json={"user": u["id"], "mode": "first_access"})
    assert r.status_code == 201 and [t["name"] for t in r.json()["teams"]["added"]] == ["Api Team"]
    shown = api.get(base + f"/teams/{team['teamid']}").json()["team"]
    assert [m["azureactivedirectoryobjectid"] for m in shown["members"]] == [u["id"]]
    r = api.post(base + "/teams/Api Team/roles", headers=AUTH, json={"role": "Basic User"})
    assert r.status_code == 200 and r.json()["changed"] is False
    r = api.delete(base + "/teams/Api Team/roles/Basic User", headers=AUTH)
    assert r.status_code == 200 and r.json()["team"]["roles"] == []
    r = api.post(
        base + f"/groups/{gid}/roles", headers=AUTH, json={"role": "Basic User", "membership": "owners"}
    )
    assert r.status_code == 201 and r.json()["created"] is True
    r = api.post(
        base + f"/groups/{gid}/roles", headers=AUTH, json={"role": "Basic User", "membership": "owners"}
    )
    assert r.status_code == 200 and r.json()["created"] is False
    r = api.get(base + f"/teams/{gid}")
    assert r.status_code == 400 and "ambiguous" in r.json()["detail"]
    assert api.get(base + f"/teams/{gid}?membership=owners").json()["team"]["membershiptype"] == 2
    diagnosis = api.get(base + f"/users/{u['id']}/diagnose").json()
    assert [t["name"] for t in diagnosis["teams"]] == ["Api Team"]


def test_r25_team_api_errors(api: TestClient, engine: Engine, tenant: Tenant) -> None:
    gid = tenant.group("Errors")
    base = "/api/environments/prod"
    unknown = str(uuid.uuid4())
    for body, status, needle in [
        ({"group": "nope"}, 400, "'nope'"),
        ({"group": unknown}, 400, unknown),
        ({"group": gid, "membership": "admins"}, 400, "'admins'"),
        ({"group": gid, "roles": ["Overlord"]}, 404, "'Overlord'"),
        ({"group": gid, "roles": "Basic User"}, 400, "roles"),
    ]:
        r = api.post(base + "/teams", headers=AUTH, json=body)
        assert r.status_code == status, (body, r.text)
        assert needle in r.json()["detail"], (body, r.text)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Team)) == 0
    assert api.post(base + "/teams", headers=AUTH, json={"group": gid}).status_code == 201
    r = api.post(base + "/teams", headers=AUTH, json={"group": gid})
    assert r.status_code == 409 and "already has a team" in r.json()["detail"]
    assert api.get(base + "/teams/Nobody").status_code == 404
    assert api.get("/api/environments/nope/teams").status_code == 404
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(TeamMembership)) == 0


def test_r25_team_api_refuses_unknown_keys_and_wrong_types(
    api: TestClient, engine: Engine, tenant: Tenant
) -> None:
    gid = tenant.group("Strict")
    base = "/api/environments/prod"
    for body, needles in [
        ({"group": gid, "membership": 1}, ["'membership' must be a string", "not 1"]),
        ({"group": gid, "membershp": "members"}, ["'membershp'", "unknown field"]),
        ({"group": gid, "roles": "Basic User"}, ["'roles' must be a list of strings", "'Basic User'"]),
        ({"group": gid, "roles": [1]}, ["'roles'", "[1]"]),
        ({"group": gid, "administrator": 5}, ["'administrator'", "5"]),
        ({"group": 7}, ["'group'", "7", "object id"]),
        ({"group": "  "}, ["'group'", "not empty", "a string"]),
        ({}, ["'group'"]),
    ]:
        r = api.post(base + "/teams", headers=AUTH, json=body)
        assert r.status_code == 400, (body, r.text)
        detail = r.json()["detail"]
        assert r.json()["error"] == "bad request" and len(detail.splitlines()) == 1, detail
        assert all(n in detail for n in needles), (body, detail)
    for url, body, needle in [
        (f"/groups/{gid}/roles", {"role": "Basic User", "membership": 2}, "'membership'"),
        (f"/groups/{gid}/roles", {"role": "Basic User", "extra": True}, "'extra'"),
        ("/teams/Strict/roles", {"role": "Basic User", "membership": "owners"}, "'membership'"),
        ("/teams/Strict/roles", {"role": ["Basic User"]}, "'role'"),
    ]:
        r = api.post(base + url, headers=AUTH, json=body)
        assert r.status_code == 400 and needle in r.json()["detail"], (url, body, r.text)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Team)) == 0


def test_r25_a_refresh_that_joins_teams_is_changed_in_text_json_and_api(cli: Cli, cli_tenant: Tenant) -> None:
    cli("env", "create", "prod")
    u = cli_tenant.user("joiner")
    assert cli("user", "add", "prod", u["id"])[0] == 0
    gids = [cli_tenant.group("Same Name"), cli_tenant.group("Same Name")]
    made = []
    for gid in gids:
        cli_tenant.member(gid, u["id"])
        code, out = cli.json("role", "assign-group", "prod", gid, "Basic User")
        assert code == 0 and out["created"] is True
        made.append(out["team"]["teamid"])
    code, text, _ = cli("user", "refresh", "prod", u["id"])
    assert code == 0 and ", changed" in text.splitlines()[0], text
    for teamid, gid in zip(made, gids, strict=True):
        assert f"joined group team Same Name (team {teamid}, group {gid}, members-and-guests)" in text
    cli_tenant.store.remove_group_member(gids[0], u["id"])
    code, out = cli.json("user", "refresh", "prod", u["id"])
    assert code == 0 and out["changed"] is True and out["action"] == "keep"
    assert [t["teamid"] for t in out["teams"]["removed"]] == [made[0]]
    assert [t["teamid"] for t in out["teams"]["member_of"]] == [made[1]]
    code, text, _ = cli("user", "refresh", "prod", u["id"])
    assert code == 0 and ", unchanged" in text.splitlines()[0], text


def test_r25_api_refresh_that_joins_a_team_is_changed(api: TestClient, tenant: Tenant) -> None:
    base = "/api/environments/prod"
    u = tenant.user("apijoin")
    assert api.post(base + "/users", headers=AUTH, json={"user": u["id"]}).status_code == 201
    gid = tenant.group("Late Team")
    tenant.member(gid, u["id"])
    assert api.post(base + "/teams", headers=AUTH, json={"group": gid}).status_code == 201
    r = api.post(base + f"/users/{u['id']}/refresh", headers=AUTH)
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    assert [t["azureactivedirectoryobjectid"] for t in r.json()["teams"]["added"]] == [gid]


def test_r25_an_over_long_group_name_is_noted_in_the_commands_output(cli: Cli, cli_tenant: Tenant) -> None:
    cli("env", "create", "prod")
    gid = cli_tenant.group("L" * 200)
    code, text, _ = cli("role", "assign-group", "prod", gid, "Basic User")
    assert code == 0 and "note: team name cut to 160 characters" in text, text
    code, out = cli.json("team", "create", "prod", "--group", gid, "--membership", "owners")
    assert code == 0 and out["team"]["name"] == "L" * 160
    assert len(out["notes"]) == 1 and "cut to 160 characters" in out["notes"][0]


def test_r25_an_over_long_group_name_is_noted_by_the_api(api: TestClient, tenant: Tenant) -> None:
    gid = tenant.group("M" * 200)
    r = api.post("/api/environments/prod/teams", headers=AUTH, json={"group": gid})
    assert r.status_code == 201 and r.json()["team"]["name"] == "M" * 160
    assert "cut to 160 characters" in r.json()["notes"][0]


@pytest.mark.parametrize("display_name", ["   ", "\t\x01"])
def test_r25_a_blank_group_name_names_the_team_after_the_group(
    cli: Cli, cli_tenant: Tenant, display_name: str
) -> None:
    # Dataverse requires a team's name, and a blank one could not be looked up by name: the team
    # takes the group's object id instead, with a note, and is found by it.
    cli("env", "create", "prod")
    gid = cli_tenant.group(display_name)
    code, out = cli.json("team", "create", "prod", "--group", gid)
    assert code == 0 and out["team"]["name"] == gid, out
    assert len(out["notes"]) == 1 and "blank" in out["notes"][0] and gid in out["notes"][0]
    code, out = cli.json("team", "show", "prod", gid)
    assert code == 0 and out["team"]["name"] == gid
    code, text, _ = cli("role", "assign-group", "prod", gid, "Basic User", "--membership", "owners")
    assert code == 0 and "blank" in text, text


def test_r25_a_blank_group_name_over_the_api(api: TestClient, tenant: Tenant) -> None:
    gid = tenant.group("   ")
    r = api.post("/api/environments/prod/teams", headers=AUTH, json={"group": gid})
    assert r.status_code == 201 and r.json()["team"]["name"] == gid, r.text
    assert "blank" in r.json()["notes"][0]
    r = api.get(f"/api/environments/prod/teams/{gid}")
    assert r.status_code == 200 and r.json()["team"]["name"] == gid, r.text


def test_r25_a_name_with_surrounding_spaces_is_kept_and_found_with_or_without_them(
    cli: Cli, cli_tenant: Tenant
) -> None:
    # The team keeps its group's displayName as it is (as Dataverse would); its name as stored, and
    # the name without the spaces, both find it (the lookup used to trim only the key).
    cli("env", "create", "prod")
    gid = cli_tenant.group("  pad  ")
    code, out = cli.json("team", "create", "prod", "--group", gid)
    assert code == 0 and out["team"]["name"] == "  pad  " and out["notes"] == [], out
    for key in ("  pad  ", "pad", " PAD"):
        code, out = cli.json("team", "show", "prod", key)
        assert code == 0 and out["team"]["name"] == "  pad  ", (key, out)
    code, text, err = cli("team", "role", "assign", "prod", "  pad  ", "Basic User")
    assert code == 0, err
    code, _, err = cli("team", "show", "prod", "pa")
    assert code == 2 and "no team 'pa'" in err, err


def test_r25_exact_name_wins_over_one_with_surrounding_spaces(cli: Cli, cli_tenant: Tenant) -> None:
    cli("env", "create", "prod")
    padded, plain = cli_tenant.group(" twin "), cli_tenant.group("twin")
    assert cli("team", "create", "prod", "--group", padded)[0] == 0
    assert cli("team", "create", "prod", "--group", plain)[0] == 0
    code, out = cli.json("team", "show", "prod", "twin")
    assert code == 0 and out["team"]["azureactivedirectoryobjectid"] == plain
    code, out = cli.json("team", "show", "prod", " twin ")
    assert code == 0 and out["team"]["azureactivedirectoryobjectid"] == padded
    code, _, err = cli("team", "show", "prod", "  twin")  # neither exactly: both, ignoring spaces
    assert code == 2 and "ambiguous" in err and err.count("members-and-guests") == 2, err


def test_r25_a_padded_team_name_over_the_api(api: TestClient, tenant: Tenant) -> None:
    gid = tenant.group("  pad  ")
    r = api.post("/api/environments/prod/teams", headers=AUTH, json={"group": gid})
    assert r.status_code == 201 and r.json()["team"]["name"] == "  pad  ", r.text
    for segment in ("%20%20pad%20%20", "pad"):
        r = api.get(f"/api/environments/prod/teams/{segment}")
        assert r.status_code == 200 and r.json()["team"]["name"] == "  pad  ", (segment, r.text)
    r = api.post(
        "/api/environments/prod/teams/%20%20pad%20%20/roles", headers=AUTH, json={"role": "Basic User"}
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("segment", ["a%00b", "%00", "a%01b", "a%7Fb"])
def test_r25_a_team_or_role_name_nothing_can_have_is_404(
    api: TestClient, tenant: Tenant, segment: str
) -> None:
    # Team names hold no control characters (they are removed) and role names none either: such a
    # key is not found, before any query, the same on every backend (PostgreSQL refuses a NUL).
    gid = tenant.group("Ctl")
    assert api.post("/api/environments/prod/teams", headers=AUTH, json={"group": gid}).status_code == 201
    r = api.get(f"/api/environments/prod/teams/{segment}")
    assert r.status_code == 404 and "no team" in r.json()["detail"], r.text
    r = api.delete(f"/api/environments/prod/teams/Ctl/roles/{segment}", headers=AUTH)
    assert r.status_code == 404 and "no role" in r.json()["detail"], r.text
    r = api.post(f"/api/environments/{segment}/teams", headers=AUTH, json={"group": gid})
    assert r.status_code == 404 and "no environment" in r.json()["detail"], r.text
