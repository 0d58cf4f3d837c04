"""How the pages are rendered and addressed: the Jinja2 environment (autoescaped), the filters
the templates use, the pages' URLs and their route class, and the headers every page carries."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment as Jinja
from jinja2 import PackageLoader, select_autoescape

from syncd.service.routing import SegmentRoute
from syncd.service.runs import aware

#: The pages' Content-Security-Policy: their own stylesheet, nothing else (no script at all).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class PageRoute(SegmentRoute):
    """A route of the status pages: its ``{param}``s are path segments as sent, percent-decoded
    (``/environments/a%2Fb`` gives ``env`` ``"a/b"``), as the API's."""


def env_url(name: str) -> str:
    """The page of an environment (its name one percent-encoded segment)."""
    return "/environments/" + quote(name, safe="")


def user_url(env: str, key: str) -> str:
    """The page of a user of an environment, by object id, systemuserid or UPN."""
    return env_url(env) + "/users/" + quote(key, safe="@")


@functools.cache
def jinja() -> Jinja:
    """The templates' environment (autoescaped everywhere), built once."""
    j = Jinja(
        loader=PackageLoader("syncd.service.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=no_nul,
    )
    j.globals.update(env_url=env_url, user_url=user_url, when=when, ago=ago)
    j.filters["shown"] = shown
    return j


def no_nul(value: Any) -> Any:
    """Every value a template writes, with a NUL (which HTML does not allow, and escaping leaves as
    it is) written as U+FFFD, as a browser would read it."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def when(value: Any) -> str:
    """A time as the pages show it: UTC, to the second (ISO strings and datetimes alike)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    ts = aware(value).astimezone(UTC)
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: Any, now: datetime | None = None) -> str:
    """How long ago (or, in the future, in how long) a time is, roughly."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    delta = (aware(value) - (now or datetime.now(UTC))).total_seconds()
    n = abs(delta)
    text = (
        f"{n:.0f} s"
        if n < 90
        else f"{n / 60:.0f} min"
        if n < 5400
        else f"{n / 3600:.0f} h"
        if n < 129600
        else f"{n / 86400:.0f} d"
    )
    return f"in {text}" if delta > 0 else f"{text} ago"


def shown(value: Any) -> str:
    """A value of a row or an event as text: None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
