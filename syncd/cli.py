"""The `syncd` command: thin; it parses, builds the settings once, and calls the layers below."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Annotated

import click
import typer

from syncd.commands import (
    admin_cmd,
    config_cmd,
    dataverse_cmd,
    db_cmd,
    directory_cmd,
    env_cmd,
    run_cmd,
    sync_cmd,
    team_cmd,
)
from syncd.context import AppContext
from syncd.directory.fake.cli import entra_app
from syncd.errors import SyncdError
from syncd.logs import configure_logging
from syncd.settings import load_settings

app = typer.Typer(
    name="syncd",
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


app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.add_typer(env_cmd.app, name="env")
app.command("sync")(sync_cmd.sync)
app.command("runs")(sync_cmd.runs)
app.command("run")(run_cmd.run)
app.add_typer(directory_cmd.app, name="directory")
app.add_typer(dataverse_cmd.app, name="dataverse")
app.add_typer(entra_app, name="entra", help="The fake Entra tenant: generate, churn, serve.")
app.add_typer(admin_cmd.user_app, name="user")
app.add_typer(admin_cmd.app_user_app, name="app-user")
app.add_typer(admin_cmd.stub_app, name="stub")
app.add_typer(admin_cmd.role_app, name="role")
app.add_typer(team_cmd.team_app, name="team")


def _click_exceptions() -> ModuleType:
    """The exceptions module of the click that typer parses with: click itself up to typer 0.2x, and
    a copy of click bundled inside typer (``typer._click``) since; their classes are distinct."""
    return sys.modules[typer.BadParameter.__module__]


_CLICK = _click_exceptions()
# A usage error (a missing argument, an unknown option, a value of the wrong type or out of range) or
# another error click reports itself: its short usage message, and its exit code (2 for usage).
CLICK_ERRORS: tuple[type[Exception], ...] = tuple({_CLICK.ClickException, click.exceptions.ClickException})
ABORTS: tuple[type[BaseException], ...] = tuple(
    {getattr(_CLICK, "Abort", click.exceptions.Abort), typer.Abort, click.exceptions.Abort}
)


def main(argv: list[str] | None = None) -> None:
    try:
        rv = app(args=argv, prog_name="syncd", standalone_mode=False)
    except SyncdError as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except ABORTS:
        print("syncd: aborted", file=sys.stderr)
        sys.exit(130)
    except CLICK_ERRORS as exc:
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
