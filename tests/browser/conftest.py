"""Browser tests of the status pages (issue 15): Playwright driving Debian's Chromium.

The tests run against `syncd run` as a real process on a fresh PostgreSQL database, with a small
tenant generated and served by `syncd entra generate/serve` (tests/service/procs.py), an
environment `prod` synced once and an environment `archive` without a database. One of the
tenant's users has names made of HTML and script (`Site.html_user`). The modules that change
nothing share one such daemon per test process (`read_only_site`); a module whose tests change
data overrides `site` with its own (test_browser_admin.py).

Chromium is `/usr/bin/chromium` (or SYNCD_CHROMIUM); Playwright never downloads a browser. When
Chromium or Playwright is missing the tests skip, except under CI (CI=true), where they fail.
Screenshots go to SYNCD_TEST_ARTIFACTS (default `<repo>/test-artifacts/`) and stay there.
Every page a test opens may reach 127.0.0.1 only: any other request is aborted and fails the test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ui_site import CHROMIUM, Dialogs, Site, nav_control, running_site


def unavailable(why: str) -> None:
    """Skip outside CI; under CI a browser test that cannot run is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Chromium, once Playwright is known to be importable (else skip; fail under CI).

    Session-scoped, so that it is checked before a daemon is started for nothing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SYNCD_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        unavailable(f"Playwright is not installed (pip install -e '.[test]'): {exc}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """Chromium under Playwright, one per module (closed before the next module's tests run)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=["--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def read_only_site(chromium: str, pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`syncd run` with an admin token for the modules that change nothing (one per test process)."""
    with running_site(pg_server, tmp_path_factory.mktemp("browser")) as s:
        yield s


@pytest.fixture(scope="module")
def site(read_only_site: Site) -> Site:
    """The site of a module's tests: the shared read-only one, unless the module has its own."""
    return read_only_site


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "bypass_csp: the test's browser context ignores the pages' Content-Security-Policy "
        "(to test escaping itself, not the policy that would also stop an injected script)",
    )


@pytest.fixture
def context(browser: Any, site: Site, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the site, 1280 px wide; off-site requests fail the test."""
    ctx = browser.new_context(
        base_url=site.url,
        viewport={"width": 1280, "height": 900},
        bypass_csp=request.node.get_closest_marker("bypass_csp") is not None,
    )
    ctx.set_default_timeout(15_000)
    offsite: list[str] = []

    def refuse(route: Any) -> None:
        offsite.append(route.request.url)
        route.abort()

    ctx.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]).+"), refuse)
    yield ctx
    ctx.close()
    assert not offsite, f"the pages asked for something off 127.0.0.1: {offsite}"


@pytest.fixture
def dialogs() -> Dialogs:
    return Dialogs()


@pytest.fixture
def page(context: Any, dialogs: Dialogs) -> Iterator[Any]:
    """A page of `context`; any dialog (alert, confirm, ...) is dismissed and recorded in `dialogs`."""
    pg = context.new_page()

    def on_dialog(d: Any) -> None:
        dialogs.messages.append(f"{d.type}: {d.message}")
        d.dismiss()

    pg.on("dialog", on_dialog)
    yield pg


@pytest.fixture
def sign_in(site: Site) -> Callable[[Any], None]:
    """Sign `page` in with the admin token through the login form."""

    def do(page: Any) -> None:
        from playwright.sync_api import expect

        page.goto("/login")
        page.get_by_label("Admin token").fill(site.token or "")
        page.get_by_role("button", name="Sign in").click()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav_control(nav, "Sign out")).to_be_visible()
        assert site.token not in page.url

    return do
