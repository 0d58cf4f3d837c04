"""The CLI loads what a command needs and no more: `syncd --help`, a command's own help and the
commands that only read the database import neither the HTTP server, the admin layer, the fake
tenant, alembic nor the directory's credentials and HTTP client; `syncd runs` and a sync run read
through Core, without the ORM and the declarative schema; and on a non-terminal, with --json,
nothing loads rich (structlog and httpx would: syncd.optional_imports).

Each case runs `syncd ...` in a process of its own and looks at the modules it imported (never at
its time: benchmarks/bench_cli.py measures that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperCommand

import syncd
from syncd import cli
from syncd.dataverse import db

ROOT = Path(syncd.__file__).resolve().parents[1]

# The server, the migrations, credentials, the scheduler and the admin layers: what neither a
# read-only command nor a sync run needs.
NOT_FOR_A_COMMAND = (
    "uvicorn",
    "starlette",
    "alembic",
    "azure.identity",
    "msal",
    "cryptography",
    "jwt",
    "apscheduler",
    "syncd.admin",
    "syncd.webapi",
    "syncd.directory.fake",
    "syncd.service.daemon",
    "syncd.service.app",
    "syncd.service.server",
)
HEAVY = (*NOT_FOR_A_COMMAND, "httpx", "syncd.directory.client", "syncd.sync")
# `syncd --help` needs typer alone: not the settings, the database or the logging.
HELP_ONLY = (*HEAVY, "sqlalchemy", "pydantic_settings", "structlog", "syncd.settings", "syncd.commands")
# What no command that only reads runs or environments' rows needs, nor a sync run: the ORM, the
# declarative schema and what builds on it (an environment's row and the runs are read through Core,
# syncd.dataverse.rows).
NO_ORM = ("sqlalchemy.orm", "syncd.dataverse.schema", "syncd.dataverse.environments")
# On a non-terminal with --json: nothing is drawn, and the logs are JSON lines.
NO_RICH = ("rich", "pygments", "click", "attr")
# A sync run (`syncd sync ENV`, ENV not the embedded default) over HTTP: the directory client and
# the run, and none of the rest.
NOT_IN_A_RUN = (*NO_ORM, *NO_RICH, *NOT_FOR_A_COMMAND, "syncd.directory.transport", "syncd.sync.embedded")

_SCRIPT = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "syncd"
from syncd.cli import main
main()
"""


def imported(args: list[str], tmp_path: Path, database_url: str | None = None) -> set[str]:
    """The modules a `syncd ARGS` process imported (its stdin, stdout and stderr are not a
    terminal); it must exit 0."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["PYTHONPATH"] = str(ROOT)
    if database_url is not None:
        env["SYNCD_DATABASE_URL"] = database_url
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(out), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(out.read_text()))


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture
def at_head(tmp_path: Path) -> str:
    """A SQLite database at head, holding no environment."""
    url = f"sqlite:///{tmp_path / 'syncd-at-head.db'}"
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    return url


@pytest.mark.parametrize("args", [["--help"], []], ids=["--help", "no-arguments"])
def test_top_level_help_imports_no_command(tmp_path: Path, args: list[str]) -> None:
    if not args:  # no arguments: the help, exit code 2 (click's usage error)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | {"PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [sys.executable, "-c", "from syncd.cli import main; main()"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2 and "Commands:" in proc.stdout + proc.stderr
        return
    assert loaded(imported(args, tmp_path), HELP_ONLY) == []


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "--help"],
        ["env", "--help"],
        ["env", "list", "--help"],
        ["config", "show", "--help"],
        ["run", "--help"],
        ["db", "--help"],
        ["dataverse", "serve", "--help"],
    ],
    ids=" ".join,
)
def test_command_help_imports_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    assert loaded(imported(args, tmp_path), HEAVY) == []


@pytest.mark.parametrize(
    "args",
    [["runs"], ["runs", "--json"], ["env", "list"], ["env", "list", "--json"], ["config", "show"]],
    ids=" ".join,
)
def test_read_only_commands_import_nothing_heavy(tmp_path: Path, at_head: str, args: list[str]) -> None:
    assert loaded(imported(args, tmp_path, at_head), HEAVY) == []


@pytest.mark.parametrize(
    "args",
    [["runs"], ["runs", "--json"], ["runs", "--limit", "3", "--json"]],
    ids=" ".join,
)
def test_runs_read_without_the_orm(tmp_path: Path, at_head: str, args: list[str]) -> None:
    modules = imported(args, tmp_path, at_head)
    assert loaded(modules, NO_ORM) == []
    if "--json" in args:
        assert loaded(modules, NO_RICH) == []
    else:
        assert "rich.table" in modules  # the table it prints


def test_sync_help_imports_no_run(tmp_path: Path) -> None:
    assert loaded(imported(["sync", "--help"], tmp_path), (*HEAVY, *NO_ORM, *NO_RICH, "filelock")) == []


@pytest.mark.syncd_tenant(users=60)
def test_a_sync_run_imports_the_run_alone(tmp_path: Path, at_head: str, syncd_tenant: Any) -> None:
    """`syncd sync ENV` (full, then delta) on a non-terminal with --json: no ORM, no rich."""
    from sqlalchemy.orm import Session

    from syncd.dataverse.environments import EnvironmentSpec, create_environment

    engine = db.make_engine(at_head)
    try:
        with Session(engine) as session, session.begin():
            create_environment(session, EnvironmentSpec(name="prod"))
    finally:
        engine.dispose()
    graph = ["--directory-url", syncd_tenant.graph_url]
    full = imported([*graph, "sync", "prod", "--full", "--json"], tmp_path, at_head)
    syncd_tenant.churn(10, seed=3)
    delta = imported([*graph, "sync", "prod", "--delta", "--json"], tmp_path, at_head)
    for modules in (full, delta):
        assert loaded(modules, NOT_IN_A_RUN) == []
        assert {"syncd.sync.run", "syncd.directory.client", "httpx"} <= modules


def test_sync_cmd_names_the_embedded_default() -> None:
    from syncd.commands import sync_cmd
    from syncd.sync import embedded

    assert sync_cmd.DEFAULT_ENVIRONMENT == embedded.DEFAULT_ENVIRONMENT


def test_light_rows_are_the_schemas_tables() -> None:
    """syncd.dataverse.rows names the columns of the schema's environment and sync_run tables, of
    the same types; EnvironmentRow has a field for each of the environment's columns."""
    from dataclasses import fields

    from sqlalchemy.dialects import postgresql, sqlite

    from syncd.dataverse import rows, schema

    for light, table in (
        (rows.ENVIRONMENT, schema.Environment.__table__),
        (rows.SYNC_RUN, schema.SyncRun.__table__),
    ):
        assert light.name == table.name
        assert [c.name for c in light.columns] == [c.name for c in table.columns]
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            for c in light.columns:
                ours, theirs = c.type.compile(dialect), table.columns[c.name].type.compile(dialect)
                assert ours == theirs, (table.name, c.name, dialect.name)
                assert type(c.type.dialect_impl(dialect)) is type(
                    table.columns[c.name].type.dialect_impl(dialect)
                )
    assert [f.name for f in fields(rows.EnvironmentRow)] == [c.name for c in rows.ENVIRONMENT.columns]


def test_console_logs_keep_rich_tracebacks_after_a_json_start(tmp_path: Path) -> None:
    """structlog imported with rich hidden (JSON logs), then configured for the console: its
    tracebacks are rich's again, as they are when structlog is imported first thing."""
    code = (
        "import io, sys\n"
        "from syncd.logs import configure_logging\n"
        "configure_logging('info', 'json', io.StringIO())\n"
        "assert 'rich' not in sys.modules\n"
        "import structlog\n"
        "assert structlog.dev.rich is None\n"
        "configure_logging('info', 'console', io.StringIO())\n"
        "assert structlog.dev.rich is not None\n"
        "assert structlog.dev.default_exception_formatter is structlog.dev.rich_traceback\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "ok", proc.stderr


def test_listed_help_is_each_commands_own() -> None:
    """`syncd --help` lists COMMANDS' help; it is the help of the command it names, at any width."""
    for name, lazy in cli.COMMANDS.items():
        command = cli.load_command(name)
        assert command.name == name and not command.hidden
        listed = TyperCommand(name=name, help=lazy.help)
        for limit in (10, 30, 45, 60, 80, 120, 400):
            assert listed.get_short_help_str(limit) == command.get_short_help_str(limit), (name, limit)


def test_role_has_the_team_commands() -> None:
    """`syncd role` is mounted from team_cmd, which adds `assign-group` to it."""
    assert {"assign", "remove", "assign-group"} <= set(cli.load_command("role").commands)  # type: ignore[attr-defined]


def test_head_revision_id_is_alembics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert db.head_revision_id() == db.head_revision(url)


def _revision(path: Path, revision: str, down: object, **more: object) -> None:
    extra = "".join(f"{k} = {v!r}\n" for k, v in more.items())
    path.write_text(f'"""m"""\nrevision = {revision!r}\ndown_revision = {down!r}\n{extra}')


def test_head_revision_id_reads_a_chain_and_a_merge(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("")
    _revision(tmp_path / "a.py", "a", None)
    _revision(tmp_path / "b.py", "b", "a")
    assert db._read_head_id(tmp_path) == "b"
    _revision(tmp_path / "c.py", "c", "a")
    assert db._read_head_id(tmp_path) is None  # two heads: alembic decides
    _revision(tmp_path / "m.py", "m", ("b", "c"))
    assert db._read_head_id(tmp_path) == "m"


@pytest.mark.parametrize(
    "text",
    [
        "revision = make()\ndown_revision = None\n",  # not a literal
        "down_revision = None\n",  # no revision
        "revision = 'x'\n",  # no down_revision
        "revision = 'x'\ndown_revision = None\nbranch_labels = ('l',)\n",
        "revision = 'x'\ndown_revision = None\ndepends_on = 'y'\n",
        "revision = 'x'\ndown_revision = 'missing'\n",
        "revision = 'x'\ndown_revision = ['a']\n",
        "revision = 'x'\ndown_revision = None\nif True:\n    revision = 'y'\n",  # alembic sees 'y'
        "revision = 'x'\ndown_revision = None\nfrom elsewhere import revision\n",
        "revision = 'x'\ndown_revision = None\nfor revision in ['y']:\n    pass\n",
        "revision = (\n",  # a syntax error
    ],
)
def test_head_revision_id_leaves_anything_else_to_alembic(tmp_path: Path, text: str) -> None:
    (tmp_path / "x.py").write_text(text)
    assert db._read_head_id(tmp_path) is None
