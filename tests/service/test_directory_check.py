"""`syncd directory check` against the fake Entra over TLS, with applications granted more or less.

The fake answers 403 ``Authorization_RequestDenied`` where the token's roles lack an endpoint's
permission, as Graph does; the check names the missing permission per endpoint and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from entra_server import EntraServer, entra_server
from procs import base_env, syncd

FULL = ("9f506172-8394-4a5b-aecf-4a5b6c7d8e9f", "full-app-secret")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraServer]:
    with entra_server(tmp_path_factory.mktemp("entra-check"), apps=dict([FULL]), users=40) as s:
        yield s


def _register(server: EntraServer, client_id: str, permissions: list[str]) -> tuple[str, str]:
    secret = f"secret-of-{client_id[:8]}"
    server.sim("POST", "apps", {"client_id": client_id, "secret": secret, "permissions": permissions})
    return client_id, secret


def _check(server: EntraServer, cwd: Path, app: tuple[str, str], *args: str) -> tuple[int, str, str]:
    env = base_env(
        SYNCD_DIRECTORY_URL=server.graph_url,
        SYNCD_DIRECTORY_AUTHORITY=server.authority,
        SYNCD_DIRECTORY_TENANT_ID=server.tenant_id,
        SYNCD_DIRECTORY_CLIENT_ID=app[0],
        SYNCD_DIRECTORY_CLIENT_SECRET=app[1],
        SYNCD_DIRECTORY_CA_BUNDLE=str(server.ca_path),
    )
    proc = syncd(["directory", "check", *args], env, cwd, check=False)
    assert app[1] not in proc.stdout + proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _by_endpoint(stdout: str) -> dict[str, dict[str, Any]]:
    return {c["endpoint"]: c for c in json.loads(stdout)["checks"]}


def test_an_application_with_every_permission_passes(server: EntraServer, tmp_path: Path) -> None:
    code, out, err = _check(server, tmp_path, FULL)
    assert code == 0, out + err
    assert "User.Read.All" in out and "GroupMember.Read.All" in out and "missing" not in out
    code, out, _ = _check(server, tmp_path, FULL, "--json")
    checks = _by_endpoint(out)
    assert code == 0 and json.loads(out)["ok"] is True
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert len(checks) >= 10 and "GET /groups/{id}/members" in checks


def test_directory_read_all_alone_grants_every_read(server: EntraServer, tmp_path: Path) -> None:
    app = _register(server, "a0617283-94a5-4b6c-8fd0-5b6c7d8e9fa0", ["Directory.Read.All"])
    code, out, err = _check(server, tmp_path, app, "--json")
    assert code == 0, out + err


def test_a_missing_permission_is_named_per_endpoint_and_exits_1(server: EntraServer, tmp_path: Path) -> None:
    app = _register(
        server,
        "b1728394-a5b6-4c7d-90e1-6c7d8e9fa0b1",
        ["User.Read.All", "Organization.Read.All", "Application.Read.All"],
    )
    code, out, _ = _check(server, tmp_path, app, "--json")
    assert code == 1
    checks = _by_endpoint(out)
    missing = {e: c["permission"] for e, c in checks.items() if c["status"] == "missing permission"}
    assert missing == {
        "GET /groups": "GroupMember.Read.All",
        "GET /groups/delta": "GroupMember.Read.All",
        "GET /directoryRoles": "RoleManagement.Read.Directory",
    }
    assert checks["GET /groups"]["http_status"] == 403 and "admin consent" in checks["GET /groups"]["remedy"]
    assert checks["GET /users"]["status"] == "ok" and checks["GET /subscribedSkus"]["status"] == "ok"
    # Members of a group, or of a role, cannot be read without a group or a role to read.
    assert checks["GET /groups/{id}/members"]["status"] == "skipped"
    assert checks["GET /groups/{id}/members"]["remedy"] == "no group to read: GET /groups was refused"
    code, table, _ = _check(server, tmp_path, app)
    assert code == 1 and "missing permission" in table and "RoleManagement.Read.Directory" in table


def test_a_wrong_secret_is_one_reason_and_nothing_more_is_tried(server: EntraServer, tmp_path: Path) -> None:
    code, out, _ = _check(server, tmp_path, (FULL[0], "not-the-secret"), "--json")
    assert code == 1
    checks = list(_by_endpoint(out).values())
    assert checks[0]["status"] == "no token" and "the client secret is wrong" in checks[0]["remedy"]
    assert {c["status"] for c in checks[1:]} == {"skipped"}


def test_a_malformed_or_unknown_group_is_bad_input(server: EntraServer, tmp_path: Path) -> None:
    for group, said in (
        ("nonsense", "'nonsense' is not an object id"),
        ("6ae8ee7f-e29e-4343-a6e4-6508b23f8724/../../users", "is not an object id"),
        (
            "{6AE8EE7F-E29E-4343-A6E4-6508B23F8724}",
            "the directory has no group 6ae8ee7f-e29e-4343-a6e4-6508b23f8724",
        ),
    ):
        code, out, err = _check(server, tmp_path, FULL, "--group", group)
        assert code == 2 and out == "", (group, out, err)
        assert err.count("\n") == 1 and said in err, err


def test_an_unreachable_authority_is_named_as_such(server: EntraServer, tmp_path: Path) -> None:
    from procs import free_port

    env = base_env(
        SYNCD_DIRECTORY_URL=server.graph_url,
        SYNCD_DIRECTORY_AUTHORITY=f"https://127.0.0.1:{free_port()}",
        SYNCD_DIRECTORY_TENANT_ID=server.tenant_id,
        SYNCD_DIRECTORY_CLIENT_ID=FULL[0],
        SYNCD_DIRECTORY_CLIENT_SECRET=FULL[1],
        SYNCD_DIRECTORY_CA_BUNDLE=str(server.ca_path),
    )
    proc = syncd(["directory", "check", "--json"], env, tmp_path, check=False)
    assert proc.returncode == 1
    first = json.loads(proc.stdout)["checks"][0]
    assert first["status"] == "unreachable" and "cannot reach the sign-in authority" in first["remedy"]
