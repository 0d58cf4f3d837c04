"""decide(): what sync does with one directory user in one environment (R1-R20).

The hot path (explain=False) runs once per user per environment per sync run, so it builds no check
list, formats no strings, and reads licences through the per-tuple cache. Diagnostics (R22) come from
``diagnose`` in ``syncd.rules.diagnose``, which shares the entitlement evaluation.

Places where the specification leaves room, and what is decided here:

* **On-demand-only grounds (R7a).** A user whose only licence ground is on-demand-only (app passes R4b,
  the tenant Marketing licence R4c, a free Microsoft 365 plan R4e) is never added in the background.
  If a row exists it is "kept up to date": its synced columns, access mode and licence flag flow, and
  its enabled/disabled state is left as it is: the background sync neither disables it for lacking a
  full licence nor enables a disabled one (enabling is an add, and adds of such users are on demand).
  R3 and R5 still apply: if the user is disabled in the directory or leaves the group, the row is
  disabled (R9).
* **Group owners (R5).** An owner counts as a member on demand only. By the same reading as R7a, a row
  created on demand for an owner is kept up to date by the background sync, not disabled for being
  an owner rather than a member; the background sync never adds an owner.
* **Trial (R7b) and Teams (R7c) environments.** The background sync adds no one but keeps existing
  rows up to date, which includes disabling a row whose user is no longer entitled (R9) and enabling
  one whose user is entitled again. In a Teams environment an administrator's add (ON_DEMAND) that
  would create a row is refused; only FIRST_ACCESS creates rows there.
* **Developer environments (R7d).** Only the background sync is restricted to the creator; an
  on-demand add of another user follows R8. Existing rows of other users are kept up to date.
* **Deleted users (R3, R9).** A soft- or hard-deleted user's row is disabled; nothing else about it is
  written (no columns, access mode or licence flag), since the directory no longer vouches for them.
* **Refusals (R8)** change nothing and always carry their checks, even with explain=False.
* **Access mode and islicensed (R16).** ``islicensed`` is true when the user holds a full Dataverse
  licence (a free Microsoft 365 plan is not one). See ``wanted_access_mode`` for the mode.
* **Row kinds (R18-R20).** Application, support, delegated-admin and stub rows are left alone by
  background sync and on demand, except that an on-demand add over a stub row is refused (a stub
  can't be enabled). The decision for them carries ``isdisabled``/``accessmode``/``islicensed`` None.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from syncd.directory.models import Deletion
from syncd.rules.columns import column_changes, column_notes, wanted_columns_with_notes
from syncd.rules.entitlement import (
    ADMIN_ROLE_IDS,
    GROUP_EXEMPT_ROLE_IDS,
    NO_LICENCE,
    licence_facts,
    wanted_access_mode,
)
from syncd.rules.facts import (
    NO_CHANGES,
    Action,
    AzureState,
    Decision,
    EnvironmentFacts,
    EnvType,
    Membership,
    Mode,
    RowFacts,
    UserFacts,
    UserKind,
)

_BACKGROUND = Mode.BACKGROUND
_ON_DEMAND = Mode.ON_DEMAND
_REGULAR = UserKind.REGULAR
_NONE_DELETION = Deletion.NONE
_DIRECT = Membership.DIRECT
_OWNER = Membership.OWNER

_KIND_RULE = {
    UserKind.APPLICATION: ("R18", "Application users are never enabled, disabled or changed by sync."),
    UserKind.SUPPORT: ("R19", "The support user is built in and never changed by sync."),
    UserKind.DELEGATED_ADMIN: ("R19", "The delegated-admin user is built in and never changed by sync."),
    UserKind.STUB: ("R20", "Stub users are never synchronised."),
}


def azure_state(present: bool, deletion: Deletion) -> AzureState:
    """R9: the ``azurestate`` a row holds for what the directory says of its user.

    ``present``: the directory returned the user (a read, a delta entry, a lookup by id), whether
    or not the user is in the environment's scope (R5, R24); ``deletion``: how the user left it
    (a delta's ``@removed`` reason ``changed`` is SOFT, ``deleted`` is HARD; a full run reads
    the deleted items for the users it no longer finds). A user neither returned nor known to be
    soft-deleted is not found (2).
    """
    if deletion is _SOFT:
        return _SOFT_DELETED
    if deletion is _HARD or not present:
        return _NOT_FOUND
    return _EXISTS


# Enum members as plain names: azure_state runs once per user read, and a member looked up on its
# class costs a descriptor call each time.
_SOFT, _HARD = Deletion.SOFT, Deletion.HARD
_EXISTS, _SOFT_DELETED, _NOT_FOUND = AzureState.EXISTS, AzureState.SOFT_DELETED, AzureState.NOT_FOUND


def decide(
    user: UserFacts,
    env: EnvironmentFacts,
    row: RowFacts | None,
    mode: Mode = Mode.BACKGROUND,
    *,
    explain: bool = False,
) -> Decision:
    """Decide what sync does with ``user`` in ``env`` given its current ``row`` (None: no row).

    With ``explain=True`` the decision carries the checks of R22 (``diagnose``); the action is the
    same either way. A REFUSE always carries its checks.
    """
    if mode.__class__ is not Mode:  # a plain string from a caller: "on_demand" must not read as background
        mode = Mode(mode)
    d = _decide(user, env, row, mode)
    if explain or d.action is Action.REFUSE:
        from syncd.rules.diagnose import diagnose

        checks = diagnose(user, env, row, mode, decision=d)
        if d.action is Action.REFUSE:
            failed = [c.message for c in checks if not c.passed]
            reason = d.reason
            if failed:
                reason = reason + " " + "; ".join(failed) + "."
            return replace(d, reason=reason, checks=checks)
        return replace(d, checks=checks)
    return d


# Decisions are immutable, so the few distinct LEAVE_ALONE and KEEP outcomes are built once and shared.
@cache
def _leave(rule: str, reason: str) -> Decision:
    return Decision(Action.LEAVE_ALONE, rule, reason, None, None, None, NO_CHANGES)


def _refuse(rule: str, reason: str) -> Decision:
    return Decision(Action.REFUSE, rule, reason, None, None, None, NO_CHANGES)


def _decide(user: UserFacts, env: EnvironmentFacts, row: RowFacts | None, mode: Mode) -> Decision:
    on_demand = mode is not _BACKGROUND

    # R1: no database, no users.
    if not env.has_database:
        if on_demand:
            return _refuse("R1", "The environment has no Dataverse database, so no user can be added.")
        return _leave("R1", "The environment has no Dataverse database.")

    # R18-R20: rows sync never touches.
    if row is not None and row.kind is not _REGULAR:
        rule, reason = _KIND_RULE[row.kind]
        if on_demand and row.kind is UserKind.STUB:
            return _refuse("R20", "A stub user can't be enabled.")
        return _leave(rule, reason)

    du = user.user
    # R3 (deleted): the row is disabled, never deleted (R9); nothing else is written.
    if du is None or user.deletion is not _NONE_DELETION:
        if on_demand:
            return _refuse("R3", "The user is deleted from the directory.")
        if row is None:
            return _leave("R3", "The user is deleted from the directory.")
        if row.isdisabled:
            return Decision(
                Action.KEEP,
                "R9",
                "The user is deleted from the directory; the row stays disabled.",
                True,
                row.accessmode,
                row.islicensed,
                NO_CHANGES,
            )
        return Decision(
            Action.DISABLE,
            "R9",
            "The user is deleted from the directory; the row is disabled, never deleted.",
            True,
            row.accessmode,
            row.islicensed,
            NO_CHANGES,
        )

    # Entitlement (R2-R6), inlined from entitlement() for speed.
    enabled = du.account_enabled
    lic = licence_facts(du.assigned_licenses) if du.assigned_licenses else NO_LICENCE
    full = lic.full is not None
    roles = user.admin_role_template_ids
    if roles:
        is_admin = not roles.isdisjoint(ADMIN_ROLE_IDS)
        exempt = not roles.isdisjoint(GROUP_EXEMPT_ROLE_IDS)
    else:
        is_admin = exempt = False
    licensed = full or is_admin or (row is not None and row.accessmode == 4)
    licensed_od = (
        licensed or lic.free is not None or env.app_pass_capacity_left > 0 or env.tenant_has_marketing_licence
    )
    if env.security_group_id is None or exempt:
        in_group = in_group_od = True
    else:
        m = user.membership
        in_group = m is _DIRECT
        in_group_od = in_group or m is _OWNER
    entitled = enabled and licensed and in_group
    entitled_od = enabled and licensed_od and in_group_od

    if on_demand:
        if not entitled_od:
            rule = "R3" if not enabled else ("R4" if not licensed_od else "R5")
            return _refuse(rule, "The user can't be added on demand.")
        accessmode = wanted_access_mode(full, is_admin, row)
        wanted, fitted = wanted_columns_with_notes(du)
        if row is None:
            if env.type is EnvType.TEAMS and mode is _ON_DEMAND:
                return _refuse(
                    "R7c", "In a Dataverse for Teams environment rows are added only at first access."
                )
            return Decision(
                Action.CREATE,
                "R8",
                "Added on demand: the user is entitled.",
                False,
                accessmode,
                full,
                wanted,
                notes=tuple(fitted.values()),
            )
        changes = column_changes(wanted, row.columns, email_edited=row.email_edited)
        notes = column_notes(fitted, changes)
        if row.isdisabled:
            return Decision(
                Action.ENABLE,
                "R8",
                "Enabled on demand: the user is entitled.",
                False,
                accessmode,
                full,
                changes,
                notes=notes,
            )
        return _same_state(
            row, accessmode, full, changes, "R8", "Already enabled; the row is kept up to date.", notes
        )

    # Background.
    if row is None:
        if not entitled:
            if entitled_od:
                if not licensed:
                    return _leave("R7a", "The only licence ground is an on-demand-only exception.")
                return _leave("R5", "Owner of the security group, not a member: added on demand only.")
            if not enabled:
                return _leave("R3", "The user is disabled in the directory.")
            if not licensed:
                return _leave("R4", "The user has no licence that grants Dataverse.")
            return _leave("R5", "The user is not a direct member of the environment's security group.")
        etype = env.type
        if etype is EnvType.TRIAL:
            return _leave("R7b", "The background sync adds no one in a trial environment.")
        if etype is EnvType.TEAMS:
            return _leave("R7c", "Rows are added only at first access in a Dataverse for Teams environment.")
        if etype is EnvType.DEVELOPER and user.object_id != env.created_by_object_id:
            return _leave("R7d", "Only the creator of a developer environment is added.")
        accessmode = 0 if full else (1 if is_admin else 0)
        wanted, fitted = wanted_columns_with_notes(du)
        return Decision(
            Action.CREATE,
            "R7",
            "The user is entitled.",
            False,
            accessmode,
            full,
            wanted,
            notes=tuple(fitted.values()),
        )

    accessmode = wanted_access_mode(full, is_admin, row)
    wanted, fitted = wanted_columns_with_notes(du)
    changes = column_changes(wanted, row.columns, email_edited=row.email_edited)
    notes = column_notes(fitted, changes)
    if entitled:
        if row.isdisabled:
            return Decision(
                Action.ENABLE,
                "R9",
                "The user is entitled again.",
                False,
                accessmode,
                full,
                changes,
                notes=notes,
            )
        return _same_state(row, accessmode, full, changes, "R2", "The user is entitled.", notes)
    if entitled_od:
        rule = "R7a" if not licensed else "R5"
        return _same_state(
            row,
            accessmode,
            full,
            changes,
            rule,
            "Only on-demand grounds; the row is kept as it is, up to date.",
            notes,
        )
    if not row.isdisabled:
        # The columns of a user still in the directory flow with the disable, fitted like any other.
        return Decision(
            Action.DISABLE,
            "R9",
            "The user is no longer entitled; the row is disabled, never deleted.",
            True,
            accessmode,
            full,
            changes,
            notes=notes,
        )
    return _same_state(
        row, accessmode, full, changes, "R9", "The user is not entitled; the row stays disabled.", notes
    )


def _same_state(
    row: RowFacts,
    accessmode: int,
    islicensed: bool,
    changes: dict[str, str | None],
    rule: str,
    reason: str,
    notes: tuple[str, ...] = (),
) -> Decision:
    """UPDATE or KEEP: the row keeps its enabled/disabled state."""
    if changes:
        return Decision(
            Action.UPDATE,
            "R10",
            "Directory values changed.",
            row.isdisabled,
            accessmode,
            islicensed,
            changes,
            notes=notes,
        )
    if accessmode != row.accessmode:
        return Decision(
            Action.UPDATE,
            "R16",
            "The access mode changes.",
            row.isdisabled,
            accessmode,
            islicensed,
            NO_CHANGES,
        )
    if islicensed != row.islicensed:
        return Decision(
            Action.UPDATE,
            "R4",
            "The licence flag changes.",
            row.isdisabled,
            accessmode,
            islicensed,
            NO_CHANGES,
        )
    return _keep(rule, reason, row.isdisabled, accessmode, islicensed)


@cache
def _keep(rule: str, reason: str, isdisabled: bool, accessmode: int, islicensed: bool) -> Decision:
    return Decision(Action.KEEP, rule, reason, isdisabled, accessmode, islicensed, NO_CHANGES)
