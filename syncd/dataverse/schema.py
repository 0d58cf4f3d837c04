"""The simulated Dataverse tables, as SQLAlchemy 2 typed models.

Column names follow Dataverse's logical names where Dataverse has one (systemuser,
systemuserid, domainname, accessmode, ...). The migrations in `migrations/` create
exactly this schema; `alembic check` proves it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from syncd.dataverse.lengths import SYSTEMUSER_LENGTHS

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


class SystemUser(Base):
    """One Dataverse user row; one per (environment, directory object id)."""

    __tablename__ = "systemuser"
    __table_args__ = (
        # The hot path: sync looks rows up, and upserts, by (environment, object id).
        UniqueConstraint("environment_id", "azureactivedirectoryobjectid", name="uq_systemuser_env_objectid"),
        # Admin operations find a user by UPN; stub conflicts (R20) are found by UPN too.
        Index("ix_systemuser_env_domainname", "environment_id", "domainname"),
        CheckConstraint("accessmode BETWEEN 0 AND 5", name="accessmode"),
        CheckConstraint(f"kind IN {USER_KINDS!r}", name="kind"),
        *_length_checks(),
    )

    systemuserid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    azureactivedirectoryobjectid: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(20), default="regular")
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
    # The value sync last wrote to internalemailaddress. When the two differ, a customer edited
    # the email in Dataverse and sync never writes it again (R12).
    synced_internalemailaddress: Mapped[str | None] = mapped_column(_length("synced_internalemailaddress"))
    # A column sync does not own (R14): an example of a customer's own field.
    new_costcentre: Mapped[str | None] = mapped_column(_length("new_costcentre"))
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Role(Base):
    __tablename__ = "role"
    __table_args__ = (UniqueConstraint("environment_id", "name", name="uq_role_env_name"),)

    roleid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))


class SystemUserRole(Base):
    __tablename__ = "systemuserroles"

    systemuserid: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("systemuser.systemuserid", ondelete="CASCADE"), primary_key=True
    )
    roleid: Mapped[uuid.UUID] = mapped_column(ForeignKey("role.roleid", ondelete="CASCADE"), primary_key=True)


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


class SyncEvent(Base):
    """One row per changed user, with the rule that caused the change (a provisioning log)."""

    __tablename__ = "sync_event"
    __table_args__ = (
        Index("ix_sync_event_env_object", "environment_id", "azureactivedirectoryobjectid"),
        Index("ix_sync_event_run", "run_id"),
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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


from syncd.dataverse import records as _records  # noqa: E402, F401  (owned records, R20)
