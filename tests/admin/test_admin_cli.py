"""The admin commands through `syncd`: output, --json, and exit codes (0 done, 1 refused, 2 bad input)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import Tenant

from syncd.cli import main
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.store import TenantStore


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> tuple[int, Any]:
        code, out, _ = self(*args, "--json")
        return code, json.loads(out)


@pytest.fixture
def cli_tenant(clean_env: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenant]:
    path = clean_env / "tenant.db"
    store = TenantStore.open(str(path))
    summary = generate_tenant(store, users=10, seed=5)
    monkeypatch.setenv("SYNCD_DATABASE_URL", db_url)
    monkeypatch.setenv("SYNCD_DIRECTORY_STORE", str(path))
    monkeypatch.setenv("SYNCD_LOG_LEVEL", "warning")
    yield Tenant(store, summary)
    store.close()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def test_user_commands(cli: Cli, cli_tenant: Tenant) -> None:
    # R8, R22, R23, R16, R17 through the command line
    assert cli("env", "create", "prod")[0] == 0
    u = cli_tenant.user("cliuser")
    upn = u["userPrincipalName"]
    code, out = cli.json("user", "add", "prod", upn)
    assert code == 0 and out["action"] == "create" and out["row"]["isdisabled"] is False
    code, text, _ = cli("user", "diagnose", "prod", upn)
    assert code == 0
    assert "PASS R3 directory" in text and "next background sync: keep" in text and "create (R8" in text
    code, out = cli.json("user", "set-mode", "prod", upn, "read")
    assert code == 0 and out["mode"] == 2
    cli_tenant.disable(u["id"])
    code, out = cli.json("user", "refresh", "prod", upn)
    assert code == 0 and out["action"] == "disable"
    code, text, _ = cli("user", "refresh", "prod", upn)
    assert code == 0 and "keep" in text


def test_refusal_exits_1_with_the_failed_checks(cli: Cli, cli_tenant: Tenant) -> None:
    # R8, R7c
    cli("env", "create", "teams", "--type", "teams")
    u = cli_tenant.user("teamsuser")
    code, _, err = cli("user", "add", "teams", u["id"])
    assert code == 1 and "refused" in err and "FAIL R7c" in err
    code, out = cli.json("user", "add", "teams", u["id"])
    assert code == 1 and out["error"] == "refused" and out["checks"][0]["rule"] == "R7c"
    code, out = cli.json("user", "access", "teams", u["id"])
    assert code == 0 and out["action"] == "create"


def test_bad_input_exits_2_with_one_line(cli: Cli, cli_tenant: Tenant, clean_env: Path) -> None:
    cli("env", "create", "prod")
    for args, needle in [
        (("user", "add", "nope", "a@b.example"), "'nope'"),
        (("user", "add", "prod", "nobody@nowhere.example"), "nobody@nowhere.example"),
        (("user", "set-mode", "prod", "a@b.example", "sideways"), "'sideways'"),
        (("app-user", "create", "prod", "not-a-guid"), "'not-a-guid'"),
        (("role", "assign", "prod", "crmoln@microsoft.com", "Overlord"), "'Overlord'"),
        (("stub", "import", "prod", str(clean_env / "missing.csv")), "missing.csv"),
    ]:
        code, _, err = cli(*args)
        assert code == 2, args
        assert len(err.strip().splitlines()) == 1 and needle in err, (args, err)
    bad = clean_env / "bad.csv"
    bad.write_text("domainname,fullname\nok@legacy.example,Ok\nbroken,Bad\n")
    code, _, err = cli("stub", "import", "prod", str(bad))
    assert code == 2 and "line 3" in err
    code, out = cli.json("stub", "import", "prod", str(bad))
    assert code == 2 and out["lines"] == [
        {"line": 3, "message": "domainname 'broken' is not a userPrincipalName (alias@domain)"}
    ]


def test_app_user_stub_and_role_commands(cli: Cli, cli_tenant: Tenant, clean_env: Path) -> None:
    # R18, R20, R21
    cli("env", "create", "prod")
    sp = cli_tenant.service_principals[0]
    code, out = cli.json("app-user", "create", "prod", sp["appId"])
    assert code == 0 and out["row"]["accessmode"] == 4
    csv = clean_env / "stubs.csv"
    csv.write_text("domainname,fullname,records\nold@legacy.example,Old,account:Contoso\n")
    code, out = cli.json("stub", "import", "prod", str(csv))
    assert code == 0 and out["records"] == 1 and out["default_role"] == "Basic User"
    u = cli_tenant.user("heir")
    cli("user", "add", "prod", u["id"])
    code, out = cli.json("stub", "reassign", "prod", "old@legacy.example", u["userPrincipalName"])
    assert code == 0 and out["records"] == 1
    code, out = cli.json("role", "assign", "prod", u["userPrincipalName"], "Basic User")
    assert code == 0 and out["roles"] == ["Basic User"]
    code, _, err = cli("role", "assign", "prod", "old@legacy.example", "Salesperson")
    assert code == 1 and "FAIL R21" in err
    code, text, _ = cli("role", "remove", "prod", u["id"], "Basic User")
    assert code == 0 and "removed" in text
