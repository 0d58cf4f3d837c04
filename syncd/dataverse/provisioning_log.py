"""The provisioning log: ``sync_event`` read back, filtered and paged (the status UI and ``GET /api/events``).

Order. Newest first: by ``created_at`` descending, then ``id`` descending. ``created_at`` is when
the writer stamped the event (each process by its own clock), ids are handed out by the
database: across writers the two orders can disagree by the time a batch takes to commit, so the
log follows time, and a time range (``since`` <= created_at < ``until``) is exact. Pages are
keyed by (created_at, id): ``before`` names the last event of the previous page by its id, and
the next page holds the events after it in this order.

Speed. Each filter is one range of one index of migration 0007, already in this order, so a page
of 50 reads about 50 index entries whatever the filter: environment (+ time range):
``ix_sync_event_env_time``; + rule: ``ix_sync_event_env_rule``; + action:
``ix_sync_event_env_action``; run: ``ix_sync_event_run``; user: ``ix_sync_event_object`` (or,
for a row with no object id, ``ix_sync_event_systemuser_noobject``). A filter without an
environment, run or user is read per environment and merged (a handful of environments, each
one index range). Other filters of the same query are checked on the rows the range yields.

Values. ``changes`` pairs each column's old value (``sync_event.previous``; None when not
recorded: creates, events older than migration 0007) with its new one (``sync_event.changes``).
``domainname`` is the row's UPN now (None when the row is gone or never was, e.g. a failed create).
"""

from __future__ import annotations

import csv
import heapq
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, DateTime, Select, literal, select, tuple_
from sqlalchemy.orm import Session

from syncd.dataverse.schema import BigId, Environment, SyncEvent, SystemUser

# Every action an event can have: sync's writes (syncd.sync) and their failures, the disables a
# blocked run held back (the mass-disable guard), and administrators' operations (syncd.admin,
# the Web API).
ACTIONS: tuple[str, ...] = (
    "create",
    "update",
    "enable",
    "disable",
    "failed",
    "withheld",
    "assign_role",
    "remove_role",
    "join_team",
    "leave_team",
    "reassign",
)
CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "environment",
    "run_id",
    "systemuserid",
    "azureactivedirectoryobjectid",
    "domainname",
    "action",
    "rule",
    "reason",
    "changes",
)
MAX_PAGE = 500
#: A rule id as events carry it (RULES.md): R and a number, and a sub-rule's letter (R7c).
RULE_PATTERN = r"^R[1-9][0-9]?[a-z]?$"

_E = SyncEvent.__table__.c
_U = SystemUser.__table__.c
_ENV = Environment.__table__.c
_TS = DateTime(timezone=True)


class UnknownEvent(LookupError):
    """``before`` names no event (it was never written, or went with its run)."""


@dataclass(frozen=True)
class EventFilter:
    """Which events to read; every field given must hold (None: any). ``object_id`` and
    ``systemuserid`` take a GUID in any spelling (ValueError otherwise, from the reading
    function); ``since`` / ``until`` are aware datetimes (a naive one is read as UTC)."""

    environment_id: int | None = None
    run_id: int | None = None
    object_id: str | None = None  # azureactivedirectoryobjectid (any GUID spelling)
    systemuserid: str | None = None
    action: str | None = None
    rule: str | None = None  # "R9"
    since: datetime | None = None  # created_at >= since (aware UTC)
    until: datetime | None = None  # created_at < until


@dataclass(frozen=True)
class LogEvent:
    """One event as the log shows it. Ids are dashed lower-case GUIDs; ``changes`` maps a column to
    (old, new), old None when unknown; ``created_at`` is aware UTC."""

    id: int
    run_id: int | None
    environment: str
    systemuserid: str | None
    azureactivedirectoryobjectid: str | None
    domainname: str | None  # of the row now, if any
    action: str
    rule: str
    reason: str
    changes: dict[str, tuple[Any, Any]]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``changes`` as ``{"col": {"old": .., "new": ..}}``, ``created_at`` in ISO 8601."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "environment": self.environment,
            "systemuserid": self.systemuserid,
            "azureactivedirectoryobjectid": self.azureactivedirectoryobjectid,
            "domainname": self.domainname,
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "changes": {c: {"old": old, "new": new} for c, (old, new) in self.changes.items()},
            "created_at": self.created_at.isoformat(),
        }


# -- reading ---------------------------------------------------------------------------------------


def _guid(value: str, what: str) -> uuid.UUID:
    text = value.strip()
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a GUID") from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _conditions(session: Session, f: EventFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``f`` (ValueError for an id that is not a GUID)."""
    out: list[ColumnElement[bool]] = []
    if f.environment_id is not None:
        out.append(_E.environment_id == f.environment_id)
    if f.run_id is not None:
        out.append(_E.run_id == f.run_id)
    if f.object_id is not None:
        out.append(_E.azureactivedirectoryobjectid == _guid(f.object_id, "object id"))
    if f.systemuserid is not None:
        sid = _guid(f.systemuserid, "systemuserid")
        out.append(_E.systemuserid == sid)
        if f.object_id is None:
            # A row's events carry its object id: read them through that index (or, for a row
            # without one, the partial index of events with none).
            row = session.execute(
                select(_U.azureactivedirectoryobjectid).where(_U.systemuserid == sid)
            ).first()
            if row is not None:
                oid = row[0]
                out.append(
                    _E.azureactivedirectoryobjectid.is_(None)
                    if oid is None
                    else _E.azureactivedirectoryobjectid == oid
                )
    if f.action is not None:
        out.append(_E.action == f.action)
    if f.rule is not None:
        out.append(_E.rule == f.rule)
    if f.since is not None:
        out.append(_E.created_at >= literal(_utc(f.since), _TS))
    if f.until is not None:
        out.append(_E.created_at < literal(_utc(f.until), _TS))
    return out


def _select(
    conditions: list[ColumnElement[bool]], cursor: tuple[datetime, int] | None, n: int
) -> Select[Any]:
    q = (
        select(
            _E.id,
            _E.run_id,
            _ENV.name,
            _E.systemuserid,
            _E.azureactivedirectoryobjectid,
            _U.domainname,
            _E.action,
            _E.rule,
            _E.reason,
            _E.changes,
            _E.previous,
            _E.created_at,
        )
        .select_from(
            SyncEvent.__table__.join(Environment.__table__, _ENV.id == _E.environment_id).outerjoin(
                SystemUser.__table__, _U.systemuserid == _E.systemuserid
            )
        )
        .where(*conditions)
    )
    if cursor is not None:
        at, last = cursor
        q = q.where(tuple_(_E.created_at, _E.id) < tuple_(literal(at, _TS), literal(last, BigId)))
    return q.order_by(_E.created_at.desc(), _E.id.desc()).limit(n)


def _event(row: Any) -> LogEvent:
    new = orjson.loads(row.changes) if row.changes else {}
    old = orjson.loads(row.previous) if row.previous else {}
    if not isinstance(new, dict):
        new = {"value": new}
    if not isinstance(old, dict):
        old = {}
    sid, oid = row.systemuserid, row.azureactivedirectoryobjectid
    return LogEvent(
        id=int(row.id),
        run_id=row.run_id,
        environment=row.name,
        systemuserid=str(sid) if sid is not None else None,
        azureactivedirectoryobjectid=str(oid) if oid is not None else None,
        domainname=row.domainname,
        action=row.action,
        rule=row.rule,
        reason=row.reason,
        changes={c: (old.get(c), v) for c, v in new.items()},
        created_at=_utc(row.created_at),
    )


def _fans_out(f: EventFilter) -> bool:
    """Whether no index leads with what ``f`` names: then it is read per environment and merged."""
    return f.environment_id is None and f.run_id is None and f.object_id is None and f.systemuserid is None


def _environments(session: Session) -> list[int]:
    return list(session.scalars(select(_ENV.id).order_by(_ENV.id)))


def _cursor(session: Session, before: int | None) -> tuple[datetime, int] | None:
    if before is None:
        return None
    row = session.execute(select(_E.created_at, _E.id).where(_E.id == before)).first()
    if row is None:
        raise UnknownEvent(f"no event {before}")
    return _utc(row[0]), int(row[1])


def _key(e: LogEvent) -> tuple[datetime, int]:
    return e.created_at, e.id


def read_events(
    session: Session, f: EventFilter, *, limit: int = 50, before: int | None = None
) -> list[LogEvent]:
    """One page of the events ``f`` matches, newest first (see the module), at most ``limit`` (1 to
    ``MAX_PAGE``; more is read as ``MAX_PAGE``). ``before``: the id of the last event of the
    previous page; the page holds the events after it. Raises ValueError for a bad id or limit,
    :class:`UnknownEvent` when ``before`` names no event."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    limit = min(limit, MAX_PAGE)
    cursor = _cursor(session, before)
    if not _fans_out(f):
        return [_event(r) for r in session.execute(_select(_conditions(session, f), cursor, limit))]
    pages = [
        [_event(r) for r in session.execute(_select(_conditions(session, _with_env(f, env)), cursor, limit))]
        for env in _environments(session)
    ]
    return list(heapq.merge(*pages, key=_key, reverse=True))[:limit]


def _with_env(f: EventFilter, environment_id: int) -> EventFilter:
    return EventFilter(
        environment_id, f.run_id, f.object_id, f.systemuserid, f.action, f.rule, f.since, f.until
    )


def _iter_one(session: Session, f: EventFilter, chunk: int) -> Iterator[LogEvent]:
    conditions = _conditions(session, f)
    cursor: tuple[datetime, int] | None = None
    while True:
        rows = [_event(r) for r in session.execute(_select(conditions, cursor, chunk))]
        yield from rows
        if len(rows) < chunk:
            return
        cursor = _key(rows[-1])


def iter_events(session: Session, f: EventFilter, *, chunk: int = 5000) -> Iterator[LogEvent]:
    """Every event ``f`` matches, newest first, read ``chunk`` at a time by the same keyset as the
    pages (memory stays flat: one chunk per environment read). For the CSV and JSON lines exports.
    Raises ValueError for a bad id or chunk (when iteration starts)."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    if not _fans_out(f):
        yield from _iter_one(session, f, chunk)
        return
    streams = [_iter_one(session, _with_env(f, env), chunk) for env in _environments(session)]
    yield from heapq.merge(*streams, key=_key, reverse=True)


# -- export ----------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell. Text that a spreadsheet would run as a formula (it starts with = + - @, a tab or
    a carriage return: OWASP's CSV injection advice) gets a leading apostrophe."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(event: LogEvent) -> list[str]:
    """The cells of one event, in CSV_COLUMNS order: ``changes`` as JSON
    (``{"col": {"old": .., "new": ..}}``), ``created_at`` in ISO 8601, empty for None."""
    d = event.as_dict()
    changes = orjson.dumps(d["changes"], default=str).decode() if event.changes else ""
    return [
        str(event.id),
        d["created_at"],
        _cell(event.environment),
        "" if event.run_id is None else str(event.run_id),
        _cell(event.systemuserid),
        _cell(event.azureactivedirectoryobjectid),
        _cell(event.domainname),
        _cell(event.action),
        _cell(event.rule),
        _cell(event.reason),
        changes,
    ]


def csv_rows(events: Iterable[LogEvent]) -> Iterator[str]:
    """RFC 4180 CSV, one string per line (each ending in CRLF): the header (CSV_COLUMNS), then one
    line per event (``csv_row``). A cell holding a comma, a quote or a line break is quoted."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")

    def line(cells: Iterable[str]) -> str:
        buf.seek(0)
        buf.truncate()
        writer.writerow(cells)
        return buf.getvalue()

    yield line(CSV_COLUMNS)
    for event in events:
        yield line(csv_row(event))


def jsonl_rows(events: Iterable[LogEvent]) -> Iterator[bytes]:
    """JSON lines: one ``LogEvent.as_dict()`` object per line, UTF-8, each ending in a newline."""
    for event in events:
        yield orjson.dumps(event.as_dict(), default=str) + b"\n"


__all__ = [
    "ACTIONS",
    "CSV_COLUMNS",
    "MAX_PAGE",
    "RULE_PATTERN",
    "EventFilter",
    "LogEvent",
    "UnknownEvent",
    "csv_row",
    "csv_rows",
    "iter_events",
    "jsonl_rows",
    "read_events",
]
