"""The site under test for the browser tests: `syncd run` on PostgreSQL with a generated tenant.

`running_site()` makes a fresh PostgreSQL database, generates and serves a tenant of USERS users
with `syncd entra generate/serve`, plants one user whose names are HTML and script
(`Site.html_user`), creates the environments `prod` and `archive` (no database), starts
`syncd run` (with an admin token unless told otherwise), waits for its first run of `prod`, then
changes a few users (job titles, two disabled) and runs `syncd sync prod` once more.
The daemons' logs are copied to the artifacts directory at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "service"))

from procs import Proc, Stack, admin_ids, disable_user, pg_database, syncd, wait_for  # noqa: E402

CHROMIUM = os.environ.get("SYNCD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SYNCD_TEST_ARTIFACTS") or REPO / "test-artifacts")
TOKEN = "browser-admin-token"
ENV = "prod"
NO_DB_ENV = "archive"
USERS = 300

#: The names of the user whose names are markup: shown as text, never run, and wrapped however long.
HTML_NAMES = {
    # ...and, after the markup, 140 characters without a space: the pages wrap it at 375 px.
    "displayName": "<script>alert('fullname')</script><b>Mallory</b>" + "W" * 140,
    "givenName": "<img src=x onerror=alert('given')>",
    "surname": '"><svg onload=alert("surname")>',
    "jobTitle": "<iframe src=javascript:alert('job')></iframe>",
}


@dataclass
class Site:
    """The daemon under test and what the tests need to know about its data."""

    url: str
    stack: Stack
    daemon: Proc
    token: str | None
    html_user: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Any:
        return self.stack.engine()

    def rows(self, where: str = "TRUE", **params: Any) -> list[dict[str, Any]]:
        """SystemUser rows of `prod` (object ids and systemuserids as lower-case dashed strings)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT u.* FROM systemuser u JOIN environment e ON e.id = u.environment_id "
                    f"WHERE e.name = :env AND ({where}) ORDER BY u.domainname"
                ),
                {"env": ENV, **params},
            ).mappings()
            out = []
            for r in rows:
                d = dict(r)
                for k in ("systemuserid", "azureactivedirectoryobjectid"):
                    d[k] = str(d[k]).lower() if d[k] is not None else None
                out.append(d)
            return out

    def regular_users(self) -> list[dict[str, Any]]:
        """Enabled, licensed directory users of `prod` that are not administrators."""
        with self.stack.graph_client() as g:
            admins = admin_ids(g)
        return [
            r
            for r in self.rows(
                "u.syncd_kind = 'regular' AND NOT u.isdisabled AND u.accessmode = 0 "
                "AND u.azureactivedirectoryobjectid IS NOT NULL"
            )
            if r["azureactivedirectoryobjectid"] not in admins
            and r["azureactivedirectoryobjectid"] != self.html_user.get("id")
        ]

    def runs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.id, r.kind, r.outcome FROM sync_run r JOIN environment e "
                    "ON e.id = r.environment_id WHERE e.name = :env ORDER BY r.id"
                ),
                {"env": ENV},
            ).mappings()
            return [dict(r) for r in rows]

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def settle(self) -> None:
        """Wait until `prod` has a finished run and none in progress."""
        wait_for(
            lambda: (runs := self.runs()) and all(r["outcome"] != "running" for r in runs),
            90,
            f"a finished run of {ENV}:\n{self.daemon.tail()}",
        )


def _plant_html_user(stack: Stack) -> dict[str, Any]:
    """Give an enabled, licensed member of the tenant names made of markup (before the first run)."""
    with stack.graph_client() as g:
        admins = admin_ids(g)
        page = g.get(
            "/users", params={"$select": "id,userPrincipalName,accountEnabled,assignedLicenses,userType"}
        ).json()
        user = next(
            u
            for u in page["value"]
            if u.get("accountEnabled")
            and u.get("assignedLicenses")
            and u.get("userType", "Member") == "Member"
            and u["id"] not in admins
        )
        r = g.patch(f"/users/{user['id']}", json=HTML_NAMES)
        assert r.status_code in (200, 204), r.text
    return {"id": user["id"].lower(), "upn": user["userPrincipalName"], **HTML_NAMES}


def _churn(site: Site) -> None:
    """A second run with updates and disables, so the log holds events of several rules."""
    users = site.regular_users()
    with site.stack.graph_client() as g:
        for u in users[:3]:
            r = g.patch(f"/users/{u['azureactivedirectoryobjectid']}", json={"jobTitle": "Churned"})
            assert r.status_code in (200, 204), r.text
        for u in users[3:5]:
            disable_user(g, u["azureactivedirectoryobjectid"])
    syncd(["sync", ENV], site.stack.env(), site.stack.workdir)
    assert site.runs()[-1]["outcome"] == "succeeded", site.runs()


@contextmanager
def running_site(
    pg_admin: str, workdir: Path, *, token: str | None = TOKEN, **settings: str
) -> Iterator[Site]:
    """A tenant, a database with `prod` and `archive`, and `syncd run` with `prod` synced once."""
    with pg_database(pg_admin) as url:
        stack = Stack(workdir, url.replace("postgresql+psycopg://", "postgresql://", 1), delta_interval=3600)
        try:
            stack.start_directory(users=USERS, seed=15)
            html_user = _plant_html_user(stack)
            stack.upgrade()
            stack.create_env(ENV)
            stack.create_env(NO_DB_ENV, "--no-database")
            extra = dict(settings)
            if token:
                extra["SYNCD_ADMIN_TOKEN"] = token
            daemon, port = stack.start_daemon("syncd-browser", **extra)
            site = Site(f"http://127.0.0.1:{port}", stack, daemon, token, html_user)
            site.settle()
            assert site.runs()[-1]["outcome"] == "succeeded", (site.runs(), daemon.tail())
            assert site.rows("u.azureactivedirectoryobjectid = :o", o=html_user["id"]), (
                "the HTML user has no row"
            )
            _churn(site)
            yield site
        finally:
            stack.close()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for p in stack.daemons:
                if p.log.exists():
                    shutil.copy(p.log, ARTIFACTS / f"{workdir.name}-{p.name}.log")


def nav_control(nav: Any, name: str) -> Any:
    """A control of the main navigation by its exact name: a link, or a form's button (Sign out)."""
    return nav.get_by_role("link", name=name, exact=True).or_(
        nav.get_by_role("button", name=name, exact=True)
    )


@dataclass
class Dialogs:
    """The dialogs (alert, confirm, prompt) a page opened, each dismissed: none is expected."""

    messages: list[str] = field(default_factory=list)
