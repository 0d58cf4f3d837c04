"""What the pages read: environments' states, their runs for the charts, pending disables, users.

This is the one module that imports the data layer the pages stand on (the user search and the
provisioning log, `syncd.dataverse.user_search` and `syncd.dataverse.provisioning_log`); the rest
of `syncd.service.ui` imports them from here. Every query is bounded: a run list by its page, the
charts by `CHART_RUNS`, a search by its limit, a user by the `(environment_id, domainname)` index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

# The data layer (see the module's docstring), re-exported for the pages.
from syncd.dataverse.provisioning_log import (  # noqa: F401
    ACTIONS,
    CSV_COLUMNS,
    EventFilter,
    LogEvent,
    csv_rows,
    iter_events,
    jsonl_rows,
    read_events,
)
from syncd.dataverse.schema import Environment, SyncRun
from syncd.dataverse.user_search import UserHit, search_users  # noqa: F401
from syncd.service.quarantine import QuarantineState
from syncd.service.runs import aware

#: Runs shown by each chart of the overview.
CHART_RUNS = 50
#: The enabled-users chart looks for runs that recorded the count among this many latest runs.
ENABLED_WINDOW = 2000
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
    environment's enabled regular rows when it finished (None when not recorded: only full runs
    that finished record it)."""

    run_id: int
    started_at: datetime
    kind: str
    outcome: str
    duration_s: float | None
    changes: int
    users_enabled: int | None


def _points(session: Session, q: Any) -> list[RunPoint]:
    out = []
    for run_id, started, finished, kind, outcome, changes, enabled in session.execute(q).all():
        duration = (aware(finished) - aware(started)).total_seconds() if finished is not None else None
        out.append(RunPoint(run_id, aware(started), kind, outcome, duration, int(changes or 0), enabled))
    return out[::-1]


def _run_columns() -> Any:
    return select(
        SyncRun.id,
        SyncRun.started_at,
        SyncRun.finished_at,
        SyncRun.kind,
        SyncRun.outcome,
        SyncRun.created + SyncRun.updated + SyncRun.enabled + SyncRun.disabled,
        SyncRun.users_enabled,
    )


def chart_runs(session: Session, environment_id: int, limit: int = CHART_RUNS) -> list[RunPoint]:
    """The environment's latest `limit` finished delta and full runs, oldest first."""
    q = _newest_first(
        _run_columns().where(
            SyncRun.environment_id == environment_id,
            SyncRun.kind.in_(RUN_KINDS),
            SyncRun.outcome != "running",
        )
    ).limit(limit)
    return _points(session, q)


def enabled_runs(
    session: Session, environment_id: int, limit: int = CHART_RUNS, window: int = ENABLED_WINDOW
) -> list[RunPoint]:
    """The environment's latest `limit` runs that recorded its enabled users (full runs), oldest
    first, looked for among its latest `window` runs only (so that the read stays bounded however
    many delta runs there are between two full runs)."""
    recent = _newest_first(select(SyncRun.id).where(SyncRun.environment_id == environment_id))
    ids = recent.limit(window).subquery()
    q = _newest_first(
        _run_columns().join(ids, ids.c.id == SyncRun.id).where(SyncRun.users_enabled.is_not(None))
    ).limit(limit)
    return _points(session, q)


def user_event_filter(
    session: Session, key: str, environment_id: int | None
) -> tuple[dict[str, str], str | None]:
    """The log filter fields (``object_id`` or ``systemuserid``) a log's "User" names, as
    ``GET /api/events?user=`` reads it (`syncd.service.status_api.user_filter`), and an error when
    it names none or several users."""
    from syncd.service.status_api import user_filter

    try:
        return user_filter(session, key, environment_id), None
    except (LookupError, ValueError) as exc:
        return {}, str(exc)


def environment_names(session: Session) -> list[str]:
    """Every environment's name, in order (the log's environment choice)."""
    return list(session.scalars(select(Environment.name).order_by(Environment.name)))
