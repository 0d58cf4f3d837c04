"""Reading the directory facts a run needs: admins, the security group, users (full or delta)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from syncd.directory.client import USER_SELECT, GraphClient
from syncd.directory.models import DirectoryUser, GroupDelta, GroupMember, MemberKind
from syncd.rules import ADMIN_ROLE_IDS

Admins = dict[str, frozenset[str]]
T = TypeVar("T")


def read_admins(directory: GraphClient, users: dict[str, DirectoryUser] | None = None) -> Admins:
    """User id -> the R6 admin role templates the user holds (direct role members only).

    With `users`, the admins' own user objects are read in the same requests and put there, so a
    run needs no request per admin.
    """
    found: dict[str, set[str]] = {}
    select = USER_SELECT if users is not None else None
    for role in directory.directory_roles():
        if role.role_template_id not in ADMIN_ROLE_IDS:
            continue
        for page in directory.iter_role_members(role.id, select=select):
            for m in page:
                if isinstance(m, GroupMember) and m.kind is not MemberKind.USER:
                    continue
                if users is not None and isinstance(m, DirectoryUser):
                    users[m.id] = m
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


def group_changes(pages: Iterable[list[GroupDelta]], group_id: str) -> tuple[set[str], set[str]]:
    """The direct user members added to and removed from one group over a groups delta read.

    Only users are members (R5): a nested group, a device or a service principal in
    ``members@delta`` is ignored, in delta reads as in full ones. A member added and then removed
    within the read (or the other way round) ends where the later change puts it.
    """
    added: set[str] = set()
    removed: set[str] = set()
    for page in pages:
        for g in page:
            if g.id != group_id:
                continue
            for m in g.added:
                if m.kind is MemberKind.USER:
                    added.add(m.id)
                    removed.discard(m.id)
            for m in g.removed:
                if m.kind is MemberKind.USER:
                    removed.add(m.id)
                    added.discard(m.id)
    return added, removed


def group_members_and_link(directory: GraphClient, group_id: str) -> tuple[set[str], str | None]:
    """The group's direct user member ids from a fresh groups delta read, and its delta link."""
    reader = directory.groups_delta(group_id=group_id)
    members, _ = group_changes(reader, group_id)
    return members, reader.delta_link


_DONE = object()


def prefetch(pages: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Read `pages` in a thread, `depth` pages ahead, so reading the directory overlaps writing.

    Errors of the reader come out of this iterator where they happened; leaving the loop early
    stops the reader at its next page.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def reader() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        q.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(_Failure(exc))

    thread = threading.Thread(target=reader, name="syncd-directory-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
