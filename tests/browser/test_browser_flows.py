"""Reading the status pages as an operator does, in Chromium (issue 15; names from the UI contract).

The overview and an environment's state; finding a user by UPN prefix and by object-id prefix;
their page and its diagnosis; the provisioning log filtered by rule and its CSV export; a user
whose names are HTML and script shows them as text. They change nothing: the daemon is the one shared by such modules.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from typing import Any

import pytest
from ui_checks import audit, expect
from ui_site import ENV, NO_DB_ENV, Dialogs, Site

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]


def search(page: Any, query: str) -> list[str]:
    """Search `prod`'s users from its page; the UPNs (link texts) of the "Users" table."""
    page.goto(f"/environments/{ENV}")
    form = page.get_by_role("search")
    form.get_by_label("Find a user").fill(query)
    form.get_by_role("button", name="Search").click()
    table = page.get_by_role("table", name="Users")
    expect(table).to_be_visible()
    return [t.strip() for t in table.locator("tbody").get_by_role("link").all_inner_texts()]


def expected_hits(site: Site, where: str, **params: Any) -> list[str]:
    return sorted(r["domainname"] for r in site.rows(where, **params))


def test_the_overview_shows_each_environments_state_and_links_to_its_page(page: Any, site: Site) -> None:
    counts = site.api().get(f"/api/environments/{ENV}").json()["users"]
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    prod = page.get_by_role("region", name=ENV, exact=True)
    expect(prod.locator(".state")).to_have_text("in step")
    expect(prod.get_by_role("img", name=re.compile(r"^Runs of"))).to_be_visible()
    expect(prod.get_by_role("img", name=re.compile(r"^Enabled users of"))).to_be_visible()
    text = prod.inner_text()
    for key in ("enabled", "disabled"):
        assert re.search(rf"(?<![\d,.]){counts[key]:,}(?![\d,.])|(?<![\d,.]){counts[key]}(?![\d,.])", text), (
            f"the {key} count {counts[key]} is not on the overview: {text!r}"
        )
    archive = page.get_by_role("region", name=NO_DB_ENV, exact=True)
    expect(archive.locator(".state")).to_have_text("no database")

    prod.get_by_role("link", name=ENV, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/environments/{ENV}$"))
    expect(page.get_by_role("table", name="Runs")).to_be_visible()


def test_a_user_is_found_by_upn_prefix(page: Any, site: Site) -> None:
    user = site.regular_users()[len(site.regular_users()) // 2]
    local = user["domainname"].split("@")[0]
    prefix = local[: max(3, len(local) - 2)].upper()  # case-insensitive
    expected = expected_hits(
        site, "lower(u.domainname) LIKE :p OR lower(u.fullname) LIKE :p", p=prefix.lower() + "%"
    )
    assert user["domainname"] in expected and len(expected) <= 50, expected
    assert sorted(search(page, prefix)) == expected


def test_a_user_is_found_by_object_id_prefix(page: Any, site: Site) -> None:
    user = site.regular_users()[3]
    oid = user["azureactivedirectoryobjectid"]
    for prefix in (oid[:8], oid[:13].upper()):  # hex digits, then with the dash, in capitals
        expected = expected_hits(
            site,
            "lower(CAST(u.azureactivedirectoryobjectid AS TEXT)) LIKE :p "
            "OR lower(CAST(u.systemuserid AS TEXT)) LIKE :p",
            p=prefix.lower() + "%",
        )
        assert user["domainname"] in expected, expected
        assert sorted(search(page, prefix)) == expected


def test_a_users_page_shows_the_row_and_the_diagnosis_by_rule(page: Any, site: Site) -> None:
    user = site.regular_users()[5]
    diagnosis = site.api().get(
        f"/api/environments/{ENV}/users/{user['azureactivedirectoryobjectid']}/diagnose"
    )
    assert diagnosis.status_code == 200, diagnosis.text
    checks = diagnosis.json()["checks"]

    upn = user["domainname"]
    search(page, upn)
    page.get_by_role("table", name="Users").get_by_role("link", name=upn, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/environments/{ENV}/users/[^/]+$"))
    row = page.get_by_role("table", name="Row")
    expect(row).to_contain_text(upn)
    expect(row).to_contain_text(user["azureactivedirectoryobjectid"])
    expect(row).to_contain_text(user["systemuserid"])
    expect(page.get_by_role("heading", name="Roles")).to_be_visible()
    expect(page.get_by_role("table", name="Events")).to_be_visible()

    listed = diagnosis_items(page)
    shown = []
    for item in listed:
        rule = re.search(r"\bR\d+[a-z]?\b", item)
        word = re.search(r"\b(passed|failed)\b", item, re.IGNORECASE)
        assert rule and word, f"a diagnosis item without its rule id or passed / failed: {item!r}"
        shown.append((rule.group(0), word.group(1).lower() == "passed"))
    assert Counter(shown) == Counter((c["rule"], c["passed"]) for c in checks), (listed, checks)


def diagnosis_items(page: Any) -> list[str]:
    """The texts of the "Diagnosis" list: the first list after the heading "Diagnosis"."""
    heading = page.get_by_role("heading", name="Diagnosis", exact=True)
    expect(heading).to_be_visible()
    items = heading.locator("xpath=following::*[self::ul or self::ol][1]/li")
    expect(items.first).to_be_visible()
    return [t.strip() for t in items.all_inner_texts()]


def log_rows(page: Any) -> tuple[list[str], list[list[str]]]:
    """The provisioning log's "Events" table: its header cells (lower case) and its body rows."""
    table = page.get_by_role("table", name="Events")
    expect(table).to_be_visible()
    header = [h.strip().lower() for h in table.locator("thead th").all_inner_texts()]
    rows = [
        [c.strip() for c in tr.locator("td, th").all_inner_texts()] for tr in table.locator("tbody tr").all()
    ]
    return header, rows


def choose(page: Any, label: str, value: str) -> None:
    """Set a filter field, whether the UI made it a <select> or a text input."""
    field = page.get_by_label(label, exact=True)
    if field.evaluate("e => e.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def rule_counts(site: Site) -> dict[str, int]:
    from sqlalchemy import text

    with site.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ev.rule, count(*) FROM sync_event ev JOIN environment e ON e.id = ev.environment_id "
                "WHERE e.name = :env GROUP BY ev.rule"
            ),
            {"env": ENV},
        ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def test_the_provisioning_log_filtered_by_rule_shows_only_that_rule_and_exports_it(
    page: Any, site: Site
) -> None:
    counts = rule_counts(site)
    assert len(counts) >= 2, f"the first run should leave events of several rules: {counts}"
    rule = min(counts, key=lambda r: (counts[r] < 2, counts[r]))  # a rule with a few events, not all
    page.goto("/log")
    _, unfiltered = log_rows(page)
    assert unfiltered, "the log shows no events"

    choose(page, "Rule", rule)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"[?&]rule={rule}(&|$)"))
    header, rows = log_rows(page)
    assert "rule" in header, header
    col = header.index("rule")
    assert rows, f"no rows for rule {rule}"
    assert len(rows) <= counts[rule] and (len(rows) == counts[rule] or len(rows) >= 20), (len(rows), counts)
    assert all(r[col] == rule for r in rows), [r[col] for r in rows]

    link = page.get_by_role("link", name="CSV", exact=True)
    href = link.get_attribute("href") or ""
    assert re.search(r"/log\.csv\?", href) and f"rule={rule}" in href, href
    answer = page.request.get(href)
    assert answer.ok and answer.headers["content-type"].startswith("text/csv"), answer.headers
    table = list(csv.reader(io.StringIO(answer.text())))
    head, body = [h.lower() for h in table[0]], table[1:]
    assert "rule" in head, head
    assert len(body) == counts[rule] and all(r[head.index("rule")] == rule for r in body), (len(body), counts)


INJECTED = """() => ({
    scripts: [...document.scripts].filter(s => s.textContent.includes("alert(")).length,
    elements: document.querySelectorAll("img[src='x'], svg[onload], iframe, [onerror], [onload]").length,
    bold: [...document.querySelectorAll("b")].filter(b => b.textContent === "Mallory").length,
})"""


def assert_nothing_injected(page: Any, dialogs: Dialogs) -> None:
    page.wait_for_load_state("load")
    assert dialogs.messages == [], f"a script from a user's names ran on {page.url}: {dialogs.messages}"
    assert page.evaluate(INJECTED) == {"scripts": 0, "elements": 0, "bold": 0}, page.url


@pytest.mark.bypass_csp  # escaping is what is tested: no policy stands in for it
def test_names_made_of_html_and_script_show_as_text(page: Any, site: Site, dialogs: Dialogs) -> None:
    html = site.html_user
    page.goto(f"/environments/{ENV}/users/{html['id']}")
    row = page.get_by_role("table", name="Row")
    for key in ("displayName", "givenName", "surname", "jobTitle"):
        expect(row.get_by_text(html[key], exact=True)).to_be_visible()
    assert page.locator("main").inner_text().count(html["displayName"]) >= 1
    assert_nothing_injected(page, dialogs)

    found = search(page, "<script>alert(")  # its full name's prefix, searched and shown back
    assert html["upn"] in found, found
    expect(page.get_by_role("search").get_by_label("Find a user")).to_have_value("<script>alert(")
    assert_nothing_injected(page, dialogs)

    for path in (
        f"/environments/{ENV}?q=%22%3E%3Cscript%3Ealert(%27q%27)%3C/script%3E",
        f"/log?user={html['id']}",
        "/log?user=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "/",
    ):
        page.goto(path)
        assert_nothing_injected(page, dialogs)


def test_an_unknown_environment_or_user_is_a_404_page(page: Any, site: Site) -> None:
    for path in ("/environments/no-such-env", f"/environments/{ENV}/users/nobody@example.invalid"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 404, path
        assert "text/html" in answer.headers["content-type"]
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        audit(page, f"not-found-{path.count('/')}")
