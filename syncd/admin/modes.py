"""Access modes set by an administrator (R15-R17).

Read (2) and Non-interactive (4) are kept by the background sync; Read-Write (0) and Administrative
(1) can be set too, but the background sync sets those two from the licence and the admin roles
(R16), so they hold only until the next run changes them. At most seven users of an environment are
non-interactive (R17); application users are non-interactive by nature and don't count, and their
mode can't be changed (R18), nor can that of built-in (R19) or stub (R20) users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from syncd.admin import lookup
from syncd.admin.audit import record_event
from syncd.admin.errors import Refused, check_dict
from syncd.dataverse.environments import get_environment, lock_environment
from syncd.dataverse.schema import Environment, SystemUser, utcnow
from syncd.directory.client import GraphClient
from syncd.errors import SyncdError
from syncd.rules import AccessMode, Check, check_noninteractive_limit
from syncd.rules.diagnose import access_mode_name

log = structlog.get_logger(__name__)

MODES: dict[str, int] = {
    "read-write": AccessMode.READ_WRITE,
    "administrative": AccessMode.ADMINISTRATIVE,
    "read": AccessMode.READ,
    "non-interactive": AccessMode.NON_INTERACTIVE,
}
KEPT_BY_SYNC = frozenset({AccessMode.READ, AccessMode.NON_INTERACTIVE})

_KIND_CHECKS = {
    "application": Check(
        "R18", False, "R18 application user: always non-interactive; its mode can't be changed"
    ),
    "support": Check("R19", False, "R19 built-in user: the support user's access mode can't be changed"),
    "delegated_admin": Check(
        "R19", False, "R19 built-in user: the delegated-admin user's access mode can't be changed"
    ),
    "stub": Check("R20", False, "R20 stub user: can't sign in, so has no access mode to set"),
}


def _bad_mode(value: object) -> SyncdError:
    """The one error for a mode that can't be set, naming the value and the accepted ones."""
    accepted = ", ".join(f"{name} ({number})" for name, number in MODES.items())
    return SyncdError(f"invalid access mode {value!r}: expected one of {accepted}")


def parse_mode(value: object) -> int:
    """R16: the access mode to set, by name (``read-write``, ``administrative``, ``read``,
    ``non-interactive``; case, ``_`` and spaces ignored) or by Dataverse's number (0, 1, 2, 4; an
    int or its ASCII digits). Surrounding whitespace is ignored, as for membership types
    (``syncd.rules.membership_type``), environment types, role names and user keys: ``" 2"`` is
    Read. SyncdError naming the value and the accepted ones otherwise (3, support user, and 5,
    delegated admin, are built-in users' modes, never set)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value in MODES.values():
            return int(value)
        raise _bad_mode(value)
    if not isinstance(value, str):
        raise _bad_mode(value)
    name = value.strip().lower().replace("_", "-").replace(" ", "-")
    name = {"readwrite": "read-write", "read/write": "read-write", "noninteractive": "non-interactive"}.get(
        name, name
    )
    if name in MODES:
        return MODES[name]
    if name.isascii() and name.isdigit() and int(name) in MODES.values():
        return int(name)
    raise _bad_mode(value)


@dataclass
class ModeResult:
    environment: str
    user: str
    systemuserid: str
    old_mode: int
    mode: int
    changed: bool
    checks: tuple[Check, ...]
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "user": self.user,
            "systemuserid": self.systemuserid,
            "old_mode": self.old_mode,
            "old_mode_name": access_mode_name(self.old_mode),
            "mode": self.mode,
            "mode_name": access_mode_name(self.mode),
            "changed": self.changed,
            "checks": [check_dict(c) for c in self.checks],
            "note": self.note,
        }


def noninteractive_count(session: Session, env_id: int, *, excluding: Any = None) -> int:
    """R17: the environment's users in non-interactive mode, application users left out."""
    q = select(func.count()).where(
        SystemUser.environment_id == env_id,
        SystemUser.accessmode == AccessMode.NON_INTERACTIVE,
        SystemUser.kind != "application",
    )
    if excluding is not None:
        q = q.where(SystemUser.systemuserid != excluding)
    return int(session.scalar(q) or 0)


def set_access_mode(
    engine: Engine,
    env_name: str,
    key: str,
    mode: str | int,
    *,
    directory: GraphClient | None = None,
) -> ModeResult:
    """Set a user's access mode (R16), refusing an eighth non-interactive user (R17) and the users
    whose mode can't change (R18-R20): Refused, changing nothing. ``mode`` as ``parse_mode`` takes
    it (SyncdError naming it otherwise); an unknown environment or user is NotFound."""
    key = lookup.check_key(key)
    wanted = parse_mode(mode)
    with Session(engine) as session, session.begin():
        env = get_environment(session, env_name)
        # One change of access mode per environment at a time, so two can't both take the seventh place.
        lock_environment(session, env.id)
        row = lookup.find_row(session, env, key, directory=directory)
        result = change_access_mode(session, env, row, wanted)
        old, changed = result.old_mode, result.changed
    log.info("admin.mode", environment=env_name, user=key, old=old, mode=wanted, changed=changed)
    return result


def change_access_mode(
    session: Session, env: Environment, row: SystemUser, wanted: int, *, by: str = "an administrator"
) -> ModeResult:
    """Set `row`'s access mode in the caller's transaction (R16), refusing an eighth non-interactive
    user (R17) and the users whose mode can't change (R18-R20); records the event. The caller holds
    the environment's row lock (`set_access_mode` shows how). Raises Refused, changing nothing."""
    wanted = parse_mode(wanted)
    if row.kind != "regular":
        check = _KIND_CHECKS[row.kind]
        raise Refused(f"the access mode of {row.domainname} can't be changed: {check.message}", [check])
    checks: list[Check] = []
    old = row.accessmode
    if wanted == AccessMode.NON_INTERACTIVE and old != AccessMode.NON_INTERACTIVE:
        limit = check_noninteractive_limit(noninteractive_count(session, env.id, excluding=row.systemuserid))
        checks.append(limit)
        if not limit.passed:
            log.info("admin.mode_refused", environment=env.name, user=row.domainname, rule="R17")
            raise Refused(
                f"{row.domainname} can't be made non-interactive in {env.name}: {limit.message}", [limit]
            )
    changed = old != wanted
    if changed:
        row.accessmode = wanted
        row.modifiedon = utcnow()
        rule = "R17" if AccessMode.NON_INTERACTIVE in (old, wanted) else "R16"
        record_event(
            session,
            row,
            "update",
            rule,
            f"Access mode set by {by}: {access_mode_name(old)} to {access_mode_name(wanted)}.",
            {"accessmode": wanted},
            {"accessmode": old},
        )
    checks.append(Check("R16", True, f"R16 access mode: {access_mode_name(wanted)}, set by {by}"))
    note = None
    if wanted not in KEPT_BY_SYNC:
        note = (
            "the background sync sets Read-Write or Administrative from the user's licence and admin roles "
            "(R16); only Read and Non-interactive are kept as set"
        )
    return ModeResult(
        env.name, row.domainname, str(row.systemuserid), old, wanted, changed, tuple(checks), note
    )
