"""Plain values for what the directory says: users, licences, groups, roles.

These are the shapes that every other layer reads. They carry no I/O and are
cheap to build: a sync of a million users creates a million of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import msgspec

#: The Graph user fields of GRAPH.md, in the order Graph documents them: what sync reads and
#: what the fake directory serves.
GRAPH_USER_FIELDS: tuple[str, ...] = (
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "mail",
    "businessPhones",
    "mobilePhone",
    "streetAddress",
    "city",
    "state",
    "postalCode",
    "country",
    "accountEnabled",
    "userType",
    "assignedLicenses",
)


class Deletion(StrEnum):
    """How a user left the directory (R3)."""

    NONE = "none"
    SOFT = "soft"  # in deletedItems, restorable; Graph delta says @removed reason "changed"
    HARD = "hard"  # gone for good; Graph delta says @removed reason "deleted"


class AssignedLicense(msgspec.Struct, frozen=True, gc=False):
    """One of a user's licences (Graph's ``assignedLicense``): the SKU and the service plans
    turned off in it (R4)."""

    sku_id: str
    disabled_plans: frozenset[str] = frozenset()


class DirectoryUser(msgspec.Struct, frozen=True, gc=False):
    """One user as Graph returns it (only the fields sync reads).

    A frozen msgspec struct, built in C: a full read builds one per user. It holds no reference
    cycles (strings, tuples and licences), so the garbage collector need not track it (``gc``).
    """

    id: str
    user_principal_name: str
    display_name: str | None = None
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None
    mail: str | None = None
    business_phones: tuple[str, ...] = ()
    mobile_phone: str | None = None
    street_address: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    account_enabled: bool = True
    user_type: str = "Member"  # "Member" or "Guest"
    assigned_licenses: tuple[AssignedLicense, ...] = ()

    @property
    def is_guest(self) -> bool:
        return self.user_type == "Guest"


@dataclass(frozen=True, slots=True)
class RemovedUser:
    """A delta entry for a user that left the directory."""

    id: str
    deletion: Deletion


class MemberKind(StrEnum):
    USER = "user"
    GROUP = "group"
    SERVICE_PRINCIPAL = "servicePrincipal"


@dataclass(frozen=True, slots=True)
class GroupMember:
    id: str
    kind: MemberKind


@dataclass(frozen=True, slots=True)
class DirectoryGroup:
    """A group as ``GET /groups/{id}`` describes it (R25 group teams): a Microsoft 365 group has
    "Unified" in ``group_types``; a security group is ``security_enabled`` without it."""

    id: str
    display_name: str
    group_types: tuple[str, ...] = ()
    security_enabled: bool = False
    mail_enabled: bool = False

    @property
    def is_microsoft_365(self) -> bool:
        return any(t.lower() == "unified" for t in self.group_types)


@dataclass(frozen=True, slots=True)
class DirectoryRole:
    id: str
    display_name: str
    role_template_id: str


@dataclass(frozen=True, slots=True)
class ServicePlan:
    service_plan_id: str
    service_plan_name: str
    applies_to: str = "User"


@dataclass(frozen=True, slots=True)
class SubscribedSku:
    sku_id: str
    sku_part_number: str
    service_plans: tuple[ServicePlan, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class UsersDeltaPage:
    """One page of a users delta read: users added or changed, and users that left.

    Graph may list the same user on more than one page of one delta read; the
    later entry wins.
    """

    users: list[DirectoryUser]
    removed: list[RemovedUser]
    #: Users and removals in the order the page lists them (a later entry for a user wins).
    entries: list[DirectoryUser | RemovedUser] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GroupDelta:
    """One group's entry in a groups delta page.

    ``added`` and ``removed`` are the direct-member changes (``members@delta``).
    A large group's changes can span pages: the same group id then appears on
    each of them, and the changes add up. ``removed_group`` says the group
    itself was deleted.
    """

    id: str
    added: list[GroupMember] = field(default_factory=list)
    removed: list[GroupMember] = field(default_factory=list)
    removed_group: bool = False
