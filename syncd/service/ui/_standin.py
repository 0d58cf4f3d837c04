"""A thin, temporary stand-in for `syncd.dataverse.user_search` and `syncd.dataverse.provisioning_log`
(being built on another branch), with their signatures from the UI's contract, so the pages render
until those modules land. Only `syncd.service.ui.data` imports it; it goes when they arrive.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from syncd.dataverse.schema import Environment, SyncEvent, SystemUser
from syncd.directory.ids import normalize_object_id

ACTIONS: tuple[str, ...] = (
    "create",
    "update",
    "enable",
    "disable",
    "failed",
    "withheld",
    "assign_role",
    "remove_role",
    "reassign",
    "set_mode",
)


@dataclass(frozen=True)
class UserHit:
    """One row found by `search_users`."""

    systemuserid: str
    azureactivedirectoryobjectid: str | None
    domainname: str
    fullname: str | None
    isdisabled: bool
    accessmode: int
    syncd_kind: str


def search_users(session: Session, environment_id: int, query: str, *, limit: int = 50) -> list[UserHit]:
    """Rows whose UPN or full name starts with `query` (ignoring case), or whose ids equal it."""
    query = query.strip()
    if not query:
        return []
    q = select(SystemUser).where(SystemUser.environment_id == environment_id)
    like = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    conds: list[Any] = [
        func.lower(SystemUser.domainname).like(like, escape="\\"),
        func.lower(SystemUser.fullname).like(like, escape="\\"),
    ]
    try:
        u = uuid.UUID(normalize_object_id(query))
        conds += [SystemUser.azureactivedirectoryobjectid == u, SystemUser.systemuserid == u]
    except ValueError:
        pass
    rows = session.scalars(q.where(or_(*conds)).order_by(SystemUser.domainname).limit(limit))
    return [
        UserHit(
            systemuserid=str(r.systemuserid),
            azureactivedirectoryobjectid=str(r.azureactivedirectoryobjectid)
            if r.azureactivedirectoryobjectid
            else None,
            domainname=r.domainname,
            fullname=r.fullname,
            isdisabled=r.isdisabled,
            accessmode=r.accessmode,
            syncd_kind=r.kind,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class EventFilter:
    """Which events `read_events` answers (every given field must hold)."""

    environment_id: int | None = None
    run_id: int | None = None
    object_id: str | None = None
    systemuserid: str | None = None
    action: str | None = None
    rule: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class LogEvent:
    """One event of the provisioning log."""

    id: int
    run_id: int | None
    environment: str
    systemuserid: str | None
    azureactivedirectoryobjectid: str | None
    domainname: str | None
    action: str
    rule: str
    reason: str
    changes: dict[str, tuple[Any, Any]]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
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
            "changes": {k: {"old": o, "new": n} for k, (o, n) in self.changes.items()},
            "created_at": self.created_at.isoformat(),
        }


def _query(f: EventFilter) -> Any:
    q = (
        select(SyncEvent, Environment.name, SystemUser.domainname)
        .join(Environment, Environment.id == SyncEvent.environment_id)
        .outerjoin(SystemUser, SystemUser.systemuserid == SyncEvent.systemuserid)
    )
    if f.environment_id is not None:
        q = q.where(SyncEvent.environment_id == f.environment_id)
    if f.run_id is not None:
        q = q.where(SyncEvent.run_id == f.run_id)
    if f.object_id is not None:
        q = q.where(SyncEvent.azureactivedirectoryobjectid == uuid.UUID(normalize_object_id(f.object_id)))
    if f.systemuserid is not None:
        q = q.where(SyncEvent.systemuserid == uuid.UUID(normalize_object_id(f.systemuserid)))
    if f.action is not None:
        q = q.where(SyncEvent.action == f.action)
    if f.rule is not None:
        q = q.where(SyncEvent.rule == f.rule)
    if f.since is not None:
        q = q.where(SyncEvent.created_at >= f.since)
    if f.until is not None:
        q = q.where(SyncEvent.created_at < f.until)
    return q.order_by(SyncEvent.id.desc())


def _event(e: SyncEvent, env: str, upn: str | None) -> LogEvent:
    new = orjson.loads(e.changes) if e.changes else {}
    return LogEvent(
        id=e.id,
        run_id=e.run_id,
        environment=env,
        systemuserid=str(e.systemuserid) if e.systemuserid else None,
        azureactivedirectoryobjectid=str(e.azureactivedirectoryobjectid)
        if e.azureactivedirectoryobjectid
        else None,
        domainname=upn,
        action=e.action,
        rule=e.rule,
        reason=e.reason,
        changes={k: (None, v) for k, v in (new or {}).items()} if isinstance(new, dict) else {},
        created_at=e.created_at,
    )


def read_events(
    session: Session, f: EventFilter, *, limit: int = 50, before: int | None = None
) -> list[LogEvent]:
    """Newest first, keyset-paged by `before` (the last id of the previous page)."""
    q = _query(f)
    if before is not None:
        q = q.where(SyncEvent.id < before)
    return [_event(e, env, upn) for e, env, upn in session.execute(q.limit(limit)).all()]


def iter_events(session: Session, f: EventFilter, *, chunk: int = 5000) -> Iterator[LogEvent]:
    """Every matching event, newest first, in chunks."""
    before: int | None = None
    while True:
        page = read_events(session, f, limit=chunk, before=before)
        yield from page
        if len(page) < chunk:
            return
        before = page[-1].id


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


def csv_rows(events: Iterable[LogEvent]) -> Iterator[str]:
    """A header line, then one line per event."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    for e in events:
        buf.seek(0)
        buf.truncate()
        d = e.as_dict()
        w.writerow([d[c] if c != "changes" else orjson.dumps(d[c]).decode() for c in CSV_COLUMNS])
        yield buf.getvalue()


def jsonl_rows(events: Iterable[LogEvent]) -> Iterator[bytes]:
    """One JSON object per line."""
    for e in events:
        yield orjson.dumps(e.as_dict()) + b"\n"
