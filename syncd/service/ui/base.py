"""The base of the pages' endpoints: context, rendering, and the guard of every changing POST.

A changing POST needs a configured admin token (else a 403 page), a session (else a 303 to
``/login?next=<the page>``) and the session's CSRF field (else a 403 page): `PageBase._guard`.
Its answer is a 303 back to its page with a one-line message for it (`PageBase._done`).

Every form (sign-in and every changing POST) is read by `PageBase.read_form`: the body streamed up
to ``MAX_FORM_BYTES`` whatever its framing (Content-Length or chunked), a 413 page past it, a 400
page when it is not a well-formed form; never a 500.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from syncd.context import AppContext
from syncd.dataverse.environments import user_counts
from syncd.directory.client import GraphClient
from syncd.service.directories import DirectoryFactory, RequestDirectories
from syncd.service.jobs import SyncJobs
from syncd.service.quarantine import QuarantinePolicy
from syncd.service.ui import session
from syncd.service.ui.templating import HEADERS, jinja

#: How old (seconds) the environment page's user counts may be: counting a 1M-row environment
#: takes about 0.17 s on PostgreSQL, so a search, a page of runs and a reload reuse one count.
COUNTS_TTL_S = 30.0
#: The largest form read (a sign-in's token and ``next``; a change's CSRF field and user).
MAX_FORM_BYTES = 16 * 1024
#: The most fields a form may have.
MAX_FORM_FIELDS = 50

#: When the daemon runs an environment next: its name -> {"delta": when, "full": when} (UTC).
NextRuns = Callable[[str], dict[str, datetime]]


class PageBase:
    """What every page endpoint stands on: the app's context, its engine and token, rendering in
    the pages' layout, and the checks and answer of a changing POST (`syncd.service.ui.pages`)."""

    def __init__(
        self,
        appctx: AppContext,
        jobs: SyncJobs | None,
        *,
        next_runs: NextRuns | None = None,
        directory: DirectoryFactory | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.appctx = appctx
        self.jobs = jobs
        self.next_runs = next_runs
        self.directories = RequestDirectories(appctx.settings, directory)
        self.info = info or {}
        self._counts: dict[int, tuple[float, dict[str, int]]] = {}
        #: This app's sessions: their random secret and the ids signed out (`session.Sessions`).
        self.sessions = session.Sessions()
        #: Wrong tokens per client address (`session.SignInLimiter`).
        self.sign_ins = session.SignInLimiter()

    # -- plumbing ------------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The app's engine (the head check is /readyz's)."""
        return self.appctx.engine(check_head=False)

    def token(self) -> str | None:
        """The configured admin token, or None when there is none (sign-in is off)."""
        t = self.appctx.settings.admin_token
        value = t.get_secret_value() if t is not None else ""
        return value or None

    def user_counts(self, s: Session, env_id: int) -> dict[str, int]:
        """The environment's rows by state (`syncd.dataverse.environments.user_counts`), counted at
        most COUNTS_TTL_S seconds ago."""
        now = time.monotonic()
        cached = self._counts.get(env_id)
        if cached is not None and now - cached[0] < COUNTS_TTL_S:
            return cached[1]
        counts = user_counts(s, env_id)
        self._counts[env_id] = (now, counts)
        return counts

    def quarantine(self) -> QuarantinePolicy:
        """The quarantine policy of the settings."""
        return QuarantinePolicy.from_settings(self.appctx.settings)

    def directory(self, *, quick: bool = False) -> AbstractContextManager[GraphClient]:
        """A Graph client for one request (the settings' directory; one token provider shared).
        ``quick``: for a page's read (the diagnosis), one retry and a 10 s timeout, so a page
        never waits out a sync run's retries; changes use the client's defaults, as the API's."""
        return self.directories.open(quick=quick)

    def _ui(self, request: Request) -> dict[str, Any]:
        token = self.token()
        sid = self.sessions.session_id(request, token)
        raw = request.scope.get("raw_path")  # as sent: an environment "a/b" stays "a%2Fb"
        path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
        here = path + (f"?{request.url.query}" if request.url.query else "")
        return {
            "can_sign_in": token is not None,
            "signed_in": sid is not None,
            "csrf": self.sessions.csrf_token(token, sid) if token and sid else "",
            "flash": self.sessions.read_flash(request, token),
            "login_url": "/login?" + urlencode({"next": session.local_path(here)}),
        }

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The template rendered with the page's context (sign-in state, message), as HTML."""
        ui = self._ui(request)
        html = jinja().get_template(template).render(ui=ui, **context)
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        if request.cookies.get(session.FLASH):
            session.clear_flash(response, request)
        return response

    def error_page(self, request: Request, status: int, title: str, detail: str) -> HTMLResponse:
        """An error page in the pages' layout: `title` as its heading, `detail` one line."""
        return self.render(request, "error.html", status, title=title, detail=detail)

    def not_found(self, request: Request, detail: str) -> HTMLResponse:
        """The 404 page, `detail` saying what was not found."""
        return self.error_page(request, 404, "Not found", detail)

    async def read_form(self, request: Request) -> FormData | Response:
        """The request's form (urlencoded or multipart), its body read up to MAX_FORM_BYTES however
        it is sent; else the answer refusing it: 413 past the cap, 400 when malformed."""
        too_large = self.error_page(
            request, 413, "Too large", f"A form of these pages is at most {MAX_FORM_BYTES} bytes."
        )
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            return too_large if length.isdigit() else self._bad_form(request)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM_BYTES:
                    return too_large
        except ClientDisconnect:
            return self._bad_form(request)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if media == "multipart/form-data":
                return await _multipart(request.headers, bytes(body))
            if body and media not in ("", "application/x-www-form-urlencoded"):
                return self._bad_form(request)
            pairs = parse_qsl(
                bytes(body).decode("ascii"),
                keep_blank_values=True,
                strict_parsing=bool(body),
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_FORM_FIELDS,
            )
        except (UnicodeDecodeError, ValueError, MultiPartException):
            return self._bad_form(request)
        fields: list[tuple[str, str | UploadFile]] = list(pairs)
        return FormData(fields)

    def _bad_form(self, request: Request) -> Response:
        return self.error_page(request, 400, "Bad request", "The form could not be read: send it again.")

    async def _guard(self, request: Request, back: str) -> tuple[str, Any] | Response:
        """(the token, the form) of a changing POST that may go ahead; else the answer refusing it."""
        token = self.token()
        if token is None:
            return self.error_page(
                request,
                403,
                "Changes are off",
                "This daemon has no admin token (SYNCD_ADMIN_TOKEN), so its pages change nothing.",
            )
        sid = self.sessions.session_id(request, token)
        if sid is None:
            return RedirectResponse("/login?" + urlencode({"next": session.local_path(back)}), 303)
        form = await self.read_form(request)
        if isinstance(form, Response):
            return form
        if not self.sessions.check_csrf(form.get(session.CSRF_FIELD), token, sid):
            return self.error_page(
                request,
                403,
                "Refused",
                "The form's CSRF field is missing or stale: reload the page and try again.",
            )
        return token, form

    def _done(self, request: Request, token: str, back: str, message: str) -> Response:
        """The answer of a changing POST: a 303 to ``back`` with ``message`` for it; the next page
        counts its users again (the change may have moved them)."""
        self._counts.clear()
        response = RedirectResponse(back, 303)
        self.sessions.set_flash(response, request, token, message)
        return response


async def _multipart(headers: Headers, body: bytes) -> FormData:
    """A multipart form read from its (already bounded) body."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(headers, stream(), max_fields=MAX_FORM_FIELDS, max_files=0)
    return await parser.parse()
