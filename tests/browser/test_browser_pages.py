"""Every status page passes axe-core (no serious or critical violation), reads at 375 px without
sideways scrolling with its main controls in view, and leaves screenshots at 1280 and 375 px.
Without an admin token configured, sign-in and every changing button are absent (a second daemon
on the same database, started without SYNCD_ADMIN_TOKEN).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from ui_checks import audit, axe_violations, describe, expect, screenshot
from ui_site import ENV, NO_DB_ENV, Site, nav_control

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]


def search_controls(page: Any) -> list[Any]:
    form = page.get_by_role("search")
    return [form.get_by_label("Find a user"), form.get_by_role("button", name="Search")]


def log_controls(page: Any) -> list[Any]:
    return [
        *(page.get_by_label(n, exact=True) for n in ("Environment", "Rule", "Action")),
        page.get_by_role("button", name="Filter"),
        page.get_by_role("link", name="CSV", exact=True),
    ]


def overview_controls(page: Any) -> list[Any]:
    return [
        page.get_by_role("region", name=ENV, exact=True).get_by_role("link", name=ENV, exact=True),
        page.get_by_role("region", name=ENV, exact=True).locator(".state"),
    ]


def user_path(site: Site, which: str) -> str:
    if which == "html":
        return f"/environments/{ENV}/users/{site.html_user['id']}"
    return f"/environments/{ENV}/users/{quote(site.regular_users()[11]['domainname'])}"


#: name, path (or a function of the site giving it), the main controls at 375 px
PAGES: list[tuple[str, str | Callable[[Site], str], Callable[[Any], list[Any]] | None]] = [
    ("overview", "/", overview_controls),
    ("environment", f"/environments/{ENV}", search_controls),
    ("environment-no-database", f"/environments/{NO_DB_ENV}", None),
    ("user", lambda s: user_path(s, "regular"), lambda p: [p.get_by_role("heading", name="Diagnosis")]),
    (
        "user-html-names",
        lambda s: user_path(s, "html"),
        lambda p: [p.get_by_role("heading", name="Diagnosis")],
    ),
    ("log", "/log", log_controls),
    ("log-filtered", f"/log?environment={ENV}&action=create", log_controls),
    ("login", "/login", lambda p: [p.get_by_label("Admin token"), p.get_by_role("button", name="Sign in")]),
    ("not-found", f"/environments/{ENV}/users/00000000-0000-0000-0000-000000000000", None),
]


@pytest.mark.parametrize(("name", "path", "controls"), PAGES, ids=[p[0] for p in PAGES])
def test_page_passes_axe_and_fits_375_px(
    page: Any, site: Site, name: str, path: str | Callable[[Site], str], controls: Any
) -> None:
    url = path(site) if callable(path) else path
    answer = page.goto(url)
    assert answer is not None and answer.status == (404 if name == "not-found" else 200), (url, answer)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    expect(page.locator("main")).to_have_count(1)
    audit(page, name, controls)


def test_environment_search_results_pass_axe_and_fit_375_px(page: Any, site: Site) -> None:
    page.goto(f"/environments/{ENV}")
    form = page.get_by_role("search")
    form.get_by_label("Find a user").fill(site.regular_users()[0]["domainname"][:2])
    form.get_by_role("button", name="Search").click()
    expect(page.get_by_role("table", name="Users").locator("tbody tr").first).to_be_visible()
    audit(page, "environment-search", search_controls)


def test_api_docs_passes_axe_and_fits_375_px(page: Any, site: Site) -> None:
    """The page the navigation's "API" link opens (its own layout: no navigation of its own)."""
    page.goto("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API", exact=True).click()
    expect(page).to_have_url(re.compile(r"/api/docs$"))
    bad = axe_violations(page)
    screenshot(page, "api-docs-1280")
    page.set_viewport_size({"width": 375, "height": 812})
    width = page.evaluate("document.documentElement.scrollWidth")
    screenshot(page, "api-docs-375")
    assert not bad, describe(bad)
    assert width <= 375, f"/api/docs scrolls sideways at 375 px: scrollWidth {width}"


@pytest.fixture(scope="module")
def tokenless_url(site: Site) -> Iterator[str]:
    """A second `syncd run` on the same database and tenant, without an admin token."""
    daemon, port = site.stack.start_daemon("syncd-no-token")
    site.settle()  # its own first run, a delta run changing nothing
    yield f"http://127.0.0.1:{port}"
    assert daemon.stop() == 0, daemon.tail()


def test_without_a_token_there_is_no_sign_in_and_no_changing_button(
    browser: Any, site: Site, tokenless_url: str
) -> None:
    ctx = browser.new_context(base_url=tokenless_url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        page = ctx.new_page()
        page.goto("/")
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Overview", exact=True)).to_be_visible()
        expect(nav_control(nav, "Sign in")).to_have_count(0)
        expect(nav_control(nav, "Sign out")).to_have_count(0)
        audit(page, "overview-no-token", overview_controls)

        page.goto("/login")
        expect(page.get_by_label("Admin token")).to_have_count(0)
        expect(page.get_by_role("button", name="Sign in")).to_have_count(0)

        page.goto(user_path(site, "regular"))
        expect(page.get_by_role("table", name="Row")).to_be_visible()
        for button in ("Refresh from directory", "Add user", "Approve disables"):
            expect(page.get_by_role("button", name=button)).to_have_count(0)
        page.goto(f"/environments/{ENV}")
        expect(page.get_by_role("search")).to_be_visible()
        expect(page.locator("main form[method=post i]")).to_have_count(0)

        for path, form in (
            ("/login", {"token": "anything"}),
            (f"/environments/{ENV}/approve", {}),
            (user_path(site, "regular") + "/refresh", {}),
        ):
            answer = page.request.post(path, form=form, max_redirects=0)
            assert answer.status == 403, (path, answer.status)
        assert not ctx.cookies()
    finally:
        ctx.close()


def test_the_token_daemon_offers_sign_in(page: Any, site: Site) -> None:
    """The counterpart of the test above, so that it cannot pass on a page that never offers it."""
    page.goto("/")
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in", exact=True)
    ).to_be_visible()
