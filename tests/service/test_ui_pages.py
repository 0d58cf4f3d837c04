"""The HTML pages (syncd.service.ui) in-process, on SQLite and PostgreSQL: each page renders, every
value is escaped, sign-in and its cookie, CSRF, the approve / add / refresh flows, 404 pages, the
provisioning log's filters, paging and exports, the runs' paging and the charts' SVG."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import orjson
import pytest
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr
from service_helpers import FakeSync, add_env, add_run
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from syncd.context import AppContext
from syncd.dataverse.schema import BusinessUnit, SyncEvent, SyncRun, SystemUser
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app as create_graph_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.service.app import create_app
from syncd.service.jobs import SyncJobs
from syncd.service.locks import locks_for
from syncd.service.metrics import Metrics
from syncd.service.ui import data, session
from syncd.service.ui.pages import Pages
from syncd.settings import load_settings

TOKEN = "ui-admin-token-0123"
SALES_SKU = "1e1a282c-9c54-43a2-9310-98ef728faace"  # a full Dataverse licence
EVIL = "<script>alert(1)</script>"
SVG = "{http://www.w3.org/2000/svg}"


# -- the stack ------------------------------------------------------------------------------------


class Stack:
    """The daemon's app over a fresh database, a fake sync and (optionally) a fake directory."""

    def __init__(
        self,
        db_url: str,
        token: str | None = TOKEN,
        *,
        directory: GraphClient | None = None,
        jobs: bool = True,
        next_runs: Any = None,
        base_url: str = "http://testserver",
    ) -> None:
        self.appctx = AppContext(load_settings(database_url=db_url, admin_token=token))
        self.engine: Engine = self.appctx.engine()
        self.metrics = Metrics(lambda: self.engine)
        self.sync = FakeSync(self.engine)
        self.jobs = (
            SyncJobs(lambda: self.engine, locks_for(self.engine), self.sync, self.metrics, threading.Event())
            if jobs
            else None
        )
        factory = (lambda: nullcontext(directory)) if directory is not None else None
        self.app = create_app(
            self.appctx, self.metrics, self.jobs, info={"pid": 1}, next_runs=next_runs, directory=factory
        )
        self.client = TestClient(self.app, base_url=base_url, follow_redirects=False)

    def sign_in(self, token: str = TOKEN) -> None:
        r = self.client.post("/login", data={"token": token, "next": "/"})
        assert r.status_code == 303, r.text

    @property
    def pages(self) -> Pages:
        """The app's pages object (its sessions and sign-in limit)."""
        for route in self.app.routes:
            endpoint = getattr(route, "endpoint", None)
            if isinstance(endpoint, functools.partial) and isinstance(endpoint.args[0], Pages):
                return endpoint.args[0]
        raise AssertionError("the app has no pages")

    def csrf(self, path: str = "/") -> str:
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', self.client.get(path).text)
        assert found, "no CSRF field on " + path
        return found.group(1)

    def close(self) -> None:
        self.client.close()
        self.appctx.close()


@pytest.fixture
def make_stack(clean_env: Any, db_url: str) -> Iterator[Any]:
    made: list[Stack] = []

    def make(**kw: Any) -> Stack:
        s = Stack(db_url, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def stack(make_stack: Any) -> Stack:
    s: Stack = make_stack()
    return s


@pytest.fixture
def tenant() -> Iterator[TenantStore]:
    store = TenantStore.open(None)
    generate_tenant(store, users=5, seed=11)
    yield store
    store.close()


@pytest.fixture
def directory(tenant: TenantStore) -> Iterator[GraphClient]:
    client = GraphClient(
        "http://fake-entra.local/v1.0",
        token_provider=StaticToken("x"),
        transport=InProcessTransport(create_graph_app(tenant)),
    )
    yield client
    client.close()


def directory_user(store: TenantStore, alias: str, display: str | None = None) -> dict[str, Any]:
    """A licensed user of the fake tenant (an on-demand add enables them)."""
    domain = store.default_domain() if hasattr(store, "default_domain") else None
    upn = f"{alias}@{domain}" if domain else None
    body = {
        "displayName": display or alias.title(),
        "userPrincipalName": upn or f"{alias}@contoso.example",
        "accountEnabled": True,
        "givenName": "Given",
        "surname": "Tester",
        "mailNickname": alias,
    }
    user: dict[str, Any] = orjson.loads(store.create_user(body))
    store.assign_licenses(user["id"], {"addLicenses": [{"skuId": SALES_SKU}], "removeLicenses": []})
    return user


# -- rows of the database ---------------------------------------------------------------------------


def add_row(engine: Engine, env_id: int, upn: str, fullname: str | None = None, **kw: Any) -> SystemUser:
    with Session(engine) as s, s.begin():
        bu = s.query(BusinessUnit).filter_by(environment_id=env_id).first()
        assert bu is not None
        row = SystemUser(
            environment_id=env_id,
            businessunitid=bu.businessunitid,
            azureactivedirectoryobjectid=kw.pop("oid", uuid.uuid4()),
            domainname=upn,
            fullname=fullname,
            **kw,
        )
        s.add(row)
        s.flush()
        s.expunge(row)
    return row


def add_event(
    engine: Engine,
    env_id: int,
    *,
    run_id: int | None = None,
    row: SystemUser | None = None,
    action: str = "update",
    rule: str = "R9",
    reason: str = "a change",
    changes: dict[str, Any] | None = None,
    ago_s: float = 0.0,
) -> int:
    with Session(engine) as s, s.begin():
        e = SyncEvent(
            run_id=run_id,
            environment_id=env_id,
            systemuserid=row.systemuserid if row is not None else None,
            azureactivedirectoryobjectid=row.azureactivedirectoryobjectid if row is not None else None,
            action=action,
            rule=rule,
            reason=reason,
            changes=orjson.dumps(changes).decode() if changes is not None else None,
            created_at=datetime.now(UTC) - timedelta(seconds=ago_s),
        )
        s.add(e)
        s.flush()
        return e.id


def set_run(engine: Engine, run_id: int, **values: Any) -> None:
    with Session(engine) as s, s.begin():
        s.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))


# -- reading pages ----------------------------------------------------------------------------------


class Outline(HTMLParser):
    """What the tests look for in a page: its landmarks, headings, labels, buttons and links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.h1 = 0
        self.links: dict[str, str] = {}
        self.buttons: list[str] = []
        self.labels: list[str] = []
        self.captions: list[str] = []
        self.scripts = 0
        self._text: list[str] | None = None
        self._href: str | None = None
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "h1":
            self.h1 += 1
        if tag == "script":
            self.scripts += 1
        if tag in ("a", "button", "label", "caption"):
            self._text, self._href = [], dict(attrs).get("href")
            self._stack.append(tag)

    def handle_data(self, text: str) -> None:
        if self._text is not None:
            self._text.append(text)

    def handle_endtag(self, tag: str) -> None:
        if self._stack and tag == self._stack[-1] and self._text is not None:
            self._stack.pop()
            text = " ".join("".join(self._text).split())
            if tag == "a" and self._href is not None:
                self.links.setdefault(text, self._href)
            elif tag == "button":
                self.buttons.append(text)
            elif tag == "label":
                self.labels.append(text)
            elif tag == "caption":
                self.captions.append(text)
            self._text = None

    def has(self, tag: str, **attrs: str) -> bool:
        return any(t == tag and all(a.get(k) == v for k, v in attrs.items()) for t, a in self.tags)


def outline(html: str) -> Outline:
    o = Outline()
    o.feed(html)
    return o


def assert_layout(html: str) -> Outline:
    """The contract's frame of every page: lang, one h1, main, the Main nav and its links."""
    o = outline(html)
    assert html.startswith("<!doctype html>") and o.has("html", lang="en")
    assert o.h1 == 1 and o.has("main") and o.has("nav", **{"aria-label": "Main"})
    assert o.links["Overview"] == "/" and o.links["Provisioning log"] == "/log"
    assert o.links["API"] == "/api/docs"
    assert o.has("link", rel="stylesheet", href="/static/syncd.css")
    assert o.scripts == 0
    return o


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def status_line(html: str) -> str:
    found = re.search(r'<p role="status"[^>]*>(.*?)</p>', html, flags=re.S)
    assert found, "no role=status line"
    return found.group(1)


# -- every page ---------------------------------------------------------------------------------------


def test_each_page_renders_in_the_common_layout(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    run = add_run(stack.engine, prod, kind="full", ago_s=60)
    row = add_row(stack.engine, prod, "ann@contoso.example", "Ann Example")
    add_event(stack.engine, prod, run_id=run, row=row, action="create", rule="R1")
    pages = ["/", "/environments/prod", "/environments/prod?q=ann", "/log", "/login", "/log?environment=prod"]
    for path in pages:
        r = stack.client.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src" not in r.headers["content-security-policy"]
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert_layout(r.text)
    css = stack.client.get("/static/syncd.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".scroll" in css.text


def test_the_overview_shows_each_environments_state_counts_runs_and_charts(stack: Stack) -> None:
    ok, failing, blocked = (add_env(stack.engine, n) for n in ("ok", "failing", "blocked"))
    add_env(stack.engine, "nodb", has_database=False)
    add_env(stack.engine, "idle")
    syncing = add_env(stack.engine, "busy")
    quarantined = add_env(stack.engine, "stuck")
    for i in range(3):
        add_run(stack.engine, ok, ago_s=300 - i)
    add_run(stack.engine, failing, ago_s=50)
    add_run(stack.engine, failing, outcome="failed", error="directory unavailable", ago_s=10)
    add_run(stack.engine, blocked, outcome="blocked", ago_s=10)
    add_run(stack.engine, blocked, kind="user", ago_s=5)  # a one-user run leaves it blocked
    add_run(stack.engine, syncing, ago_s=30)
    set_run(stack.engine, add_run(stack.engine, syncing, ago_s=1), outcome="running", finished_at=None)
    for ago in (40, 30, 20, 10):
        add_run(stack.engine, quarantined, outcome="failed", ago_s=ago)
    enabled_run = add_run(stack.engine, ok, ago_s=1)
    set_run(stack.engine, enabled_run, users_enabled=42)
    add_row(stack.engine, ok, "a@contoso.example")
    add_row(stack.engine, ok, "b@contoso.example", isdisabled=True)
    page = stack.client.get("/").text
    o = assert_layout(page)

    def section(name: str) -> str:
        start = page.index(f'<section class="env" aria-label="{name}">')
        return page[start : page.index("</section>", start)]

    expected = {
        "ok": "in step",
        "failing": "failing",
        "blocked": "blocked",
        "nodb": "no database",
        "idle": "never run",
        "busy": "syncing",
        "stuck": "quarantined",
    }
    for name, state in expected.items():
        s = section(name)
        assert re.search(rf'class="state [^"]*">{state}</span>', s), (name, state)
        assert o.links[name] == f"/environments/{name}"
    s = section("ok")
    # counts: the two rows above plus the environment's built-in users
    assert re.search(r"<dt>Disabled users</dt><dd>1</dd>", s)
    assert "delta run" in s and "succeeded" in s
    assert "not scheduled by this server" in s
    charts = svgs(s)
    assert len(charts) == 2
    runs_chart, enabled_chart = charts
    for svg in charts:
        assert svg.tag == SVG + "svg" and svg.get("role") == "img"
        title = svg.find(SVG + "title")
        assert title is not None and title.text == svg.get("aria-label")
    assert runs_chart.get("aria-label", "").startswith("Runs of ok")
    assert enabled_chart.get("aria-label", "").startswith("Enabled users of ok")
    assert len(runs_chart.findall(f"{SVG}rect[@class]")) == 2 * 4  # duration and changes of 4 runs
    # the text alternative: the same runs as a table
    assert "<caption>Runs of ok, oldest first</caption>" in s
    runs_table = s[s.index("<caption>Runs of ok, oldest first</caption>") :].split("</table>")[0]
    assert runs_table.count("<td>delta</td>") == 4
    assert enabled_chart.find(f"{SVG}polyline") is not None and "<td>42</td>" in s
    assert enabled_chart.get("aria-label", "").startswith("Enabled users of ok: from 42 to 42")
    # every environment's charts, including one with no runs, are well-formed
    assert all(len(svgs(section(n))) == 2 for n in expected)


def test_the_overview_shows_the_next_scheduled_runs(make_stack: Any) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=3)
    s: Stack = make_stack(next_runs=lambda name: {"delta": soon, "full": soon + timedelta(hours=1)})
    add_env(s.engine, "prod")
    page = s.client.get("/").text
    assert "not scheduled by this server" not in page
    assert f"delta {soon.strftime('%Y-%m-%d %H:%M:%S')} UTC" in page
    assert "full " + (soon + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S") in page
    env_page = s.client.get("/environments/prod").text
    assert f"delta {soon.strftime('%Y-%m-%d %H:%M:%S')} UTC" in env_page


def test_a_partial_run_is_coloured_apart(stack: Stack) -> None:
    # A run in which some rows failed is neither succeeded (green) nor failed (red).
    prod = add_env(stack.engine, "prod")
    add_run(stack.engine, prod, kind="full", outcome="partial")
    page = stack.client.get("/environments/prod").text
    assert '<td class="o-partial">partial</td>' in page
    css = stack.client.get("/static/syncd.css").text

    def colour(cls: str) -> str:
        found = re.search(r"\.o-" + cls + r"\b[^{]*\{ color: ([^;]+);", css)
        assert found, cls
        return found.group(1)

    assert colour("partial") not in {colour(c) for c in ("succeeded", "failed", "blocked")}


# -- escaping -----------------------------------------------------------------------------------------


def test_every_value_is_escaped(stack: Stack) -> None:
    evil_env = add_env(stack.engine, EVIL)
    run = add_run(stack.engine, evil_env, outcome="failed", error='<img src=x onerror="boom">')
    row = add_row(stack.engine, evil_env, "<b>x</b>@contoso.example", EVIL)
    add_event(
        stack.engine,
        evil_env,
        run_id=run,
        row=row,
        reason="<script>alert(2)</script>",
        changes={"fullname": "<i>new</i>"},
    )
    env_url = "/environments/" + "%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
    pages = [
        "/",
        env_url,
        env_url + "?q=%3Cb",
        env_url + "?q=" + "%3Cscript",
        f"{env_url}/users/{row.systemuserid}",
        "/log",
        "/log?user=%3Cscript%3E",
    ]
    for path in pages:
        r = stack.client.get(path)
        assert r.status_code in (200, 400), (path, r.status_code)
        page = r.text
        assert "<script>" not in page and "<img" not in page and "<b>x" not in page, path
        assert "<i>new" not in page, path
        for svg in svgs(page):  # the charts stay well-formed XML
            assert svg.get("role") == "img"
    overview = stack.client.get("/").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in overview
    assert 'aria-label="&lt;script&gt;alert(1)&lt;/script&gt;"' in overview
    env_page = stack.client.get(env_url).text
    assert "&lt;img src=x onerror=&#34;boom&#34;&gt;" in env_page
    found = stack.client.get(env_url + "?q=%3Cb").text
    assert "&lt;b&gt;x&lt;/b&gt;@contoso.example" in found and "&lt;script&gt;alert(1)" in found
    log = stack.client.get("/log").text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in log and "&lt;i&gt;new&lt;/i&gt;" in log


def test_an_environment_named_with_a_slash_is_one_segment(stack: Stack) -> None:
    add_env(stack.engine, "a/b")
    o = outline(stack.client.get("/").text)
    assert o.links["a/b"] == "/environments/a%2Fb"
    r = stack.client.get("/environments/a%2Fb")
    assert r.status_code == 200 and "<h1>Environment a/b</h1>" in r.text
    # signing in from it comes back to it
    login = outline(r.text).links["Sign in"]
    assert login == "/login?next=%2Fenvironments%2Fa%252Fb"
    form = stack.client.get(login).text
    assert 'name="next" value="/environments/a%2Fb"' in form
    r = stack.client.post("/login", data={"token": TOKEN, "next": "/environments/a%2Fb"})
    assert r.headers["location"] == "/environments/a%2Fb"
    assert stack.client.get(r.headers["location"]).status_code == 200


# -- 404 ----------------------------------------------------------------------------------------------


def test_unknown_environment_and_user_are_404_pages(
    stack: Stack, make_stack: Any, directory: GraphClient
) -> None:
    add_env(stack.engine, "prod")
    for path in ("/environments/nope", "/environments/nope/users/ann@contoso.example"):
        r = stack.client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "no environment named &#39;nope&#39;" in r.text
        assert_layout(r.text)
    with_directory: Stack = make_stack(directory=directory)
    r = with_directory.client.get("/environments/prod/users/nobody@contoso.example")
    assert r.status_code == 404 and "nor in the directory" in r.text
    assert_layout(r.text)
    r = with_directory.client.get("/environments/prod/users/not a key")
    assert r.status_code == 404


# -- sign-in ------------------------------------------------------------------------------------------


def test_sign_in_sets_a_signed_session_cookie(stack: Stack) -> None:
    add_env(stack.engine, "prod")
    o = outline(stack.client.get("/").text)
    assert o.links["Sign in"] == "/login?next=%2F" and "Sign out" not in o.buttons
    form = outline(stack.client.get("/login?next=/environments/prod").text)
    assert "Admin token" in form.labels and "Sign in" in form.buttons
    assert form.has("input", name="token", type="password", id="token")
    r = stack.client.post("/login", data={"token": TOKEN, "next": "/environments/prod"})
    assert r.status_code == 303 and r.headers["location"] == "/environments/prod"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(session.COOKIE + "=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert f"max-age={session.MAX_AGE_S}" in flags and "secure" not in flags
    assert TOKEN not in cookie and TOKEN not in r.headers["location"]
    o = outline(stack.client.get("/").text)
    assert "Sign out" in o.buttons and "Sign in" not in o.links


def test_the_cookie_is_secure_over_https(make_stack: Any) -> None:
    s: Stack = make_stack(base_url="https://testserver")
    r = s.client.post("/login", data={"token": TOKEN, "next": "/"})
    assert r.status_code == 303
    assert "secure" in {f.strip().lower() for f in r.headers["set-cookie"].split(";")}


def test_a_wrong_token_signs_no_one_in(stack: Stack) -> None:
    for given in ("wrong", "", TOKEN + "x", TOKEN[:-1]):
        r = stack.client.post("/login", data={"token": given, "next": "/"})
        assert r.status_code == 401 and "set-cookie" not in r.headers, given
        assert 'role="alert"' in r.text and "not the admin token" in r.text
    r = stack.client.post("/login", data={"token": "x" * 100_000, "next": "/"})
    assert r.status_code == 413 and "set-cookie" not in r.headers
    # a forged cookie is no session
    stack.client.cookies.set(session.COOKIE, "eyJzaWQiOiJ4In0.forged.sig")
    assert "Sign out" not in outline(stack.client.get("/").text).buttons


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "http:/x",
        "javascript:alert(1)",
        "evil",
        "/\t/evil",
    ],
)
def test_next_goes_to_a_local_path_only(stack: Stack, target: str) -> None:
    r = stack.client.post("/login", data={"token": TOKEN, "next": target})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_new_token_ends_every_session(db_url: str, make_stack: Any) -> None:
    old: Stack = make_stack()
    old.sign_in()
    cookie = old.client.cookies[session.COOKIE]
    new: Stack = make_stack(token="a-rotated-token")
    new.client.cookies.set(session.COOKIE, cookie)
    assert "Sign out" not in outline(new.client.get("/").text).buttons
    add_env(new.engine, "prod")
    r = new.client.post(
        "/environments/prod/approve", data={"csrf": new.pages.sessions.csrf_token(TOKEN, "x")}
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_sign_out_clears_the_session(stack: Stack) -> None:
    stack.sign_in()
    r = stack.client.post("/logout", data={"csrf": stack.csrf()})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert 'syncd_session=""' in r.headers["set-cookie"] or "max-age=0" in r.headers["set-cookie"].lower()
    assert "Sign in" in outline(stack.client.get("/").text).links


def test_a_cookie_saved_before_sign_out_is_no_session(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    add_run(stack.engine, prod, outcome="blocked")
    stack.sign_in()
    csrf = stack.csrf("/environments/prod")
    saved = stack.client.cookies[session.COOKIE]
    r = stack.client.post("/logout", data={"csrf": csrf})
    assert r.status_code == 303
    stack.client.cookies.set(session.COOKIE, saved)  # replayed, with its CSRF field
    assert "Sign out" not in outline(stack.client.get("/").text).buttons
    for path in ("/environments/prod/approve", "/logout"):
        r = stack.client.post(path, data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    assert stack.sync.calls == []
    stack.client.cookies.clear()
    stack.sign_in()  # a new session works
    assert "Sign out" in outline(stack.client.get("/").text).buttons


def test_revoked_ids_are_bounded_and_overflowing_them_ends_every_session(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "MAX_REVOKED", 3)
    cookies = []
    for _ in range(4):
        stack.sign_in()
        cookies.append(stack.client.cookies[session.COOKIE])
        r = stack.client.post("/logout", data={"csrf": stack.csrf()})
        assert r.status_code == 303
        assert len(stack.pages.sessions._revoked) <= 3
    stack.sign_in()
    live = stack.client.cookies[session.COOKIE]
    for cookie in cookies:
        stack.client.cookies.set(session.COOKIE, cookie)
        assert "Sign out" not in outline(stack.client.get("/").text).buttons
    stack.client.cookies.set(session.COOKIE, live)
    assert "Sign out" in outline(stack.client.get("/").text).buttons


def test_a_cookie_says_nothing_about_the_token(make_stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first: Stack = make_stack()
    first.sign_in()
    cookie = first.client.cookies[session.COOKIE]
    # a key made from the token alone does not verify it: guessing the token offline gets nowhere
    for secret in (hashlib.sha256(b"syncd-ui:" + TOKEN.encode()).hexdigest(), TOKEN):
        with pytest.raises(BadSignature):
            URLSafeTimedSerializer(secret, salt=session.SALT).loads(cookie)
    # another process with the same token (a restart) takes no session of this one
    again: Stack = make_stack()
    again.client.cookies.set(session.COOKIE, cookie)
    assert "Sign out" not in outline(again.client.get("/").text).buttons
    # rotating the token ends the session on the same process
    assert "Sign out" in outline(first.client.get("/").text).buttons
    rotated = first.appctx.settings.model_copy(update={"admin_token": SecretStr("a-rotated-token")})
    monkeypatch.setattr(first.appctx, "settings", rotated)
    assert "Sign out" not in outline(first.client.get("/").text).buttons


def test_too_many_wrong_tokens_lock_the_address_out(stack: Stack) -> None:
    now = [1000.0]
    stack.pages.sign_ins.clock = lambda: now[0]
    # a right token resets the count
    for _ in range(session.MAX_FAILURES - 1):
        assert stack.client.post("/login", data={"token": "wrong", "next": "/"}).status_code == 401
    stack.sign_in()
    with capture_logs() as logs:
        for _ in range(session.MAX_FAILURES):
            assert stack.client.post("/login", data={"token": "wrong", "next": "/"}).status_code == 401
        for given in ("wrong", TOKEN):  # refused, even with the right token
            r = stack.client.post("/login", data={"token": given, "next": "/"})
            assert r.status_code == 429 and "set-cookie" not in r.headers, given
            assert r.headers["content-type"].startswith("text/html") and r.headers["retry-after"] == "60"
            assert "try again in 60 seconds" in r.text
    refused = [e for e in logs if e["event"] == "ui_sign_in_locked_out"]
    assert len(refused) == 2 and refused[0]["log_level"] == "warning"
    assert refused[0]["client"] == "testclient" and refused[0]["retry_after_s"] == 60
    now[0] += 30
    r = stack.client.post("/login", data={"token": TOKEN, "next": "/"})
    assert r.status_code == 429 and "try again in 30 seconds" in r.text
    # another address is not locked out
    other = TestClient(stack.app, follow_redirects=False, client=("192.0.2.7", 5000))
    assert other.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303
    now[0] += session.LOCKOUT_S
    assert stack.client.post("/login", data={"token": TOKEN, "next": "/"}).status_code == 303


def _chunked(size: int) -> Iterator[bytes]:
    yield b"next=%2F&token="
    for _ in range(size // 65536):
        yield b"x" * 65536


def test_an_oversized_form_is_413_however_it_is_sent(stack: Stack) -> None:
    add_env(stack.engine, "prod")
    form = {"content-type": "application/x-www-form-urlencoded"}
    # chunked (no Content-Length): 2 MB, past the form parser's own limit too
    r = stack.client.post("/login", content=_chunked(2 * 1024 * 1024), headers=form)
    assert r.status_code == 413 and r.headers["content-type"].startswith("text/html"), r.text
    assert "set-cookie" not in r.headers
    r = stack.client.post("/login", content=_chunked(100_000), headers=form)
    assert r.status_code == 413
    stack.sign_in()
    for path in ("/environments/prod/approve", "/environments/prod/users", "/logout"):
        r = stack.client.post(path, content=_chunked(2 * 1024 * 1024), headers=form)
        assert r.status_code == 413 and r.headers["content-type"].startswith("text/html"), path
    assert stack.sync.calls == []
    assert "Sign out" in outline(stack.client.get("/").text).buttons


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"token=%ff&next=%2F", "application/x-www-form-urlencoded"),
        (b"token=\xff", "application/x-www-form-urlencoded"),
        (b"token", "application/x-www-form-urlencoded"),
        (b"--x\r\nnonsense", "multipart/form-data"),
        (b'{"token": "x"}', "application/json"),
    ],
)
def test_a_malformed_form_is_400(stack: Stack, body: bytes, content_type: str) -> None:
    r = stack.client.post("/login", content=body, headers={"content-type": content_type})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html"), r.text
    stack.sign_in()
    r = stack.client.post("/logout", content=body, headers={"content-type": content_type})
    assert r.status_code == 400
    assert "Sign out" in outline(stack.client.get("/").text).buttons


def test_a_multipart_or_chunked_sign_in_form_is_read(stack: Stack) -> None:
    r = stack.client.post("/login", files={"token": (None, TOKEN), "next": (None, "/log")})
    assert r.status_code == 303 and r.headers["location"] == "/log"
    body = f"token={TOKEN}&next=%2Flog".encode()
    r = stack.client.post(
        "/login",
        content=iter([body[:5], body[5:]]),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/log"


def test_without_a_token_there_is_no_sign_in_and_every_post_is_403(make_stack: Any) -> None:
    s: Stack = make_stack(token=None)
    prod = add_env(s.engine, "prod")
    add_run(s.engine, prod, outcome="blocked")
    row = add_row(s.engine, prod, "ann@contoso.example")
    for path in ("/", "/environments/prod", "/login", "/log"):
        o = outline(s.client.get(path).text)
        assert "Sign in" not in o.links and "Sign out" not in o.buttons, path
        assert "Approve disables" not in o.buttons and "Sign in" not in o.buttons, path
        assert not o.has("input", name="token"), path
    for path, form in [
        ("/login", {"token": "", "next": "/"}),
        ("/logout", {}),
        ("/environments/prod/approve", {}),
        ("/environments/prod/users", {"user": "ann@contoso.example"}),
        (f"/environments/prod/users/{row.systemuserid}/refresh", {}),
    ]:
        r = s.client.post(path, data=form)
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html"), path
    assert s.sync.calls == []


def test_a_changing_post_needs_the_session_and_its_csrf_field(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    add_run(stack.engine, prod, outcome="blocked")
    r = stack.client.post("/environments/prod/approve", data={})
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fenvironments%2Fprod"
    stack.sign_in()
    for form in (
        {},
        {"csrf": ""},
        {"csrf": "0" * 64},
        {"csrf": stack.pages.sessions.csrf_token(TOKEN, "another")},
    ):
        r = stack.client.post("/environments/prod/approve", data=form)
        assert r.status_code == 403 and "CSRF" in r.text, form
    assert stack.sync.calls == []
    r = stack.client.post("/logout", data={})
    assert r.status_code == 403


# -- approve -------------------------------------------------------------------------------------------


def blocked_environment(stack: Stack) -> tuple[int, int, SystemUser]:
    prod = add_env(stack.engine, "prod")
    add_run(stack.engine, prod, kind="full", ago_s=600)
    run = add_run(stack.engine, prod, kind="full", outcome="blocked", ago_s=60)
    set_run(stack.engine, run, blocked_disables=1)
    row = add_row(stack.engine, prod, "leaver@contoso.example", "Lee Leaver")
    add_event(
        stack.engine,
        prod,
        run_id=run,
        row=row,
        action="withheld",
        rule="R3",
        reason="Withheld by the mass-disable guard: 60% of users",
    )
    return prod, run, row


def test_a_blocked_run_lists_its_pending_disables_and_approving_runs_a_full_run(stack: Stack) -> None:
    _, run, _ = blocked_environment(stack)
    page = stack.client.get("/environments/prod").text
    o = outline(page)
    assert '<h2 id="pending-h">Pending disables</h2>' in page
    assert "leaver@contoso.example" in o.links and "Withheld by the mass-disable guard" in page
    assert "Approve disables" in o.buttons
    assert "blocked" in stack.client.get("/").text
    stack.sign_in()
    form = {"csrf": stack.csrf("/environments/prod"), "run": str(run)}
    r = stack.client.post("/environments/prod/approve", data=form)
    assert r.status_code == 303 and r.headers["location"] == "/environments/prod"
    assert [(name, req.kind, req.allow_mass_disable, req.trigger) for name, req in stack.sync.calls] == [
        ("prod", "full", True, "ui")
    ]
    after = stack.client.get("/environments/prod").text
    assert re.match(r"Run \d+ \(full, disables approved\): succeeded", status_line(after))
    assert "Pending disables" not in after  # the full run succeeded: nothing is pending now
    # the message is shown once
    assert 'role="status"' not in stack.client.get("/environments/prod").text


def test_approving_while_a_run_holds_the_environment_says_busy(stack: Stack) -> None:
    _, run, _ = blocked_environment(stack)
    stack.sign_in()
    csrf = stack.csrf("/environments/prod")
    stack.sync.gate = threading.Event()
    first: dict[str, Any] = {}
    t = threading.Thread(
        target=lambda: first.update(
            r=stack.client.post("/api/environments/prod/sync", headers={"Authorization": f"Bearer {TOKEN}"})
        )
    )
    t.start()
    try:
        assert stack.sync.entered.wait(10)
        r = stack.client.post("/environments/prod/approve", data={"csrf": csrf, "run": str(run)})
        assert r.status_code == 303
        assert "in progress" in status_line(stack.client.get("/environments/prod").text)
    finally:
        stack.sync.gate.set()
        t.join(10)
    assert len(stack.sync.calls) == 1


def test_approving_without_sync_jobs_is_a_message(make_stack: Any) -> None:
    s: Stack = make_stack(jobs=False)
    _, run, _ = blocked_environment(s)
    s.sign_in()
    r = s.client.post(
        "/environments/prod/approve", data={"csrf": s.csrf("/environments/prod"), "run": str(run)}
    )
    assert r.status_code == 303
    assert "runs no sync jobs" in status_line(s.client.get("/environments/prod").text)
    r = s.client.post("/environments/nope/approve", data={"csrf": s.csrf("/environments/prod")})
    assert r.status_code == 404


# -- users: add, refresh ---------------------------------------------------------------------------


def test_add_and_refresh_a_user_from_the_directory(
    make_stack: Any, tenant: TenantStore, directory: GraphClient
) -> None:
    s: Stack = make_stack(directory=directory)
    add_env(s.engine, "prod")
    zoe = directory_user(tenant, "zoe", EVIL)
    url = f"/environments/prod/users/{zoe['id']}"
    page = s.client.get(url).text
    o = assert_layout(page)
    assert "Add user" in o.buttons and "Refresh from directory" in o.buttons
    assert re.search(
        r'<li class="pass"><span class="rule">R\w+</span> <span class="verdict">passed</span>', page
    )
    assert "has no row in prod" in page
    s.sign_in()
    r = s.client.post("/environments/prod/users", data={"user": zoe["id"], "csrf": s.csrf(url)})
    assert r.status_code == 303 and r.headers["location"] == url
    page = s.client.get(url).text
    assert status_line(page).startswith("Add: create by R")
    o = outline(page)
    assert "Row" in o.captions and "Events" in o.captions and "Add user" not in o.buttons
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<th scope="row">domainname</th><td>' + zoe["userPrincipalName"] in page
    # the row's UPN names the same page
    assert s.client.get(f"/environments/prod/users/{zoe['userPrincipalName']}").status_code == 200
    # a search finds the user, and links to their page
    found = outline(s.client.get("/environments/prod?q=" + zoe["userPrincipalName"][:4]).text)
    assert "Users" in found.captions
    assert found.links[zoe["userPrincipalName"]].startswith("/environments/prod/users/")
    r = s.client.post(url + "/refresh", data={"csrf": s.csrf(url)})
    assert r.status_code == 303 and r.headers["location"] == url
    assert status_line(s.client.get(url).text).startswith("Refresh: ")
    tenant.update_user(zoe["id"], {"accountEnabled": False})
    s.client.post(url + "/refresh", data={"csrf": s.csrf(url)})
    page = s.client.get(url).text
    assert status_line(page).startswith("Refresh: disable by ")
    assert "Add user" in outline(page).buttons  # a disabled row may be added back
    log = s.client.get("/log?" + "environment=prod&user=" + zoe["userPrincipalName"]).text
    assert log.count("<td>disable</td>") == 1 and log.count("<td>create</td>") == 1


def test_a_refused_add_says_why(make_stack: Any, tenant: TenantStore, directory: GraphClient) -> None:
    s: Stack = make_stack(directory=directory)
    add_env(s.engine, "prod")
    body = {
        "displayName": "Nolicence",
        "userPrincipalName": "nolicence@"
        + directory_user(tenant, "helper")["userPrincipalName"].split("@")[1],
        "accountEnabled": True,
        "mailNickname": "nolicence",
    }
    user = orjson.loads(tenant.create_user(body))
    url = f"/environments/prod/users/{user['id']}"
    assert '<span class="verdict">failed</span>' in s.client.get(url).text
    s.sign_in()
    s.client.post("/environments/prod/users", data={"user": user["id"], "csrf": s.csrf(url)})
    assert status_line(s.client.get(url).text).startswith("Add refused: ")


# -- the provisioning log ------------------------------------------------------------------------------


@pytest.fixture
def logged(stack: Stack) -> dict[str, Any]:
    prod, test = add_env(stack.engine, "prod"), add_env(stack.engine, "test")
    run1 = add_run(stack.engine, prod, kind="full", ago_s=7200)
    run2 = add_run(stack.engine, prod, ago_s=60)
    run3 = add_run(stack.engine, test, ago_s=30)
    ann = add_row(stack.engine, prod, "ann@contoso.example", "Ann")
    bob = add_row(stack.engine, prod, "bob@contoso.example", "Bob")
    tess = add_row(stack.engine, test, "tess@contoso.example", "Tess")
    add_event(stack.engine, prod, run_id=run1, row=ann, action="create", rule="R1", ago_s=7200)
    add_event(stack.engine, prod, run_id=run1, row=bob, action="create", rule="R1", ago_s=7200)
    add_event(
        stack.engine,
        prod,
        run_id=run2,
        row=ann,
        action="update",
        rule="R9",
        changes={"fullname": "Ann E."},
        ago_s=60,
    )
    add_event(stack.engine, prod, run_id=run2, row=bob, action="disable", rule="R3", ago_s=60)
    add_event(stack.engine, test, run_id=run3, row=tess, action="create", rule="R1", ago_s=30)
    return {"run1": run1, "run2": run2, "run3": run3, "ann": ann, "bob": bob}


def log_rows(stack: Stack, query: str) -> list[list[str]]:
    r = stack.client.get("/log?" + query)
    assert r.status_code == 200, (query, r.text)
    body = r.text[r.text.index("<caption>Events</caption>") :]
    body = body[: body.index("</table>")]
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", body, flags=re.S)
    cells = [row.split("</td><td>") for row in rows if 'colspan="8"' not in row]
    return [[" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in row] for row in cells]


def test_the_log_filters(stack: Stack, logged: dict[str, Any]) -> None:
    page = stack.client.get("/log").text
    o = assert_layout(page)
    for label in ("Environment", "Run", "User", "Action", "Rule", "Since", "Until"):
        assert label in o.labels
    assert "Filter" in o.buttons and "Events" in o.captions
    assert o.links["CSV"] == "/log.csv" and o.links["JSON lines"] == "/log.jsonl"
    assert len(log_rows(stack, "")) == 5
    assert len(log_rows(stack, "environment=prod")) == 4
    assert len(log_rows(stack, "environment=test")) == 1
    assert len(log_rows(stack, f"run={logged['run1']}")) == 2
    assert len(log_rows(stack, "action=create")) == 3
    assert len(log_rows(stack, "rule=r9")) == 1
    ann = logged["ann"]
    for key in (
        "ann@contoso.example",
        "ANN@contoso.example",
        str(ann.azureactivedirectoryobjectid),
        str(ann.systemuserid),
    ):
        rows = log_rows(stack, "user=" + key)
        assert len(rows) == 2 and {r[4] for r in rows} == {"create", "update"}, key
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert len(log_rows(stack, f"since={hour_ago}")) == 3
    assert len(log_rows(stack, f"until={hour_ago}")) == 2
    assert len(log_rows(stack, f"environment=prod&action=create&until={hour_ago}")) == 2
    changed = log_rows(stack, "rule=R9")[0]
    assert changed[7] == "fullname: – → Ann E." or changed[7].startswith("fullname: ")
    assert "→ Ann E." in changed[7]
    # the filters stay in the form and in the export links
    o = outline(stack.client.get("/log?environment=prod&action=create").text)
    assert o.links["CSV"] == "/log.csv?environment=prod&action=create"
    assert o.links["JSON lines"] == "/log.jsonl?environment=prod&action=create"


@pytest.mark.parametrize(
    "query",
    [
        "run=x",
        "since=yesterday",
        "until=2026-13-01",
        "action=explode",
        "environment=nope",
        "user=nobody@x.example",
        "rule=nine",
        "rule=%00",  # PostgreSQL's text holds no NUL: a bad rule, never a database error
        "rule=R9%00",
        "since=2026-11-02&until=2026-11-01",  # an empty range, as GET /api/events refuses it
        "since=2026-11-01&until=2026-11-01",
    ],
)
def test_a_bad_filter_is_a_message(stack: Stack, logged: dict[str, Any], query: str) -> None:
    r = stack.client.get("/log?" + query)
    assert r.status_code == 400 and 'role="alert"' in r.text
    assert_layout(r.text)
    assert stack.client.get("/log.csv?" + query).status_code == 400


def test_the_log_pages_by_50_and_exports_every_event(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    run = add_run(stack.engine, prod)
    row = add_row(stack.engine, prod, "many@contoso.example", 'Many, "quoted"')
    ids = [add_event(stack.engine, prod, run_id=run, row=row, reason=f"event {i}") for i in range(62)]
    first = stack.client.get("/log?environment=prod").text
    assert first.count("<td>update</td>") == 50
    older = outline(first).links["Older events"]
    assert older == f"/log?environment=prod&before={sorted(ids)[-50]}"
    second = stack.client.get(older).text
    assert second.count("<td>update</td>") == 12 and "Older events" not in outline(second).links
    r = stack.client.get("/log.csv?environment=prod")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert tuple(rows[0]) == data.CSV_COLUMNS and len(rows) == 63
    r = stack.client.get("/log.jsonl?environment=prod&user=many@contoso.example")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 62 and lines[0]["id"] == max(ids) and lines[-1]["id"] == min(ids)
    assert lines[0]["domainname"] == "many@contoso.example"


# -- runs ---------------------------------------------------------------------------------------------


def test_the_runs_table_pages_by_20(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    ids = [add_run(stack.engine, prod, ago_s=1000 - i) for i in range(45)]
    seen: list[str] = []
    url: str | None = "/environments/prod"
    pages = 0
    while url is not None:
        page = stack.client.get(url).text
        o = outline(page)
        assert "Runs" in o.captions
        seen += re.findall(r'<tr><td><a href="/log\?run=\d+">(\d+)</a>', page)
        url = o.links.get("Older runs")
        pages += 1
    assert pages == 3
    assert [int(i) for i in seen] == sorted(ids, reverse=True)
    assert stack.client.get("/environments/prod?before=x").status_code == 400


def test_the_search_is_limited_and_empty_without_a_query(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    for i in range(55):
        add_row(stack.engine, prod, f"user{i:02}@contoso.example")
    page = stack.client.get("/environments/prod").text
    o = outline(page)
    assert o.has("form", role="search") and "Find a user" in o.labels and "Search" in o.buttons
    assert o.has("input", name="q", id="q")
    assert "Users" not in o.captions
    page = stack.client.get("/environments/prod?q=USER").text
    assert page.count('<tr><td><a href="/environments/prod/users/') == 50
    assert "The first 50 matches" in page
    assert "No user of prod matches" in stack.client.get("/environments/prod?q=zzz").text


def test_an_unknown_page_is_the_404_page_and_the_api_keeps_its_json(stack: Stack) -> None:
    r = stack.client.get("/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert_layout(r.text)
    r = stack.client.put("/log")
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    r = stack.client.get("/api/no/such/route")
    assert r.status_code == 404 and r.json()["error"] == "not found"
    r = stack.client.delete("/api/runs")
    assert r.status_code == 405 and r.json()["error"] == "method not allowed"


def test_a_page_of_the_log_after_an_event_that_is_not_there_is_a_message(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    add_event(stack.engine, prod, run_id=add_run(stack.engine, prod))
    r = stack.client.get("/log?before=999999")
    # (no event: an empty page, or the message that the event is unknown; never a failure)
    assert r.status_code in (200, 400) and "Events" in outline(r.text).captions
    assert stack.client.get("/log?before=-1").status_code == 400


def test_a_session_expires(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    add_env(stack.engine, "prod")
    stack.sign_in()
    assert "Sign out" in outline(stack.client.get("/").text).buttons
    monkeypatch.setattr(session, "MAX_AGE_S", -1)  # every cookie is now older than its age allows
    assert "Sign out" not in outline(stack.client.get("/").text).buttons
    r = stack.client.post("/environments/prod/approve", data={"csrf": "x"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_every_template_and_stylesheet_ships_in_the_wheel() -> None:
    import fnmatch
    import tomllib
    from pathlib import Path

    import syncd.service.ui as ui

    root = Path(ui.__file__).parent
    pyproject = tomllib.loads((root.parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["syncd.service.ui"]
    files = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".html", ".css")
    ]
    assert any(f.startswith("templates/") for f in files) and "static/syncd.css" in files
    for f in files:
        assert any(fnmatch.fnmatch(f, g) for g in globs), f"{f} is not in the wheel's package data"


def test_the_enabled_users_chart_reaches_past_the_delta_runs_to_the_full_runs_that_counted(
    stack: Stack,
) -> None:
    prod = add_env(stack.engine, "prod")
    for users, ago in ((5, 9000), (7, 8000)):
        set_run(stack.engine, add_run(stack.engine, prod, kind="full", ago_s=ago), users_enabled=users)
    for i in range(60):  # delta runs count no users
        add_run(stack.engine, prod, ago_s=3000 - i)
    page = stack.client.get("/").text
    runs_chart, enabled_chart = svgs(page)
    assert len(runs_chart.findall(f"{SVG}rect[@class]")) == 2 * 50  # the last 50 runs
    assert enabled_chart.get("aria-label") == (
        "Enabled users of prod: from 5 to 7 over the last 2 runs that recorded them, oldest first"
    )
    assert len(enabled_chart.findall(f"{SVG}circle")) == 2
    assert "<caption>Enabled users of prod after each run that counted them, oldest first</caption>" in page


def _enabled_users_shown(html: str) -> int:
    found = re.search(r"enabled users</th><td>(\d+)</td>", html)
    assert found, "no enabled-users count on the page"
    return int(found.group(1))


def test_the_overview_reuses_the_pages_user_counts(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from syncd.service.ui import base

    prod = add_env(stack.engine, "prod")
    first = _enabled_users_shown(stack.client.get("/environments/prod").text)
    add_row(stack.engine, prod, "bob@contoso.example")
    overview = stack.client.get("/").text
    assert re.search(rf"Enabled users</dt>\s*<dd>{first}</dd>", overview), overview
    monkeypatch.setattr(base, "COUNTS_TTL_S", 0.0)
    overview = stack.client.get("/").text
    assert re.search(rf"Enabled users</dt>\s*<dd>{first + 1}</dd>", overview), overview


def test_the_environment_page_counts_its_users_again_after_a_while_or_a_change(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search or a page of runs reuses a count at most COUNTS_TTL_S old (a 1M-row environment
    takes 0.17 s to count); a change made through the pages, or the time passing, counts again."""
    from syncd.service.ui import base

    prod = add_env(stack.engine, "prod")
    first = _enabled_users_shown(stack.client.get("/environments/prod").text)  # the built-in users
    add_row(stack.engine, prod, "bob@contoso.example")  # behind the pages' back
    assert _enabled_users_shown(stack.client.get("/environments/prod?q=bob").text) == first
    stack.sign_in()
    r = stack.client.post("/environments/prod/approve", data={"csrf": stack.csrf("/environments/prod")})
    assert r.status_code == 303
    assert _enabled_users_shown(stack.client.get("/environments/prod").text) == first + 1
    add_row(stack.engine, prod, "cy@contoso.example")
    assert _enabled_users_shown(stack.client.get("/environments/prod").text) == first + 1
    monkeypatch.setattr(base, "COUNTS_TTL_S", 0.0)
    assert _enabled_users_shown(stack.client.get("/environments/prod").text) == first + 2


def test_the_exports_hold_every_matching_event_past_a_page(stack: Stack) -> None:
    """The exports stream every event the filter matches, however many pages of the log they
    span (the log reads at most MAX_PAGE events a query)."""
    from syncd.dataverse.provisioning_log import MAX_PAGE

    prod = add_env(stack.engine, "prod")
    n = MAX_PAGE + 37
    with Session(stack.engine) as s, s.begin():
        now = datetime.now(UTC)
        s.add_all(
            SyncEvent(
                environment_id=prod,
                action="update",
                rule="R10",
                reason=f"change {i}",
                created_at=now - timedelta(seconds=i),
            )
            for i in range(n)
        )
    rows = list(csv.reader(io.StringIO(stack.client.get("/log.csv?environment=prod").text)))
    assert len(rows) - 1 == n
    lines = stack.client.get("/log.jsonl?rule=R10").text.splitlines()
    assert len(lines) == n
    assert sorted(json.loads(line)["reason"] for line in lines) == sorted(f"change {i}" for i in range(n))


@pytest.mark.parametrize("which", ["no run", "an older blocked run", "nothing blocked"])
def test_approve_lets_through_only_the_disables_the_page_showed(stack: Stack, which: str) -> None:
    """A stale page or a replayed form approves nothing: the form names the blocked run whose
    withheld disables it listed, and only that run, still the latest, may be approved."""
    prod, run, _ = blocked_environment(stack)
    if which == "nothing blocked":
        add_run(stack.engine, prod, kind="delta", outcome="succeeded")  # a later run went through
    if which == "an older blocked run":
        add_run(stack.engine, prod, kind="full", outcome="blocked")  # a new, unseen set is held
    stack.sign_in()
    form = {"csrf": stack.csrf("/environments/prod")} | ({} if which == "no run" else {"run": str(run)})
    r = stack.client.post("/environments/prod/approve", data=form)
    assert r.status_code == 303
    assert stack.sync.calls == []
    assert "Nothing" in status_line(stack.client.get("/environments/prod").text)


def test_the_log_takes_an_action_in_any_case_as_it_takes_a_rule(stack: Stack, logged: dict[str, Any]) -> None:
    lower = stack.client.get("/log?action=update&rule=r9")
    upper = stack.client.get("/log?action=UPDATE&rule=R9")
    assert lower.status_code == upper.status_code == 200
    events = re.compile(r"<table[^>]*>\s*<caption>Events</caption>.*?</table>", re.S)
    found = events.search(lower.text)
    assert found is not None and found.group(0).count("<tr>") > 1
    assert found.group(0) == events.search(upper.text).group(0)  # type: ignore[union-attr]
    assert '<option value="update" selected>' in upper.text  # the form keeps the filter


def test_a_sub_rule_is_found_in_any_case(stack: Stack) -> None:
    prod = add_env(stack.engine, "prod")
    add_event(stack.engine, prod, rule="R7c", reason="a first access")
    add_event(stack.engine, prod, rule="R7", reason="a background add")
    for rule in ("R7c", "r7C", " r7c "):
        page = stack.client.get("/log", params={"rule": rule}).text
        assert "a first access" in page and "a background add" not in page, rule


@pytest.mark.parametrize("path", ["/log?since=%00", "/environments/prod?q=a%00b", "/log?user=a%00b"])
def test_a_nul_in_a_query_is_never_written_into_the_page(stack: Stack, path: str) -> None:
    add_env(stack.engine, "prod")
    r = stack.client.get(path)
    assert r.status_code in (200, 400)
    assert "\x00" not in r.text and "\ufffd" in r.text


def test_attempts_sent_at_once_get_no_more_comparisons_than_the_limit() -> None:
    """Requests that arrive together all pass a check made before any of them is counted; the
    limiter counts each attempt as it lets it through, so at most MAX_FAILURES are compared."""
    limiter = session.SignInLimiter(clock=lambda: 1000.0)
    allowed = [limiter.begin("10.0.0.1") == 0.0 for _ in range(100)]  # none has failed yet
    assert sum(allowed) == session.MAX_FAILURES
    assert limiter.begin("10.0.0.2") == 0.0  # another address is not held back
    limiter.succeeded("10.0.0.1")
    assert limiter.begin("10.0.0.1") == 0.0  # a right token starts the count again


def test_a_forwarded_for_header_does_not_change_the_client_address() -> None:
    """The daemon's server takes the connection's address, never X-Forwarded-For: otherwise a
    local process could pose as any address to the sign-in limit."""
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from syncd.service.server import HttpServer

    def whoami(request: Any) -> PlainTextResponse:
        return PlainTextResponse(request.client.host if request.client else "")

    server = HttpServer(Starlette(routes=[Route("/", whoami)]), "127.0.0.1", 0)
    server.start()
    try:
        r = httpx.get(f"http://127.0.0.1:{server.bound_port}/", headers={"X-Forwarded-For": "9.9.9.9"})
        assert r.text == "127.0.0.1"
    finally:
        server.stop()


def test_a_charts_axis_shows_a_short_run_as_it_was() -> None:
    from syncd.service.ui import charts

    assert [charts._num(v) for v in (0.03, 0.5, 1.5, 12.34, 150.2, 3.0)] == [
        "0.03",
        "0.5",
        "1.5",
        "12.3",
        "150",
        "3",
    ]
