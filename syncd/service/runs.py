"""What the service reads back from the database: environments to schedule, recent runs, last outcomes.

Everything here reads `sync_run` and `systemuser`, so every replica reports the same picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from syncd.dataverse.environments import describe, user_counts
from syncd.dataverse.schema import Environment, SyncRun
from syncd.service.quarantine import QuarantinePolicy, QuarantineState, read_states
from syncd.service.scheduler import Target

#: Outcomes of a full run that read the directory to its end: "partial" only means that some rows
#: failed to be written. Either one is a full run done, for scheduling; only "succeeded" is a success.
FULL_RUN_DONE = ("succeeded", "partial")

COUNT_FIELDS = (
    "read",
    "created",
    "updated",
    "enabled",
    "disabled",
    "unchanged",
    "failed",
    "blocked_disables",
)


def targets(engine: Engine) -> list[Target]:
    """Environments the daemon syncs: those with a database."""
    with Session(engine) as session:
        rows = session.execute(
            select(Environment.id, Environment.name)
            .where(Environment.has_database.is_(True))
            .order_by(Environment.name)
        ).all()
    return [Target(id=i, name=n) for i, n in rows]


def run_dict(run: SyncRun, env_name: str | None = None) -> dict[str, Any]:
    return {
        "id": run.id,
        "environment": env_name,
        "environment_id": run.environment_id,
        "kind": run.kind,
        "requested_kind": run.requested_kind,
        "trigger": run.trigger,
        "outcome": run.outcome,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_s": _duration(run.started_at, run.finished_at),
        "counts": {f: getattr(run, f) for f in COUNT_FIELDS},
        "error": run.error,
        "users_enabled": run.users_enabled,
        "users_disabled": run.users_disabled,
    }


def recent_runs(
    session: Session, *, environment_id: int | None = None, limit: int = 20, before_id: int | None = None
) -> list[dict[str, Any]]:
    q = select(SyncRun, Environment.name).join(Environment, Environment.id == SyncRun.environment_id)
    if environment_id is not None:
        q = q.where(SyncRun.environment_id == environment_id)
    if before_id is not None:
        q = q.where(SyncRun.id < before_id)
    q = q.order_by(SyncRun.id.desc()).limit(limit)
    return [run_dict(run, name) for run, name in session.execute(q).all()]


def get_run(session: Session, run_id: int) -> dict[str, Any] | None:
    row = session.execute(
        select(SyncRun, Environment.name)
        .join(Environment, Environment.id == SyncRun.environment_id)
        .where(SyncRun.id == run_id)
    ).first()
    return run_dict(row[0], row[1]) if row else None


@dataclass(frozen=True)
class EnvStatus:
    environment: Environment
    users: dict[str, int]
    last_run: dict[str, Any] | None
    last_success_at: datetime | None
    quarantine: QuarantineState | None = None

    def as_dict(self) -> dict[str, Any]:
        out = describe(self.environment) | {
            "users": self.users,
            "last_run": self.last_run,
            "last_success_at": _iso(self.last_success_at),
        }
        if self.quarantine is not None:
            out["quarantine"] = self.quarantine.as_dict()
        return out


def last_runs(session: Session) -> dict[int, SyncRun]:
    """The latest finished run (not "running") of each environment."""
    latest = (
        select(SyncRun.environment_id, func.max(SyncRun.id).label("id"))
        .where(SyncRun.outcome != "running")
        .group_by(SyncRun.environment_id)
        .subquery()
    )
    runs = session.scalars(select(SyncRun).join(latest, latest.c.id == SyncRun.id))
    return {r.environment_id: r for r in runs}


def last_success(session: Session) -> dict[int, datetime]:
    rows = session.execute(
        select(SyncRun.environment_id, func.max(SyncRun.finished_at))
        .where(SyncRun.outcome == "succeeded")
        .group_by(SyncRun.environment_id)
    ).all()
    return {env_id: ts for env_id, ts in rows if ts is not None}


def environment_status(
    session: Session,
    quarantine: QuarantinePolicy | None = None,
    counts: Callable[[Session, int], dict[str, int]] = user_counts,
) -> list[EnvStatus]:
    """Every environment with its user counts (``counts(session, environment id)``; default a
    count now), last run, last success and, given the policy, its quarantine state (see
    `syncd.service.quarantine`)."""
    envs = list(session.scalars(select(Environment).order_by(Environment.name)))
    last = last_runs(session)
    ok = last_success(session)
    states = read_states(session, quarantine) if quarantine is not None else {}
    out = []
    for env in envs:
        run = last.get(env.id)
        out.append(
            EnvStatus(
                environment=env,
                users=counts(session, env.id),
                last_run=run_dict(run, env.name) if run else None,
                last_success_at=ok.get(env.id),
                quarantine=states.get(env.id),
            )
        )
    return out


def full_succeeded_since(session: Session, environment_id: int, since: datetime) -> bool:
    """Whether any replica finished a full run of the environment (FULL_RUN_DONE) after `since`."""
    found = session.scalar(
        select(SyncRun.id)
        .where(
            SyncRun.environment_id == environment_id,
            SyncRun.kind == "full",
            SyncRun.outcome.in_(FULL_RUN_DONE),
            SyncRun.finished_at >= since,
        )
        .limit(1)
    )
    return found is not None


def last_full_finished_at(session: Session, environment_id: int) -> datetime | None:
    """When the environment's last full run (FULL_RUN_DONE) finished, whoever ran it."""
    return session.scalar(
        select(func.max(SyncRun.finished_at)).where(
            SyncRun.environment_id == environment_id,
            SyncRun.kind == "full",
            SyncRun.outcome.in_(FULL_RUN_DONE),
        )
    )


def last_full_started_at(session: Session, environment_id: int) -> datetime | None:
    """When the environment's last completed full run (FULL_RUN_DONE) started, whoever ran it."""
    return session.scalar(
        select(func.max(SyncRun.started_at)).where(
            SyncRun.environment_id == environment_id,
            SyncRun.kind == "full",
            SyncRun.outcome.in_(FULL_RUN_DONE),
        )
    )


def last_started_at(session: Session, environment_id: int) -> datetime | None:
    return session.scalar(
        select(func.max(SyncRun.started_at)).where(SyncRun.environment_id == environment_id)
    )


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((aware(end) - aware(start)).total_seconds(), 3)


def aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
