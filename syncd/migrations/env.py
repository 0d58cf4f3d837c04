"""Alembic environment: runs against the connection syncd hands over, or SYNCD_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from syncd.dataverse.db import make_engine
from syncd.dataverse.schema import Base
from syncd.settings import DEFAULT_DATABASE_URL, normalise_database_url

config = context.config
target_metadata = Base.metadata
# Database objects no model declares: SQLite's row-version counter (migration 0005; PostgreSQL has
# a sequence, which autogenerate does not compare).
UNMODELLED_TABLES = frozenset({"syncd_versioncounter"})


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name in UNMODELLED_TABLES)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "SYNCD_DATABASE_URL", DEFAULT_DATABASE_URL
    )
    engine = make_engine(normalise_database_url(url))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=normalise_database_url(os.environ.get("SYNCD_DATABASE_URL", DEFAULT_DATABASE_URL)),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
