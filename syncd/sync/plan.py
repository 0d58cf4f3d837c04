"""Planning: turn the rules' decisions into operations on rows (pure: no I/O).

An operation carries the whole row as it must be after the write, so the writer needs nothing
else, plus the rule and the reason for the run's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.rules import SYNCED_COLUMNS, Action, Decision
from syncd.sync.rows import CurrentRow

# The row columns the writer stages, in order.
# The synced columns a row holds besides its object id (R10), in SYNCED_COLUMNS order.
_VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in SYNCED_COLUMNS if c != "azureactivedirectoryobjectid")
# The row columns the writer stages, in order.
STAGE_COLUMNS: tuple[str, ...] = (
    "systemuserid",
    "environment_id",
    "azureactivedirectoryobjectid",
    "kind",
    *_VALUE_COLUMNS,
    "isdisabled",
    "accessmode",
    "islicensed",
    "synced_internalemailaddress",
    "createdon",
    "modifiedon",
)

WRITING_ACTIONS = frozenset({Action.CREATE, Action.UPDATE, Action.ENABLE, Action.DISABLE})


@dataclass(slots=True)
class Operation:
    """One write: the row as it must be afterwards, and why."""

    action: Action
    object_id: str
    systemuserid: str
    row: tuple[Any, ...]  # values in STAGE_COLUMNS order
    rule: str
    reason: str
    changes: Mapping[str, Any]

    def describe(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "object_id": self.object_id,
            "domainname": self.row[4],
            "rule": self.rule,
            "reason": self.reason,
            "changes": dict(self.changes),
        }


def plan_operation(
    decision: Decision, object_id: str, current: CurrentRow | None, env_id: int, now: datetime
) -> Operation | None:
    """The operation a decision asks for, or None when it writes nothing."""
    action = decision.action
    if action not in WRITING_ACTIONS:
        return None
    changes = decision.changes
    if current is None:
        # CREATE: every synced column, the email remembered as the value sync wrote (R12).
        sid = str(uuid.uuid4())
        email = changes.get("internalemailaddress")
        row = (
            sid,
            env_id,
            object_id,
            "regular",
            *[changes.get(c) for c in _VALUE_COLUMNS],
            bool(decision.isdisabled),
            int(decision.accessmode or 0),
            bool(decision.islicensed),
            email,
            now,
            now,
        )
        return Operation(action, object_id, sid, row, decision.rule, decision.reason, changes)
    cols = current.facts.columns
    values = [changes[c] if c in changes else cols.get(c) for c in _VALUE_COLUMNS]
    synced = changes.get("internalemailaddress", current.synced_email)
    isdisabled = current.facts.isdisabled if decision.isdisabled is None else decision.isdisabled
    accessmode = current.facts.accessmode if decision.accessmode is None else decision.accessmode
    islicensed = current.facts.islicensed if decision.islicensed is None else decision.islicensed
    row = (
        current.systemuserid,
        env_id,
        object_id,
        "regular",
        *values,
        bool(isdisabled),
        int(accessmode),
        bool(islicensed),
        synced,
        current.createdon,
        now,
    )
    return Operation(action, object_id, current.systemuserid, row, decision.rule, decision.reason, changes)
