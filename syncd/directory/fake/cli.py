"""`syncd entra …`: generate, churn and serve a fake tenant (mounted by the main CLI)."""

from __future__ import annotations

import re
import sys

import orjson
import typer

DEFAULT_STORE = "./syncd-tenant.db"

entra_app = typer.Typer(help="The fake Entra directory: a Graph v1.0 look-alike.", no_args_is_help=True)


def _open_store(path: str):  # type: ignore[no-untyped-def]
    """The tenant file at `path`; a one-line error (exit 2) when it cannot be opened."""
    import sqlite3

    from syncd.directory.fake.store import TenantStore

    try:
        return TenantStore.open(path)
    except sqlite3.Error as exc:
        raise typer.BadParameter(
            f"cannot open the tenant file {path!r}: {exc}", param_hint="--store"
        ) from None


def _print_json(obj: object) -> None:
    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


@entra_app.command()
def generate(
    users: int = typer.Option(..., "--users", min=0, help="How many users."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same tenant."),
    store: str = typer.Option(DEFAULT_STORE, "--store", help="The tenant file (SQLite)."),
    group_size: int | None = typer.Option(None, "--group-size", min=0, help="Members of 'Dataverse Users'."),
    admins_per_role: int | None = typer.Option(None, "--admins-per-role", min=0),
    json_out: bool = typer.Option(False, "--json", help="Print the full summary as JSON."),
) -> None:
    """Replace the tenant in STORE with a generated one."""
    from syncd.directory.fake.generator import generate_tenant

    tenant = _open_store(store)
    try:
        if sys.stderr.isatty() and not json_out:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            ) as bar:
                task = bar.add_task("users", total=users)
                summary = generate_tenant(
                    tenant,
                    users,
                    seed,
                    group_size=group_size,
                    admins_per_role=admins_per_role,
                    progress=lambda done, total: bar.update(task, completed=done),
                )
        else:
            summary = generate_tenant(
                tenant, users, seed, group_size=group_size, admins_per_role=admins_per_role
            )
    finally:
        tenant.close()
    if json_out:
        _print_json(summary)
        return
    rate = users / summary["seconds"] if summary["seconds"] else 0.0
    typer.echo(
        f"generated {users} users (seed {seed}) into {store} in {summary['seconds']:.1f}s ({rate:,.0f}/s)"
    )
    for name, count in summary["categories"].items():
        typer.echo(f"  {name:<26}{count:>10}")
    for group in summary["groups"].values():
        typer.echo(f"  group {group['displayName']!r}: {group['members']} direct members, id {group['id']}")


@entra_app.command()
def churn(
    changes: int = typer.Option(..., "--changes", min=0, help="How many changes."),
    seed: int = typer.Option(0, "--seed"),
    store: str = typer.Option(DEFAULT_STORE, "--store"),
    json_out: bool = typer.Option(False, "--json", help="Print the full summary (ids touched) as JSON."),
) -> None:
    """Apply a random, realistic mix of changes to the tenant in STORE."""
    from syncd.directory.fake.churn import apply_churn

    tenant = _open_store(store)
    try:
        summary = apply_churn(tenant, changes, seed)
    finally:
        tenant.close()
    if json_out:
        _print_json(summary)
        return
    typer.echo(f"applied {summary['changes']} changes (seed {seed}) to {store}")
    for kind, count in summary["counts"].items():
        typer.echo(f"  {kind:<16}{count:>8}")


def _split_app(value: str, option: str) -> tuple[str, str]:
    client_id, sep, rest = value.partition(":")
    if not sep or not client_id.strip() or not rest:
        what = "SECRET" if option == "--app" else "CERT.pem"
        raise typer.BadParameter(f"{value!r}: expected CLIENT_ID:{what}", param_hint=option)
    return client_id.strip(), rest


@entra_app.command()
def serve(
    port: int = typer.Option(8765, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    store: str = typer.Option(DEFAULT_STORE, "--store"),
    token: str | None = typer.Option(None, "--token", help="Accept only this bearer token (default: any)."),
    tls_dir: str | None = typer.Option(
        None, "--tls-dir", help="Serve HTTPS with a local CA and certificate kept in this folder (made once)."
    ),
    tls_hosts: list[str] = typer.Option(
        [],
        "--tls-host",
        help="With --tls-dir: another host name the certificate must cover, besides 127.0.0.1 and "
        "localhost (repeatable; a container's service name, say).",
    ),
    require_auth: bool = typer.Option(
        False,
        "--require-auth",
        help="Act as Entra ID: issue client-credentials tokens and require them on Graph.",
    ),
    apps: list[str] = typer.Option(
        [], "--app", help="With --require-auth: register an app CLIENT_ID:SECRET (repeatable)."
    ),
    app_certs: list[str] = typer.Option(
        [], "--app-cert", help="With --require-auth: register an app CLIENT_ID:CERT.pem (repeatable)."
    ),
    token_lifetime: int = typer.Option(
        3599, "--token-lifetime", min=1, help="Seconds an access token lives (with --require-auth)."
    ),
) -> None:
    """Serve the tenant in STORE as Microsoft Graph v1.0 (and /_sim/ controls)."""
    from pathlib import Path

    import uvicorn

    from syncd.directory.fake.entra import AuthConfigError, Certificate, EntraAuth
    from syncd.directory.fake.server import create_app

    if require_auth and tls_dir is None:
        raise typer.BadParameter(
            "--require-auth needs --tls-dir: Entra's clients (azure-identity, MSAL) refuse an http:// authority",
            param_hint="--require-auth",
        )
    if (apps or app_certs) and not require_auth:
        raise typer.BadParameter("--app and --app-cert need --require-auth", param_hint="--app")
    if tls_hosts and tls_dir is None:
        raise typer.BadParameter("--tls-host needs --tls-dir", param_hint="--tls-host")
    for name in tls_hosts:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+", name):
            raise typer.BadParameter(f"{name!r} is not a host name or an IP address", param_hint="--tls-host")
    if token is not None and require_auth:
        raise typer.BadParameter("--token and --require-auth exclude each other", param_hint="--token")
    secrets: dict[str, str] = {}
    certs: dict[str, list[Certificate]] = {}
    for value in apps:
        client_id, secret = _split_app(value, "--app")
        secrets[client_id] = secret
    for value in app_certs:
        client_id, cert_file = _split_app(value, "--app-cert")
        try:
            certs.setdefault(client_id, []).append(Certificate.from_pem(Path(cert_file).read_bytes()))
        except (OSError, AuthConfigError) as exc:
            raise typer.BadParameter(f"{value!r}: {exc}", param_hint="--app-cert") from None

    tenant = _open_store(store)
    auth = None
    if require_auth:
        auth = EntraAuth(tenant, token_lifetime=token_lifetime)
        for client_id in dict.fromkeys([*secrets, *certs]):
            try:
                auth.register(client_id, secret=secrets.get(client_id), certificates=certs.get(client_id, ()))
            except AuthConfigError as exc:
                raise typer.BadParameter(str(exc), param_hint="--app") from None
    ssl: dict[str, str] = {}
    scheme = "http"
    if tls_dir is not None:
        from syncd.directory.fake.tls import ensure_tls

        try:
            files = ensure_tls(tls_dir, tuple(tls_hosts))
        except OSError as exc:
            raise typer.BadParameter(f"{tls_dir!r}: {exc}", param_hint="--tls-dir") from None
        ssl = {"ssl_certfile": str(files.cert_path), "ssl_keyfile": str(files.key_path)}
        scheme = "https"
        typer.echo(
            f"CA certificate: {files.ca_path.resolve()} (trust it with SYNCD_DIRECTORY_CA_BUNDLE, SSL_CERT_FILE "
            "or REQUESTS_CA_BUNDLE)",
            err=True,
        )
    app = create_app(tenant, token=token, auth=auth)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # where a local client reaches it
    origin = f"{scheme}://{shown_host}:{port}"
    typer.echo(f"serving {store} at {origin}/v1.0", err=True)
    typer.echo(f"Graph URL: {origin}/v1.0", err=True)
    if auth is not None:
        typer.echo(f"authority: {origin}", err=True)
        typer.echo(f"tenant id: {auth.tenant_id}", err=True)
        typer.echo(f"token endpoint: {origin}/{auth.tenant_id}/oauth2/v2.0/token", err=True)
        registered = ", ".join(a["client_id"] for a in auth.apps()) or "none (add with POST /_sim/apps)"
        typer.echo(f"apps: {registered}; tokens live {token_lifetime}s", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,  # clients' idle keep-alive connections must not hold up SIGTERM
        **ssl,  # type: ignore[arg-type]
    )
