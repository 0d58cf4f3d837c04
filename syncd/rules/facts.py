"""The values the rules engine reads and returns.

Everything here is a plain frozen value: the sync engine builds a million of them per run, so they use
slots and carry no behaviour beyond a property or two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from syncd.directory.models import Deletion, DirectoryUser


class Mode(StrEnum):
    """Who is asking (R7, R8)."""

    BACKGROUND = "background"  # the periodic sync
    ON_DEMAND = "on_demand"  # an administrator's add (Add-AdminPowerAppsSyncUser, admin centre)
    FIRST_ACCESS = "first_access"  # the user's first attempt to open the environment


class Membership(StrEnum):
    """How a user relates to the environment's security group (R5)."""

    DIRECT = "direct"
    NESTED_ONLY = "nested_only"  # member only through a nested group: not a member
    OWNER = "owner"  # owner, not a member: counts on demand only
    NONE = "none"


class EnvType(StrEnum):
    PRODUCTION = "production"
    SANDBOX = "sandbox"
    TRIAL = "trial"
    DEVELOPER = "developer"
    TEAMS = "teams"
    DEFAULT = "default"


class UserKind(StrEnum):
    """What a SystemUser row stands for (R18-R20)."""

    REGULAR = "regular"  # synchronised from the directory
    APPLICATION = "application"  # carries an applicationid (R18)
    SUPPORT = "support"  # crmoln@microsoft.com, access mode 3 (R19)
    DELEGATED_ADMIN = "delegated_admin"  # crmoln2@microsoft.com, access mode 5 (R19)
    STUB = "stub"  # placeholder created by data import (R20)


class AzureState(IntEnum):
    """Dataverse's systemuser.azurestate: the user's state in the directory (R9)."""

    EXISTS = 0
    SOFT_DELETED = 1  # in the directory's deleted items, restorable
    NOT_FOUND = 2  # hard-deleted, or not found


class AccessMode(IntEnum):
    """Dataverse's access mode numbers (R15)."""

    READ_WRITE = 0
    ADMINISTRATIVE = 1
    READ = 2
    SUPPORT = 3
    NON_INTERACTIVE = 4
    DELEGATED_ADMIN = 5


@dataclass(frozen=True, slots=True)
class UserFacts:
    """What the directory says about one user, as far as one environment cares."""

    user: DirectoryUser | None  # None when the user is gone from the directory and only the id is known
    object_id: str
    deletion: Deletion = Deletion.NONE
    admin_role_template_ids: frozenset[str] = frozenset()
    membership: Membership = Membership.NONE  # of the environment's security group; ignored without one


@dataclass(frozen=True, slots=True)
class EnvironmentFacts:
    name: str
    type: EnvType
    has_database: bool = True
    security_group_id: str | None = None
    app_pass_capacity_left: int = 0
    tenant_has_marketing_licence: bool = False
    is_sales: bool = False
    created_by_object_id: str | None = None
    allow_role_assignment_on_disabled_users: bool = False


@dataclass(frozen=True, slots=True)
class RowFacts:
    """The current SystemUser row of the user in the environment."""

    kind: UserKind
    isdisabled: bool
    accessmode: int
    islicensed: bool
    columns: Mapping[
        str, str | None
    ]  # current values of the synced columns (R10); a missing key reads as None
    email_edited: bool = False  # a customer edited internalemailaddress in Dataverse (R12)
    azurestate: int = 0  # the row's azurestate (R9, AzureState)


class Action(StrEnum):
    CREATE = "create"  # no row: add it, enabled
    UPDATE = "update"  # the row keeps its enabled/disabled state; columns, access mode or licence flag change
    ENABLE = "enable"  # a disabled row becomes enabled (possibly with column changes)
    DISABLE = "disable"  # an enabled row becomes disabled (R9); columns of a present user still flow
    KEEP = "keep"  # the row exists and nothing changes
    LEAVE_ALONE = "leave_alone"  # no row and none wanted, or a row sync never touches (R1, R18-R20)
    REFUSE = "refuse"  # on demand only: the add is not allowed; the checks say why (R8)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of a diagnosis (R22): which rule, whether it holds, and why, for an administrator."""

    rule: str
    passed: bool
    message: str

    def __str__(self) -> str:
        return ("PASS " if self.passed else "FAIL ") + self.message


NO_CHANGES: Mapping[str, str | None] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Decision:
    """What sync does with one user in one environment, and why."""

    action: Action
    rule: str  # the rule id that drove the action, e.g. "R9", "R7b", "R16"
    reason: str  # one human sentence
    isdisabled: bool | None  # wanted value; None when no row is wanted or touched
    accessmode: int | None
    islicensed: bool | None
    changes: Mapping[str, str | None]  # synced columns whose value must change (CREATE: all of them)
    checks: tuple[Check, ...] = ()  # filled only when explain=True
    # One short note per column among ``changes`` whose directory value had to be fitted to the column
    # (cut to its length, control characters removed), e.g. "jobtitle cut to 100 characters" (R10).
    notes: tuple[str, ...] = ()

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def touches_row(self) -> bool:
        """Whether applying the decision writes to the SystemUser table."""
        return self.action in _WRITING


_WRITING = frozenset({Action.CREATE, Action.UPDATE, Action.ENABLE, Action.DISABLE})
