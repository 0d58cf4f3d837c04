"""The current SystemUser row of a user, as a run sees it (a plain value; the storage reads it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncd.rules import SYNCED_COLUMNS, RowFacts, UserKind

# The synced columns besides the object id, in SYNCED_COLUMNS order.
SYNCED_READ: tuple[str, ...] = tuple(c for c in SYNCED_COLUMNS if c != "azureactivedirectoryobjectid")
# The columns a run reads, in order: the storage selects exactly these.
ROW_COLUMNS: tuple[str, ...] = (
    "systemuserid",
    "azureactivedirectoryobjectid",
    "syncd_kind",
    "isdisabled",
    "accessmode",
    "islicensed",
    "syncd_syncedemail",
    "createdon",
    "modifiedon",
    "azurestate",
    "versionnumber",
    "syncd_inputhash",
    *SYNCED_READ,
)
_N_FIXED = 12
_KINDS = {k.value: k for k in UserKind}


def from_db_uuid(value: Any) -> str | None:
    """A stored GUID back to Graph's dashed lower-case form."""
    if value is None:
        return None
    s = str(value).lower()
    if len(s) == 32:
        return f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}"
    return s


@dataclass(slots=True)
class CurrentRow:
    """A row as a run sees it: the facts the rules read, and what this run has done to it.

    ``written_by_run`` is true when the row's ``modifiedon`` is this run's timestamp (the run
    already wrote it, from an earlier copy of the user); ``created_by_run`` when its ``createdon``
    is (the run created it). ``versionnumber`` is the row's version as read; ``input_hash`` what
    sync last decided it from (``syncd_inputhash``; None: not known, decide in full).
    """

    systemuserid: str
    object_id: str
    facts: RowFacts
    synced_email: str | None
    written_by_run: bool = False
    created_by_run: bool = False
    versionnumber: int | None = None
    input_hash: int | None = None


def row_from_tuple(t: Sequence[Any], run_stamp: Any) -> CurrentRow:
    """A CurrentRow from a tuple in ROW_COLUMNS order; ``run_stamp`` is this run's timestamp as the
    backend returns timestamps (compared with createdon and modifiedon)."""
    columns: dict[str, str | None] = dict(zip(SYNCED_READ, t[_N_FIXED:], strict=False))
    oid = t[1]
    if len(oid) != 36:  # SQLite's 32 hex digits
        oid = from_db_uuid(oid)
    columns["azureactivedirectoryobjectid"] = oid
    synced = t[6]
    facts = RowFacts(
        kind=_KINDS[t[2]],
        isdisabled=bool(t[3]),
        accessmode=int(t[4]),
        islicensed=bool(t[5]),
        columns=columns,
        email_edited=columns["internalemailaddress"] != synced,
        azurestate=int(t[9]),
    )
    sid = t[0] if len(t[0]) == 36 else from_db_uuid(t[0]) or ""
    return CurrentRow(sid, oid, facts, synced, t[8] == run_stamp, t[7] == run_stamp, t[10], t[11])
