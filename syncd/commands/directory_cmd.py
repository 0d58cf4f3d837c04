"""`syncd directory check`: can syncd read what it needs from the configured directory?"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table

from syncd.context import AppContext, print_json
from syncd.directory.ids import normalize_object_id
from syncd.errors import SyncdError

app = typer.Typer(help="The directory syncd reads (Microsoft Graph).", no_args_is_help=True)


@app.command()
def check(
    ctx: typer.Context,
    group: Annotated[
        str | None,
        typer.Option(
            "--group", help="object id of the group whose members to read (default: the first listed)"
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
) -> None:
    """Read each Graph endpoint syncd uses once, with the configured credential.

    Prints, per endpoint, whether the read worked and the application permission it needs
    (Directory.Read.All covers them all), and what to do when one is missing.

    \b
    Exit codes:
      0  every read worked
      1  a permission is missing, no token was accepted, or Graph failed
      2  bad settings or a malformed or unknown --group
    """
    from syncd.directory.check import OK, check_directory
    from syncd.sync.directory import open_directory

    appctx: AppContext = ctx.obj
    settings = appctx.settings
    if group is not None:
        try:
            group = normalize_object_id(group)
        except ValueError as exc:
            raise SyncdError(f"--group: {exc}") from None
    with open_directory(settings, max_retries=2, timeout=30.0) as client:
        results = check_directory(client, group_id=group)
    members = next(r for r in results if r.endpoint == "GET /groups/{id}/members")
    if group is not None and members.http_status == 404:
        raise SyncdError(f"--group: the directory has no group {group}")
    ok = all(r.status == OK for r in results)
    where = "embedded fake tenant" if settings.is_embedded_directory else settings.directory_url
    credential = settings.credential_kind or "fixed token"
    if json:
        print_json(
            {"directory": where, "credential": credential, "ok": ok, "checks": [r.as_dict() for r in results]}
        )
    else:
        table = Table(
            Column("endpoint", overflow="fold"),
            Column("status", no_wrap=True),
            Column("permission", no_wrap=True),
            Column("what to do", ratio=1),
            title=f"{where} ({credential})",
            caption="Directory.Read.All, as an application permission, grants every one of these reads.",
        )
        for r in results:
            style = "green" if r.status == OK else "yellow" if r.status == "skipped" else "red"
            status = f"[{style}]{r.status}[/]" + (
                f" ({r.http_status})" if r.http_status and r.status != OK else ""
            )
            table.add_row(r.endpoint, status, r.permission, r.remedy)
        appctx.console.print(table)
    if not ok:
        raise typer.Exit(1)
