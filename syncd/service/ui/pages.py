"""The daemon's HTML pages (the status UI): overview, environment, user, provisioning log, sign-in.

GET  /                                            every environment: state, counts, last and next run, charts
GET  /environments/{env}[?q=&before=]             settings, runs (20 a page), user search, pending disables
POST /environments/{env}/approve                  a full run past the mass-disable guard
POST /environments/{env}/users                    add a user on demand (R8), field ``user``
GET  /environments/{env}/users/{user}             the row, roles, diagnosis (R22) and events of one user
POST /environments/{env}/users/{user}/refresh     refresh the user from the directory (R23)
GET  /log[?environment=&run=&user=&action=&rule=&since=&until=&before=]   the provisioning log, 50 a page
GET  /log.csv, /log.jsonl (same filters)          every matching event, streamed
GET  /login, POST /login, POST /logout            sign-in with the admin token (``session``)
GET  /static/syncd.css                            the stylesheet

Pages are Jinja2 templates (autoescaped) of ``templates/``; they hold no script. ``{env}`` and
``{user}`` are one path segment each, percent-encoded as sent (``a%2Fb`` names ``a/b``), as in
the JSON API. An unknown environment or user is a 404 page; an unexpected failure a 500 page.

A changing POST (approve, add, refresh, logout) needs a configured admin token (else 403), a
session (else a 303 to ``/login?next=<the page>``) and the session's CSRF field (else 403),
checked by `syncd.service.ui.base.PageBase`; every form, the sign-in's too, is read up to
``base.MAX_FORM_BYTES`` however it is sent (else 413; a malformed one 400). ``POST /login`` is
refused (429) to an address that gave too many wrong tokens (`session.SignInLimiter`);
``POST /logout`` revokes the session (`session.Sessions.revoke`). A changing POST answers a 303
back to its page, whose ``role="status"`` line says what happened. The actions are those of the
JSON API: approve is ``SyncJobs.run`` of a full run with ``allow_mass_disable``; add and refresh
are ``syncd.admin.users.add_user`` and ``refresh_user``. Blocking work runs in a
worker thread.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute

from syncd.admin import lookup, users
from syncd.admin.errors import DirectoryFailed, Refused
from syncd.context import AppContext
from syncd.dataverse.environments import describe, find_environment
from syncd.dataverse.schema import SystemUser
from syncd.errors import NotFound, SyncdError
from syncd.service import runs
from syncd.service.directories import DirectoryFactory
from syncd.service.jobs import EnvironmentBusy, RunRequest, SyncJobs
from syncd.service.quarantine import read_state
from syncd.service.routing import API_PREFIX, api_exception_handlers
from syncd.service.scheduler import Target
from syncd.service.ui import charts, data, session
from syncd.service.ui.base import NextRuns, PageBase
from syncd.service.ui.data import EventFilter
from syncd.service.ui.log_filter import LOG_FILTERS, all_events, log_filter, parse_int
from syncd.service.ui.templating import PageRoute, env_url, user_url

log = structlog.get_logger(__name__)

RUNS_PAGE = 20
LOG_PAGE = 50
SEARCH_LIMIT = 50
PENDING_SHOWN = 50
EVENTS_SHOWN = 50
STATIC = Path(__file__).parent / "static"


class Pages(PageBase):
    """The pages' endpoints over one app's context (see the module's docstring)."""

    # -- overview ------------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        """GET /: each environment's state word, counts, last and next runs, and its charts."""
        with Session(self.engine()) as s:
            status = runs.environment_status(s, self.quarantine(), counts=self.user_counts)
            envs = []
            for st in status:
                env = st.environment
                points = data.chart_runs(s, env.id) if env.has_database else []
                enabled = data.enabled_runs(s, env.id) if env.has_database else []
                last = data.last_decisive(s, env.id)
                envs.append(
                    {
                        "name": env.name,
                        "state": data.state_word(
                            has_database=env.has_database,
                            running=data.is_running(s, env.id),
                            quarantine=st.quarantine,
                            last_outcome=last.outcome if last is not None else None,
                        ),
                        "users": st.users,
                        "last_run": st.last_run,
                        "quarantine": st.quarantine,
                        "next": self._next(env.name) if env.has_database else {},
                        "points": points,
                        "runs_chart": charts.runs_chart(env.name, points),
                        "enabled_points": enabled,
                        "enabled_chart": charts.enabled_chart(env.name, enabled),
                    }
                )
        return self.render(
            request, "overview.html", title="Overview", nav="overview", envs=envs, info=self.info
        )

    def _next(self, name: str) -> dict[str, datetime]:
        if self.next_runs is None:
            return {}
        try:
            return dict(self.next_runs(name))
        except Exception as exc:  # the schedule is a nicety of the page, never its failure
            log.warning("ui_next_runs_failed", environment=name, error=str(exc))
            return {}

    # -- environment ---------------------------------------------------------------------------

    def environment(self, request: Request) -> Response:
        """GET /environments/{env}: settings, runs (``?before=`` pages), the user search (``?q=``)
        and, when its latest decisive run was blocked, its pending disables."""
        name = request.path_params["env"]
        q = request.query_params.get("q", "").strip()
        before = parse_int(request.query_params.get("before"))
        if before is False:
            return self.error_page(request, 400, "Bad request", "before must be a run id (a whole number).")
        with Session(self.engine()) as s:
            env = find_environment(s, name)
            if env is None:
                return self.not_found(request, f"There is no environment named {name!r}.")
            settings = describe(env)
            counts = self.user_counts(s, env.id)
            quarantine = read_state(s, env.id, self.quarantine())
            page = runs.recent_runs(s, environment_id=env.id, limit=RUNS_PAGE, before_id=before or None)
            hits = data.search_users(s, env.id, q, limit=SEARCH_LIMIT) if q else []
            last = data.last_decisive(s, env.id)
            blocked = last if last is not None and last.outcome == "blocked" else None
            pending = (
                data.read_events(s, EventFilter(run_id=blocked.id, action="withheld"), limit=PENDING_SHOWN)
                if blocked is not None
                else []
            )
            running = data.is_running(s, env.id)
        older = f"{env_url(name)}?{urlencode({'before': page[-1]['id']})}" if len(page) == RUNS_PAGE else None
        return self.render(
            request,
            "environment.html",
            title=f"Environment {name}",
            env_name=name,
            settings=settings,
            counts=counts,
            quarantine=quarantine,
            next=self._next(name) if env.has_database else {},
            runs=page,
            older=older,
            newest=before is not None,
            q=q,
            hits=hits,
            search_limit=SEARCH_LIMIT,
            blocked=blocked,
            pending=pending,
            pending_shown=PENDING_SHOWN,
            running=running,
        )

    async def approve(self, request: Request) -> Response:
        """POST /environments/{env}/approve (field ``run``: the blocked run whose withheld disables
        the page showed): a full run with ``allow_mass_disable`` (``SyncJobs.run``), only while that
        run is still the environment's latest decisive one; otherwise a message and no run (a
        stale page or a replayed form never lets a new, unseen set of disables past the guard)."""
        name = request.path_params["env"]
        back = env_url(name)
        guard = await self._guard(request, back)
        if isinstance(guard, Response):
            return guard
        token, form = guard
        target = await run_in_threadpool(self._target, name)
        if target is None:
            return self.not_found(request, f"There is no environment named {name!r}.")
        if isinstance(target, str):
            return self._done(request, token, back, target)
        stale = await run_in_threadpool(self._stale_approval, target.id, str(form.get("run") or ""))
        if stale is not None:
            return self._done(request, token, back, stale)
        if self.jobs is None:
            return self._done(
                request,
                token,
                back,
                "This server runs no sync jobs: approve with `syncd sync --full --allow-mass-disable`.",
            )
        run = RunRequest(kind="full", trigger="ui", allow_mass_disable=True)
        log.info("ui_approve_requested", environment=name)
        try:
            report = await run_in_threadpool(self.jobs.run, target, run)
        except EnvironmentBusy:
            return self._done(
                request, token, back, f"A run of {name} is in progress; try again when it ends."
            )
        except Exception as exc:
            log.error("ui_approve_failed", environment=name, error=str(exc), error_type=type(exc).__name__)
            return self._done(request, token, back, f"The run failed: {type(exc).__name__}: {exc}")
        return self._done(request, token, back, _run_message(report))

    def _stale_approval(self, env_id: int, run: str) -> str | None:
        """None when ``run`` is the environment's latest decisive run and it was blocked; else why
        there is nothing to approve."""
        with Session(self.engine()) as s:
            last = data.last_decisive(s, env_id)
        if last is None or last.outcome != "blocked":
            return "Nothing to approve: the environment's latest run was not blocked."
        if run != str(last.id):
            return (
                f"Nothing approved: run {last.id} is the latest blocked run, not the one this page showed; "
                "review its pending disables first."
            )
        return None

    def _target(self, name: str) -> Target | str | None:
        with Session(self.engine()) as s:
            env = find_environment(s, name)
            if env is None:
                return None
            if not env.has_database:
                return f"Environment {name} has no database: it holds no users, so nothing runs."
            return Target(id=env.id, name=env.name)

    # -- users ---------------------------------------------------------------------------------

    def _row_view(self, name: str, key: str) -> dict[str, Any] | None:
        """The user page's database part; None for an unknown environment."""
        with Session(self.engine()) as s:
            env = find_environment(s, name)
            if env is None:
                return None
            view: dict[str, Any] = {"env_id": env.id, "row": None, "events": []}
            checked = _checked_key(key)
            rows = lookup.find_rows(s, env.id, checked) if checked is not None else []
            row = rows[0] if rows else None
            if row is not None:
                view["row"] = [
                    (c.columns[0].name, getattr(row, c.key)) for c in SystemUser.__mapper__.column_attrs
                ]
                view["isdisabled"] = row.isdisabled
                view["domainname"] = row.domainname
                view["fullname"] = row.fullname
                view["roles"] = lookup.role_names(s, row.systemuserid)
                view["team_roles"] = lookup.team_role_names(s, row.systemuserid)
                oid = row.azureactivedirectoryobjectid
                view["directory_key"] = str(oid) if oid is not None else key
                f = (
                    EventFilter(environment_id=env.id, object_id=str(oid))
                    if oid is not None
                    else EventFilter(environment_id=env.id, systemuserid=str(row.systemuserid))
                )
                view["events"] = data.read_events(s, f, limit=EVENTS_SHOWN)
                view["log_user"] = str(oid) if oid is not None else str(row.systemuserid)
        return view

    def _diagnose(self, name: str, key: str) -> Any:
        with self.directory(quick=True) as directory:
            return users.diagnose_user(self.engine(), directory, name, key)

    async def user(self, request: Request) -> Response:
        """GET /environments/{env}/users/{user}: row, roles, diagnosis (R22) and events of one user;
        404 when neither the environment nor the directory knows the user."""
        name, key = request.path_params["env"], request.path_params["user"]
        view = await run_in_threadpool(self._row_view, name, key)
        if view is None:
            return self.not_found(request, f"There is no environment named {name!r}.")
        diagnosis, problem = None, None
        if _checked_key(key) is not None:
            try:
                diagnosis = await run_in_threadpool(self._diagnose, name, view.get("directory_key", key))
            except NotFound:
                if view["row"] is None:
                    return self.not_found(
                        request, f"There is no user {key!r} in environment {name!r} nor in the directory."
                    )
            except SyncdError as exc:
                problem = str(exc)
            except Exception as exc:
                log.error(
                    "ui_diagnose_failed", environment=name, error=str(exc), error_type=type(exc).__name__
                )
                problem = f"{type(exc).__name__}: the diagnosis failed; see the daemon's log"
        if view["row"] is None and diagnosis is None and problem is None:
            return self.not_found(request, f"There is no user {key!r} in environment {name!r}.")
        directory_user = diagnosis.user if diagnosis is not None else {}
        upn = view.get("domainname") or directory_user.get("user_principal_name") or key
        add_key = directory_user.get("object_id") or view.get("directory_key") or key
        return self.render(
            request,
            "user.html",
            title=f"User {upn}",
            env_name=name,
            key=key,
            upn=upn,
            view=view,
            diagnosis=diagnosis,
            problem=problem,
            can_add=view["row"] is None or bool(view.get("isdisabled")),
            add_key=add_key,
            log_url="/log?" + urlencode({"environment": name, "user": view.get("log_user", add_key)}),
        )

    async def add(self, request: Request) -> Response:
        """POST /environments/{env}/users (field ``user``): R8's on-demand add (``add_user``)."""
        name = request.path_params["env"]
        guard = await self._guard(request, env_url(name))
        if isinstance(guard, Response):
            return guard
        token, form = guard
        key = str(form.get("user") or "").strip()
        if not key:
            return self._done(request, token, env_url(name), "Add user: name a user (UPN or object id).")
        back = user_url(name, key)

        def run() -> Any:
            with self.directory() as directory:
                return users.add_user(self.engine(), directory, name, key, trigger="ui")

        return await self._user_op(request, token, back, "Add", run)

    async def refresh(self, request: Request) -> Response:
        """POST /environments/{env}/users/{user}/refresh: R23 (``refresh_user``)."""
        name, key = request.path_params["env"], request.path_params["user"]
        back = user_url(name, key)
        guard = await self._guard(request, back)
        if isinstance(guard, Response):
            return guard
        token, _ = guard
        view = await run_in_threadpool(self._row_view, name, key)
        if view is None:
            return self.not_found(request, f"There is no environment named {name!r}.")
        dkey = view.get("directory_key", key)

        def run() -> Any:
            with self.directory() as directory:
                return users.refresh_user(self.engine(), directory, name, dkey, trigger="ui")

        return await self._user_op(request, token, back, "Refresh", run)

    async def _user_op(
        self, request: Request, token: str, back: str, what: str, fn: Callable[[], Any]
    ) -> Response:
        try:
            result = await run_in_threadpool(fn)
        except Refused as exc:
            failed = ", ".join(f"{c.rule}: {c.message}" for c in exc.checks if not c.passed)
            return self._done(
                request, token, back, f"{what} refused: {exc}" + (f" ({failed})" if failed else "")
            )
        except NotFound as exc:
            return self._done(request, token, back, f"{what}: not found: {exc}")
        except DirectoryFailed as exc:
            return self._done(request, token, back, f"{what}: {exc}")
        except SyncdError as exc:
            return self._done(request, token, back, f"{what}: {exc}")
        except Exception as exc:
            log.error("ui_user_op_failed", operation=what, error=str(exc), error_type=type(exc).__name__)
            return self._done(
                request, token, back, f"{what} failed: {type(exc).__name__}; see the daemon's log"
            )
        if result.outcome == "failed":
            text = f"{what} failed: {result.reason}"
        elif result.changed:
            text = f"{what}: {result.action} by {result.rule}: {result.reason}"
        else:
            text = f"{what}: nothing to change ({result.rule}: {result.reason})"
        return self._done(request, token, back, text)

    # -- provisioning log ----------------------------------------------------------------------

    def _log_params(self, request: Request) -> dict[str, str]:
        """The log's filters as given, stripped; the action in lower case (any case is taken, and
        the form shows it chosen)."""
        params = {k: request.query_params.get(k, "").strip() for k in LOG_FILTERS}
        params["action"] = params["action"].lower()
        return params

    def log_page(self, request: Request) -> Response:
        """GET /log: the provisioning log, filtered (LOG_FILTERS), 50 events a page (``?before=``);
        a bad filter is a 400 page saying which."""
        params = self._log_params(request)
        before = parse_int(request.query_params.get("before"))
        errors = [] if before is not False else ["before must be an event id (a whole number)"]
        with Session(self.engine()) as s:
            names = data.environment_names(s)
            f, problems = log_filter(s, params)
            errors += problems
            events: list[Any] = []
            if f is not None and not errors:
                try:
                    events = data.read_events(s, f, limit=LOG_PAGE, before=before or None)
                except (ValueError, LookupError) as exc:  # a bad id; ``before`` naming no event
                    errors.append(str(exc))
        given = {k: v for k, v in params.items() if v}
        older = "/log?" + urlencode({**given, "before": events[-1].id}) if len(events) == LOG_PAGE else None
        query = urlencode(given)
        return self.render(
            request,
            "log.html",
            400 if errors else 200,
            title="Provisioning log",
            nav="log",
            params=params,
            names=names,
            actions=data.ACTIONS,
            errors=errors,
            events=events,
            older=older,
            newest="/log?" + query if before else None,
            csv_url="/log.csv" + (f"?{query}" if query else ""),
            jsonl_url="/log.jsonl" + (f"?{query}" if query else ""),
        )

    def _export(self, request: Request, fmt: str) -> Response:
        params = self._log_params(request)
        with Session(self.engine()) as s:
            f, errors = log_filter(s, params)
        if f is None:
            return self.error_page(request, 400, "Bad request", "; ".join(errors))
        events = all_events(self.engine(), f)
        if fmt == "csv":
            body: Iterator[Any] = data.csv_rows(events)
            media, ext = "text/csv; charset=utf-8", "csv"
        else:
            body, media, ext = data.jsonl_rows(events), "application/x-ndjson", "jsonl"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            body,
            media_type=media,
            headers={
                "Content-Disposition": f'attachment; filename="syncd-events-{stamp}.{ext}"',
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    def log_csv(self, request: Request) -> Response:
        """GET /log.csv: every event of the log's filter, as CSV (streamed)."""
        return self._export(request, "csv")

    def log_jsonl(self, request: Request) -> Response:
        """GET /log.jsonl: every event of the log's filter, one JSON object a line (streamed)."""
        return self._export(request, "jsonl")

    # -- sign-in -------------------------------------------------------------------------------

    def login_form(self, request: Request) -> Response:
        """GET /login: the sign-in form (none when no token is configured)."""
        nxt = session.local_path(request.query_params.get("next"))
        return self.render(request, "login.html", title="Sign in", next=nxt, wrong=False)

    async def login(self, request: Request) -> Response:
        """POST /login: the token right, a session cookie and a 303 to ``next`` (a local path);
        wrong, the form again (401); too many wrong tokens from the address lately, 429 (whatever
        the token); no token configured, 403; a form too large 413, malformed 400."""
        token = self.token()
        if token is None:
            return self.error_page(
                request,
                403,
                "Sign-in is off",
                "This daemon has no admin token (SYNCD_ADMIN_TOKEN) to sign in with.",
            )
        client = request.client.host if request.client else "unknown"
        wait = self.sign_ins.locked_for(client)
        if wait > 0:
            return self._locked_out(request, client, wait)
        form = await self.read_form(request)
        if isinstance(form, Response):
            return form
        nxt = session.local_path(str(form.get("next") or "/"))
        wait = self.sign_ins.begin(client)  # counted before the comparison, whatever it finds
        if wait > 0:
            return self._locked_out(request, client, wait)
        if not session.token_matches(str(form.get("token") or ""), token):
            wait = self.sign_ins.failed(client)
            log.warning("ui_sign_in_refused", client=client, locked_out_for_s=math.ceil(wait))
            return self.render(request, "login.html", 401, title="Sign in", next=nxt, wrong=True)
        self.sign_ins.succeeded(client)
        response = RedirectResponse(nxt, 303)
        self.sessions.set_session(response, request, token)
        log.info("ui_signed_in", client=client)
        return response

    def _locked_out(self, request: Request, client: str, wait: float) -> Response:
        """The 429 page of an address refused by the sign-in limit, ``wait`` seconds more."""
        seconds = max(1, math.ceil(wait))
        log.warning("ui_sign_in_locked_out", client=client, retry_after_s=seconds)
        page = self.error_page(
            request,
            429,
            "Too many attempts",
            f"Too many wrong tokens from this address: try again in {seconds} seconds.",
        )
        page.headers["Retry-After"] = str(seconds)
        return page

    async def logout(self, request: Request) -> Response:
        """POST /logout: the session revoked on the server, its cookie cleared, a 303 to the
        overview."""
        guard = await self._guard(request, "/")
        if isinstance(guard, Response):
            return guard
        self.sessions.revoke(request, self.token())
        response = RedirectResponse("/", 303)
        session.clear_session(response, request)
        return response

    # -- the app's table ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The pages' routes (see the module's docstring)."""

        def get(path: str, fn: Callable[[Pages, Request], Any]) -> PageRoute:
            return PageRoute(path, functools.partial(_safe(fn), self), methods=["GET"])

        def post(path: str, fn: Callable[[Pages, Request], Any]) -> PageRoute:
            return PageRoute(path, functools.partial(_safe(fn), self), methods=["POST"])

        return [
            get("/", Pages.overview),
            get("/static/syncd.css", Pages.stylesheet),
            get("/environments/{env}", Pages.environment),
            post("/environments/{env}/approve", Pages.approve),
            post("/environments/{env}/users", Pages.add),
            get("/environments/{env}/users/{user}", Pages.user),
            post("/environments/{env}/users/{user}/refresh", Pages.refresh),
            get("/log", Pages.log_page),
            get("/log.csv", Pages.log_csv),
            get("/log.jsonl", Pages.log_jsonl),
            get("/login", Pages.login_form),
            post("/login", Pages.login),
            post("/logout", Pages.logout),
        ]

    def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's exception handler for ``HTTPException``: outside ``/api/``, a path no route
        takes is the 404 page and a method none takes the 405 page; under ``/api/`` (and for any
        other status) the API's JSON answer (`syncd.service.routing.api_exception_handlers`)."""
        status = getattr(exc, "status_code", 500)
        api = (request.url.path + "/").startswith(API_PREFIX)
        if api or status not in (404, 405) or request.method not in ("GET", "HEAD", "POST"):
            handler = api_exception_handlers()[HTTPException]
            return handler(request, exc)  # type: ignore[no-any-return]
        if status == 404:
            return self.not_found(request, "There is no page at this address.")
        page = self.error_page(request, 405, "Method not allowed", "This page does not take that method.")
        allow = (exc.headers or {}).get("Allow") if isinstance(exc, HTTPException) else None
        if allow:
            page.headers["Allow"] = allow
        return page

    def stylesheet(self, request: Request) -> Response:
        """GET /static/syncd.css: the pages' stylesheet."""
        return FileResponse(
            STATIC / "syncd.css", media_type="text/css", headers={"Cache-Control": "max-age=300"}
        )


def _run_message(report: Any) -> str:
    """One line about a finished run: its id, kind, outcome and what it changed."""
    get = report.get if isinstance(report, dict) else lambda k, d=None: getattr(report, k, d)
    counts = get("counts") or {}
    changed = ", ".join(
        f"{counts[k]} {k}" for k in ("created", "updated", "enabled", "disabled", "failed") if counts.get(k)
    )
    text = f"Run {get('run_id')} ({get('kind')}, disables approved): {get('outcome')}"
    if changed:
        text += f"; {changed}"
    if get("error"):
        text += f"; {get('error')}"
    return text + "."


def _checked_key(key: str) -> str | None:
    """A page's user key as the admin operations read it (``lookup.check_key``), None when it can
    name nobody."""
    try:
        return lookup.check_key(key)
    except SyncdError:
        return None


def _safe(fn: Callable[[Pages, Request], Any]) -> Callable[[Pages, Request], Awaitable[Response]]:
    """A page endpoint whose unexpected failure is a 500 page (HTML), logged, not a traceback."""

    @functools.wraps(fn)
    async def endpoint(self: Pages, request: Request) -> Response:
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(self, request)
            else:  # database work: in a worker thread, as Starlette runs a plain endpoint
                result = await run_in_threadpool(fn, self, request)
            return result  # type: ignore[no-any-return]
        except Exception as exc:
            log.error(
                "ui_internal_error",
                path=request.url.path,
                error=str(exc)[:500],
                error_type=type(exc).__name__,
            )
            return self.error_page(
                request,
                500,
                "Something went wrong",
                f"{type(exc).__name__}: the page failed; see the daemon's log.",
            )

    return endpoint


def routes(
    appctx: AppContext,
    jobs: SyncJobs | None = None,
    *,
    next_runs: NextRuns | None = None,
    directory: DirectoryFactory | None = None,
    info: dict[str, Any] | None = None,
) -> list[BaseRoute]:
    """The pages' routes (see the module's docstring and `Pages`)."""
    return Pages(appctx, jobs, next_runs=next_runs, directory=directory, info=info).routes()
