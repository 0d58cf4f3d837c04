"""The admin API's user routes (mounted by the daemon's HTTP app under /api/).

GET    /api/environments/{name}/users/{user}/diagnose     R22 (no token needed)
POST   /api/environments/{name}/users                     {"user": ..., "mode": "on_demand"|"first_access"}  R8, R7c
POST   /api/environments/{name}/users/{user}/refresh      R23
PUT    /api/environments/{name}/users/{user}/access-mode  {"mode": "read"|...}  R16, R17
POST   /api/environments/{name}/app-users                 {"app_id": ...}  R18
POST   /api/environments/{name}/stubs                     a CSV body  R20
POST   /api/environments/{name}/stubs/{stub}/reassign     {"target": ...}  R20
POST   /api/environments/{name}/roles                     {"user": ..., "role": ...}  R21
DELETE /api/environments/{name}/roles/{role}/users/{user}
PATCH  /api/environments/{name}                           {"type": ..., "security_group_id": ... | null, ...}
POST   /api/environments/{name}/resume                    out of quarantine (``syncd env resume``)
GET    /api/environments/{name}/teams                     R25 group teams (no token needed)
POST   /api/environments/{name}/teams                     {"group": ..., "membership": ..., "roles": [...], "administrator": ...}
GET    /api/environments/{name}/teams/{team}              one team with its members (no token needed)
POST   /api/environments/{name}/teams/{team}/roles        {"role": ...}  R21, R25
DELETE /api/environments/{name}/teams/{team}/roles/{role}
POST   /api/environments/{name}/groups/{group}/roles      {"role": ..., "membership": ...}  the group's team, created just in time

Every ``{param}`` is one path segment, percent-encoded as sent: an environment named ``a/b`` is
``/api/environments/a%2Fb/...`` (``syncd.service.routing``).

``{team}`` is a team id, its group's object id, or its name; ``?membership=`` picks among a
group's teams. ``POST .../teams`` answers 201; ``POST .../groups/{group}/roles`` answers 201 when
it created the team, 200 otherwise. A malformed or unknown group, an unknown membership type or
role is 400 or 404; a second team for the same group and membership type is 409.

``PATCH`` changes an environment's settings (``syncd env set``); its body holds any of ``type``,
``security_group_id``, ``app_pass_capacity``, ``is_sales``, ``allow_role_assignment_on_disabled_users``,
``tenant_has_marketing_licence`` and ``created_by_object_id``. A new security group makes the next
run a full run; an unknown one is 400, a directory that can't be read a warning in the answer.

``POST .../resume`` takes the environment out of quarantine (see ``syncd.service.quarantine``): the
failed runs so far stop counting, so the next scheduled run goes ahead. No body; idempotent (200
with ``changed: false`` when no failed run counted); 404 for an unknown environment.

A JSON body takes its fields exactly (``Body`` and its subclasses): an unknown key, or a field of
the wrong type (``"membership": 1``; no coercion), is a 400 naming the key or the field, its value
and what it takes. A route without a body above takes none: a non-empty one is a 400 naming its
first key (``{}`` and an empty body are fine). The route table says which body each mutation
takes, and ``syncd.service.bodies.mutation`` checks it (see there).

Mutations need the admin bearer token (401 without or with a wrong one, 403 when none is
configured). Errors are JSON ``{"error", "detail"}``: 400 bad input (``"error": "bad request"``), 404 unknown environment, user,
role or service principal, 409 refused by the rules (with ``checks``) or a conflict, 502 the
directory could not be read.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.admin import app_users, env_settings, modes, roles, stubs, teams, users
from syncd.admin.errors import DirectoryFailed, Refused
from syncd.context import AppContext
from syncd.dataverse.schema import ENV_TYPES
from syncd.directory.client import GraphClient
from syncd.errors import Conflict, NotFound, SyncdError
from syncd.rules.teams import DEFAULT_MEMBERSHIP, MEMBERSHIP_TYPES
from syncd.service import responses as r
from syncd.service.bodies import (
    BAD_REQUEST,
    GUID,
    USER_KEY,
    BadBody,
    Body,
    BodySpec,
    Endpoint,
    Handler,
    JsonObject,
    RawBody,
    mutation,
)
from syncd.service.directories import DirectoryFactory, RequestDirectories
from syncd.service.locks import EnvironmentLocks, locks_for
from syncd.service.quarantine import QuarantinePolicy, resume
from syncd.service.routing import ApiRoute

log = structlog.get_logger(__name__)

MAX_CSV_BYTES = 20 * 1024 * 1024
ADD_MODES = {"on_demand": users.add_user, "first_access": users.first_access}


def _error(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status)


def error_response(exc: Exception) -> JSONResponse:
    """The JSON answer for an admin operation's error."""
    if isinstance(exc, Refused):
        return JSONResponse(exc.as_dict(), status_code=409)
    if isinstance(exc, stubs.BadCsv):
        return JSONResponse(exc.as_dict(), status_code=400)
    if isinstance(exc, NotFound):
        return _error(404, "not found", str(exc))
    if isinstance(exc, Conflict):
        return _error(409, "conflict", str(exc))
    if isinstance(exc, DirectoryFailed):
        return _error(502, "directory unavailable", str(exc))
    if isinstance(exc, SyncdError):
        return _error(400, BAD_REQUEST, str(exc))
    raise exc


def _internal_error(exc: Exception) -> JSONResponse:
    """An unexpected failure: logged, and answered as JSON like every other error (never plain text)."""
    log.error("admin.internal_error", error=str(exc)[:500], error_type=type(exc).__name__)
    return _error(500, "internal error", f"{type(exc).__name__}: the operation failed; see the daemon's log")


# Membership types as the API spells them (``syncd.rules.membership_type`` also takes other cases,
# ``_`` for ``-``, and the numbers; the document lists the canonical names).
_MEMBERSHIP_ENUM: dict[str, Any] = {"enum": list(MEMBERSHIP_TYPES)}
# A field that may be null: the string's own constraints go on the string branch of its anyOf.
_NULLABLE_USER_KEY: dict[str, Any] = {"anyOf": [{"type": "string", **USER_KEY}, {"type": "null"}]}
_NULLABLE_GUID: dict[str, Any] = {"anyOf": [{"type": "string", **GUID}, {"type": "null"}]}


class AddBody(Body):
    EXPECTED = {
        "user": "a string (a user's UPN or object id)",
        "mode": "a string ('on_demand' or 'first_access')",
    }
    user: str = Field(json_schema_extra=USER_KEY)
    mode: Literal["on_demand", "first_access"] = "on_demand"


class ModeBody(Body):
    EXPECTED = {"mode": "a string (an access mode's name or number)"}
    # Case, ``_`` and spaces are ignored (``syncd.admin.modes.parse_mode``); the document lists the
    # canonical spellings.
    mode: str = Field(json_schema_extra={"enum": [*modes.MODES, *(str(n) for n in modes.MODES.values())]})


class AppUserBody(Body):
    EXPECTED = {"app_id": "a string (a service principal's appId)"}
    app_id: str = Field(json_schema_extra=GUID)


class ReassignBody(Body):
    EXPECTED = {"target": "a string (a user's UPN or object id)"}
    target: str = Field(json_schema_extra=USER_KEY)


class RoleBody(Body):
    EXPECTED = {"user": "a string (a user's UPN or object id)", "role": "a string (a security role's name)"}
    user: str = Field(json_schema_extra=USER_KEY)
    role: str


class CreateTeamBody(Body):
    EXPECTED = {
        "group": "a string (a group's object id)",
        "membership": "a string (a membership type's name)",
        "roles": "a list of strings (role names)",
        "administrator": "a string (a user's UPN or object id) or null",
    }
    group: str = Field(json_schema_extra={"format": "uuid"})
    membership: str = Field(DEFAULT_MEMBERSHIP, json_schema_extra=_MEMBERSHIP_ENUM)
    roles: list[str] = []
    administrator: str | None = Field(default=None, json_schema_extra=_NULLABLE_USER_KEY)


class TeamRoleBody(Body):
    EXPECTED = {"role": "a string (a security role's name)"}
    role: str


class GroupRoleBody(Body):
    EXPECTED = {
        "role": "a string (a security role's name)",
        "membership": "a string (a membership type's name)",
    }
    role: str
    membership: str = Field(DEFAULT_MEMBERSHIP, json_schema_extra=_MEMBERSHIP_ENUM)


class TeamQuery(BaseModel):
    """The query of a team's routes: which of a group's teams TEAM names, when it names a group."""

    membership: str | SkipJsonSchema[None] = Field(
        default=None,
        description="a membership type: members-and-guests, members, owners, guests",
        json_schema_extra=_MEMBERSHIP_ENUM,
    )


class EnvironmentSettingsBody(Body):
    """The body of ``PATCH /api/environments/{name}`` (``syncd env set``): any of these settings, at
    least one. It documents the body; ``syncd.admin.env_settings`` checks it (``null`` clears a
    security group or a creator; an absent key leaves the setting as it is)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    type: Literal[ENV_TYPES] | SkipJsonSchema[None] = Field(  # type: ignore[valid-type]
        default=None, description="the environment type, in any case"
    )
    security_group_id: str | None = Field(
        default=None, description="a group's object id, or null for none", json_schema_extra=_NULLABLE_GUID
    )
    app_pass_capacity: Annotated[int, Field(ge=0, le=2**31 - 1)] | SkipJsonSchema[None] = None
    is_sales: bool | SkipJsonSchema[None] = None
    allow_role_assignment_on_disabled_users: bool | SkipJsonSchema[None] = None
    tenant_has_marketing_licence: bool | SkipJsonSchema[None] = None
    created_by_object_id: str | None = Field(
        default=None,
        json_schema_extra=_NULLABLE_GUID,
        description="the creator's object id (a developer environment's only user, R7d)",
    )


class AdminRoutes:
    def __init__(
        self,
        appctx: AppContext,
        directory: DirectoryFactory | None = None,
        locks: EnvironmentLocks | None = None,
    ) -> None:
        self.appctx = appctx
        self.directories = RequestDirectories(appctx.settings, directory)
        self._locks = locks

    def engine(self) -> Any:
        return self.appctx.engine(check_head=False)

    def directory(self) -> AbstractContextManager[GraphClient]:
        """The directory for an operation (the client's defaults)."""
        return self.directories.open()

    def quick_directory(self) -> AbstractContextManager[GraphClient]:
        """The directory for a check that must not wait out a sync run's retries."""
        return self.directories.open(quick=True)

    def locks(self) -> EnvironmentLocks:
        """The daemon's run locks (so a change of scope waits for no run), else the database's."""
        if self._locks is None:
            self._locks = locks_for(self.engine())
        return self._locks

    async def _call(
        self, fn: Callable[[], Any], status: int = 200, status_of: Callable[[Any], int] | None = None
    ) -> Response:
        """Run `fn` in a worker thread and answer its result's ``as_dict()`` with `status` (or
        ``status_of(result)``); a SyncdError is its own error answer, a failed outcome a 500."""
        try:
            result = await run_in_threadpool(fn)
        except SyncdError as exc:
            return error_response(exc)
        except Exception as exc:
            return _internal_error(exc)
        if status_of is not None:
            status = status_of(result)
        body = result.as_dict()
        if isinstance(body, dict) and body.get("outcome") == "failed":
            status = 500
        return JSONResponse(body, status_code=status)

    def _mutation(self, handler: Handler, body: BodySpec) -> Endpoint:
        """A mutation's endpoint (``syncd.service.bodies.mutation``): the admin token first, then
        the body as ``body`` says, then ``handler(request, body)``; anything unexpected a JSON 500."""
        return mutation(handler, body=body, settings=lambda: self.appctx.settings, on_error=_internal_error)

    # -- handlers ------------------------------------------------------------------------------

    async def diagnose(self, request: Request) -> Response:
        env, user = request.path_params["name"], request.path_params["user"]

        def run() -> Any:
            with self.directory() as directory:
                return users.diagnose_user(self.engine(), directory, env, user)

        return await self._call(run)

    async def add(self, request: Request, body: AddBody) -> Response:
        op = ADD_MODES[body.mode]
        env = request.path_params["name"]

        def run() -> Any:
            with self.directory() as directory:
                return op(self.engine(), directory, env, body.user, trigger="api")

        try:
            result = await run_in_threadpool(run)
        except SyncdError as exc:
            return error_response(exc)
        except Exception as exc:
            return _internal_error(exc)
        status = 201 if result.action == "create" and result.changed else 200
        if result.outcome == "failed":
            status = 500
        return JSONResponse(result.as_dict(), status_code=status)

    async def refresh(self, request: Request, body: None) -> Response:
        env, user = request.path_params["name"], request.path_params["user"]

        def run() -> Any:
            with self.directory() as directory:
                return users.refresh_user(self.engine(), directory, env, user, trigger="api")

        return await self._call(run)

    async def access_mode(self, request: Request, body: ModeBody) -> Response:
        env, user = request.path_params["name"], request.path_params["user"]

        def run() -> Any:
            with self.directory() as directory:
                return modes.set_access_mode(self.engine(), env, user, body.mode, directory=directory)

        return await self._call(run)

    async def app_user(self, request: Request, body: AppUserBody) -> Response:
        env = request.path_params["name"]

        def run() -> Any:
            with self.directory() as directory:
                return app_users.create_app_user(self.engine(), directory, env, body.app_id)

        return await self._call(run, 201)

    async def import_stubs(self, request: Request, data: bytes) -> Response:
        if len(data) > MAX_CSV_BYTES:
            raise BadBody(f"the CSV is larger than {MAX_CSV_BYTES} bytes")
        env = request.path_params["name"]

        def run() -> Any:
            with self.directory() as directory:
                return stubs.import_stubs(self.engine(), directory, env, data, source="body")

        return await self._call(run, 201)

    async def reassign(self, request: Request, body: ReassignBody) -> Response:
        env, stub = request.path_params["name"], request.path_params["stub"]

        def run() -> Any:
            with self.directory() as directory:
                return stubs.reassign_stub(self.engine(), env, stub, body.target, directory=directory)

        return await self._call(run)

    async def assign_role(self, request: Request, body: RoleBody) -> Response:
        env = request.path_params["name"]

        def run() -> Any:
            with self.directory() as directory:
                return roles.assign_role(self.engine(), env, body.user, body.role, directory=directory)

        return await self._call(run)

    async def remove_role(self, request: Request, body: None) -> Response:
        p = request.path_params
        env, role, user = p["name"], p["role"], p["user"]

        def run() -> Any:
            with self.directory() as directory:
                return roles.remove_role(self.engine(), env, user, role, directory=directory)

        return await self._call(run)

    # -- group teams (R25) ----------------------------------------------------------------------

    async def list_teams(self, request: Request) -> Response:
        env = request.path_params["name"]
        return await self._call(lambda: teams.list_teams(self.engine(), env))

    async def show_team(self, request: Request) -> Response:
        env, team = request.path_params["name"], request.path_params["team"]
        membership = request.query_params.get("membership")
        return await self._call(lambda: teams.show_team(self.engine(), env, team, membership=membership))

    async def create_team(self, request: Request, body: CreateTeamBody) -> Response:
        env = request.path_params["name"]

        def run() -> Any:
            with self.directory() as directory:
                return teams.create_team(
                    self.engine(),
                    directory,
                    env,
                    body.group,
                    membership=body.membership,
                    roles=body.roles,
                    administrator=body.administrator,
                )

        return await self._call(run, 201)

    async def assign_team_role(self, request: Request, body: TeamRoleBody) -> Response:
        env, team = request.path_params["name"], request.path_params["team"]
        membership = request.query_params.get("membership")
        return await self._call(
            lambda: teams.assign_team_role(self.engine(), env, team, body.role, membership=membership)
        )

    async def remove_team_role(self, request: Request, body: None) -> Response:
        p = request.path_params
        membership = request.query_params.get("membership")
        return await self._call(
            lambda: teams.remove_team_role(
                self.engine(), p["name"], p["team"], p["role"], membership=membership
            )
        )

    async def assign_group_role(self, request: Request, body: GroupRoleBody) -> Response:
        env, group = request.path_params["name"], request.path_params["group"]

        def run() -> Any:
            with self.directory() as directory:
                return teams.assign_group_role(
                    self.engine(), directory, env, group, body.role, membership=body.membership
                )

        return await self._call(run, status_of=lambda result: 201 if result.created else 200)

    async def set_environment(self, request: Request, body: dict[str, Any]) -> Response:
        env = request.path_params["name"]

        def run() -> Any:
            return env_settings.set_environment(
                self.engine(), env, body, directory=self.quick_directory, hold=self.locks().hold
            )

        return await self._call(run)

    async def resume(self, request: Request, body: None) -> Response:
        env = request.path_params["name"]
        policy = QuarantinePolicy.from_settings(self.appctx.settings)
        return await self._call(lambda: resume(self.engine(), env, policy))


def routes(
    appctx: AppContext,
    *,
    directory: DirectoryFactory | None = None,
    locks: EnvironmentLocks | None = None,
) -> list[ApiRoute]:
    """The admin routes. ``directory`` opens the Graph client of a request (default: the settings');
    ``locks`` are the environments' run locks (default: the database's, see ``locks_for``)."""
    a = AdminRoutes(appctx, directory, locks)
    m = a._mutation  # (handler, the body it takes: a Body model, JsonObject, RawBody, or None for none)
    base = "/api/environments/{name}"
    csv = RawBody("text/csv", description=stubs.CSV_FORMAT)
    user = {200: r.UserResult, 500: r.UserResult}  # a failed write is a 500 with the result
    return [
        ApiRoute(
            base + "/users/{user}/diagnose",
            a.diagnose,
            methods=["GET"],
            responses={200: r.Diagnosis},
            errors=(400, 404, 502),
            summary="R22: why a user is or is not enabled, and what the sync does next (syncd user diagnose)",
        ),
        ApiRoute(
            base + "/users",
            m(a.add, AddBody),
            methods=["POST"],
            responses={**user, 201: r.UserResult},
            errors=(404, 409, 502),
            summary="R8, R7c: add a user on demand, or their first access (201 when a row was created)",
        ),
        ApiRoute(
            base + "/users/{user}/refresh",
            m(a.refresh, None),
            methods=["POST"],
            responses=user,
            errors=(404, 409, 502),
            summary="R23: refresh one user now (syncd user refresh)",
        ),
        ApiRoute(
            base + "/users/{user}/access-mode",
            m(a.access_mode, ModeBody),
            methods=["PUT"],
            responses={200: r.ModeResult},
            errors=(404, 409, 502),
            summary="R16, R17: a user's access mode, by name or Dataverse's number (syncd user set-mode)",
        ),
        ApiRoute(
            base + "/app-users",
            m(a.app_user, AppUserBody),
            methods=["POST"],
            responses={201: r.AppUserResult},
            errors=(404, 409, 502),
            summary="R18: an application user for a service principal (syncd app-user create)",
        ),
        ApiRoute(
            base + "/stubs",
            m(a.import_stubs, csv),
            methods=["POST"],
            responses={201: r.StubImportResult},
            errors=(404, 409, 502),
            summary="R20: stub users from a data import's CSV (syncd stub import)",
        ),
        ApiRoute(
            base + "/stubs/{stub}/reassign",
            m(a.reassign, ReassignBody),
            methods=["POST"],
            responses={200: r.ReassignResult},
            errors=(404, 409, 502),
            summary="R20: move a stub's records to a user (syncd stub reassign)",
        ),
        ApiRoute(
            base + "/roles",
            m(a.assign_role, RoleBody),
            methods=["POST"],
            responses={200: r.RoleResult},
            errors=(404, 409, 502),
            summary="R21: give a user a security role (syncd role assign)",
        ),
        ApiRoute(
            base + "/roles/{role}/users/{user}",
            m(a.remove_role, None),
            methods=["DELETE"],
            responses={200: r.RoleResult},
            errors=(404, 409, 502),
            summary="R21: take a security role from a user (syncd role remove)",
        ),
        ApiRoute(
            base,
            m(a.set_environment, JsonObject(EnvironmentSettingsBody)),
            methods=["PATCH"],
            responses={200: r.EnvironmentSettingsResult},
            errors=(404, 409),
            summary="An environment's settings (syncd env set); a change of scope makes the next run a full run",
        ),
        ApiRoute(
            base + "/resume",
            m(a.resume, None),
            methods=["POST"],
            responses={200: r.Resumed},
            errors=(404,),
            summary="Take an environment out of quarantine (syncd env resume)",
        ),
        ApiRoute(
            base + "/teams",
            a.list_teams,
            methods=["GET"],
            responses={200: r.TeamList},
            errors=(400, 404),
            summary="R25: the environment's teams (syncd team list)",
        ),
        ApiRoute(
            base + "/teams",
            m(a.create_team, CreateTeamBody),
            methods=["POST"],
            responses={201: r.TeamResult},
            errors=(404, 409, 502),
            summary="R25: a group team (syncd team create)",
        ),
        ApiRoute(
            base + "/teams/{team}",
            a.show_team,
            methods=["GET"],
            responses={200: r.TeamResult},
            errors=(400, 404),
            summary="R25: one team with its members; TEAM is its id, its group's object id or its name",
            query=TeamQuery,
        ),
        ApiRoute(
            base + "/teams/{team}/roles",
            m(a.assign_team_role, TeamRoleBody),
            methods=["POST"],
            responses={200: r.TeamResult},
            errors=(404, 409),
            summary="R21, R25: give a team a security role (syncd team role assign)",
            query=TeamQuery,
        ),
        ApiRoute(
            base + "/teams/{team}/roles/{role}",
            m(a.remove_team_role, None),
            methods=["DELETE"],
            responses={200: r.TeamResult},
            errors=(404, 409),
            summary="R21, R25: take a security role from a team (syncd team role remove)",
            query=TeamQuery,
        ),
        ApiRoute(
            base + "/groups/{group}/roles",
            m(a.assign_group_role, GroupRoleBody),
            methods=["POST"],
            responses={200: r.TeamResult, 201: r.TeamResult},
            errors=(404, 409, 502),
            summary="R25: a role for a group's team, created just in time (201) (syncd role assign-group)",
        ),
    ]
