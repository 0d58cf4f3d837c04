"""Planning: turn the rules' decisions into operations on rows (pure: no I/O).

An operation says only what it changes: a create carries the whole new row; every other
operation carries the columns whose value it sets (the synced columns that changed, and the
row's state where it changes), never a copy of the rest of the row as it was when the decision
was made. The current row is read again at write time, by the write itself, so an operation
applied later (a held-back disable) can't bring back values another write has replaced.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.rules import SYNCED_COLUMNS, Action, AzureState, Decision
from syncd.sync.rows import CurrentRow

# The synced columns a row holds besides its object id (R10), in SYNCED_COLUMNS order.
VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in SYNCED_COLUMNS if c != "azureactivedirectoryobjectid")
# The row's state: whether it is enabled, its access mode and licence flag, and the user's state in
# the directory (azurestate, R9).
STATE_COLUMNS: tuple[str, ...] = ("isdisabled", "accessmode", "islicensed", "azurestate")
# syncd's own column: the email sync last wrote (R12).
SYNCED_EMAIL = "syncd_syncedemail"
# Every column an operation can set on an existing row, in a fixed order (the storage's layout).
SET_COLUMNS: tuple[str, ...] = (*VALUE_COLUMNS, SYNCED_EMAIL, *STATE_COLUMNS)
# The columns of a new row that an operation carries, in order. The storage adds the environment,
# its root business unit (R26), issyncwithdirectory and the timestamps.
CREATE_COLUMNS: tuple[str, ...] = (
    "systemuserid",
    "azureactivedirectoryobjectid",
    "syncd_kind",
    *VALUE_COLUMNS,
    "isdisabled",
    "accessmode",
    "islicensed",
    SYNCED_EMAIL,
    "azurestate",
)

WRITING_ACTIONS = frozenset({Action.CREATE, Action.UPDATE, Action.ENABLE, Action.DISABLE})


@dataclass(slots=True)
class Operation:
    """One write to one row, and why.

    ``values`` maps column names to new values: for CREATE every column of CREATE_COLUMNS but the
    ids; otherwise only the columns this operation sets (a subset of SET_COLUMNS). ``changes`` are
    the synced columns (R10) that change, for the run's event; ``notes`` say what the rules had to
    fit into a column (cut, cleaned), appended to the event's reason. ``input_hash`` is what the
    decision was made from (``syncd.sync.inputs``; None: not recorded) and ``read_version`` the
    row's versionnumber when the run read it: the hash is stored only if the row is still that
    version at write time. ``previous`` maps each column the operation changes (the keys of its
    event's changes: ``event_columns``) to the value the row held when the run read it; None for a
    CREATE (there was no row), so the bulk path of an initial sync does no work for it.
    """

    action: Action
    object_id: str
    systemuserid: str
    values: dict[str, Any]
    rule: str
    reason: str
    changes: Mapping[str, Any]
    notes: tuple[str, ...] = ()
    input_hash: int | None = None
    read_version: int | None = None
    previous: Mapping[str, Any] | None = None

    @property
    def event_reason(self) -> str:
        return self.reason if not self.notes else f"{self.reason} ({'; '.join(self.notes)})"

    def event_columns(self) -> dict[str, Any]:
        """Column -> new value, as the run's event records it: the synced columns that change (R10)
        and the row's state where the operation sets it (never the object id). Empty for a CREATE."""
        if self.action is Action.CREATE:
            return {}
        values = self.values
        changed = {**self.changes, **{c: values[c] for c in STATE_COLUMNS if c in values}}
        changed.pop("azureactivedirectoryobjectid", None)
        return changed

    def describe(self) -> dict[str, Any]:
        """The operation as a dry run reports it."""
        return {
            "action": self.action.value,
            "object_id": self.object_id,
            "domainname": self.values.get("domainname"),
            "rule": self.rule,
            "reason": self.event_reason,
            "changes": dict(self.changes),
        }


_AZURE_STATE_REASON = {
    AzureState.EXISTS: "The user is in the directory again: azurestate 0.",
    AzureState.SOFT_DELETED: "The user is soft-deleted in the directory (restorable): azurestate 1.",
    AzureState.NOT_FOUND: "The user is hard-deleted or not found in the directory: azurestate 2.",
}


def plan_operation(
    decision: Decision, object_id: str, current: CurrentRow | None, azurestate: int | None = None
) -> Operation | None:
    """The operation a decision asks for, or None when it writes nothing.

    ``current`` is the row the decision was made against (None: no row). A CREATE gets a new
    ``systemuserid`` and remembers the email it writes as the one sync wrote (R12).
    ``azurestate``: the user's state in the directory (R9, ``syncd.rules.azure_state``), None when
    not known. A row sync keeps (its decision is not LEAVE_ALONE) takes it with whatever else
    changes; when nothing else does, it is an UPDATE of its own under R9.
    """
    action = decision.action
    keeps = action is Action.KEEP and current is not None
    if action not in WRITING_ACTIONS and not keeps:
        return None
    changes = decision.changes
    notes = decision.notes
    if current is None:
        values: dict[str, Any] = {c: changes.get(c) for c in VALUE_COLUMNS}
        values["isdisabled"] = bool(decision.isdisabled)
        values["accessmode"] = int(decision.accessmode or 0)
        values["islicensed"] = bool(decision.islicensed)
        values[SYNCED_EMAIL] = changes.get("internalemailaddress")
        values["azurestate"] = int(azurestate or 0)
        sid = new_systemuserid()
        return Operation(action, object_id, sid, values, decision.rule, decision.reason, changes, notes)
    values = {c: v for c, v in changes.items() if c != "azureactivedirectoryobjectid"}
    if "internalemailaddress" in values:
        values[SYNCED_EMAIL] = values["internalemailaddress"]
    facts = current.facts
    if decision.isdisabled is not None and decision.isdisabled != facts.isdisabled:
        values["isdisabled"] = decision.isdisabled
    if decision.accessmode is not None and decision.accessmode != facts.accessmode:
        values["accessmode"] = int(decision.accessmode)
    if decision.islicensed is not None and decision.islicensed != facts.islicensed:
        values["islicensed"] = decision.islicensed
    state_only = not values
    if azurestate is not None and azurestate != facts.azurestate:
        values["azurestate"] = int(azurestate)
    if not values:
        return None
    if state_only:  # a KEEP, or a decision whose columns the row already holds: only azurestate moves
        reason = _AZURE_STATE_REASON[AzureState(int(azurestate))]  # type: ignore[arg-type]
        op = Operation(Action.UPDATE, object_id, current.systemuserid, values, "R9", reason, changes, notes)
    else:
        op = Operation(
            action, object_id, current.systemuserid, values, decision.rule, decision.reason, changes, notes
        )
    op.previous = previous_values(current, op.event_columns())
    return op


def previous_values(current: CurrentRow, columns: Iterable[str]) -> dict[str, Any]:
    """What ``current`` (the row as the run read it) holds in each of ``columns``: the synced
    columns (R10) and the row's state (STATE_COLUMNS). A column the row does not show is None."""
    facts = current.facts
    state = {
        "isdisabled": facts.isdisabled,
        "accessmode": facts.accessmode,
        "islicensed": facts.islicensed,
        "azurestate": facts.azurestate,
    }
    return {c: state[c] if c in state else facts.columns.get(c) for c in columns}


_ID_POOL: list[bytes] = []


def new_systemuserid() -> str:
    """A random (version 4) GUID for a new row, drawn from the OS's random source 4,096 at a time:
    one system call per batch of creates instead of one per row (``uuid.uuid4`` reads 16 bytes at
    a time, a tenth of an initial sync's time in a profile)."""
    if not _ID_POOL:
        raw = os.urandom(16 * 4096)
        _ID_POOL.extend(raw[i : i + 16] for i in range(0, len(raw), 16))
    return str(uuid.UUID(bytes=_ID_POOL.pop(), version=4))


def recreate_values(op: Operation, current: CurrentRow) -> Operation | None:
    """A CREATE turned into the update that gives the row ``current`` (which this run created from an
    earlier copy of the user) exactly the create's values; None when it has them already.

    Used when a later copy of a user, in the same read, supersedes the copy a row was created
    from: the row must end as if only the latest copy had been read.
    """
    facts, values = current.facts, op.values
    if (
        all(values[c] == facts.columns.get(c) for c in VALUE_COLUMNS)
        and values["isdisabled"] == facts.isdisabled
        and values["accessmode"] == facts.accessmode
        and values["islicensed"] == facts.islicensed
        and values.get("azurestate", 0) == facts.azurestate
    ):
        return None
    update = Operation(
        Action.UPDATE,
        op.object_id,
        current.systemuserid,
        dict(values),
        "R10",
        "A later copy of the user in the same read supersedes the one the row was created from.",
        op.changes,
        op.notes,
    )
    update.previous = previous_values(current, update.event_columns())
    return update
