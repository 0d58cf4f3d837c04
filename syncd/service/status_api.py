"""The status UI's two JSON reads: ``GET /api/environments/{name}/users`` (user search) and
``GET /api/events`` (the provisioning log, as a JSON page or a CSV / JSON lines export).

The query models here declare the parameters in the OpenAPI document and parse them: a value that
does not fit is a 400 ``{"error", "detail"}`` naming the parameter and the value; an unknown
environment (or user) is a 404. The exports stream every matching event (no limit), a chunk at a
time from the database (``syncd.dataverse.provisioning_log.iter_events``), as an attachment.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from syncd.dataverse.environments import find_environment, shown
from syncd.dataverse.provisioning_log import (
    ACTIONS,
    MAX_PAGE,
    RULE_PATTERN,
    EventFilter,
    UnknownEvent,
    csv_rows,
    iter_events,
    jsonl_rows,
    read_events,
)
from syncd.dataverse.schema import SystemUser
from syncd.dataverse.textfold import casefold, fold_text
from syncd.dataverse.user_search import MAX_LIMIT, search_users
from syncd.service.bodies import BAD_REQUEST

MAX_ID = 2**63 - 1  # run and event ids are 64-bit (BIGINT on PostgreSQL, INTEGER on SQLite)
EXPORT_CHUNK = 64 * 1024  # bytes of an export sent at a time
MEDIA = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


class UsersQuery(BaseModel):
    """The query of ``GET /api/environments/{name}/users``."""

    model_config = ConfigDict(extra="ignore")

    q: str = Field(
        default="",
        max_length=256,
        description="the start of a UPN or full name (any case), a GUID, or 4+ hex digits of an id; "
        "empty: no users",
    )
    limit: int = Field(default=50, ge=1, description=f"at most this many users (more is read as {MAX_LIMIT})")


class EventsQuery(BaseModel):
    """The query of ``GET /api/events``."""

    model_config = ConfigDict(extra="ignore")

    environment: str | SkipJsonSchema[None] = Field(
        default=None, description="only this environment's events"
    )
    # The bounds sit on the integer itself: on the union, pydantic would write them as ``ge``/``le``,
    # which JSON Schema does not know.
    run: Annotated[int, Field(ge=0, le=MAX_ID)] | SkipJsonSchema[None] = Field(
        default=None, description="only this run's events"
    )
    user: str | SkipJsonSchema[None] = Field(
        default=None, max_length=256, description="only this user's: an object id, systemuserid or UPN"
    )
    action: Literal[ACTIONS] | SkipJsonSchema[None] = Field(  # type: ignore[valid-type]
        default=None, description="only events of this action"
    )
    rule: str | SkipJsonSchema[None] = Field(
        default=None, pattern=RULE_PATTERN, description="only events under this rule (R1-R26)"
    )
    since: datetime | SkipJsonSchema[None] = Field(
        default=None, description="only events at or after this time (ISO 8601; without an offset: UTC)"
    )
    until: datetime | SkipJsonSchema[None] = Field(
        default=None,
        description="only events before this time; later than since, when both are given (else a 400)",
    )
    limit: int = Field(
        default=50, ge=1, description=f"at most this many events, json only (more is read as {MAX_PAGE})"
    )
    before: Annotated[int, Field(ge=0, le=MAX_ID)] | SkipJsonSchema[None] = Field(
        default=None, description="the last event id of the previous page (the next page)"
    )
    format: Literal["json", "csv", "jsonl"] = Field(
        default="json", description="json: one page; csv or jsonl: every matching event, as a download"
    )


def error(status: int, kind: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status)


def _parse(model: type[BaseModel], request: Request) -> BaseModel | JSONResponse:
    """The query as ``model`` (an empty parameter is left out), or a 400 naming the first parameter
    that does not fit and its value."""
    params = request.query_params
    repeated = sorted({k for k in params if len(params.getlist(k)) > 1} & set(model.model_fields))
    if repeated:
        return error(400, BAD_REQUEST, f"{repeated[0]} is given more than once")
    try:
        # An empty value is no value (an HTML form sends its empty fields): that filter is off.
        return model.model_validate({k: v for k, v in params.items() if v != ""})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "query"
        value = params.get(name, "")
        return error(400, BAD_REQUEST, f"{name} {shown(value)}: {first['msg']}")


def users(engine: Engine, request: Request) -> Response:
    """``GET /api/environments/{name}/users?q=&limit=``: ``search_users``' hits as a JSON list."""
    query = _parse(UsersQuery, request)
    if isinstance(query, JSONResponse):
        return query
    assert isinstance(query, UsersQuery)
    name = request.path_params["name"]
    with Session(engine) as session:
        env = find_environment(session, name)
        if env is None:
            return error(404, "not found", f"no environment named {shown(name)}")
        hits = search_users(session, env.id, query.q, limit=min(query.limit, MAX_LIMIT))
    return JSONResponse([h.as_dict() for h in hits])


def user_filter(session: Session, user: str, environment_id: int | None) -> dict[str, str]:
    """The EventFilter fields that name ``user``: a GUID that is a row's systemuserid (in the
    environment, if given) is that row's; any other GUID is an object id (its events stay readable
    after its row is gone); otherwise a UPN, any case, of one row (or of rows of one directory
    user). Raises LookupError when no row has the UPN, ValueError when rows of different users do."""
    text = user.strip()
    if "\x00" in text:  # no row holds a NUL (PostgreSQL's text can't)
        raise LookupError(f"no user {shown(user)}")
    try:
        guid = uuid.UUID(text)
    except ValueError:
        guid = None
    t = SystemUser.__table__.c
    scope = [t.environment_id == environment_id] if environment_id is not None else []
    if guid is not None:
        found = session.execute(select(t.systemuserid).where(t.systemuserid == guid, *scope)).first()
        return {"systemuserid": str(guid)} if found is not None else {"object_id": str(guid)}
    rows = session.execute(
        select(t.systemuserid, t.azureactivedirectoryobjectid).where(
            casefold(t.domainname) == fold_text(text), *scope
        )
    ).all()
    if not rows:
        raise LookupError(f"no user {shown(user)}")
    oids = {r.azureactivedirectoryobjectid for r in rows}
    if len(oids) == 1 and None not in oids:
        return {"object_id": str(oids.pop())}
    if len(rows) == 1:
        return {"systemuserid": str(rows[0].systemuserid)}
    raise ValueError(f"user {shown(user)} names several users: give the environment, or an id")


def events(engine: Engine, request: Request) -> Response:
    """``GET /api/events``: a JSON page of ``read_events``, or every matching event as CSV / JSON lines."""
    query = _parse(EventsQuery, request)
    if isinstance(query, JSONResponse):
        return query
    assert isinstance(query, EventsQuery)
    try:
        since = _aware(query.since) if query.since is not None else None
        until = _aware(query.until) if query.until is not None else None
    except OverflowError:
        return error(400, BAD_REQUEST, "since and until must be times from year 1 to 9999 in UTC")
    if since is not None and until is not None and since >= until:
        return error(400, BAD_REQUEST, "since must be before until")
    with Session(engine) as session:
        env_id = None
        if query.environment is not None:
            env = find_environment(session, query.environment)
            if env is None:
                return error(404, "not found", f"no environment named {shown(query.environment)}")
            env_id = env.id
        who: dict[str, str] = {}
        if query.user is not None:
            try:
                who = user_filter(session, query.user, env_id)
            except LookupError as exc:
                return error(404, "not found", str(exc))
            except ValueError as exc:
                return error(400, BAD_REQUEST, str(exc))
        f = EventFilter(
            environment_id=env_id,
            run_id=query.run,
            action=query.action,
            rule=query.rule,
            since=since,
            until=until,
            **who,
        )
        if query.format == "json":
            try:
                page = read_events(session, f, limit=min(query.limit, MAX_PAGE), before=query.before)
            except UnknownEvent:
                return error(400, BAD_REQUEST, f"before {query.before}: no such event")
            return JSONResponse([e.as_dict() for e in page])
    name = "syncd-events" + (f"-{_safe(query.environment)}" if query.environment else "")
    body = _stream(engine, f, query.format)
    return StreamingResponse(
        body,
        media_type=MEDIA[query.format] + ("; charset=utf-8" if query.format == "csv" else ""),
        headers={"Content-Disposition": f'attachment; filename="{name}.{query.format}"'},
    )


def _aware(value: datetime) -> datetime:
    """``value`` in UTC (a naive one is UTC); OverflowError when UTC has no such time (year 1 or 9999
    at the edge of an offset)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _safe(name: str) -> str:
    """An environment name as a file name's part: letters, digits, ``.``, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "_"


def _stream(engine: Engine, f: EventFilter, fmt: str) -> Iterator[Any]:
    """The export's lines, read a chunk at a time on a session of its own (closed at the end, or when
    the client goes away)."""
    with Session(engine) as session:
        found = iter_events(session, f)
        lines = (line.encode() for line in csv_rows(found)) if fmt == "csv" else jsonl_rows(found)
        buffer: list[bytes] = []
        size = 0
        for line in lines:
            buffer.append(line)
            size += len(line)
            if size >= EXPORT_CHUNK:
                yield b"".join(buffer)
                buffer, size = [], 0
        if buffer:
            yield b"".join(buffer)
