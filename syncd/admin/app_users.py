"""Application users (R18): created on demand for a service principal of the directory.

The row carries the service principal's appId (``applicationid``) and object id, is enabled and
non-interactive (access mode 4), has ``#`` as its first name (R13) and the service principal's
display name as its full and last name. Its ``domainname`` is the appId, so the other commands
can name an application user by its appId. There is no limit on their number (R17 doesn't count
them) and sync never enables, disables or changes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.admin import lookup
from syncd.admin.audit import record_event
from syncd.admin.errors import Refused
from syncd.dataverse.environments import get_environment, root_business_unit
from syncd.dataverse.schema import SystemUser, utcnow
from syncd.directory.client import GraphClient
from syncd.directory.ids import normalize_object_id
from syncd.errors import Conflict, NotFound, SyncdError
from syncd.rules import FIRSTNAME_PLACEHOLDER, AccessMode, Check
from syncd.rules.columns import fit_value

log = structlog.get_logger(__name__)


@dataclass
class AppUserResult:
    environment: str
    app_id: str
    service_principal_id: str
    display_name: str
    row: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "app_id": self.app_id,
            "service_principal_id": self.service_principal_id,
            "display_name": self.display_name,
            "row": self.row,
        }


def check_app_id(app_id: str) -> str:
    """A service principal's appId as typed by a user, in its one canonical spelling."""
    try:
        return normalize_object_id(app_id)
    except ValueError:
        raise SyncdError(
            f"invalid application id {app_id!r}: expected a GUID (the service principal's appId)"
        ) from None


def create_app_user(engine: Engine, directory: GraphClient, env_name: str, app_id: str) -> AppUserResult:
    """R18: an application user for the service principal with this appId."""
    app_id = check_app_id(app_id)
    env = lookup.load_environment(engine, env_name)
    if not env.has_database:
        check = Check("R1", False, f"R1 database: environment {env.name} has no Dataverse database")
        raise Refused(f"no application user can be created in {env.name}: {check.message}", [check])
    with lookup.directory_errors(f"service principal {app_id}"):
        found = directory.service_principals(app_id=app_id)
    found = [sp for sp in found if sp.app_id.lower() == app_id]
    if not found:
        raise NotFound(f"no service principal with appId {app_id!r} in the directory")
    sp = found[0]
    now = utcnow()
    with Session(engine) as session, session.begin():
        env = get_environment(session, env_name)
        existing = session.scalar(
            select(SystemUser).where(
                SystemUser.environment_id == env.id,
                or_(
                    SystemUser.applicationid == uuid.UUID(app_id),
                    SystemUser.azureactivedirectoryobjectid == uuid.UUID(sp.id),
                ),
            )
        )
        if existing is not None:
            raise Conflict(f"environment {env.name!r} already has an application user for appId {app_id}")
        row = SystemUser(
            environment_id=env.id,
            businessunitid=root_business_unit(session, env.id).businessunitid,  # R26
            kind="application",
            azureactivedirectoryobjectid=uuid.UUID(sp.id),
            applicationid=uuid.UUID(app_id),
            domainname=app_id,
            fullname=fit_value("fullname", sp.display_name)[0],  # R10: what the column can hold
            firstname=FIRSTNAME_PLACEHOLDER,
            lastname=fit_value("lastname", sp.display_name)[0],
            isdisabled=False,
            accessmode=AccessMode.NON_INTERACTIVE,
            islicensed=False,
            createdon=now,
            modifiedon=now,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(
                f"environment {env.name!r} already has an application user for appId {app_id}"
            ) from None
        record_event(
            session,
            row,
            "create",
            "R18",
            f"Application user created by an administrator for service principal {sp.display_name}.",
            {"applicationid": app_id, "accessmode": int(AccessMode.NON_INTERACTIVE)},
        )
        session.flush()
        result = AppUserResult(env.name, app_id, sp.id, sp.display_name, lookup.row_dict(session, row))
    log.info("admin.app_user_created", environment=env_name, app_id=app_id, service_principal=sp.id)
    return result
