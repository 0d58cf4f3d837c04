"""Environment provisioning: create, list and show environments.

Creating an environment with a database also creates its root business unit (R26), its built-in
users (R19) and its default security roles, the users and roles in the root business unit; an
environment without a database never holds users (R1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import BigInteger, Integer, SmallInteger, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.dataverse.rows import impossible_name, shown, unknown_environment
from syncd.dataverse.schema import (
    ENV_TYPES,
    BusinessUnit,
    Environment,
    Role,
    SyncGroupMember,
    SyncState,
    SystemUser,
    SystemUserRole,
    utcnow,
)
from syncd.directory.ids import normalize_object_id
from syncd.errors import Conflict, NotFound, SyncdError

SUPPORT_UPN = "crmoln@microsoft.com"
DELEGATED_ADMIN_UPN = "crmoln2@microsoft.com"
# R19: (kind, UPN, first name, last name, access mode) of the users every environment with a database has.
BUILT_IN_USERS = (
    ("support", SUPPORT_UPN, "Support", "User", 3),
    ("delegated_admin", DELEGATED_ADMIN_UPN, "Delegated", "Admin", 5),
)
DEFAULT_ROLES = ("System Administrator", "Basic User", "Salesperson")
# An environment's name is one URL path segment (`syncd.webapi.urls`); clients collapse these two
# (RFC 3986 5.2.4, remove_dot_segments) before a request is sent, so no URL could reach them.
DOT_SEGMENTS = frozenset({".", ".."})


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str
    type: str = "production"
    has_database: bool = True
    security_group_id: str | None = None
    app_pass_capacity: int = 0
    tenant_has_marketing_licence: bool = False
    is_sales: bool = False
    created_by_object_id: str | None = None
    allow_role_assignment_on_disabled_users: bool = False

    def validate(self) -> None:
        self.normalized()

    def normalized(self) -> EnvironmentSpec:
        """The spec checked, with its type in lower case and its object ids in their one canonical
        spelling; a SyncdError names the first bad value."""
        if not _could_be_a_name(self.name) or not self.name.strip() == self.name:
            raise SyncdError(
                f"invalid environment name {shown(self.name)}: 1-100 characters, no surrounding spaces "
                "and no control characters"
            )
        if self.name in DOT_SEGMENTS:
            raise SyncdError(
                f"invalid environment name {shown(self.name)}: it cannot be one URL path segment "
                "(RFC 3986 dot-segment)"
            )
        checked = check_settings(
            {
                "type": self.type,
                "security_group_id": self.security_group_id,
                "app_pass_capacity": self.app_pass_capacity,
                "created_by_object_id": self.created_by_object_id,
            }
        )
        spec = replace(self, **checked)
        _check_developer(spec.type, spec.created_by_object_id)
        return spec


# The settings an environment has after its creation, and that `syncd env set` can change. Not the
# name (its identity) nor whether it has a database (R1: that is a different environment).
SETTINGS: dict[str, type] = {
    "type": str,
    "security_group_id": str,
    "app_pass_capacity": int,
    "tenant_has_marketing_licence": bool,
    "is_sales": bool,
    "created_by_object_id": str,
    "allow_role_assignment_on_disabled_users": bool,
}
_ID_SETTINGS = {"security_group_id": "security group", "created_by_object_id": "creator"}
_INT_LABELS = {"app_pass_capacity": "app-pass capacity"}


def column_range(column: Any) -> tuple[int, int]:
    """The values an integer column holds on every backend: PostgreSQL's SMALLINT, INTEGER and
    BIGINT (SQLite's INTEGER holds 64 bits, so the narrower PostgreSQL type is the limit)."""
    kind = column.type
    if isinstance(kind, SmallInteger):
        bits = 16
    elif isinstance(kind, BigInteger):
        bits = 64
    elif isinstance(kind, Integer):
        bits = 32
    else:  # pragma: no cover - only integer columns are asked
        raise TypeError(f"{column} is not an integer column")
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def check_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """Environment settings checked and normalised: the type in lower case, object ids (or None)
    in their canonical spelling, a whole number within its column's range and 0 or more (the
    app-pass capacity: 0 to 2147483647, a 32-bit column). A SyncdError names the first bad value."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        kind = SETTINGS.get(key)
        if kind is None:
            raise SyncdError(
                f"unknown environment setting {shown(key)}: expected one of {', '.join(SETTINGS)}"
            )
        if key in _ID_SETTINGS:
            out[key] = None if value is None else _check_guid(_ID_SETTINGS[key], value)
        elif key == "type":
            name = value.strip().lower() if isinstance(value, str) else value
            if name not in ENV_TYPES:
                raise SyncdError(
                    f"unknown environment type {shown(value)}: expected one of {', '.join(ENV_TYPES)}"
                )
            out[key] = name
        elif kind is int:
            _, high = column_range(getattr(Environment, key))
            if type(value) is not int or not 0 <= value <= high:
                raise SyncdError(
                    f"invalid {_INT_LABELS.get(key, key)} {shown(value)}: must be a whole number "
                    f"from 0 to {high}"
                )
            out[key] = value
        else:
            if type(value) is not bool:
                raise SyncdError(f"invalid {key} {shown(value)}: expected true or false")
            out[key] = value
    return out


def _check_developer(env_type: str, created_by: str | None) -> None:
    if env_type == "developer" and not created_by:
        raise SyncdError(
            "a developer environment needs --created-by OBJECT_ID (only its creator is added, R7d)"
        )


def _check_guid(label: str, value: Any) -> str:
    try:
        if not isinstance(value, str):  # a JSON number of 32 digits would read as a GUID
            raise ValueError(value)
        return normalize_object_id(value)
    except ValueError:
        raise SyncdError(f"invalid {label} id {shown(value)}: expected a GUID") from None


def create_environment(session: Session, spec: EnvironmentSpec) -> Environment:
    """Create the environment and, with a database, its root business unit named after it (R26),
    its default roles and its built-in users (R19) in that business unit, in the session's
    transaction. Raises Conflict when the name is taken, SyncdError for a bad spec."""
    spec = spec.normalized()
    if session.scalar(select(Environment.id).where(Environment.name == spec.name)) is not None:
        raise Conflict(f"environment {spec.name!r} already exists")
    env = Environment(**spec.__dict__, created_on=utcnow())
    session.add(env)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"environment {spec.name!r} already exists") from None
    if spec.has_database:
        now = utcnow()
        root = BusinessUnit(environment_id=env.id, name=env.name, createdon=now, modifiedon=now)
        session.add(root)
        session.flush()
        unit = root.businessunitid
        roles = {name: Role(environment_id=env.id, name=name, businessunitid=unit) for name in DEFAULT_ROLES}
        session.add_all(roles.values())
        builtins = [
            SystemUser(
                environment_id=env.id,
                businessunitid=unit,
                kind=kind,
                domainname=upn,
                fullname=f"{first} {last}",
                firstname=first,
                lastname=last,
                accessmode=mode,
                isdisabled=False,
                islicensed=False,
                createdon=now,
                modifiedon=now,
            )
            for kind, upn, first, last, mode in BUILT_IN_USERS
        ]
        session.add_all(builtins)
        session.flush()
        for user in builtins:
            session.add(
                SystemUserRole(systemuserid=user.systemuserid, roleid=roles["System Administrator"].roleid)
            )
    session.flush()
    return env


def background_scope(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What of an environment's settings the background sync's decisions depend on, beyond each
    user's own facts: who it adds (the type, R7b-R7d; the security group, R5; a developer
    environment's creator, R7d) and which rows it keeps on an on-demand ground alone (app passes
    left, the tenant's Marketing licence, R7a). A delta run revisits only the users that changed
    in the directory, so a change here must make the next run a full run."""
    developer = settings["type"] == "developer"
    return {
        "type": settings["type"],
        "security_group_id": settings["security_group_id"],
        "created_by_object_id": settings["created_by_object_id"] if developer else None,
        "app_pass_capacity": settings["app_pass_capacity"] > 0,
        "tenant_has_marketing_licence": bool(settings["tenant_has_marketing_licence"]),
    }


#: How the settings of ``background_scope`` are named to a person.
SCOPE_LABELS = {
    "type": "type",
    "security_group_id": "security group",
    "created_by_object_id": "creator",
    "app_pass_capacity": "app-pass capacity",
    "tenant_has_marketing_licence": "Marketing licence",
}


def scope_changes(env: Environment, values: Mapping[str, Any]) -> list[str]:
    """The settings among checked ``values`` whose change changes the background sync's scope for
    ``env`` (see ``background_scope``), in the order of SETTINGS; empty when none does."""
    before = {k: getattr(env, k) for k in SETTINGS}
    after = before | dict(values)
    old, new = background_scope(before), background_scope(after)
    return [k for k in old if old[k] != new[k]]


@dataclass(frozen=True)
class SettingsChange:
    """What `update_environment` did: each changed setting as (old, new), and whether the
    environment's checkpoints were dropped (its next run is a full run), for which settings."""

    environment: Environment
    changed: dict[str, tuple[Any, Any]]
    checkpoint_reset: bool
    scope_changed: tuple[str, ...] = ()


def update_environment(session: Session, name: str, values: Mapping[str, Any]) -> SettingsChange:
    """Change some of an environment's settings (see SETTINGS), in the session's transaction.

    A change of the background sync's scope (``background_scope``: a new type, security group or
    none where there was one, a developer environment's creator, app passes running out or coming
    back, the Marketing licence) drops the environment's checkpoints (`sync_state`) and its mirror
    of the group's members (`sync_group_member`), so that its next run is a full run that reads
    every user under the new settings (R5, R7, R24); the disables that follow pass the
    mass-disable guard like any others.
    """
    checked = check_settings(values)
    env = get_environment(session, name)
    _check_developer(
        checked.get("type", env.type), checked.get("created_by_object_id", env.created_by_object_id)
    )
    scope = scope_changes(env, checked)
    changed = {k: (getattr(env, k), v) for k, v in checked.items() if getattr(env, k) != v}
    for key, (_, new) in changed.items():
        setattr(env, key, new)
    reset = bool(scope)
    if reset:
        session.execute(delete(SyncState).where(SyncState.environment_id == env.id))
        session.execute(delete(SyncGroupMember).where(SyncGroupMember.environment_id == env.id))
    session.flush()
    return SettingsChange(env, changed, reset, tuple(scope))


def find_environment(session: Session, name: str) -> Environment | None:
    """The environment named ``name`` (exactly), or None; a name no environment can have (a NUL, a
    control character: ``impossible_name``) is None before any query, as on every backend."""
    if impossible_name(name):
        return None
    return session.scalar(select(Environment).where(Environment.name == name))


def get_environment(session: Session, name: str) -> Environment:
    """The environment named ``name`` (exactly, ``find_environment``); NotFound naming the known
    ones otherwise (only the name, for a name no environment can have)."""
    if impossible_name(name):
        raise NotFound(f"no environment named {shown(name)}")
    env = find_environment(session, name)
    if env is None:
        raise unknown_environment(
            name, session.scalars(select(Environment.name).order_by(Environment.name)).all()
        )
    return env


def _could_be_a_name(name: str) -> bool:
    return 0 < len(name) <= 100 and not any(c < " " or c == "\x7f" for c in name)


def lock_environment(session: Session, env_id: int) -> None:
    """Hold the environment's row until the session's transaction ends, so changes that count the
    environment's users first (R17's seven non-interactive users) happen one at a time.

    PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite ignores that; there a no-op UPDATE takes the
    database's write lock at once (waiting out another writer within the busy timeout), and the
    counts read after it are the latest. Call it before the reads it must cover.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Environment).where(Environment.id == env_id).values(id=Environment.id))
    else:
        session.execute(select(Environment.id).where(Environment.id == env_id).with_for_update())


def root_business_unit(session: Session, env_id: int) -> BusinessUnit:
    """The environment's root business unit (R26); NotFound for an environment without a database."""
    unit = session.scalar(
        select(BusinessUnit).where(
            BusinessUnit.environment_id == env_id, BusinessUnit.parentbusinessunitid.is_(None)
        )
    )
    if unit is None:
        raise NotFound("the environment has no business unit: it has no Dataverse database (R1, R26)")
    return unit


def list_environments(session: Session) -> list[Environment]:
    return list(session.scalars(select(Environment).order_by(Environment.name)))


def user_counts(session: Session, env_id: int) -> dict[str, int]:
    """Rows of an environment by state: enabled and disabled users of each kind."""
    rows = session.execute(
        select(SystemUser.kind, SystemUser.isdisabled, func.count())
        .where(SystemUser.environment_id == env_id)
        .group_by(SystemUser.kind, SystemUser.isdisabled)
    ).all()
    out: dict[str, int] = {"total": 0, "enabled": 0, "disabled": 0}
    for kind, disabled, n in rows:
        out["total"] += n
        out["disabled" if disabled else "enabled"] += n
        out[kind] = out.get(kind, 0) + n
    return out


def describe(env: Environment) -> dict[str, Any]:
    return {
        "name": env.name,
        "type": env.type,
        "has_database": env.has_database,
        "security_group_id": env.security_group_id,
        "app_pass_capacity": env.app_pass_capacity,
        "tenant_has_marketing_licence": env.tenant_has_marketing_licence,
        "is_sales": env.is_sales,
        "created_by_object_id": env.created_by_object_id,
        "allow_role_assignment_on_disabled_users": env.allow_role_assignment_on_disabled_users,
        "created_on": env.created_on.isoformat() if env.created_on else None,
    }
