"""Pure checks behind the administrator's operations on one user (R17, R20, R21, R23)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from syncd.directory.models import DirectoryUser
from syncd.rules.facts import Check, EnvironmentFacts, RowFacts, UserKind

NON_INTERACTIVE_LIMIT = 7  # R17, per environment; application users don't count
BASIC_USER_ROLE = "Basic User"
SALESPERSON_ROLE = "Salesperson"


def check_noninteractive_limit(current_noninteractive_count: int) -> Check:
    """R17: may one more user be put in non-interactive mode?

    ``current_noninteractive_count`` counts the environment's rows already in non-interactive mode,
    application users left out (they are non-interactive but never count).
    """
    n = current_noninteractive_count
    if n < NON_INTERACTIVE_LIMIT:
        return Check(
            "R17",
            True,
            f"R17 non-interactive limit: {n} of {NON_INTERACTIVE_LIMIT} non-interactive users in use "
            "(application users don't count)",
        )
    return Check(
        "R17",
        False,
        f"R17 non-interactive limit: the environment already has {n} non-interactive users, the most "
        f"allowed is {NON_INTERACTIVE_LIMIT}; another one is refused (application users don't count)",
    )


def check_app_access(direct_roles: Sequence[str], team_roles: Mapping[str, Sequence[str]]) -> Check:
    """R21: does the user hold a security role, directly or through a team they are a member of?

    ``direct_roles``: the names of the roles assigned to the user; ``team_roles``: team name -> the
    names of the roles that team holds, for each team the user is a member of (R25's group teams
    among them). A user without any role has a row but no access to apps. The check's message lists
    the direct roles and the roles through each team (R22).
    """
    through = {team: sorted(roles) for team, roles in sorted(team_roles.items()) if roles}
    parts = []
    if direct_roles:
        parts.append("direct: " + ", ".join(sorted(direct_roles)))
    parts += [f"through team {team}: {', '.join(roles)}" for team, roles in through.items()]
    if parts:
        return Check("R21", True, "R21 security roles: " + "; ".join(parts))
    teams = f" (member of {', '.join(sorted(team_roles))}, which hold none)" if team_roles else ""
    return Check(
        "R21",
        False,
        f"R21 security roles: the user holds no security role, directly or through a team{teams}; "
        "the row exists but gives no access to apps",
    )


def check_role_assignment(row: RowFacts, env: EnvironmentFacts) -> Check:
    """R21: a security role can be assigned only to an enabled user, unless the environment allows it
    for disabled users (allowRoleAssignmentOnDisabledUsers)."""
    if not row.isdisabled:
        return Check("R21", True, "R21 role assignment: the user is enabled")
    if env.allow_role_assignment_on_disabled_users:
        return Check(
            "R21",
            True,
            "R21 role assignment: the user is disabled, but the environment setting "
            "allowRoleAssignmentOnDisabledUsers is on",
        )
    return Check(
        "R21",
        False,
        "R21 role assignment: the user is disabled; roles can be assigned only to enabled users unless "
        "the environment setting allowRoleAssignmentOnDisabledUsers is on",
    )


def check_refresh_allowed(row_kind: UserKind | None) -> Check:
    """R23: refresh (resync one user now) is available for any user but a stub."""
    if row_kind is UserKind.STUB:
        return Check(
            "R23",
            False,
            "R23 refresh: not available for a stub user (it doesn't come from the directory)",
        )
    return Check("R23", True, "R23 refresh: available")


def is_stub_conflict(user_principal_name: str, stub_domainname: str | None) -> bool:
    """R20: whether a directory user's UPN equals a stub's domainname (compared case-insensitively,
    as UPNs are)."""
    return stub_domainname is not None and user_principal_name.casefold() == stub_domainname.casefold()


def stub_conflict(user: DirectoryUser, stub: RowFacts) -> Check:
    """R20: a directory user whose UPN equals a stub's UPN is a conflict to report, never a silent merge.

    The check fails on a conflict; its message names both sides and the way out (reassign the stub's
    records to the directory user).
    """
    stub_upn = stub.columns.get("domainname")
    if stub.kind is UserKind.STUB and is_stub_conflict(user.user_principal_name, stub_upn):
        return Check(
            "R20",
            False,
            f"R20 stub conflict: directory user {user.user_principal_name} ({user.id}) has the same UPN as "
            "a stub user; they are not merged. Reassign the stub's records to the directory user if they "
            "are the same person",
        )
    return Check("R20", True, f"R20 stub conflict: no stub user has the UPN {user.user_principal_name}")


def default_role_name(env: EnvironmentFacts) -> str:
    """R20: the role given to stub users: Salesperson in a Sales environment, Basic User elsewhere."""
    return SALESPERSON_ROLE if env.is_sales else BASIC_USER_ROLE
