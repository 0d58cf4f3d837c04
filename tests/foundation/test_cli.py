"""The CLI: help, environment commands, database commands, one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from syncd.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_help_lists_the_command_groups(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for group in ("config", "db", "env"):
        assert group in out


def test_console_script_runs(clean_env: Path) -> None:
    exe = Path(sys.executable).with_name("syncd")
    proc = subprocess.run([str(exe), "env", "--help"], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0 and "create" in proc.stdout


def test_env_create_list_show_json(db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--database-url", db_url]
    code, out, _ = run(base + ["env", "create", "prod", "--type", "production", "--json"], capsys)
    assert code == 0 and json.loads(out)["users"]["total"] == 2
    code, out, _ = run(base + ["env", "create", "nodb", "--no-database", "--json"], capsys)
    assert code == 0 and json.loads(out)["users"]["total"] == 0
    code, out, _ = run(base + ["env", "list", "--json"], capsys)
    assert [e["name"] for e in json.loads(out)] == ["nodb", "prod"]
    code, out, _ = run(base + ["env", "show", "prod", "--json"], capsys)
    assert json.loads(out)["type"] == "production"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["env", "create", "x", "--type", "bogus"], "unknown environment type 'bogus'"),
        (["env", "show", "nope"], "no environment named 'nope'"),
        (["--database-url", "foo://x", "env", "list"], "unsupported database 'foo'"),
    ],
)
def test_errors_are_one_line_exit_2(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    if "--database-url" not in args:
        args = ["--database-url", db_url, *args]
    code, _, err = run(args, capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1


def test_duplicate_environment_exit_2_nothing_written(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", db_url]
    assert run(base + ["env", "create", "a"], capsys)[0] == 0
    code, _, err = run(base + ["env", "create", "a", "--type", "sandbox"], capsys)
    assert code == 2 and "'a' already exists" in err
    _, out, _ = run(base + ["env", "show", "a", "--json"], capsys)
    assert json.loads(out)["type"] == "production"


def test_database_not_at_head_is_refused_with_the_fix(
    empty_db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["--database-url", empty_db_url, "env", "list"], capsys)
    assert code == 2 and "run `syncd db upgrade`" in err
    code, out, _ = run(["--database-url", empty_db_url, "db", "upgrade"], capsys)
    assert code == 0 and "at revision" in out
    assert run(["--database-url", empty_db_url, "env", "list"], capsys)[0] == 0


def test_unknown_revision_is_refused(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eng = create_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    eng.dispose()
    for cmd in (["env", "list"], ["db", "upgrade"]):
        code, _, err = run(["--database-url", db_url, *cmd], capsys)
        assert code == 2 and "unknown revision 'ffff'" in err


def test_embedded_default_upgrades_itself(clean_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["env", "list", "--json"], capsys)
    assert code == 0 and json.loads(out) == []
    assert (clean_env / "syncd.db").exists()


def test_config_show_masks_secrets(clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_ADMIN_TOKEN", "topsecret")
    code, out, _ = run(["config", "show", "--json"], capsys)
    assert code == 0 and "topsecret" not in out and json.loads(out)["admin_token"] == "********"


# -- usage errors: click's short usage message, exit 2, never a traceback ---------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sync", "p1", "--full", "--delta"], "--full and --delta exclude each other"),
        (["sync"], "missing argument 'env'"),
        (["--bogus"], "no such option: --bogus"),
        (["env", "set"], "missing argument 'name'"),
        (["user", "diagnose", "p1"], "missing argument 'user'"),
        (["env", "create", "x", "--app-pass-capacity", "abc"], "invalid value for '--app-pass-capacity'"),
        (["env", "set", "x", "--app-pass-capacity", "1e+23"], "invalid value for '--app-pass-capacity'"),
        (["runs", "--limit", "-1"], "invalid value for '--limit'"),
        (["runs", "--limit", "99999999999999999999999"], "invalid value for '--limit'"),
        (["entra", "generate", "--users", "-5"], "invalid value for '--users'"),
    ],
)
def test_usage_errors_are_click_short_messages_exit_2(
    clean_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    # typer >= 0.2x parses with its own copy of click (typer._click): its usage errors must be caught
    # too, whatever click typer uses.
    code, out, err = run(args, capsys)
    assert code == 2, err
    assert "Traceback" not in err and out == ""
    # The words differ between click and typer's own copy of it (e.g. 'ENV' or 'env').
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0].lower(), err
    assert err.splitlines()[0].startswith("Usage: syncd"), err
    assert len(err.strip().splitlines()) <= 4, err
    assert list(clean_env.glob("*.db")) == []  # nothing created


def test_usage_error_of_the_installed_command(clean_env: Path) -> None:
    exe = Path(sys.executable).with_name("syncd")
    proc = subprocess.run([str(exe), "sync"], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: missing argument 'env'" in proc.stderr.lower()


# -- integers beyond their column's range ----------------------------------------------------------


@pytest.mark.parametrize("value", ["2147483648", "99999999999999999999999", "-1"])
def test_app_pass_capacity_beyond_its_column_is_one_line_exit_2(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    # app_pass_capacity is a 32-bit integer column: 0..2147483647 on both backends, and every
    # entry checks it before anything is written (it used to be stored on SQLite, and a traceback
    # on PostgreSQL, or an OverflowError on both for a larger one).
    base = ["--database-url", db_url, "env"]
    code, out, err = run([*base, "create", "e1", "--app-pass-capacity", value], capsys)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and value in err and "2147483647" in err, err
    assert json.loads(run([*base, "list", "--json"], capsys)[1]) == []
    assert run([*base, "create", "e1", "--app-pass-capacity", "7"], capsys)[0] == 0
    code, out, err = run([*base, "set", "e1", "--app-pass-capacity", value, "--sales"], capsys)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and value in err, err
    shown = json.loads(run([*base, "show", "e1", "--json"], capsys)[1])
    assert (shown["app_pass_capacity"], shown["is_sales"]) == (7, False)


def test_app_pass_capacity_up_to_its_column_s_largest_value(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", db_url, "env"]
    code, out, err = run([*base, "create", "e1", "--app-pass-capacity", "2147483647", "--json"], capsys)
    assert code == 0 and json.loads(out)["app_pass_capacity"] == 2147483647, err
    code, out, err = run([*base, "set", "e1", "--app-pass-capacity", "0", "--json"], capsys)
    assert code == 0 and json.loads(out)["environment"]["app_pass_capacity"] == 0, err
    code, out, err = run([*base, "set", "e1", "--app-pass-capacity", "2147483647", "--json"], capsys)
    assert code == 0 and json.loads(out)["environment"]["app_pass_capacity"] == 2147483647, err


@pytest.mark.parametrize("name", ["a\x00b", "\x00", "a\x01b", "tab\there", "del\x7f"])
@pytest.mark.parametrize(
    "command",
    [["env", "show"], ["env", "set", "{}", "--sales"], ["env", "resume"], ["runs"], ["runs", "{}", "--json"]],
)
def test_a_name_no_environment_can_have_is_not_found(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str], name: str, command: list[str]
) -> None:
    # `env create` refuses control characters: such a name is not found before it reaches the
    # database, the same on every backend (PostgreSQL refuses a NUL in a query outright).
    assert run(["--database-url", db_url, "env", "create", "prod"], capsys)[0] == 0
    args = [name if a == "{}" else a for a in command]
    if "{}" not in command:
        args.append(name)
    code, out, err = run(["--database-url", db_url, *args], capsys)
    assert code == 2 and out == "", (args, out, err)
    assert "no environment named" in err and len(err.strip().splitlines()) == 1, err
    assert "\x00" not in err and "Error" not in err, err


def test_runs_of_an_unknown_environment_is_exit_2(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # README: an unknown environment is exit code 2 (it printed an empty table, or [], and exit 0).
    base = ["--database-url", db_url]
    assert run(base + ["env", "create", "prod"], capsys)[0] == 0
    for args in (["runs", "nope"], ["runs", "nope", "--json"]):
        code, out, err = run(base + args, capsys)
        assert code == 2 and out == "" and "no environment named 'nope'" in err, (args, out, err)
        assert len(err.strip().splitlines()) == 1
    code, out, _ = run(base + ["runs", "prod", "--json"], capsys)
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_segment_environment_names_are_refused(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # Clients remove "." and ".." segments from a URL before sending it (RFC 3986 5.2.4): no URL
    # could reach such an environment.
    base = ["--database-url", db_url]
    code, _, err = run(base + ["env", "create", name], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"invalid environment name {name!r}" in err and "URL path segment" in err, err
    _, out, _ = run(base + ["env", "list", "--json"], capsys)
    assert json.loads(out) == []
    for other in ("...", ".a", "a.", "a..b"):  # not dot-segments: a URL carries them as they are
        assert run(base + ["env", "create", other, "--no-database"], capsys)[0] == 0


def test_an_environment_named_dot_dot_before_the_rule_is_still_shown(
    db_url: str, clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.orm import Session

    from syncd.dataverse.schema import Environment, utcnow

    engine = create_engine(db_url)
    with Session(engine) as s, s.begin():
        s.add(Environment(name="..", type="production", has_database=False, created_on=utcnow()))
    engine.dispose()
    monkeypatch.setenv("SYNCD_DATAVERSE_API", "true")
    code, out, err = run(["--database-url", db_url, "env", "show", "..", "--json"], capsys)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["name"] == ".." and shown["web_api_url"].endswith("/%2E%2E/api/data/v9.2/"), shown
    assert "/../" not in shown["web_api_url"]


@pytest.mark.parametrize("command", [["runs"], ["env", "list"], ["sync", "prod", "--delta"]])
def test_a_sqlite_file_that_does_not_exist_is_refused_and_not_created(
    tmp_path: Path, clean_env: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "none.db"
    code, _, err = run(["--database-url", f"sqlite:///{missing}", *command], capsys)
    assert code == 2 and f"database {missing} does not exist: run `syncd db upgrade`" in err
    assert len(err.strip().splitlines()) == 1
    assert not missing.exists()
