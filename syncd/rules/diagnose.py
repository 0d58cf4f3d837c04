"""Diagnostics (R22): check by check, why a user is or is not enabled, and what sync will do next.

The slow path: it formats sentences for an administrator. ``decide(..., explain=True)`` attaches these
checks to its decision.

A soft-deleted user keeps their licences, but Entra suspends their group memberships and directory
role assignments while they are deleted (a restore brings them back): the directory lists a
deleted user in no group and no role. So for a soft-deleted user (or one as a restore would bring
them back, ``restored=True``) no admin role and no membership read means *not known*, never
"none": the checks say so, and never that the user is not a member or holds no role.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.directory.models import Deletion
from syncd.rules.entitlement import DYNAMICS_365_ADMINISTRATOR, Entitlement, LicenceFacts, entitlement
from syncd.rules.facts import (
    AccessMode,
    Check,
    Decision,
    EnvironmentFacts,
    EnvType,
    Membership,
    Mode,
    RowFacts,
    UserFacts,
    UserKind,
)

_ACCESS_MODE_NAMES = {
    0: "Read-Write",
    1: "Administrative",
    2: "Read",
    3: "Support user",
    4: "Non-interactive",
    5: "Delegated admin",
}


def short_id(value: str) -> str:
    """The first 8 characters of an id, for messages: ``1234abcd…``."""
    return value if len(value) <= 9 else value[:8] + "…"


def access_mode_name(mode: int) -> str:
    return _ACCESS_MODE_NAMES.get(mode, "unknown") + " (" + str(mode) + ")"


SUSPENDED = (
    "suspended while the user is deleted; a restore brings back the memberships and roles the user had"
)


@dataclass(frozen=True, slots=True)
class Unknowns:
    """What the directory can't tell about a deleted user: their admin roles (none listed) and
    their membership of the environment's security group (none listed)."""

    roles: bool = False
    membership: bool = False

    def __bool__(self) -> bool:
        return self.roles or self.membership

    def what(self) -> str:
        """What is not known, in words: "the group membership and admin roles" and the like."""
        parts = (["the group membership"] if self.membership else []) + (
            ["admin roles"] if self.roles else []
        )
        text = " and ".join(parts)
        return text if text.startswith("the ") else "the " + text


def unknowns(user: UserFacts, env: EnvironmentFacts, *, restored: bool = False) -> Unknowns:
    """What is not known of a soft-deleted user (or of one as a restore would bring them back):
    an admin role or a membership the directory does not list may be suspended, not absent."""
    if not restored and (user.deletion is not Deletion.SOFT or user.user is None):
        return Unknowns()
    return Unknowns(
        roles=not user.admin_role_template_ids,
        membership=env.security_group_id is not None and user.membership is Membership.NONE,
    )


def diagnose(
    user: UserFacts,
    env: EnvironmentFacts,
    row: RowFacts | None,
    mode: Mode = Mode.BACKGROUND,
    *,
    decision: Decision | None = None,
    restored: bool = False,
) -> tuple[Check, ...]:
    """The checks of R22 for one user in one environment, in the order an administrator reads them:
    R1, the row's kind (R18-R20), R3, R6, R4, R5, R7/R8, and the access mode (R16).

    ``restored``: the facts are a soft-deleted user's as a restore would bring them back (not
    deleted); the admin roles and the membership the directory did not list are not known.
    """
    checks: list[Check] = []
    on_demand = mode is not Mode.BACKGROUND
    unknown = unknowns(user, env, restored=restored)

    if env.has_database:
        checks.append(Check("R1", True, f"R1 database: environment {env.name} has a Dataverse database"))
    else:
        checks.append(
            Check(
                "R1",
                False,
                f"R1 database: environment {env.name} has no Dataverse database, so users can't be added "
                "to it, neither by the background sync nor on demand",
            )
        )
        return tuple(checks)

    if row is not None and row.kind is not UserKind.REGULAR:
        checks.append(_kind_check(row.kind))
        return tuple(checks)

    if decision is None:
        from syncd.rules.decide import _decide

        decision = _decide(user, env, row, mode)
    ent = entitlement(user, env, row)
    checks.append(_r3(user, ent))
    checks.append(_r6(ent, unknown))
    checks.append(_r4(user, env, ent, on_demand, unknown))
    checks.append(_r5(user, env, ent, on_demand, unknown, restored))
    checks.append(_r7(user, env, row, mode, ent, unknown))
    if ent.present and decision.accessmode is not None:
        checks.append(_r16(ent, row, decision.accessmode))
    return tuple(checks)


def _kind_check(kind: UserKind) -> Check:
    if kind is UserKind.APPLICATION:
        return Check(
            "R18",
            False,
            "R18 application user: created on demand only, and never enabled, disabled or changed by sync",
        )
    if kind is UserKind.SUPPORT:
        return Check(
            "R19",
            False,
            "R19 built-in user: the support user (crmoln@microsoft.com) is never changed by sync",
        )
    if kind is UserKind.DELEGATED_ADMIN:
        return Check(
            "R19",
            False,
            "R19 built-in user: the delegated-admin user (crmoln2@microsoft.com) is never changed by sync",
        )
    return Check(
        "R20",
        False,
        "R20 stub user: a placeholder created by data import; it can't sign in, can't be enabled and is "
        "never synchronised",
    )


def _r3(user: UserFacts, ent: Entitlement) -> Check:
    if user.user is None or user.deletion is Deletion.HARD:
        return Check("R3", False, "R3 directory: the user is deleted from the directory (hard delete)")
    if user.deletion is Deletion.SOFT:
        return Check(
            "R3",
            False,
            "R3 directory: the user is soft-deleted (in the directory's deleted items, restorable)",
        )
    if not ent.enabled:
        return Check("R3", False, "R3 directory: sign-in is blocked (accountEnabled is false)")
    return Check("R3", True, "R3 directory: the account is enabled and not deleted")


def _r6(ent: Entitlement, unknown: Unknowns) -> Check:
    if ent.admin_role is not None:
        return Check("R6", True, f"R6 admin: holds the {ent.admin_role} role")
    if unknown.roles:
        # Informational, like "holds none": R4 and R5 say what it would change.
        return Check(
            "R6",
            True,
            "R6 admin: not known: the directory lists no admin role of a deleted user; role assignments "
            f"are {SUSPENDED}",
        )
    # Informational: not being an admin is no failure; R4 and R5 say what it costs.
    return Check(
        "R6",
        True,
        "R6 admin: holds no admin role (Global, Power Platform or Dynamics 365 Administrator)",
    )


def _licence_detail(lic: LicenceFacts, is_guest: bool) -> str:
    parts: list[str] = []
    for sku_name, plan in lic.disabled:
        parts.append(f"the {plan} plan of {sku_name} is disabled (disabledPlans)")
    if lic.office_only:
        parts.append("Office-only licences never count: " + ", ".join(lic.office_only))
    if lic.unknown:
        parts.append(f"{lic.unknown} licence(s) of unknown SKUs grant nothing")
    if is_guest:
        parts.append("a guest counts only licences assigned in this tenant")
    return " (" + "; ".join(parts) + ")" if parts else ""


def _on_demand_grounds(env: EnvironmentFacts, lic: LicenceFacts) -> list[str]:
    grounds: list[str] = []
    if lic.free is not None:
        grounds.append(f"the free Dataverse plan {lic.free[1]} of {lic.free[0]} (R4e)")
    if env.app_pass_capacity_left > 0:
        grounds.append(f"the environment's app-pass capacity ({env.app_pass_capacity_left} left) (R4b)")
    if env.tenant_has_marketing_licence:
        grounds.append("the tenant-level Marketing licence (R4c)")
    return grounds


def _r4(
    user: UserFacts, env: EnvironmentFacts, ent: Entitlement, on_demand: bool, unknown: Unknowns
) -> Check:
    check = _r4_licence(user, env, ent, on_demand)
    message = check.message
    if user.deletion is Deletion.SOFT and user.user is not None:
        # A soft-deleted user keeps their licences: a restore brings them back with the user.
        message += " (kept while the user is soft-deleted)"
    if not check.passed and unknown.roles:
        message += "; an admin needs none (R4a), and whether the user holds an admin role is not known (R6)"
    return Check(check.rule, check.passed, message)


def _r4_licence(user: UserFacts, env: EnvironmentFacts, ent: Entitlement, on_demand: bool) -> Check:
    lic = ent.licence
    if lic.full is not None:
        return Check("R4", True, f"R4 licence: holds {lic.full[0]} ({lic.full[1]} plan)")
    if ent.admin_role is not None:
        return Check(
            "R4", True, f"R4 licence: none needed, as {ent.admin_role} (R4a); runs in Administrative mode"
        )
    if ent.non_interactive:
        return Check("R4", True, "R4 licence: none needed, the row is in non-interactive access mode (R4d)")
    is_guest = user.user is not None and user.user.is_guest
    grounds = _on_demand_grounds(env, lic)
    if grounds:
        if on_demand:
            return Check("R4", True, "R4 licence: counts on demand through " + " and ".join(grounds))
        return Check(
            "R4",
            False,
            "R4 licence: no full licence; the only grounds, "
            + " and ".join(grounds)
            + ", count on demand only, so the background sync doesn't add the user (R7a)",
        )
    return Check("R4", False, "R4 licence: no licence that grants Dataverse" + _licence_detail(lic, is_guest))


def _r5(
    user: UserFacts,
    env: EnvironmentFacts,
    ent: Entitlement,
    on_demand: bool,
    unknown: Unknowns,
    restored: bool,
) -> Check:
    gid = env.security_group_id
    if gid is None:
        return Check("R5", True, "R5 security group: the environment has none, so no membership is needed")
    group = "group " + short_id(gid)
    if ent.group_exempt:
        return Check("R5", True, f"R5 security group: exempt from {group} as {ent.admin_role}")
    if user.deletion is Deletion.SOFT or restored:
        suspended = _r5_soft_deleted(user.membership, group, on_demand, unknown)
        if suspended is not None:
            return suspended
    m = user.membership
    if m is Membership.DIRECT:
        return Check("R5", True, f"R5 security group: direct member of {group}")
    if m is Membership.OWNER:
        if on_demand:
            return Check(
                "R5", True, f"R5 security group: owner of {group}; an owner counts as a member on demand"
            )
        return Check(
            "R5",
            False,
            f"R5 security group: owner, not a member, of {group}; an owner counts only on demand",
        )
    d365 = (
        "; Dynamics 365 administrators are not exempt"
        if DYNAMICS_365_ADMINISTRATOR in user.admin_role_template_ids
        else ""
    )
    if m is Membership.NESTED_ONLY:
        return Check(
            "R5",
            False,
            f"R5 security group: not a direct member of {group} (member only through a nested group; "
            f"nested groups don't count{d365})",
        )
    return Check("R5", False, f"R5 security group: not a member of {group}{d365}")


def _r5_soft_deleted(m: Membership, group: str, on_demand: bool, unknown: Unknowns) -> Check | None:
    """R5 for a soft-deleted user: Entra suspends their group memberships and restores them with
    the user. A membership read (from the last sync's mirror of the group) is the one a restore
    brings back; none read is not known, never "not a member". None: as for any user."""
    suspended = "suspended while the user is deleted and restored with them"
    if m is Membership.DIRECT:
        return Check(
            "R5", True, f"R5 security group: direct member of {group}; the membership is {suspended}"
        )
    if m is Membership.OWNER:
        counts = "counts on demand" if on_demand else "counts only on demand"
        return Check(
            "R5",
            on_demand,
            f"R5 security group: owner, not a member, of {group} (an owner {counts}); ownership is {suspended}",
        )
    if unknown.membership:
        exempt = (
            "; Global and Power Platform Administrators are exempt, and the user's roles are not known either"
            if unknown.roles
            else ""
        )
        return Check(
            "R5",
            False,
            f"R5 security group: not known whether the user is a direct member of {group}: the directory "
            f"lists no group membership of a deleted user; memberships are {SUSPENDED}{exempt}",
        )
    return None


def _r7(
    user: UserFacts,
    env: EnvironmentFacts,
    row: RowFacts | None,
    mode: Mode,
    ent: Entitlement,
    unknown: Unknowns,
) -> Check:
    if mode is not Mode.BACKGROUND:
        if env.type is EnvType.TEAMS and mode is Mode.ON_DEMAND and row is None:
            return Check(
                "R7c",
                False,
                "R7c Teams environment: rows are added only at the user's first access, not by an "
                "administrator's add",
            )
        ok = ent.entitled_on_demand
        what = "can" if ok else "can't"
        return Check("R8", ok, f"R8 on demand: the user {what} be added or enabled on demand")
    if row is not None:
        return Check("R7", True, "R7 background: the row exists; the background sync keeps it up to date")
    if env.type is EnvType.TRIAL:
        return Check(
            "R7b",
            False,
            "R7b trial environment: the background sync adds no one; users are added on demand",
        )
    if env.type is EnvType.TEAMS:
        return Check(
            "R7c",
            False,
            "R7c Teams environment: the background sync adds no one; rows are added at first access",
        )
    if env.type is EnvType.DEVELOPER:
        if env.created_by_object_id == user.object_id:
            return Check("R7d", True, "R7d developer environment: the user created it, so is added")
        return Check(
            "R7d",
            False,
            "R7d developer environment: only the user who created it is added by the background sync",
        )
    if not ent.entitled and ent.present and unknown:
        return Check(
            "R7",
            False,
            "R7 background: not entitled by what the directory tells, so the background sync doesn't add "
            f"them; {unknown.what()} the user had decide, and are not known ({SUSPENDED})",
        )
    if ent.on_demand_only:
        return Check(
            "R7a",
            False,
            "R7a background: the user qualifies on demand only, so the background sync doesn't add them",
        )
    ok = ent.entitled
    return Check(
        "R7",
        ok,
        "R7 background: the user is entitled, so the background sync adds them"
        if ok
        else "R7 background: the user is not entitled, so the background sync doesn't add them",
    )


def _r16(ent: Entitlement, row: RowFacts | None, mode: int) -> Check:
    name = access_mode_name(mode)
    if row is not None and row.accessmode in (AccessMode.READ, AccessMode.NON_INTERACTIVE):
        why = "set by an administrator and kept by sync"
    elif ent.licence.full is not None:
        why = "a licensed user"
    elif ent.admin_role is not None:
        why = "an admin without a licence"
    else:
        why = "no full licence and no admin role"
    return Check("R16", True, f"R16 access mode: {name}, {why}")
