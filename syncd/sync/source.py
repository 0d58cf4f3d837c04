"""Reading the directory facts a run needs: admins, the security group, users (full or delta)."""

from __future__ import annotations

from collections.abc import Iterator

from syncd.directory.client import GraphClient
from syncd.directory.models import DirectoryUser, GroupMember, MemberKind
from syncd.rules import ADMIN_ROLE_IDS

Admins = dict[str, frozenset[str]]


def read_admins(directory: GraphClient) -> Admins:
    """User id -> the R6 admin role templates the user holds (direct role members only)."""
    found: dict[str, set[str]] = {}
    for role in directory.directory_roles():
        if role.role_template_id not in ADMIN_ROLE_IDS:
            continue
        for page in directory.iter_role_members(role.id):
            for m in page:
                if isinstance(m, GroupMember) and m.kind is not MemberKind.USER:
                    continue
                found.setdefault(m.id, set()).add(role.role_template_id)
    return {uid: frozenset(t) for uid, t in found.items()}


def group_user_pages(directory: GraphClient, group_id: str) -> Iterator[list[DirectoryUser]]:
    """The group's direct user members with their fields, a page at a time (nested groups ignored, R5)."""
    for page in directory.iter_group_members(group_id):
        yield [m for m in page if isinstance(m, DirectoryUser)]


def group_owner_ids(directory: GraphClient, group_id: str) -> set[str]:
    out: set[str] = set()
    for page in directory.iter_group_owners(group_id):
        for m in page:
            if isinstance(m, DirectoryUser) or m.kind is MemberKind.USER:
                out.add(m.id)
    return out


def group_members_and_link(directory: GraphClient, group_id: str) -> tuple[set[str], str | None]:
    """The group's direct user member ids from a fresh groups delta read, and its delta link."""
    reader = directory.groups_delta(group_id=group_id)
    members: set[str] = set()
    for page in reader:
        for g in page:
            if g.id != group_id:
                continue
            for m in g.added:
                if m.kind is MemberKind.USER:
                    members.add(m.id)
            for m in g.removed:
                members.discard(m.id)
    return members, reader.delta_link
