"""The status pages' changing actions in Chromium (issue 15): sign in with the admin token, refresh
a user from the directory, and approve the disables a mass-disable-guarded run withheld.

Its own daemon (the actions change the data), with the guard's threshold at 10 disables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from procs import disable_user
from ui_checks import audit, expect
from ui_site import ENV, TOKEN, Site, nav_control, running_site

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

GUARD = 10  # SYNCD_MASS_DISABLE_COUNT: a run disabling more users than this is blocked


@pytest.fixture(scope="module")
def site(chromium: str, pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(
        pg_server, tmp_path_factory.mktemp("browser-admin"), SYNCD_MASS_DISABLE_COUNT=str(GUARD)
    ) as s:
        yield s


def nav(page: Any) -> Any:
    return page.get_by_role("navigation", name="Main")


def test_sign_in_with_the_admin_token(page: Any, site: Site) -> None:
    page.goto("/log")
    nav(page).get_by_role("link", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/login(\?|$)"))
    token_field = page.get_by_label("Admin token", exact=True)
    assert token_field.get_attribute("type") == "password"
    audit(page, "login", lambda p: [p.get_by_label("Admin token"), p.get_by_role("button", name="Sign in")])

    token_field.fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Admin token", exact=True)).to_be_visible()
    expect(nav_control(nav(page), "Sign out")).to_have_count(0)
    page.goto("/")
    expect(nav(page).get_by_role("link", name="Sign in", exact=True)).to_be_visible()
    expect(nav_control(nav(page), "Sign out")).to_have_count(0)

    page.goto("/login?next=/log")
    page.get_by_label("Admin token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/log$"))
    expect(nav_control(nav(page), "Sign out")).to_be_visible()
    expect(nav(page).get_by_role("link", name="Sign in", exact=True)).to_have_count(0)
    cookies = page.context.cookies()
    assert cookies and all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies), cookies
    assert all(TOKEN not in c["value"] for c in cookies), cookies
    assert TOKEN not in page.url

    nav_control(nav(page), "Sign out").click()
    expect(nav(page).get_by_role("link", name="Sign in", exact=True)).to_be_visible()


def test_sign_in_goes_back_to_local_pages_only(page: Any, site: Site) -> None:
    for target in ("https://example.com/", "//example.com/x", "/\\example.com"):
        page.context.clear_cookies()
        page.goto("/login?next=" + quote(target, safe=""))
        page.get_by_label("Admin token", exact=True).fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        expect(nav_control(nav(page), "Sign out")).to_be_visible()
        assert page.url.startswith(site.url + "/"), (target, page.url)


def test_refresh_a_user_from_the_directory(page: Any, site: Site, sign_in: Callable[[Any], None]) -> None:
    user = site.regular_users()[7]
    oid, upn = user["azureactivedirectoryobjectid"], user["domainname"]
    job = "Refreshed by the browser test"
    with site.stack.graph_client() as g:
        r = g.patch(f"/users/{oid}", json={"jobTitle": job})
        assert r.status_code in (200, 204), r.text

    sign_in(page)
    page.goto(f"/environments/{ENV}/users/{upn}")
    row = page.get_by_role("table", name="Row")
    expect(row).to_contain_text(upn)
    expect(row).not_to_contain_text(job)  # the daemon runs no delta run in this test's time
    button = page.get_by_role("button", name="Refresh from directory")
    audit(page, "user-signed-in", lambda p: [p.get_by_role("button", name="Refresh from directory")])
    button.click()
    status = page.get_by_role("status")
    expect(status).to_be_visible()
    expect(status).not_to_have_text(re.compile(r"^\s*$"))
    expect(page).to_have_url(re.compile(rf"/environments/{ENV}/users/[^/?]+"))
    expect(page.get_by_role("table", name="Row")).to_contain_text(job)
    assert site.rows("u.azureactivedirectoryobjectid = :o", o=oid)[0]["jobtitle"] == job


def pending_section(page: Any) -> Any:
    """The "Pending disables" section: a region of that name, or the section headed by it."""
    by_name = page.get_by_role("region", name="Pending disables", exact=True)
    by_heading = page.locator("section", has=page.get_by_role("heading", name="Pending disables", exact=True))
    return by_name.or_(by_heading).first


def test_a_run_blocked_by_the_mass_disable_guard_is_approved_from_its_page(
    page: Any, site: Site, sign_in: Callable[[Any], None]
) -> None:
    victims = site.regular_users()[-(GUARD + 5) :]
    assert len(victims) == GUARD + 5
    with site.stack.graph_client() as g:
        for v in victims:
            disable_user(g, v["azureactivedirectoryobjectid"])
    with site.api() as api:
        report = api.post(f"/api/environments/{ENV}/sync", json={"kind": "delta"})
    assert report.status_code == 200 and report.json()["outcome"] == "blocked", report.text
    assert not any(
        site.rows("u.azureactivedirectoryobjectid = :o AND u.isdisabled", o=v["azureactivedirectoryobjectid"])
        for v in victims
    )

    page.goto("/")
    expect(page.get_by_role("region", name=ENV, exact=True).locator(".state")).to_have_text("blocked")

    sign_in(page)
    page.goto(f"/environments/{ENV}")
    pending = pending_section(page)
    expect(pending).to_be_visible()
    for v in victims:
        expect(pending).to_contain_text(v["domainname"])
    approve = page.get_by_role("button", name="Approve disables", exact=True)
    audit(
        page, "environment-blocked", lambda p: [p.get_by_role("button", name="Approve disables", exact=True)]
    )

    approve.click()
    status = page.get_by_role("status")
    expect(status).to_be_visible(timeout=120_000)
    expect(status).not_to_have_text(re.compile(r"^\s*$"))
    expect(page).to_have_url(re.compile(rf"/environments/{ENV}(\?|$)"))
    audit(page, "environment-approved")
    expect(pending_section(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Approve disables")).to_have_count(0)
    for v in victims:
        assert site.rows("u.azureactivedirectoryobjectid = :o", o=v["azureactivedirectoryobjectid"])[0][
            "isdisabled"
        ]
    assert site.runs()[-1]["outcome"] == "succeeded", site.runs()[-3:]

    page.goto("/")
    expect(page.get_by_role("region", name=ENV, exact=True).locator(".state")).to_have_text("in step")


def test_a_changing_post_without_a_session_changes_nothing(page: Any, site: Site) -> None:
    user = site.regular_users()[9]
    oid = user["azureactivedirectoryobjectid"]
    with site.stack.graph_client() as g:
        r = g.patch(f"/users/{oid}", json={"jobTitle": "Not refreshed without a session"})
        assert r.status_code in (200, 204), r.text
    answer = page.request.post(
        f"/environments/{ENV}/users/{user['domainname']}/refresh",
        form={"csrf": "guessed"},
        max_redirects=0,
        headers={"Origin": site.url},
    )
    assert answer.status in (303, 403), answer.status
    if answer.status == 303:  # to the sign-in form, coming back here afterwards
        assert re.match(r"^(/|" + re.escape(site.url) + "/)login\\?next=", answer.headers["location"])
    assert site.rows("u.azureactivedirectoryobjectid = :o", o=oid)[0]["jobtitle"] == user["jobtitle"]
