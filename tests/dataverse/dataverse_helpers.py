"""Helpers for the status UI's queries: an environment with rows and events written directly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from syncd.dataverse.environments import EnvironmentSpec, create_environment, root_business_unit
from syncd.dataverse.schema import Environment, SyncEvent, SyncRun, SystemUser

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def environment(session: Session, name: str = "prod") -> Environment:
    env = create_environment(session, EnvironmentSpec(name=name))
    session.flush()
    return env


def add_user(
    session: Session,
    env: Environment,
    domainname: str,
    fullname: str | None = None,
    *,
    object_id: str | None = None,
    systemuserid: str | None = None,
    kind: str = "regular",
    isdisabled: bool = False,
) -> SystemUser:
    row = SystemUser(
        environment_id=env.id,
        businessunitid=root_business_unit(session, env.id).businessunitid,
        azureactivedirectoryobjectid=uuid.UUID(object_id)
        if object_id
        else (uuid.uuid4() if kind == "regular" else None),
        systemuserid=uuid.UUID(systemuserid) if systemuserid else uuid.uuid4(),
        kind=kind,
        domainname=domainname,
        fullname=fullname,
        isdisabled=isdisabled,
    )
    session.add(row)
    session.flush()
    return row


def add_run(session: Session, env: Environment, outcome: str = "succeeded") -> SyncRun:
    run = SyncRun(environment_id=env.id, kind="full", requested_kind="full", outcome=outcome, started_at=T0)
    session.add(run)
    session.flush()
    return run


def add_event(
    session: Session,
    env: Environment,
    *,
    row: SystemUser | None = None,
    run: SyncRun | None = None,
    action: str = "update",
    rule: str = "R10",
    reason: str = "because",
    changes: str | None = None,
    previous: str | None = None,
    at: datetime | None = None,
    minutes: int = 0,
    **extra: Any,
) -> SyncEvent:
    event = SyncEvent(
        run_id=run.id if run is not None else None,
        environment_id=env.id,
        systemuserid=row.systemuserid if row is not None else extra.get("systemuserid"),
        azureactivedirectoryobjectid=row.azureactivedirectoryobjectid
        if row is not None
        else extra.get("object_id"),
        action=action,
        rule=rule,
        reason=reason,
        changes=changes,
        previous=previous,
        created_at=at or T0 + timedelta(minutes=minutes),
    )
    session.add(event)
    session.flush()
    return event
