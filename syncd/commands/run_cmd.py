"""`syncd run`: the daemon (schedule, replicas' locks, HTTP endpoint) until SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import SecretStr

from syncd.context import AppContext
from syncd.settings import Settings, load_settings

if TYPE_CHECKING:
    from syncd.service.daemon import Daemon


def run(
    ctx: typer.Context,
    delta_interval: Annotated[
        int | None,
        typer.Option(
            "--delta-interval", help="seconds between delta runs, at least 5 (SYNCD_DELTA_INTERVAL_SECONDS)"
        ),
    ] = None,
    full_interval: Annotated[
        int | None,
        typer.Option("--full-interval", help="seconds between full runs (SYNCD_FULL_INTERVAL_SECONDS)"),
    ] = None,
    http_host: Annotated[
        str | None, typer.Option("--http-host", help="address of the HTTP endpoint (SYNCD_HTTP_HOST)")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="port of the HTTP endpoint, 0 for any (SYNCD_HTTP_PORT)")
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option("--admin-token", help="bearer token for the admin API's mutations (SYNCD_ADMIN_TOKEN)"),
    ] = None,
    churn_interval: Annotated[
        float,
        typer.Option(
            "--churn-interval", help="embedded tenant only: seconds between bursts of demo churn, 0 for none"
        ),
    ] = 30.0,
) -> int:
    """Run the daemon: a delta run per environment every interval, a full run now and then, and
    the HTTP endpoint (/healthz, /readyz, /metrics, status page, admin API). Replicas against one
    PostgreSQL share the work. SIGTERM or Ctrl-C stops it after the current batch."""
    appctx: AppContext = ctx.obj
    overrides = {
        "delta_interval_seconds": delta_interval,
        "full_interval_seconds": full_interval,
        "http_host": http_host,
        "http_port": http_port,
        "admin_token": admin_token,
    }
    if any(v is not None for v in overrides.values()):
        appctx.settings = with_overrides(appctx.settings, overrides)
    # The daemon (scheduler, HTTP server, admin API) is imported here: `syncd run --help` needs none of it.
    from syncd.service.daemon import Daemon, DaemonOptions

    daemon = Daemon(appctx, DaemonOptions(churn_interval_s=churn_interval))
    return daemon.run(on_started=_print_where_to_look)


def with_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """The settings again, with `overrides` (the values not None) on top, checked as a whole.

    Only the values that were given (options, SYNCD_*, the TOML file) are carried over, not the
    defaults: a default is no choice, and settings that exclude each other (a fixed token and a
    credential) must stay unchosen. Raises ConfigError as ``load_settings`` does.
    """
    base = settings.model_dump(exclude_unset=True)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return load_settings(**_plain(base))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in values.items()}


def _print_where_to_look(daemon: Daemon) -> None:
    s = daemon.settings
    lines = [
        f"syncd is running (pid {os.getpid()}); stop it with Ctrl-C or SIGTERM.",
        f"  status page: {daemon.status_url}   (also {daemon.status_url}metrics, {daemon.status_url}readyz)",
        "  recent runs: syncd runs",
        f"  delta runs every {s.delta_interval_seconds}s, full runs every {s.full_interval_seconds}s",
    ]
    if daemon.embedded_directory:
        lines.append(
            f"  directory: the built-in fake tenant ({s.directory_store}), changed a little now and then"
        )
    typer.echo("\n".join(lines))
