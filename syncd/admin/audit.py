"""Events for the changes an administrator makes outside a sync (modes, roles, application and stub
users, reassignment): written to sync_event with no run, next to sync's own, so a user's history
(``syncd user diagnose``) reads as one list."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.orm import Session

from syncd.dataverse.schema import SyncEvent, SystemUser, utcnow


def record_event(
    session: Session,
    row: SystemUser,
    action: str,
    rule: str,
    reason: str,
    changes: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> None:
    """Add (not flush) one event with no run for ``row``: ``changes`` column -> new value and
    ``previous`` column -> the value it replaced (the same keys; None where the operation creates
    or knows no old value), each stored as a JSON object."""
    session.add(
        SyncEvent(
            run_id=None,
            environment_id=row.environment_id,
            systemuserid=row.systemuserid,
            azureactivedirectoryobjectid=row.azureactivedirectoryobjectid,
            action=action,
            rule=rule,
            reason=reason,
            changes=orjson.dumps(changes, default=str).decode() if changes else None,
            previous=orjson.dumps(previous, default=str).decode() if previous else None,
            created_at=utcnow(),
        )
    )
