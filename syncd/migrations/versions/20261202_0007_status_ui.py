"""The status UI's data: old values in events, run user counts, and the indexes its queries read

Columns:

- ``sync_event.previous`` (TEXT, null): JSON object, column -> the value the row held before the
  event's change, with the same keys as ``changes`` (column -> new value). Null where not known:
  creates, and every event older than this revision.
- ``sync_run.users_enabled`` / ``sync_run.users_disabled`` (INTEGER, null): the environment's
  regular rows enabled / disabled when a full run finished. Null for delta and dry runs, runs that did not
  finish and runs older than this revision.

Indexes of ``sync_event`` (the provisioning log, ``syncd.dataverse.provisioning_log``). The log is
read newest first in the order (created_at, id) descending and paged by that key, so every filter
is one range of one index, already in the log's order, and a time range (``since``, ``until``) is
a range of the same index: a page of 50 reads about 50 index entries, whatever the filter, however
rare the rule and however old the range. Ordering by id alone would leave a time range to a
separate index on created_at, which cannot give the id order (ids and timestamps are not in step
across writers: each process stamps its own clock), so an old range would scan every newer event.

- ``ix_sync_event_env_time`` (environment_id, created_at, id): the environment's log; a time range.
- ``ix_sync_event_env_rule`` (environment_id, rule, created_at, id): one rule (a rare rule too).
- ``ix_sync_event_env_action`` (environment_id, action, created_at, id): one action.
- ``ix_sync_event_run`` (run_id, created_at, id): one run's events (was (run_id)).
- ``ix_sync_event_object`` (azureactivedirectoryobjectid, created_at, id): one user's events, in
  any environment (was (environment_id, azureactivedirectoryobjectid), which needed the
  environment; a sync's withdrawal of its own creates finds them by object id too).
- ``ix_sync_event_systemuser_noobject`` (systemuserid, created_at, id) where the object id is
  null: the events of rows that have none (application and stub users' admin events). Partial, so
  sync's own events (which all carry an object id) add nothing to it.

Indexes of ``systemuser`` (``syncd.dataverse.user_search``): the UPN and the full name with their
ASCII letters lowered (``syncd.dataverse.textfold.asciifold``: SQLite's built-in ``lower(x)``,
PostgreSQL's ``lower(x COLLATE "C")``; both lower A-Z only and compare by code point), after the
environment, so a case-insensitive prefix is one index range scan on SQLite and PostgreSQL with the
same answer. The UPN one replaces ``ix_systemuser_env_domainname`` (environment_id, domainname):
a lookup by exact UPN (admin lookups, the support user of R19) reads it as ``asciifold(domainname)
= :folded AND domainname = :upn``. An object-id prefix is a range of the unique (environment_id,
azureactivedirectoryobjectid); a systemuserid prefix a range of the primary key.

Why ASCII, not ``casefold`` (Unicode's full lower-case mapping, which the Web API's and the R20
lookups compare): an index is kept on every write, and the initial sync's bulk load is the hot
path. Measured on PostgreSQL 15 (2 cores), inserting 1M rows: 3.6 s with the unique index alone,
7.3 s with the old plain UPN index, 8.7 s with these two ASCII ones, 13.3 s with two ``casefold``
ones (an ICU call per value; on SQLite a Python call per value). UPNs are ASCII (Entra's rule), so
for them the two foldings agree; for names, a search by prefix is case-insensitive for A-Z only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ORDER = ["created_at", "id"]
_EVENT_INDEXES = {
    "ix_sync_event_env_time": ["environment_id", *_ORDER],
    "ix_sync_event_env_rule": ["environment_id", "rule", *_ORDER],
    "ix_sync_event_env_action": ["environment_id", "action", *_ORDER],
    "ix_sync_event_run": ["run_id", *_ORDER],
    "ix_sync_event_object": ["azureactivedirectoryobjectid", *_ORDER],
}
_NO_OBJECT = "azureactivedirectoryobjectid IS NULL"
_FOLDED = ("domainname", "fullname")


def _fold(column: str, dialect: str) -> str:
    """`syncd.dataverse.textfold.asciifold(column)` as that module compiles it (frozen here)."""
    return f"lower({column})" if dialect == "sqlite" else f'lower({column} COLLATE "C")'


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("sync_event", sa.Column("previous", sa.Text(), nullable=True))
    op.add_column("sync_run", sa.Column("users_enabled", sa.Integer(), nullable=True))
    op.add_column("sync_run", sa.Column("users_disabled", sa.Integer(), nullable=True))
    op.drop_index("ix_sync_event_run", table_name="sync_event")
    op.drop_index("ix_sync_event_env_object", table_name="sync_event")
    for name, columns in _EVENT_INDEXES.items():
        op.create_index(name, "sync_event", columns)
    op.create_index(
        "ix_sync_event_systemuser_noobject",
        "sync_event",
        ["systemuserid", *_ORDER],
        sqlite_where=sa.text(_NO_OBJECT),
        postgresql_where=sa.text(_NO_OBJECT),
    )
    op.drop_index("ix_systemuser_env_domainname", table_name="systemuser")
    for column in _FOLDED:
        op.execute(
            f"CREATE INDEX ix_systemuser_env_folded_{column} ON systemuser "
            f"(environment_id, {_fold(column, dialect)})"
        )


def downgrade() -> None:
    for column in _FOLDED:
        op.drop_index(f"ix_systemuser_env_folded_{column}", table_name="systemuser")
    op.create_index("ix_systemuser_env_domainname", "systemuser", ["environment_id", "domainname"])
    op.drop_index("ix_sync_event_systemuser_noobject", table_name="sync_event")
    for name in _EVENT_INDEXES:
        op.drop_index(name, table_name="sync_event")
    op.create_index("ix_sync_event_env_object", "sync_event", ["environment_id", "azureactivedirectoryobjectid"])
    op.create_index("ix_sync_event_run", "sync_event", ["run_id"])
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35's own DROP COLUMN (as 0006): batch mode would copy the tables.
        op.execute("ALTER TABLE sync_run DROP COLUMN users_disabled")
        op.execute("ALTER TABLE sync_run DROP COLUMN users_enabled")
        op.execute("ALTER TABLE sync_event DROP COLUMN previous")
    else:
        op.drop_column("sync_run", "users_disabled")
        op.drop_column("sync_run", "users_enabled")
        op.drop_column("sync_event", "previous")
