"""The environment and sync-run rows read through Core, without the ORM.

A sync run (`syncd sync`, the daemon's jobs) and `syncd runs` read an environment's row and the
runs, and nothing else of the schema: these light table clauses name the columns they read, so that
those paths never import the ORM and the declarative schema (``syncd.dataverse.schema``), whose
mapper configuration takes longer to import than the run of a small delta takes.
tests/foundation/test_light_rows.py holds each clause in step with its table in the schema (the same
columns, of the same types).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Connection, DateTime, Integer, String, Text, column, select, table

from syncd.errors import NotFound

ENVIRONMENT = table(
    "environment",
    column("id", Integer),
    column("name", String(100)),
    column("type", String(20)),
    column("has_database", Boolean),
    column("security_group_id", String(36)),
    column("app_pass_capacity", Integer),
    column("tenant_has_marketing_licence", Boolean),
    column("is_sales", Boolean),
    column("created_by_object_id", String(36)),
    column("allow_role_assignment_on_disabled_users", Boolean),
    column("sync_resumed_at", DateTime(timezone=True)),
    column("created_on", DateTime(timezone=True)),
)

SYNC_RUN = table(
    "sync_run",
    column("id", BigInteger().with_variant(Integer(), "sqlite")),
    column("environment_id", Integer),
    column("kind", String(10)),
    column("requested_kind", String(10)),
    column("trigger", String(20)),
    column("started_at", DateTime(timezone=True)),
    column("finished_at", DateTime(timezone=True)),
    column("outcome", String(20)),
    column("read", Integer),
    column("created", Integer),
    column("updated", Integer),
    column("enabled", Integer),
    column("disabled", Integer),
    column("unchanged", Integer),
    column("failed", Integer),
    column("blocked_disables", Integer),
    column("restarts", Integer),
    column("error", Text),
    column("users_enabled", Integer),
    column("users_disabled", Integer),
)


@dataclass(frozen=True)
class EnvironmentRow:
    """An environment's row as it was read (the columns of ``schema.Environment``)."""

    id: int
    name: str
    type: str
    has_database: bool
    security_group_id: str | None
    app_pass_capacity: int
    tenant_has_marketing_licence: bool
    is_sales: bool
    created_by_object_id: str | None
    allow_role_assignment_on_disabled_users: bool
    sync_resumed_at: datetime | None
    created_on: datetime


def load_environment(connection: Connection, name: str) -> EnvironmentRow:
    """The row of the environment named ``name`` (exactly), as ``environments.get_environment``
    finds it: NotFound naming the known ones otherwise, and for a name no environment can have
    (``impossible_name``) before any query."""
    if impossible_name(name):
        raise NotFound(f"no environment named {shown(name)}")
    row = connection.execute(select(ENVIRONMENT).where(ENVIRONMENT.c.name == name)).one_or_none()
    if row is None:
        known = connection.scalars(select(ENVIRONMENT.c.name).order_by(ENVIRONMENT.c.name)).all()
        raise unknown_environment(name, known)
    return EnvironmentRow(**row._mapping)


def unknown_environment(name: str, known: list[str] | Any) -> NotFound:
    """The error for a name no environment has, naming the ones there are (``known``, in order)."""
    hint = f" (known: {', '.join(known)})" if known else " (there are none yet: `syncd env create NAME`)"
    return NotFound(f"no environment named {name!r}{hint}")


def impossible_name(name: object) -> bool:
    """Whether no environment can be named ``name``: not a string, or holding a control character
    (U+0000-U+001F, U+007F), which `EnvironmentSpec` has always refused. Every lookup by a name a
    user gives answers such a name as not found before it reaches the database, the same on every
    backend (PostgreSQL refuses a NUL in a query outright). Other names are looked up as they are,
    so an environment created under older rules is still found."""
    return not isinstance(name, str) or any(c < " " or c == "\x7f" for c in name)


def shown(value: Any, limit: int = 60) -> str:
    """A value as given, for a one-line error: its repr, shortened when it is very long."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (sys.set_int_max_str_digits)
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    if len(text) <= limit:
        return text
    quote = text[-1] if text[:1] in "'\"" and text[-1:] == text[:1] else ""
    return text[: limit - 1 - len(quote)] + "…" + quote  # a string keeps its closing quote
