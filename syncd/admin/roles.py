"""Security roles (R21): assigned only to an enabled user, unless the environment's setting
allowRoleAssignmentOnDisabledUsers is on. Removing a role is always allowed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from syncd.admin import lookup
from syncd.admin.audit import record_event
from syncd.admin.errors import Refused, check_dict
from syncd.dataverse.environments import get_environment, shown
from syncd.dataverse.lengths import ROLE_NAME_LENGTH
from syncd.dataverse.schema import Environment, Role, SystemUser, SystemUserRole
from syncd.dataverse.textfold import casefold, fold_text
from syncd.directory.client import GraphClient
from syncd.errors import NotFound, SyncdError
from syncd.rules import Check, check_role_assignment
from syncd.sync.run import environment_facts

log = structlog.get_logger(__name__)


@dataclass
class RoleResult:
    environment: str
    user: str
    systemuserid: str
    role: str
    operation: str  # "assign" or "remove"
    changed: bool
    roles: list[str]
    checks: tuple[Check, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "user": self.user,
            "systemuserid": self.systemuserid,
            "role": self.role,
            "operation": self.operation,
            "changed": self.changed,
            "roles": self.roles,
            "checks": [check_dict(c) for c in self.checks],
        }


def find_role(session: Session, env: Environment, name: str) -> Role:
    """The environment's security role by name, ignoring case and surrounding spaces (SyncdError
    for a blank name, NotFound naming the known roles). A name no role can have (a control
    character, more than ROLE_NAME_LENGTH characters) is not found without a query, the same on
    every backend."""
    if not isinstance(name, str) or not name.strip():
        raise SyncdError(f"invalid role name {shown(name)}: expected a security role's name")
    name = name.strip()
    role = None
    if len(name) <= ROLE_NAME_LENGTH and not any(c < " " or c == "\x7f" for c in name):
        role = session.scalar(
            select(Role).where(Role.environment_id == env.id, casefold(Role.name) == fold_text(name))
        )
    if role is None:
        known = session.scalars(
            select(Role.name).where(Role.environment_id == env.id).order_by(Role.name)
        ).all()
        raise NotFound(
            f"no role {shown(name)} in environment {env.name!r} (known: {', '.join(known) or 'none'})"
        )
    return role


def _target(
    session: Session, env_name: str, key: str, role_name: str, directory: GraphClient | None
) -> tuple[Environment, SystemUser, Role]:
    """The environment, the user's row and the role an operation on roles is about."""
    env = get_environment(session, env_name)
    row = lookup.find_row(session, env, key, directory=directory)
    return env, row, find_role(session, env, role_name)


def assign_role(
    engine: Engine, env_name: str, key: str, role_name: str, *, directory: GraphClient | None = None
) -> RoleResult:
    """R21: give the user a security role; refused for a disabled user unless the environment allows it."""
    key = lookup.check_key(key)
    with Session(engine) as session, session.begin():
        env, row, role = _target(session, env_name, key, role_name, directory)
        check = check_role_assignment(lookup.row_facts(row), environment_facts(env))
        if not check.passed:
            log.info("admin.role_refused", environment=env.name, user=key, role=role.name, rule="R21")
            raise Refused(
                f"role {role.name!r} can't be assigned to {row.domainname}: {check.message}", [check]
            )
        held = session.get(SystemUserRole, (row.systemuserid, role.roleid))
        changed = held is None
        if changed:
            session.add(SystemUserRole(systemuserid=row.systemuserid, roleid=role.roleid))
            record_event(
                session, row, "assign_role", "R21", f"Security role {role.name} assigned by an administrator."
            )
            session.flush()
        result = RoleResult(
            env.name,
            row.domainname,
            str(row.systemuserid),
            role.name,
            "assign",
            changed,
            lookup.role_names(session, row.systemuserid),
            (check,),
        )
    log.info("admin.role_assigned", environment=env_name, user=key, role=result.role, changed=changed)
    return result


def remove_role(
    engine: Engine, env_name: str, key: str, role_name: str, *, directory: GraphClient | None = None
) -> RoleResult:
    """Take a security role away from the user (NotFound when the user doesn't hold it)."""
    key = lookup.check_key(key)
    with Session(engine) as session, session.begin():
        env, row, role = _target(session, env_name, key, role_name, directory)
        held = session.get(SystemUserRole, (row.systemuserid, role.roleid))
        if held is None:
            raise NotFound(f"user {row.domainname} has no role {role.name!r} in environment {env.name!r}")
        session.delete(held)
        record_event(
            session, row, "remove_role", "R21", f"Security role {role.name} removed by an administrator."
        )
        session.flush()
        result = RoleResult(
            env.name,
            row.domainname,
            str(row.systemuserid),
            role.name,
            "remove",
            True,
            lookup.role_names(session, row.systemuserid),
        )
    log.info("admin.role_removed", environment=env_name, user=key, role=result.role)
    return result
