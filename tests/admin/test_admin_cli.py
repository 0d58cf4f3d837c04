"""The admin commands through `syncd`: output, --json, and exit codes (0 done, 1 refused, 2 bad input)."""

from __future__ import annotations

from pathlib import Path

from admin_helpers import Cli, Tenant


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
        (
            ("user", "set-mode", "prod", "a@b.example", "sideways"),
            "invalid access mode 'sideways': expected one of read-write (0), administrative (1), read (2), "
            "non-interactive (4)",
        ),
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


def test_diagnose_says_what_a_deleted_user_s_directory_can_t_tell(cli: Cli, cli_tenant: Tenant) -> None:
    # R22, R5, R6: a deleted user's memberships and roles are suspended, not absent; the text says
    # so and on what a restore's outcome depends, and the restore proves it.
    group = cli_tenant.group("Dataverse")
    assert cli("env", "create", "scoped", "--security-group", group)[0] == 0
    u = cli_tenant.user("suspended")
    cli_tenant.member(group, u["id"])
    cli_tenant.delete(u["id"])
    code, text, err = cli("user", "diagnose", "scoped", u["id"])
    assert code == 0, err
    assert "none is known" not in text and "holds no admin role" not in text
    assert "membership: not known (the directory lists no group membership of a deleted user)" in text
    assert "admin roles: not known" in text
    assert (
        "if restored: the background sync would add the user when the user is still a member of the "
        "security group (R5), or holds an admin role exempt from the security group" in text
    )
    assert "a restore brings back the memberships and roles the user had" in text
    cli_tenant.store.restore_user(u["id"])
    assert cli.json("sync", "scoped")[0] == 0
    code, out = cli.json("user", "diagnose", "scoped", u["id"])
    assert code == 0 and out["row"] is not None and out["row"]["isdisabled"] is False, out


def test_stub_import_with_control_characters_exit_2_on_both_backends(
    cli: Cli, cli_tenant: Tenant, clean_env: Path
) -> None:
    # R20: SQLite used to store the NULs and control characters, PostgreSQL to fail with a traceback.
    assert cli("env", "create", "f1")[0] == 0
    csv = clean_env / "s.csv"
    csv.write_bytes(b"domainname,fullname,lastname,jobtitle\nstubnul@x.com,Nul\x00Stub,\x00x,\x01\x02\n")
    code, out, err = cli("stub", "import", "f1", str(csv))
    assert code == 2 and out == "" and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[0] == f"syncd: error: {csv}: 3 bad line(s), nothing imported", err
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["line 2"] * 3
    assert "column fullname holds a control character (U+0000" in lines[1]
    assert "\x00" not in err
    code, out = cli.json("env", "show", "f1")
    assert code == 0 and out["users"]["total"] == 2 and "stub" not in out["users"]


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


def test_refresh_by_an_upper_case_object_id_is_the_same_user(cli: Cli, cli_tenant: Tenant) -> None:
    # R23, R3: an object id typed in upper case names the same, enabled and licensed, user; it used to
    # read as "not in the directory" and disable the row as hard-deleted.
    assert cli("env", "create", "prod")[0] == 0
    u = cli_tenant.user("shouty")
    assert cli.json("user", "add", "prod", u["id"])[0] == 0
    code, out = cli.json("user", "refresh", "prod", u["id"].upper())
    assert code == 0, out
    assert out["action"] == "keep" and out["row"]["isdisabled"] is False
    assert out["user"]["object_id"] == u["id"] and out["user"]["in_directory"] is True


def test_every_id_argument_takes_any_spelling_and_stores_one(
    cli: Cli, cli_tenant: Tenant, clean_env: Path
) -> None:
    # One spelling per id: upper case, braces or the 32-digit form name the same object everywhere.
    assert cli("env", "create", "prod")[0] == 0
    u = cli_tenant.user("spelled")
    oid = u["id"]
    code, out = cli.json("user", "add", "prod", "{" + oid.upper() + "}")
    assert code == 0 and out["action"] == "create" and out["row"]["azureactivedirectoryobjectid"] == oid
    code, out = cli.json("user", "access", "prod", oid.replace("-", "").upper())
    assert code == 0 and out["action"] == "keep"
    code, out = cli.json("user", "diagnose", "prod", oid.upper())
    assert code == 0 and out["user"]["in_directory"] is True and out["next"]["action"] == "keep"
    code, out = cli.json("user", "set-mode", "prod", oid.upper(), "read")
    assert code == 0 and out["mode"] == 2
    code, out = cli.json("role", "assign", "prod", oid.upper(), "Basic User")
    assert code == 0 and out["roles"] == ["Basic User"]
    code, out = cli.json("role", "remove", "prod", oid.upper(), "Basic User")
    assert code == 0 and out["roles"] == []
    sp = cli_tenant.service_principals[0]
    code, out = cli.json("app-user", "create", "prod", sp["appId"].upper())
    assert code == 0 and out["app_id"] == sp["appId"].lower()
    csv = clean_env / "stubs.csv"
    csv.write_text("domainname,fullname,records\nold@legacy.example,Old,account:Contoso\n")
    assert cli("stub", "import", "prod", str(csv))[0] == 0
    code, out = cli.json("stub", "reassign", "prod", "old@legacy.example", oid.upper())
    assert code == 0 and out["records"] == 1 and out["target"] == u["userPrincipalName"]


def test_a_malformed_id_is_one_line_exit_2_and_nothing_is_written(
    cli: Cli, cli_tenant: Tenant, db_url: str
) -> None:
    from sqlalchemy import create_engine, text

    bad = "1234abcd-0000-4000-8000-00000000zzzz"
    assert cli("env", "create", "prod")[0] == 0
    for args in [
        ("user", "add", "prod", bad),
        ("user", "access", "prod", bad),
        ("user", "refresh", "prod", bad),
        ("user", "diagnose", "prod", bad),
        ("user", "set-mode", "prod", bad, "read"),
        ("role", "assign", "prod", bad, "Basic User"),
        ("role", "remove", "prod", bad, "Basic User"),
        ("app-user", "create", "prod", bad),
        ("stub", "reassign", "prod", "old@legacy.example", bad),
        ("user", "add", "default", bad),  # not even the embedded default environment is created
        ("env", "create", "scoped", "--security-group", bad),
        ("env", "create", "dev", "--type", "developer", "--created-by", bad),
    ]:
        code, out, err = cli(*args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and repr(bad) in err and out == "", (args, err)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        assert c.execute(text("SELECT name FROM environment")).scalars().all() == ["prod"]
        assert c.execute(text("SELECT count(*) FROM sync_run")).scalar() == 0
        assert c.execute(text("SELECT count(*) FROM systemuser WHERE syncd_kind = 'regular'")).scalar() == 0
    engine.dispose()


def test_env_create_stores_ids_in_one_spelling(cli: Cli, cli_tenant: Tenant) -> None:
    # R7d: the creator of a developer environment is compared with the directory's (lower-case) ids.
    creator = cli_tenant.user("maker")
    group = cli_tenant.group("Scoped")
    code, out = cli.json("env", "create", "dev", "--type", "Developer", "--created-by", creator["id"].upper())
    assert code == 0 and out["created_by_object_id"] == creator["id"] and out["type"] == "developer"
    code, out = cli.json("env", "create", "scoped", "--security-group", "{" + group.upper() + "}")
    assert code == 0 and out["security_group_id"] == group
    code, out = cli.json("user", "diagnose", "dev", creator["id"])
    assert code == 0 and any(c["rule"] == "R7d" and c["passed"] for c in out["checks"])


def test_diagnose_a_soft_deleted_user_on_the_command_line(cli: Cli, cli_tenant: Tenant) -> None:
    # R22, R3: soft-deleted and restorable, licence kept, and what a restore would do
    assert cli("env", "create", "prod")[0] == 0
    u = cli_tenant.user("gone")
    assert cli("user", "add", "prod", u["id"])[0] == 0
    cli_tenant.delete(u["id"])
    code, text, _ = cli("user", "diagnose", "prod", u["userPrincipalName"])
    assert code == 0, text
    assert "soft-deleted: in the directory's deleted items, restorable" in text
    assert "FAIL R3 directory: the user is soft-deleted" in text and "PASS R4 licence: holds" in text
    assert "next background sync: disable (R9)" in text
    assert "if restored: the row would stay enabled" in text
