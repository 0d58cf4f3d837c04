"""The simulated Dataverse tables, as SQLAlchemy 2 typed models.

Column names, types and lengths follow Dataverse's logical names where Dataverse has one
(systemuser, systemuserid, domainname, accessmode, businessunit, team, teammembership,
teamroles, ...: Microsoft's table/entity references). What syncd needs and Dataverse lacks is
plainly syncd's own:

* columns carry syncd's publisher prefix ``syncd_`` (as Dataverse custom columns carry theirs):
  ``systemuser.syncd_kind`` (what a row stands for, R18-R20) and ``systemuser.syncd_syncedemail``
  (the email sync last wrote, R12);
* ``environment_id`` on every Dataverse table: one database holds many organizations
  (environments), where Dataverse has one database per organization;
* the tables named ``environment``, ``sync_*`` and ``owned_record`` are syncd's bookkeeping.

``versionnumber`` (systemuser, businessunit, team) is Dataverse's row version: a number from one
counter per database that moves on every insert and update of the row, whoever writes it. The
database keeps it (triggers, see migration 0005): no writer sets it, none can forget it. A later
migration that recreates one of these tables on SQLite (alembic's batch mode copies the table and
drops the old one, and its triggers with it) must create its triggers again, as 0005 does.

The migrations in `syncd/migrations/` create exactly this schema; `alembic check` proves it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from syncd.dataverse.lengths import (
    BUSINESSUNIT_NAME_LENGTH,
    ROLE_NAME_LENGTH,
    SYSTEMUSER_LENGTHS,
    TEAM_NAME_LENGTH,
)
from syncd.dataverse.textfold import asciifold

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ENV_TYPES = ("production", "sandbox", "trial", "developer", "teams", "default")
USER_KINDS = ("regular", "application", "support", "delegated_admin", "stub")
RUN_KINDS = ("full", "delta", "user")
# Dataverse's systemuser.azurestate (R9): the user exists in the directory, is soft-deleted
# (restorable), or is hard-deleted or not found.
AZURE_STATES = {0: "exists", 1: "soft-deleted", 2: "not found or hard-deleted"}
# Dataverse's team.teamtype and team.membershiptype (R25).
TEAM_TYPES = {0: "owner", 1: "access", 2: "Entra security group", 3: "Entra Microsoft 365 group"}
MEMBERSHIP_TYPES = {0: "members and guests", 1: "members", 2: "owners", 3: "guests"}
# "partial": the run finished, but some rows failed (each with its event). "abandoned": the process
# running it died; the next holder of the environment's lock closed it.
RUN_OUTCOMES = ("running", "succeeded", "partial", "failed", "blocked", "dry_run", "interrupted", "abandoned")

# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit and autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Environment(Base):
    __tablename__ = "environment"
    __table_args__ = (
        CheckConstraint(f"type IN {ENV_TYPES!r}", name="type"),
        CheckConstraint("app_pass_capacity >= 0", name="app_pass_capacity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    has_database: Mapped[bool] = mapped_column(Boolean, default=True)
    security_group_id: Mapped[str | None] = mapped_column(String(36))
    app_pass_capacity: Mapped[int] = mapped_column(Integer, default=0)
    tenant_has_marketing_licence: Mapped[bool] = mapped_column(Boolean, default=False)
    is_sales: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_object_id: Mapped[str | None] = mapped_column(String(36))
    allow_role_assignment_on_disabled_users: Mapped[bool] = mapped_column(Boolean, default=False)
    # When `syncd env resume` last took the environment out of quarantine: failed runs that finished
    # before it no longer count towards quarantine.
    sync_resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_on: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# The length-limited text columns of SystemUser: Dataverse's lengths, and the custom column's own.
SYSTEMUSER_TEXT_LENGTHS: dict[str, int] = {**SYSTEMUSER_LENGTHS, "new_costcentre": 100}


def _length(column: str) -> String:
    return String(SYSTEMUSER_TEXT_LENGTHS[column])


def _length_checks() -> tuple[CheckConstraint, ...]:
    """`length(col) <= n` for each length-limited column, on SQLite only.

    PostgreSQL's varchar(n) refuses a longer value itself; SQLite ignores the declared length, so
    without these a value could pass on SQLite and fail on PostgreSQL. Both count characters.
    """
    return tuple(
        CheckConstraint(f"length({c}) <= {n}", name=f"{c}_length").ddl_if(dialect="sqlite")
        for c, n in SYSTEMUSER_TEXT_LENGTHS.items()
    )


def _versionnumber() -> Mapped[int]:
    """Dataverse's VersionNumber (BigInt): set by the database on every insert and update (see the
    module docstring); the ORM reads it back after a write instead of sending one."""
    return mapped_column(BigInteger, server_default=text("0"), server_onupdate=FetchedValue(), nullable=False)


class BusinessUnit(Base):
    """A Dataverse business unit (R26). Each environment with a database has exactly one root
    business unit (``parentbusinessunitid`` null), named after the environment from its creation."""

    __tablename__ = "businessunit"
    __table_args__ = (
        Index(
            "uq_businessunit_env_root",
            "environment_id",
            unique=True,
            sqlite_where=text("parentbusinessunitid IS NULL"),
            postgresql_where=text("parentbusinessunitid IS NULL"),
        ),
    )
    __mapper_args__ = {"eager_defaults": False}

    businessunitid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(BUSINESSUNIT_NAME_LENGTH))
    parentbusinessunitid: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("businessunit.businessunitid"))
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    versionnumber: Mapped[int] = _versionnumber()


class SystemUser(Base):
    """One Dataverse user row; one per (environment, directory object id)."""

    __tablename__ = "systemuser"
    __table_args__ = (
        # The hot path: sync looks rows up, and upserts, by (environment, object id).
        UniqueConstraint("environment_id", "azureactivedirectoryobjectid", name="uq_systemuser_env_objectid"),
        CheckConstraint("accessmode BETWEEN 0 AND 5", name="accessmode"),
        CheckConstraint(f"syncd_kind IN {USER_KINDS!r}", name="syncd_kind"),
        CheckConstraint(f"azurestate IN {tuple(AZURE_STATES)!r}", name="azurestate"),
        *_length_checks(),
    )
    # versionnumber is set by the database after the statement (SQLite: by an AFTER trigger, which
    # RETURNING does not see): the ORM expires it after a write and reads it when asked.
    __mapper_args__ = {"eager_defaults": False}

    systemuserid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    # R26: every user belongs to one business unit; sync and on-demand adds create users in the
    # environment's root business unit and never move them.
    businessunitid: Mapped[uuid.UUID] = mapped_column(ForeignKey("businessunit.businessunitid"))
    azureactivedirectoryobjectid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # syncd's own column (the ORM keeps the short name): what the row stands for (R18-R20).
    kind: Mapped[str] = mapped_column("syncd_kind", String(20), default="regular")
    domainname: Mapped[str] = mapped_column(_length("domainname"))
    fullname: Mapped[str | None] = mapped_column(_length("fullname"))
    firstname: Mapped[str | None] = mapped_column(_length("firstname"))
    lastname: Mapped[str | None] = mapped_column(_length("lastname"))
    jobtitle: Mapped[str | None] = mapped_column(_length("jobtitle"))
    internalemailaddress: Mapped[str | None] = mapped_column(_length("internalemailaddress"))
    address1_telephone1: Mapped[str | None] = mapped_column(_length("address1_telephone1"))
    mobilephone: Mapped[str | None] = mapped_column(_length("mobilephone"))
    address1_line1: Mapped[str | None] = mapped_column(_length("address1_line1"))
    address1_city: Mapped[str | None] = mapped_column(_length("address1_city"))
    address1_stateorprovince: Mapped[str | None] = mapped_column(_length("address1_stateorprovince"))
    address1_postalcode: Mapped[str | None] = mapped_column(_length("address1_postalcode"))
    address1_country: Mapped[str | None] = mapped_column(_length("address1_country"))
    isdisabled: Mapped[bool] = mapped_column(Boolean, default=False)
    accessmode: Mapped[int] = mapped_column(SmallInteger, default=0)
    islicensed: Mapped[bool] = mapped_column(Boolean, default=False)
    applicationid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # R9: 0 while the user exists in the directory, 1 while soft-deleted, 2 once hard-deleted or not
    # found (AZURE_STATES). Kept by sync for the rows it syncs.
    azurestate: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=text("0"))
    # Whether the row is synchronised with the directory: true for the rows sync and on-demand adds
    # create, false for built-in, application and stub users.
    issyncwithdirectory: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Not written by sync (R14).
    windowsliveid: Mapped[str | None] = mapped_column(_length("windowsliveid"))
    # syncd's own column: the value sync last wrote to internalemailaddress. When the two differ, a
    # customer edited the email in Dataverse and sync never writes it again (R12).
    syncd_syncedemail: Mapped[str | None] = mapped_column(_length("syncd_syncedemail"))
    # syncd's own column: a hash of what sync last decided the row from (the user as read, the
    # environment's settings, the rules' code). The database forgets it (null) on any write that
    # does not set it, so a full run skips deciding a row again only while nobody else has written it.
    syncd_inputhash: Mapped[int | None] = mapped_column(BigInteger)
    # A column sync does not own (R14): an example of a customer's own field.
    new_costcentre: Mapped[str | None] = mapped_column(_length("new_costcentre"))
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    versionnumber: Mapped[int] = _versionnumber()


class Role(Base):
    __tablename__ = "role"
    __table_args__ = (UniqueConstraint("environment_id", "name", name="uq_role_env_name"),)

    roleid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(ROLE_NAME_LENGTH))
    # R26: every security role belongs to one business unit (the root one, for every role today).
    businessunitid: Mapped[uuid.UUID] = mapped_column(ForeignKey("businessunit.businessunitid"))


class SystemUserRole(Base):
    __tablename__ = "systemuserroles"

    systemuserid: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("systemuser.systemuserid", ondelete="CASCADE"), primary_key=True
    )
    roleid: Mapped[uuid.UUID] = mapped_column(ForeignKey("role.roleid", ondelete="CASCADE"), primary_key=True)


class Team(Base):
    """A Dataverse team (R25): an owner or access team, or a group team tied to one Entra group
    (``azureactivedirectoryobjectid``) with a membership type. Its members hold its roles (R21).

    One group team per Entra group and membership type in an environment.
    """

    __tablename__ = "team"
    __table_args__ = (
        UniqueConstraint(
            "environment_id",
            "azureactivedirectoryobjectid",
            "membershiptype",
            name="uq_team_env_objectid_membershiptype",
        ),
        CheckConstraint(f"teamtype IN {tuple(TEAM_TYPES)!r}", name="teamtype"),
        CheckConstraint(f"membershiptype IN {tuple(MEMBERSHIP_TYPES)!r}", name="membershiptype"),
        CheckConstraint(
            "(teamtype IN (2, 3)) = (azureactivedirectoryobjectid IS NOT NULL)", name="group_objectid"
        ),
    )
    __mapper_args__ = {"eager_defaults": False}

    teamid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(TEAM_NAME_LENGTH))
    teamtype: Mapped[int] = mapped_column(SmallInteger, default=0)
    azureactivedirectoryobjectid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    membershiptype: Mapped[int] = mapped_column(SmallInteger, default=0)
    businessunitid: Mapped[uuid.UUID] = mapped_column(ForeignKey("businessunit.businessunitid"))
    administratorid: Mapped[uuid.UUID] = mapped_column(ForeignKey("systemuser.systemuserid"))
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    versionnumber: Mapped[int] = _versionnumber()


class TeamMembership(Base):
    """A user's membership of a team (Dataverse's teammembership intersect table)."""

    __tablename__ = "teammembership"
    __table_args__ = (
        UniqueConstraint("teamid", "systemuserid", name="uq_teammembership_team_user"),
        Index("ix_teammembership_systemuserid", "systemuserid"),
    )

    teammembershipid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    teamid: Mapped[uuid.UUID] = mapped_column(ForeignKey("team.teamid", ondelete="CASCADE"))
    systemuserid: Mapped[uuid.UUID] = mapped_column(ForeignKey("systemuser.systemuserid", ondelete="CASCADE"))


class TeamRole(Base):
    """A security role a team holds (Dataverse's teamroles intersect table); its members hold it (R21)."""

    __tablename__ = "teamroles"
    __table_args__ = (UniqueConstraint("teamid", "roleid", name="uq_teamroles_team_role"),)

    teamroleid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    teamid: Mapped[uuid.UUID] = mapped_column(ForeignKey("team.teamid", ondelete="CASCADE"))
    roleid: Mapped[uuid.UUID] = mapped_column(ForeignKey("role.roleid", ondelete="CASCADE"))


class SyncState(Base):
    """Per-environment checkpoints, such as the users and groups delta links."""

    __tablename__ = "sync_state"

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_on: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SyncGroupMember(Base):
    """The environment's security group's direct user members and owners, as of the last run (R5, R24).

    Delta runs keep the members in step from the groups delta, so a changed user's membership is
    known without reading the group again. Owners are refreshed by full runs.
    """

    __tablename__ = "sync_group_member"
    __table_args__ = (CheckConstraint("relation IN ('member', 'owner')", name="relation"),)

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    relation: Mapped[str] = mapped_column(String(10), primary_key=True, default="member")


class SyncRun(Base):
    __tablename__ = "sync_run"
    __table_args__ = (
        Index("ix_sync_run_env_started", "environment_id", "started_at"),
        CheckConstraint(f"kind IN {RUN_KINDS!r}", name="kind"),
        CheckConstraint(f"outcome IN {RUN_OUTCOMES!r}", name="outcome"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    requested_kind: Mapped[str] = mapped_column(String(10))
    trigger: Mapped[str] = mapped_column(String(20), default="cli")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    read: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    blocked_disables: Mapped[int] = mapped_column(Integer, default=0)
    # How many times a full run started its read again after Graph's 410 syncStateNotFound.
    restarts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    # The environment's regular rows enabled / disabled when the run finished (migration 0007):
    # null for dry runs, runs that did not finish and runs older than the column.
    # The environment's regular rows enabled / disabled when a full run finished (a delta run
    # records none: its cost stays with its changes); the status UI charts them.
    users_enabled: Mapped[int | None] = mapped_column(Integer)
    users_disabled: Mapped[int | None] = mapped_column(Integer)


# Each provisioning-log filter (syncd.dataverse.provisioning_log) is one index range scan in the
# log's order, newest first: (created_at, id) descending, so a time range is a range of the same
# index. See migration 0007 for what each index serves.
_LOG_ORDER = ("created_at", "id")


class SyncEvent(Base):
    """One row per change to a user, with the rule that caused it (the provisioning log).

    ``changes`` is a JSON object column -> new value; ``previous`` (migration 0007) the same keys
    -> the value the row held before (null: not known, e.g. a create or an event older than 0007).
    """

    __tablename__ = "sync_event"
    __table_args__ = (
        Index("ix_sync_event_env_time", "environment_id", *_LOG_ORDER),
        Index("ix_sync_event_env_rule", "environment_id", "rule", *_LOG_ORDER),
        Index("ix_sync_event_env_action", "environment_id", "action", *_LOG_ORDER),
        Index("ix_sync_event_run", "run_id", *_LOG_ORDER),
        Index("ix_sync_event_object", "azureactivedirectoryobjectid", *_LOG_ORDER),
        # Rows with no object id (application and stub users' admin events) by systemuserid; a row
        # with one is found through its object id, so sync's own events need no entry here.
        Index(
            "ix_sync_event_systemuser_noobject",
            "systemuserid",
            *_LOG_ORDER,
            sqlite_where=text("azureactivedirectoryobjectid IS NULL"),
            postgresql_where=text("azureactivedirectoryobjectid IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_run.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    systemuserid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    azureactivedirectoryobjectid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    action: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    changes: Mapped[str | None] = mapped_column(Text)  # JSON object: column -> new value
    previous: Mapped[str | None] = mapped_column(Text)  # JSON object: column -> old value
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# User search (syncd.dataverse.user_search) reads ASCII-folded UPN and full name (`asciifold`: A-Z
# lowered, compared by code point, the same on both backends), and lookups of a row by its exact UPN
# (syncd.admin.lookup) read the UPN one: expression indexes, so a prefix or an equality is one index
# range scan on both backends (migration 0007, which says why not `casefold`).
Index("ix_systemuser_env_folded_domainname", SystemUser.environment_id, asciifold(SystemUser.domainname))
Index("ix_systemuser_env_folded_fullname", SystemUser.environment_id, asciifold(SystemUser.fullname))

from syncd.dataverse import records as _records  # noqa: E402, F401  (owned records, R20)
