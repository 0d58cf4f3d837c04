"""The daemon's HTTP endpoint (Starlette): health, readiness, metrics, a status page, the admin API.

GET  /healthz                                      the process answers
GET  /readyz                                       database reachable and at head; last outcome per environment,
                                                   and the quarantined environments (which leave it ready)
GET  /metrics                                      Prometheus text format
GET  /, /environments/..., /log, /login            the HTML pages (`syncd.service.ui.pages`)
GET  /api/environments[/{name}]                    environments, user counts, last runs
GET  /api/runs[?environment=&limit=&before=]       recent runs, newest first
GET  /api/runs/{id}                                one run
GET  /api/environments/{name}/users[?q=&limit=]    user search (`syncd.service.status_api`)
GET  /api/events[?environment=&run=&user=&action=&rule=&since=&until=&limit=&before=&format=]
                                                   the provisioning log: a JSON page, or all as CSV / JSON lines
POST /api/environments/{name}/sync                 {"kind": "delta"|"full", "dry_run": bool}
POST /api/environments/{name}/approve-mass-disable  a full run with allow_mass_disable (no body)
GET  /api/openapi.json                             the admin API as OpenAPI 3.1, built from the route table
GET  /api/docs                                     the same as an HTML page (no script, nothing loaded)
(+ the admin routes of `syncd.service.admin_routes`, when that module is present: the user
operations, PATCH /api/environments/{name} for an environment's settings, and
POST /api/environments/{name}/resume to take it out of quarantine)

Mutations need the admin token (see `syncd.service.auth`), and take their body exactly: the route
table says which (`syncd.service.bodies`; a route taking none refuses a non-empty one, naming its
first key). A `{name}` is one path segment, percent-encoded as sent (`a%2Fb` names `a/b`, see
`syncd.service.routing`). Every error under
/api/ is JSON `{"error", "detail"}`, an unknown route (404) and a method a route does not take
(405) included.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from typing import Annotated, Any, Literal

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from syncd.context import AppContext
from syncd.dataverse import db
from syncd.dataverse.environments import describe, find_environment, shown, user_counts
from syncd.dataverse.schema import Environment
from syncd.service import api_docs, openapi, runs, status_api
from syncd.service import responses as r
from syncd.service.bodies import BAD_REQUEST, Body, mutation
from syncd.service.jobs import EnvironmentBusy, RunRequest, SyncJobs
from syncd.service.locks import EnvironmentLocks
from syncd.service.metrics import Metrics
from syncd.service.quarantine import QuarantinePolicy, read_state, read_states
from syncd.service.routing import ApiRoute, api_exception_handlers
from syncd.service.scheduler import Target
from syncd.service.ui import pages
from syncd.settings import Settings

log = structlog.get_logger(__name__)

ADMIN_ROUTES_MODULE = "syncd.service.admin_routes"
MAX_RUNS_PAGE = 500
MAX_RUN_ID = 2**63 - 1  # run ids are 64-bit (BIGINT on PostgreSQL, INTEGER on SQLite)


class RunsQuery(BaseModel):
    """The query of ``GET /api/runs``."""

    environment: str | SkipJsonSchema[None] = Field(default=None, description="only this environment's runs")
    limit: int = Field(
        default=50, ge=1, description=f"at most this many runs (more is read as {MAX_RUNS_PAGE})"
    )
    # The bounds sit on the integer itself: on the union, pydantic would write them as ``ge``/``le``,
    # which JSON Schema does not know.
    before: Annotated[int, Field(ge=0, le=MAX_RUN_ID)] | SkipJsonSchema[None] = Field(
        default=None, description="only runs older than this run id (the next page)"
    )


class SyncBody(Body):
    """The body of ``POST .../sync`` (none: a delta run)."""

    EXPECTED = {
        "kind": "a string ('delta', 'full' or 'auto')",
        "dry_run": "true or false",
    }
    kind: Literal["delta", "full", "auto"] = "delta"
    dry_run: bool = False


def _error(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def report_dict(report: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    if hasattr(report, "model_dump"):
        return dict(report.model_dump())
    fields = ("run_id", "environment", "kind", "requested_kind", "outcome", "counts", "duration_s", "error")
    return {f: getattr(report, f, None) for f in fields}


def admin_routes(appctx: AppContext, locks: EnvironmentLocks | None = None) -> list[BaseRoute]:
    """The admin routes, when `syncd.service.admin_routes` is part of this syncd."""
    if importlib.util.find_spec(ADMIN_ROUTES_MODULE) is None:
        return []
    module = importlib.import_module(ADMIN_ROUTES_MODULE)
    return list(module.routes(appctx, locks=locks))


class Endpoints:
    def __init__(
        self,
        appctx: AppContext,
        metrics: Metrics,
        jobs: SyncJobs | None,
        scheduler_running: Callable[[], bool] | None,
        info: dict[str, Any],
    ) -> None:
        self.appctx = appctx
        self.metrics = metrics
        self.jobs = jobs
        self.scheduler_running = scheduler_running
        self.info = info
        self._openapi: dict[str, Any] | None = None

    def engine(self) -> Engine:
        return self.appctx.engine(check_head=False)

    def quarantine(self) -> QuarantinePolicy:
        return QuarantinePolicy.from_settings(self.appctx.settings)

    # -- health --------------------------------------------------------------------------------

    def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def readyz(self, request: Request) -> Response:
        body: dict[str, Any] = {"ready": False}
        try:
            current = db.current_revision(self.engine())
            head = db.head_revision(self.appctx.settings.database_url)
            body["database"] = {
                "reachable": True,
                "revision": current,
                "head": head,
                "at_head": current == head,
            }
            problems = [] if current == head else [f"database at {current!r}, not at head {head!r}"]
            if current == head:
                with Session(self.engine()) as session:
                    last = runs.last_runs(session)
                    names = dict(session.execute(select(Environment.id, Environment.name)).tuples().all())
                    states = read_states(session, self.quarantine())
                body["environments"] = {
                    name: (last[env_id].outcome if env_id in last else None)
                    for env_id, name in sorted(names.items(), key=lambda kv: kv[1])
                }
                # Quarantine is the environment's state, not the process's: it leaves /readyz ready.
                body["quarantined"] = {
                    names[env_id]: state.as_dict()
                    for env_id, state in sorted(states.items(), key=lambda kv: names.get(kv[0], ""))
                    if state.quarantined and env_id in names
                }
        except Exception as exc:
            body["database"] = {"reachable": False, "error": f"{type(exc).__name__}: {exc}"}
            problems = ["database unreachable"]
        if self.scheduler_running is not None and not self.scheduler_running():
            problems.append("scheduler not running")
        body["ready"] = not problems
        if problems:
            body["problems"] = problems
        return JSONResponse(body, status_code=200 if not problems else 503)

    # -- the API's description -------------------------------------------------------------------

    def openapi(self, request: Request) -> Response:
        return JSONResponse(self._document(request))

    def docs(self, request: Request) -> Response:
        return HTMLResponse(api_docs.render(self._document(request)))

    def _document(self, request: Request) -> dict[str, Any]:
        """The OpenAPI document of this app's route table, built once."""
        if self._openapi is None:
            self._openapi = openapi.document(request.app.routes)
        return self._openapi

    def metrics_(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- reads -----------------------------------------------------------------------------------

    def environments(self, request: Request) -> Response:
        with Session(self.engine()) as session:
            return JSONResponse([s.as_dict() for s in runs.environment_status(session, self.quarantine())])

    def environment(self, request: Request) -> Response:
        name = request.path_params["name"]
        with Session(self.engine()) as session:
            env = find_environment(session, name)
            if env is None:
                return _error(404, "not found", f"no environment named {shown(name)}")
            body = describe(env) | {
                "users": user_counts(session, env.id),
                "quarantine": read_state(session, env.id, self.quarantine()).as_dict(),
                "recent_runs": runs.recent_runs(session, environment_id=env.id, limit=20),
            }
        return JSONResponse(body)

    def runs_(self, request: Request) -> Response:
        q = request.query_params
        try:
            limit = min(int(q.get("limit", "50")), MAX_RUNS_PAGE)
            before = int(q["before"]) if "before" in q else None
        except ValueError:
            return _error(400, BAD_REQUEST, "limit and before must be integers")
        if limit < 1:
            return _error(400, BAD_REQUEST, "limit must be at least 1")
        if before is not None and not 0 <= before <= MAX_RUN_ID:
            return _error(400, BAD_REQUEST, f"before must be a run id, from 0 to {MAX_RUN_ID}, not {before}")
        with Session(self.engine()) as session:
            env_id = None
            if "environment" in q:
                env = find_environment(session, q["environment"])
                if env is None:
                    return _error(404, "not found", f"no environment named {shown(q['environment'])}")
                env_id = env.id
            return JSONResponse(
                runs.recent_runs(session, environment_id=env_id, limit=limit, before_id=before)
            )

    def users(self, request: Request) -> Response:
        return status_api.users(self.engine(), request)

    def events(self, request: Request) -> Response:
        return status_api.events(self.engine(), request)

    def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if run_id > MAX_RUN_ID:
            return _error(404, "not found", f"no run {run_id}")
        with Session(self.engine()) as session:
            found = runs.get_run(session, run_id)
        if found is None:
            return _error(404, "not found", f"no run {run_id}")
        return JSONResponse(found)

    # -- mutations -------------------------------------------------------------------------------

    async def sync(self, request: Request, body: SyncBody) -> Response:
        run = RunRequest(kind=body.kind, trigger="api", dry_run=body.dry_run)
        return await self._run(request.path_params["name"], run)

    async def approve_mass_disable(self, request: Request, body: None) -> Response:
        request_ = RunRequest(kind="full", trigger="api", allow_mass_disable=True)
        return await self._run(request.path_params["name"], request_)

    async def _run(self, name: str, request: RunRequest) -> Response:
        if self.jobs is None:
            return _error(503, "unavailable", "this endpoint runs no sync jobs")
        jobs = self.jobs
        target = await run_in_threadpool(self._target, name)
        if isinstance(target, Response):
            return target
        log.info("api_run_requested", environment=name, kind=request.kind, dry_run=request.dry_run)
        try:
            report = await run_in_threadpool(jobs.run, target, request)
        except EnvironmentBusy:
            return _error(409, "busy", f"a run of environment {name!r} is in progress; try again later")
        except Exception as exc:
            log.error("api_run_failed", environment=name, error=str(exc), error_type=type(exc).__name__)
            return _error(500, "run failed", f"{type(exc).__name__}: {exc}")
        return JSONResponse(report_dict(report), status_code=200)

    def _target(self, name: str) -> Target | Response:
        with Session(self.engine()) as session:
            env = find_environment(session, name)
            if env is None:
                return _error(404, "not found", f"no environment named {shown(name)}")
            if not env.has_database:
                return _error(409, "no database", f"environment {name!r} has no database: it holds no users")
            return Target(id=env.id, name=env.name)


def create_app(
    appctx: AppContext,
    metrics: Metrics,
    jobs: SyncJobs | None = None,
    *,
    scheduler_running: Callable[[], bool] | None = None,
    info: dict[str, Any] | None = None,
    next_runs: pages.NextRuns | None = None,
    directory: pages.DirectoryFactory | None = None,
) -> Starlette:
    """The daemon's HTTP app: health, readiness, metrics, the JSON API and the HTML pages.

    ``jobs`` runs syncs for the API and the pages (None: they answer 503 / say so);
    ``scheduler_running`` feeds /readyz; ``info`` are facts shown on the overview; ``next_runs``
    says when the scheduler runs an environment next (`SyncScheduler.next_runs`; None: not shown);
    ``directory`` opens the pages' Graph client (default: the settings' directory).
    """
    ep = Endpoints(appctx, metrics, jobs, scheduler_running, info or {})
    ui = pages.Pages(appctx, jobs, next_runs=next_runs, directory=directory, info=info)

    def settings() -> Settings:
        return appctx.settings

    runs_ = {200: r.RunReport}
    routes: list[BaseRoute] = [
        Route("/healthz", ep.healthz),
        Route("/readyz", ep.readyz),
        Route("/metrics", ep.metrics_),
        *ui.routes(),
        ApiRoute(
            "/api/environments",
            ep.environments,
            methods=["GET"],
            responses={200: r.EnvironmentList},
            summary="Every environment with its user counts, last run and quarantine state",
        ),
        ApiRoute(
            "/api/environments/{name}",
            ep.environment,
            methods=["GET"],
            responses={200: r.EnvironmentDetail},
            errors=(404,),
            summary="One environment with its user counts, quarantine state and latest runs",
        ),
        ApiRoute(
            "/api/environments/{name}/sync",
            mutation(ep.sync, body=SyncBody, settings=settings),
            methods=["POST"],
            responses=runs_,
            errors=(404, 409, 503),
            summary="One run of the environment now (syncd sync); 409 while another run holds its lock",
        ),
        ApiRoute(
            "/api/environments/{name}/approve-mass-disable",
            mutation(ep.approve_mass_disable, body=None, settings=settings),  # no body: no dry run
            methods=["POST"],
            responses=runs_,
            errors=(404, 409, 503),
            summary="A full run past the mass-disable guard (syncd sync --full --allow-mass-disable)",
        ),
        ApiRoute(
            "/api/runs",
            ep.runs_,
            methods=["GET"],
            responses={200: r.RunList},
            errors=(400, 404),
            summary="Recent runs, newest first (syncd runs)",
            query=RunsQuery,
        ),
        ApiRoute(
            "/api/environments/{name}/users",
            ep.users,
            methods=["GET"],
            responses={200: r.UserHitList},
            errors=(400, 404),
            summary="The environment's users whose UPN or full name starts so, or whose id does",
            query=status_api.UsersQuery,
        ),
        ApiRoute(
            "/api/events",
            ep.events,
            methods=["GET"],
            responses={200: (r.LogEventList, "text/csv", "application/x-ndjson")},
            errors=(400, 404),
            summary="The provisioning log, newest first: a page (json) or every matching event (csv, jsonl)",
            query=status_api.EventsQuery,
        ),
        ApiRoute(
            "/api/runs/{run_id:int}",
            ep.run,
            methods=["GET"],
            responses={200: r.Run},
            errors=(404,),
            summary="One run",
        ),
        ApiRoute(
            "/api/openapi.json",
            ep.openapi,
            methods=["GET"],
            responses={200: r.OpenApiDocument},
            summary="This document: the admin API as OpenAPI 3.1",
        ),
        ApiRoute(
            "/api/docs",
            ep.docs,
            methods=["GET"],
            responses={200: "text/html"},
            summary="This document as a page",
        ),
    ]
    routes.extend(admin_routes(appctx, jobs.locks if jobs is not None else None))
    return Starlette(
        routes=routes,
        exception_handlers={
            **api_exception_handlers(),
            HTTPException: ui.http_error,  # the API's JSON under /api/, the pages' 404 elsewhere
            Exception: _internal_error,
        },
    )


def _internal_error(request: Request, exc: Exception) -> Response:
    """Whatever fails unexpectedly is answered as JSON like every other error, never as plain text."""
    log.error(
        "http_internal_error", path=request.url.path, error=str(exc)[:500], error_type=type(exc).__name__
    )
    return _error(500, "internal error", f"{type(exc).__name__}: the request failed; see the daemon's log")
