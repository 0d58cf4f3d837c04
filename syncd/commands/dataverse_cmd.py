"""`syncd dataverse …`: the simulated Dataverse side as Dataverse serves it.

`syncd dataverse serve` serves every environment as its own organization over the Web API
(OData v4: reads, and the writes a customer makes on users): the organization URL of environment `prod` is
`https://HOST:PORT/prod`, its Web API root `https://HOST:PORT/prod/api/data/v9.2/`. Any bearer
token is accepted, unless `--require-token`: then only the fake Entra ID's tokens for the
organization URL are (`syncd.webapi.auth`). See `syncd.webapi`.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
from sqlalchemy import select

from syncd.context import AppContext

app = typer.Typer(no_args_is_help=True, help="The Dataverse side as Dataverse: its Web API.")


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port to listen on")] = 8443,
    tls_dir: Annotated[
        str | None,
        typer.Option(
            "--tls-dir",
            help="serve HTTPS with a local CA and a certificate for 127.0.0.1/localhost kept in this folder "
            "(made once); clients trust its ca.pem",
        ),
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="serve HTTPS with this certificate (PEM, with its chain)")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="the private key of --tls-cert (PEM)")
    ] = None,
    require_token: Annotated[
        bool,
        typer.Option(
            "--require-token",
            help="accept only access tokens the fake Entra ID (`syncd entra serve`) issues for the "
            "organization URL (scope `<organization URL>/.default`); 401 otherwise",
        ),
    ] = False,
    directory_store: Annotated[
        str | None,
        typer.Option(
            "--directory-store",
            help="the fake tenant's file whose tokens --require-token accepts (default: the settings' "
            "directory_store)",
        ),
    ] = None,
) -> None:
    """Serve every environment's Dataverse Web API (OData v4: reads, customer writes on users), as Microsoft's SDK expects it."""
    import uvicorn

    from syncd.dataverse.schema import Environment
    from syncd.webapi import create_webapi_app
    from syncd.webapi.urls import organization_url

    appctx: AppContext = ctx.obj
    if tls_dir is not None and (tls_cert or tls_key):
        raise typer.BadParameter("--tls-dir excludes --tls-cert/--tls-key", param_hint="--tls-dir")
    if bool(tls_cert) != bool(tls_key):
        raise typer.BadParameter("--tls-cert and --tls-key go together", param_hint="--tls-cert")
    ssl: dict[str, str] = {}
    if tls_dir is not None:
        from syncd.directory.fake.tls import ensure_tls

        try:
            files = ensure_tls(tls_dir)
        except OSError as exc:
            raise typer.BadParameter(f"{tls_dir!r}: {exc}", param_hint="--tls-dir") from None
        ssl = {"ssl_certfile": str(files.cert_path), "ssl_keyfile": str(files.key_path)}
        typer.echo(
            f"CA certificate: {files.ca_path.resolve()} (trust it: REQUESTS_CA_BUNDLE={files.ca_path.resolve()})",
            err=True,
        )
    elif tls_cert and tls_key:
        ssl = {"ssl_certfile": tls_cert, "ssl_keyfile": tls_key}
    auth = None
    if require_token:
        from syncd.webapi.auth import TokenCheck

        store_path = directory_store or appctx.settings.directory_store
        try:
            auth = TokenCheck.from_store(store_path)
        except (ValueError, OSError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--directory-store") from None
        typer.echo(f"tokens required: those of tenant {auth.tenant_id} ({store_path})", err=True)
    elif directory_store is not None:
        raise typer.BadParameter(
            "--directory-store goes with --require-token", param_hint="--directory-store"
        )
    engine = appctx.engine()
    scheme = "https" if ssl else "http"
    shown_host = f"[{host}]" if ":" in host else host
    origin = f"{scheme}://{shown_host}:{port}"
    with engine.connect() as conn:
        names = list(conn.execute(select(Environment.name).order_by(Environment.name)).scalars())
    typer.echo(f"serving the Dataverse Web API of {len(names)} environment(s) at {origin}", err=True)
    for name in names:
        typer.echo(
            f"  {name}: {organization_url(origin, name)} (Web API {organization_url(origin, name)}/api/data/v9.2/)",
            err=True,
        )
    if not ssl:
        typer.echo("note: without --tls-dir or --tls-cert, Microsoft's SDK refuses the http:// URL", err=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: end with status 0 then.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    uvicorn.run(
        create_webapi_app(lambda: engine, auth=auth),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        **ssl,  # type: ignore[arg-type]
    )
