"""The `syncd` command: thin; it parses, builds the settings once, and calls the layers below.

Each subcommand's module is imported only when that subcommand runs (or its own help is asked for):
`syncd --help` lists them from the names and help kept here, so that it, the help of one command and
the commands that only read the database load neither the HTTP server, the admin layer, the fake
tenant nor alembic.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from gettext import gettext as _
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from syncd.errors import SyncdError

if TYPE_CHECKING:
    from typer.core import _click


class Lazy(NamedTuple):
    """A subcommand mounted on first use: where it is (``module:attribute``, a typer.Typer for a
    group of commands or a function for one command) and its help as the command defines it, whose
    first sentence `syncd --help` lists (tests/foundation/test_cli_lazy.py holds the two in step)."""

    where: str
    help: str
    #: The help is the mount's own, not that of the typer.Typer (`entra`).
    mount_help: bool = False


# In the order of `syncd --help`: the commands, then the groups of commands.
COMMANDS: dict[str, Lazy] = {
    "sync": Lazy("syncd.commands.sync_cmd:sync", "Sync one environment now."),
    "runs": Lazy("syncd.commands.runs_cmd:runs", "List recent sync runs, newest first."),
    "run": Lazy(
        "syncd.commands.run_cmd:run",
        "Run the daemon: a delta run per environment every interval, a full run now and then, and "
        "the HTTP endpoint (/healthz, /readyz, /metrics, status page, admin API). Replicas against one "
        "PostgreSQL share the work. SIGTERM or Ctrl-C stops it after the current batch.",
    ),
    "config": Lazy("syncd.commands.config_cmd:app", "Show the effective settings."),
    "db": Lazy("syncd.commands.db_cmd:app", "Database schema migrations (alembic)."),
    "env": Lazy("syncd.commands.env_cmd:app", "Dataverse environments: create, change, list, show, resume."),
    "directory": Lazy("syncd.commands.directory_cmd:app", "The directory syncd reads (Microsoft Graph)."),
    "dataverse": Lazy("syncd.commands.dataverse_cmd:app", "The Dataverse side as Dataverse: its Web API."),
    "entra": Lazy(
        "syncd.directory.fake.cli:entra_app",
        "The fake Entra tenant: generate, churn, serve.",
        mount_help=True,
    ),
    "user": Lazy(
        "syncd.commands.admin_cmd:user_app",
        "One directory user in one environment: add, first access, refresh, diagnose, access mode.",
    ),
    "app-user": Lazy("syncd.commands.admin_cmd:app_user_app", "Application users (R18)."),
    "stub": Lazy("syncd.commands.admin_cmd:stub_app", "Stub users from data import (R20)."),
    # team_cmd adds `role assign-group` to admin_cmd's role_app: mounted from there, it has it.
    "role": Lazy("syncd.commands.team_cmd:role_app", "Security roles of users (R21)."),
    "team": Lazy(
        "syncd.commands.team_cmd:team_app", "Group teams: an Entra group's team and its security roles (R25)."
    ),
}


def load_command(name: str) -> _click.Command:
    """The click command of subcommand `name`, built by typer as `app.add_typer(...)` or
    `app.command(name)(...)` would mount it (its module imported now)."""
    lazy = COMMANDS[name]
    module, _, attribute = lazy.where.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    mount = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    if isinstance(target, typer.Typer) and lazy.mount_help:
        mount.add_typer(target, name=name, help=lazy.help)
    elif isinstance(target, typer.Typer):
        mount.add_typer(target, name=name)
    else:
        mount.command(name)(target)
    return typer.main.get_group(mount).commands[name]


class _Commands(MutableMapping[str, "_click.Command"]):
    """The subcommands of `syncd` by name, each built on first look-up."""

    def __init__(self, loaded: MutableMapping[str, _click.Command]) -> None:
        self.loaded: dict[str, _click.Command] = dict(loaded)

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self.loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self.loaded[name] = load_command(name)
        return self.loaded[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS.keys() | self.loaded.keys())


class SyncdGroup(TyperGroup):
    """The top-level group: its subcommands are imported when resolved, not before; its help lists
    them from COMMANDS without importing them."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        return self.commands.get(cmd_name)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(self.commands)  # the names only: TyperGroup's would build every command

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        commands: _Commands = self.commands  # type: ignore[assignment]
        shown = {
            name: commands.loaded.get(name) or TyperCommand(name=name, help=COMMANDS[name].help)
            for name in self.list_commands(ctx)
        }
        visible = {name: cmd for name, cmd in shown.items() if not cmd.hidden}
        if not visible:
            return
        # As click lists the commands of a group: up to three times the default spacing.
        limit = formatter.width - 6 - max(len(name) for name in visible)
        rows = [(name, cmd.get_short_help_str(limit)) for name, cmd in visible.items()]
        with formatter.section(_("Commands")):  # translated as click translates it
            formatter.write_dl(rows)


app = typer.Typer(
    name="syncd",
    cls=SyncdGroup,
    help=(
        "Keep Dataverse SystemUser tables in step with an Entra directory, by Dataverse's own user-sync "
        "rules. With no settings, syncd uses a SQLite file (./syncd.db) and a built-in fake tenant."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None, typer.Option("--config", help="TOML settings file (default ./syncd.toml if present)")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="database URL (SYNCD_DATABASE_URL)")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning or error (SYNCD_LOG_LEVEL)")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="auto, console or json (SYNCD_LOG_FORMAT)")
    ] = None,
    directory_url: Annotated[
        str | None,
        typer.Option("--directory-url", help="Graph v1.0 base URL, or 'embedded' (SYNCD_DIRECTORY_URL)"),
    ] = None,
    directory_tenant_id: Annotated[
        str | None, typer.Option("--directory-tenant-id", help="Entra tenant id (SYNCD_DIRECTORY_TENANT_ID)")
    ] = None,
    directory_client_id: Annotated[
        str | None,
        typer.Option(
            "--directory-client-id",
            help="application (client) id; its secret comes from SYNCD_DIRECTORY_CLIENT_SECRET or syncd.toml, "
            "never the command line (SYNCD_DIRECTORY_CLIENT_ID)",
        ),
    ] = None,
    directory_certificate_path: Annotated[
        str | None,
        typer.Option(
            "--directory-certificate-path",
            help="PEM or PKCS#12 certificate of the app registration (SYNCD_DIRECTORY_CERTIFICATE_PATH)",
        ),
    ] = None,
    directory_credential: Annotated[
        str | None,
        typer.Option(
            "--directory-credential",
            help="managed-identity, workload-identity, azure-cli or default (SYNCD_DIRECTORY_CREDENTIAL)",
        ),
    ] = None,
    directory_authority: Annotated[
        str | None,
        typer.Option(
            "--directory-authority",
            help="public, usgov, usgov-dod, china or an https:// URL (SYNCD_DIRECTORY_AUTHORITY)",
        ),
    ] = None,
    directory_ca_bundle: Annotated[
        str | None,
        typer.Option("--directory-ca-bundle", help="PEM of extra CAs to trust (SYNCD_DIRECTORY_CA_BUNDLE)"),
    ] = None,
) -> None:
    from syncd.context import AppContext
    from syncd.logs import configure_logging
    from syncd.settings import load_settings

    settings = load_settings(
        config,
        database_url=database_url,
        log_level=log_level,
        log_format=log_format,
        directory_url=directory_url,
        directory_tenant_id=directory_tenant_id,
        directory_client_id=directory_client_id,
        directory_certificate_path=directory_certificate_path,
        directory_credential=directory_credential,
        directory_authority=directory_authority,
        directory_ca_bundle=directory_ca_bundle,
    )
    configure_logging(settings.log_level, settings.log_format)
    appctx = AppContext(settings)
    ctx.obj = appctx
    ctx.call_on_close(appctx.close)


def _click_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """The aborts (Ctrl-C at a prompt) and the errors click reports itself (a usage error: a missing
    argument, an unknown option, a value of the wrong type or out of range; exit code 2 for usage),
    of the click that typer parses with (a copy of click bundled inside typer, ``typer._click``, since
    typer 0.2x) and of click itself once something has imported it: their classes are distinct."""
    clicks = [sys.modules[typer.BadParameter.__module__]]
    if "click.exceptions" in sys.modules:
        clicks.append(sys.modules["click.exceptions"])
    aborts = {c.Abort for c in clicks if hasattr(c, "Abort")} | {typer.Abort}
    return tuple(aborts), tuple({c.ClickException for c in clicks})


def main(argv: list[str] | None = None) -> None:
    """Run `syncd ARGV` (the process's arguments by default) and exit: a SyncdError is one line on
    stderr and its exit code, a usage error click's message and exit code 2, an abort exit code 130."""
    try:
        rv = app(args=argv, prog_name="syncd", standalone_mode=False)
    except SyncdError as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        aborts, click_errors = _click_errors()
        if isinstance(exc, aborts):
            print("syncd: aborted", file=sys.stderr)
            sys.exit(130)
        if isinstance(exc, click_errors):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
