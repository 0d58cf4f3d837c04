"""Group teams (R25): pure policy, no I/O.

A group team ties an environment to one Entra group with a membership type (Dataverse's
``team.membershiptype``): 0 members and guests, 1 members, 2 owners, 3 guests. Its team type is 2
for a security group and 3 for a Microsoft 365 group (Graph's ``groupTypes`` holds "Unified").
Whether a user belongs to a team is decided from the directory at the user's access (R8) or
refresh (R23), never by the background sync.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Dataverse's team.teamtype of a group team.
SECURITY_GROUP_TEAM = 2
MICROSOFT_365_GROUP_TEAM = 3
GROUP_TEAM_TYPES = (SECURITY_GROUP_TEAM, MICROSOFT_365_GROUP_TEAM)

#: The membership types as the CLI and the API spell them -> Dataverse's team.membershiptype.
MEMBERSHIP_TYPES: dict[str, int] = {"members-and-guests": 0, "members": 1, "owners": 2, "guests": 3}
MEMBERSHIP_NAMES: dict[int, str] = {v: k for k, v in MEMBERSHIP_TYPES.items()}
DEFAULT_MEMBERSHIP = "members-and-guests"


def membership_type(name: object) -> int:
    """The membership type's number for a name (``members-and-guests``, ``members``, ``owners``,
    ``guests``; underscores, case and surrounding whitespace ignored) or its number (an int or its
    ASCII digits); ValueError names the value."""
    if isinstance(name, int) and not isinstance(name, bool) and name in MEMBERSHIP_NAMES:
        return name
    if isinstance(name, str):
        key = name.strip().lower().replace("_", "-").replace(" ", "-")
        if key in MEMBERSHIP_TYPES:
            return MEMBERSHIP_TYPES[key]
        if key.isascii() and key.isdigit() and int(key) in MEMBERSHIP_NAMES:
            return int(key)
    raise ValueError(f"invalid membership type {name!r}: expected one of {', '.join(MEMBERSHIP_TYPES)}")


def group_team_type(group_types: Iterable[str]) -> int:
    """R25: the team type of a group's team: 3 for a Microsoft 365 group ("Unified" in its
    ``groupTypes``), else 2 (a security group)."""
    if any(t.lower() == "unified" for t in group_types):
        return MICROSOFT_365_GROUP_TEAM
    return SECURITY_GROUP_TEAM


def in_group_team(membershiptype: int, *, direct_member: bool, owner: bool, user_type: str) -> bool:
    """R25: does the group have the user, directly, in the team's membership type?

    ``direct_member``: the user is a direct member of the group (nested groups never count);
    ``owner``: the user is one of the group's owners; ``user_type``: Graph's ``userType``
    ("Member" or "Guest"). Members and guests (0): any direct member; members (1): direct members
    whose userType is Member; owners (2): the owners; guests (3): direct members who are guests.
    """
    guest = user_type.lower() == "guest"
    if membershiptype == 0:
        return direct_member
    if membershiptype == 1:
        return direct_member and not guest
    if membershiptype == 2:
        return owner
    if membershiptype == 3:
        return direct_member and guest
    raise ValueError(f"unknown membership type {membershiptype!r}")
