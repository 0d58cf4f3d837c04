"""The one writer of the Web API: a customer's update of one systemuser row.

A Dataverse customer edits a user's row; here that is what a customer may really change on a
user that Entra ID synchronises, and nothing else:

- `internalemailaddress`: a customer edit, after which sync never writes the email again (R12).
  Sync reads "edited" as `internalemailaddress != syncd_syncedemail` (the email sync last wrote),
  so a customer's write that leaves the two equal (the value sync wrote, written again) also clears
  `syncd_syncedemail`: the edit is kept all the same. Only a customer's empty email written over an
  empty synced one cannot be told from no edit (nothing changes, and sync writes the next mail).
- `accessmode`: through `syncd.admin.modes.change_access_mode`, the same checks as
  `syncd user set-mode` (R16-R18-R20 kinds, the R17 limit of seven non-interactive users);
- every column sync never writes (R14): custom columns (`new_costcentre`), `windowsliveid`, and any
  column a later schema adds that is neither read-only nor synced.

Refused, and nothing written: the columns Dataverse makes read-only (ids, timestamps,
`versionnumber`, the state the system keeps: `isdisabled`, `azurestate`, `islicensed`,
`issyncwithdirectory`, `applicationid`, syncd's own `syncd_*` columns, lookups), and the columns sync
owns (R10, bar the email). `businessunitid` moves only with Dataverse's SetBusinessSystemUser action.

The row is read and written in one transaction; `If-Match` is compared with the row's
`versionnumber` there, so a stale ETag can't slip between the check and the write. `modifiedon` is
set here; `versionnumber` moves by the database's triggers. Every change is recorded in
`sync_event` (as an administrator's are, `syncd.admin.audit`), with who made it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from syncd.admin.audit import record_event
from syncd.admin.errors import Refused
from syncd.admin.modes import change_access_mode
from syncd.dataverse.environments import lock_environment
from syncd.dataverse.schema import Environment, SystemUser, utcnow
from syncd.errors import SyncdError
from syncd.rules import SYNCED_COLUMNS
from syncd.webapi.errors import ODataError, no_record

log = structlog.get_logger(__name__)

INVALID_ARGUMENT = "0x80040203"  # Dataverse's InvalidArgument
VERSION_MISMATCH = "0x80060882"  # Dataverse's ConcurrencyVersionMismatch

EMAIL = "internalemailaddress"
#: What Dataverse (or syncd's bookkeeping) keeps: a customer can't write these.
READ_ONLY: frozenset[str] = frozenset(
    {
        "systemuserid",
        "environment_id",
        "businessunitid",
        "createdon",
        "modifiedon",
        "versionnumber",
        "isdisabled",
        "azurestate",
        "islicensed",
        "issyncwithdirectory",
        "applicationid",
        "syncd_kind",
        "syncd_syncedemail",
    }
)
#: The columns sync writes from the directory (R10), bar the email a customer may edit (R12).
SYNC_OWNED: frozenset[str] = frozenset(c for c in SYNCED_COLUMNS if c != EMAIL)


@dataclass(frozen=True)
class Written:
    systemuserid: uuid.UUID
    changed: dict[str, Any]


def column_refusal(column: str, logical_name: str = "systemuser") -> ODataError | None:
    """Dataverse's error for a write to `column`, or None when a customer may write it."""
    if column == "businessunitid":
        return ODataError(
            400,
            INVALID_ARGUMENT,
            "The business unit of a systemuser can't be changed by an update: use the "
            "SetBusinessSystemUser action (R26: sync never moves users).",
        )
    if column in READ_ONLY or column.startswith("syncd_"):
        return ODataError(
            400,
            INVALID_ARGUMENT,
            f"The attribute '{column}' of entity '{logical_name}' is read-only: it is not valid for update.",
        )
    if column in SYNC_OWNED:
        return ODataError(
            400,
            INVALID_ARGUMENT,
            f"The attribute '{column}' of entity '{logical_name}' is synchronised from Microsoft Entra ID "
            "(R10) and can't be changed in Dataverse: change it in the directory.",
        )
    return None


def _check_etag(if_match: str | None, version: int) -> None:
    if if_match is None:
        return
    tags = [t.strip() for t in if_match.split(",") if t.strip()]
    if "*" in tags:
        return
    current = f'W/"{version}"'
    for tag in tags:
        if tag == current or tag == f'"{version}"':
            return
    raise ODataError(
        412,
        VERSION_MISMATCH,
        "The version of the existing record doesn't match the RowVersion property provided.",
    )


def update_systemuser(
    engine: Engine,
    env_id: int,
    key_column: str,
    key_value: Any,
    values: dict[str, Any],
    *,
    if_match: str | None,
    caller: str,
) -> Written:
    """Write `values` (column -> value, each already allowed by `column_refusal` and typed) to the
    environment's row named by (`key_column`, `key_value`); raises ODataError, changing nothing.

    A row that does not exist is a 404 under `If-Match`; without it the PATCH would be an upsert
    that creates the row, which is refused here (users are created by sync and on-demand adds).
    """
    with Session(engine) as session, session.begin():
        env = session.get(Environment, env_id)
        if env is None:
            raise no_record("organization", str(env_id))
        if "accessmode" in values:
            # As `syncd user set-mode`: one change of access mode per environment at a time (R17).
            lock_environment(session, env.id)
        row = session.scalars(
            select(SystemUser).where(
                SystemUser.environment_id == env_id, getattr(SystemUser, _attr(key_column)) == key_value
            )
        ).first()
        if row is None:
            if if_match is not None:
                raise no_record("systemuser", str(key_value))
            raise ODataError(
                400,
                INVALID_ARGUMENT,
                "Creating a systemuser is not allowed in this environment: users are created by the sync "
                "from Microsoft Entra ID, or by an on-demand add (`syncd user add`). This PATCH names a user "
                "that does not exist, so Dataverse would create it (upsert); send `If-Match: *` to update only.",
            )
        _check_etag(if_match, int(row.versionnumber))
        changed: dict[str, Any] = {}
        wanted_mode: Any = values.get("accessmode")
        if "accessmode" in values:
            try:
                result = change_access_mode(
                    session, env, row, int(wanted_mode), by=f"{caller} through the Web API"
                )
            except Refused as exc:
                raise ODataError(400, INVALID_ARGUMENT, str(exc)) from None
            except SyncdError as exc:
                raise ODataError(400, INVALID_ARGUMENT, str(exc)) from None
            if result.changed:
                changed["accessmode"] = result.mode
        rest = {c: v for c, v in values.items() if c != "accessmode"}
        old = {c: getattr(row, _attr(c)) for c in rest}  # the event's previous values
        for column, value in rest.items():
            attr = _attr(column)
            if getattr(row, attr) != value:
                changed[column] = value
            setattr(row, attr, value)
        if EMAIL in rest and rest[EMAIL] is not None and rest[EMAIL] == row.syncd_syncedemail:
            # A customer's email, even the one sync wrote: from now on it is theirs (R12).
            row.syncd_syncedemail = None
        if rest:
            row.modifiedon = utcnow()
            rule = "R12" if EMAIL in rest else "R14"
            shown = ", ".join(sorted(rest))
            reason = f"Changed by {caller} through the Dataverse Web API: {shown}."
            if EMAIL in rest:
                reason += " The email is the customer's from now on: sync never writes it again (R12)."
            record_event(session, row, "update", rule, reason, rest, old)
        sid = row.systemuserid
    log.info(
        "webapi.update", environment=env_id, systemuserid=str(sid), columns=sorted(values), caller=caller
    )
    return Written(sid, changed)


def _attr(column: str) -> str:
    """The ORM attribute of a SQL column name (syncd_kind is `kind` on the model)."""
    for attr in SystemUser.__mapper__.column_attrs:
        if attr.columns[0].name == column:
            return attr.key
    raise ODataError(400, INVALID_ARGUMENT, f"Unknown attribute '{column}'.")
