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
) -> None:
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
            created_at=utcnow(),
        )
    )
