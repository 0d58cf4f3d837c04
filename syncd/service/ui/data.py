"""What the pages read: environments' states, their runs for the charts, pending disables, users.

This is the one module that imports the data layer the pages stand on (the user search and the
provisioning log, `syncd.dataverse.user_search` and `syncd.dataverse.provisioning_log`); the rest
of `syncd.service.ui` imports them from here. Every query is bounded: a run list by its page, the
charts by `CHART_RUNS`, a search by its limit, a user by the `(environment_id, domainname)` index.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from syncd.dataverse.schema import Environment, SyncRun, SystemUser
from syncd.directory.ids import is_object_id, normalize_object_id
from syncd.service.quarantine import QuarantineState
from syncd.service.runs import aware

# The data layer (see the module's docstring): switch these imports, and nothing else, to move.
from syncd.service.ui._standin import (  # noqa: F401  (re-exported)
    ACTIONS,
    CSV_COLUMNS,
    EventFilter,
    LogEvent,
    UserHit,
    csv_rows,
    iter_events,
    jsonl_rows,
    read_events,
    search_users,
)

USERS_ENABLED: Any = getattr(SyncRun, "users_enabled", None)

#: Runs shown by each chart of the overview.
CHART_RUNS = 50
#: The state words of an environment, in the order they win over one another.
STATES = ("no database", "syncing", "quarantined", "blocked", "failing", "never run", "in step")
#: Outcomes of a delta or full run that say where the environment stands (dry runs, interrupted
#: and abandoned runs do not).
DECISIVE = ("succeeded", "partial", "failed", "blocked")
RUN_KINDS = ("full", "delta")


def state_word(
    *, has_database: bool, running: bool, quarantine: QuarantineState | None, last_outcome: str | None
) -> str:
    """An environment's state word (one of STATES). ``last_outcome`` is the outcome of its latest
    delta or full run with a DECISIVE outcome, None when it has none: succeeded is ``in step``;
    partial (some rows failed to be written) and failed are ``failing``; blocked (the mass-disable
    guard holds its disables) is ``blocked``. A run in progress is ``syncing``; quarantine wins
    over the last outcome; an environment without a database is ``no database`` whatever else."""
    if not has_database:
        return "no database"
    if running:
        return "syncing"
    if quarantine is not None and quarantine.quarantined:
        return "quarantined"
    if last_outcome == "blocked":
        return "blocked"
    if last_outcome in ("failed", "partial"):
        return "failing"
    if last_outcome is None:
        return "never run"
    return "in step"


#: A run in progress is among an environment's latest this many runs (its runs take turns).
RECENT_RUNS = 10


def _newest_first(q: Any) -> Any:
    """Newest run first, along the ``(environment_id, started_at)`` index."""
    return q.order_by(SyncRun.started_at.desc(), SyncRun.id.desc())


def is_running(session: Session, environment_id: int) -> bool:
    """Whether one of the environment's latest RECENT_RUNS runs has the outcome ``running``."""
    latest = _newest_first(select(SyncRun.outcome).where(SyncRun.environment_id == environment_id)).limit(
        RECENT_RUNS
    )
    return "running" in set(session.scalars(latest))


def last_decisive(session: Session, environment_id: int) -> SyncRun | None:
    """The environment's latest delta or full run with a DECISIVE outcome, or None."""
    q = select(SyncRun).where(
        SyncRun.environment_id == environment_id,
        SyncRun.kind.in_(RUN_KINDS),
        SyncRun.outcome.in_(DECISIVE),
    )
    return session.scalar(_newest_first(q).limit(1))


@dataclass(frozen=True)
class RunPoint:
    """One finished delta or full run, as the charts draw it. ``duration_s`` in seconds (None when
    it has no end); ``changes``: rows created, updated, enabled and disabled; ``users_enabled``: the
    environment's enabled regular rows when it finished (None when not recorded)."""

    run_id: int
    started_at: datetime
    kind: str
    outcome: str
    duration_s: float | None
    changes: int
    users_enabled: int | None


def chart_runs(session: Session, environment_id: int, limit: int = CHART_RUNS) -> list[RunPoint]:
    """The environment's latest `limit` finished delta and full runs, oldest first."""
    cols: list[Any] = [
        SyncRun.id,
        SyncRun.started_at,
        SyncRun.finished_at,
        SyncRun.kind,
        SyncRun.outcome,
        SyncRun.created + SyncRun.updated + SyncRun.enabled + SyncRun.disabled,
    ]
    if USERS_ENABLED is not None:
        cols.append(USERS_ENABLED)
    q = (
        select(*cols)
        .where(
            SyncRun.environment_id == environment_id,
            SyncRun.kind.in_(RUN_KINDS),
            SyncRun.outcome != "running",
        )
        .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
        .limit(limit)
    )
    out = []
    for row in session.execute(q).all():
        run_id, started, finished, kind, outcome, changes = row[:6]
        enabled = row[6] if len(row) > 6 else None
        duration = (aware(finished) - aware(started)).total_seconds() if finished is not None else None
        out.append(RunPoint(run_id, aware(started), kind, outcome, duration, int(changes or 0), enabled))
    return out[::-1]


def environment_by_name(session: Session, name: str) -> Environment | None:
    """The environment of that name, or None (a name no environment can have is None at once)."""
    from syncd.dataverse.environments import impossible_name

    if impossible_name(name):
        return None
    return session.scalar(select(Environment).where(Environment.name == name))


def find_row(session: Session, environment_id: int, key: str) -> SystemUser | None:
    """The environment's row a page's key names: an object id, a systemuserid or an application id
    (any GUID spelling), or a UPN (exactly, then in lower case), regular rows first; None when
    none. Each lookup uses an index."""
    from syncd.admin.lookup import find_rows

    key = key.strip()
    if not key:
        return None
    if is_object_id(key):
        rows = find_rows(session, environment_id, key)
        return rows[0] if rows else None
    for upn in dict.fromkeys((key, key.lower())):
        row = session.scalar(
            select(SystemUser)
            .where(SystemUser.environment_id == environment_id, SystemUser.domainname == upn)
            .order_by((SystemUser.kind != "regular"), SystemUser.createdon)
            .limit(1)
        )
        if row is not None:
            return row
    return None


def user_event_filter(
    session: Session, key: str, environment_id: int | None
) -> tuple[dict[str, str], str | None]:
    """The log filter fields (``object_id`` or ``systemuserid``) a log's "User" names, and an error
    when it names none. A GUID is a systemuserid when a row has it, else an object id; a UPN is
    looked up in the environment (or in each one) by `find_row`."""
    key = key.strip()
    if is_object_id(key):
        gid = normalize_object_id(key)
        has_row = session.scalar(
            select(SystemUser.systemuserid).where(SystemUser.systemuserid == uuid.UUID(gid))
        )
        return ({"systemuserid": gid} if has_row is not None else {"object_id": gid}), None
    env_ids = (
        [environment_id]
        if environment_id is not None
        else list(session.scalars(select(Environment.id).order_by(Environment.name)))
    )
    for env_id in env_ids:
        row = find_row(session, env_id, key)
        if row is not None:
            if row.azureactivedirectoryobjectid is not None:
                return {"object_id": str(row.azureactivedirectoryobjectid)}, None
            return {"systemuserid": str(row.systemuserid)}, None
    return {}, "no user with that object id, systemuserid or UPN"


def environment_names(session: Session) -> list[str]:
    """Every environment's name, in order (the log's environment choice)."""
    return list(session.scalars(select(Environment.name).order_by(Environment.name)))
