"""column lengths as Dataverse's; SQLite enforces them; run outcome "partial" and sync_run.restarts

SystemUser's length-limited columns take the MaxLength of Dataverse's SystemUser reference
(jobtitle 100, internalemailaddress 100, and synced_internalemailaddress with it). Values already
longer than their new length are cut to it first. On SQLite, which ignores a declared length,
CHECK (length(col) <= n) constraints make it refuse what PostgreSQL's varchar(n) refuses.

sync_run gains the outcome "partial" (a run in which some rows failed) and the column `restarts`
(how many times a full run started its read again after a 410 syncStateNotFound).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The lengths as of this revision, written out: a migration must not change with the code after it.
LENGTHS = {
    "domainname": 1024,
    "fullname": 200,
    "firstname": 256,
    "lastname": 256,
    "jobtitle": 100,
    "internalemailaddress": 100,
    "address1_telephone1": 64,
    "mobilephone": 64,
    "address1_line1": 1024,
    "address1_city": 128,
    "address1_stateorprovince": 128,
    "address1_postalcode": 40,
    "address1_country": 128,
    "synced_internalemailaddress": 100,
    "new_costcentre": 100,
}
# column -> (length before, length after)
CHANGED = {
    "jobtitle": (200, 100),
    "internalemailaddress": (320, 100),
    "synced_internalemailaddress": (320, 100),
}
OUTCOMES_BEFORE = ("running", "succeeded", "failed", "blocked", "dry_run", "interrupted")
OUTCOMES_AFTER = ("running", "succeeded", "partial", "failed", "blocked", "dry_run", "interrupted")


def _cut(lengths: dict[str, int]) -> None:
    """Cut every value longer than its column's new length to that length (characters, both backends)."""
    sets = ", ".join(
        f"{c} = CASE WHEN length({c}) > {n} THEN substr({c}, 1, {n}) ELSE {c} END" for c, n in lengths.items()
    )
    where = " OR ".join(f"length({c}) > {n}" for c, n in lengths.items())
    op.execute(f"UPDATE systemuser SET {sets} WHERE {where}")


def _length_check(column: str, n: int) -> tuple[str, str]:
    return op.f(f"ck_systemuser_{column}_length"), f"length({column}) <= {n}"


def _outcome_check(outcomes: tuple[str, ...]) -> str:
    return "outcome IN (" + ", ".join(f"'{o}'" for o in outcomes) + ")"


@contextmanager
def _children_set_aside(*tables: str) -> Iterator[None]:
    """SQLite: take the rows of `tables` out while batch mode recreates the table they reference.

    Batch mode copies a table, drops the old one and renames the copy. With foreign keys on (syncd
    turns them on for every connection, and they can't be turned off inside the migration's
    transaction), dropping a table first deletes its rows: that would delete the rows referencing
    them through ON DELETE CASCADE, and make the others count as violations that no later insert
    into the renamed copy clears. So the referencing rows are copied aside and deleted first, and
    put back once the table they reference holds its rows again.
    """
    for t in tables:
        op.execute(f"CREATE TEMP TABLE _aside_{t} AS SELECT * FROM {t}")
        op.execute(f"DELETE FROM {t}")
    yield
    for t in tables:
        op.execute(f"INSERT INTO {t} SELECT * FROM temp._aside_{t}")
        op.execute(f"DROP TABLE temp._aside_{t}")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite never enforced a declared length: any column may hold a longer value by now.
        _cut(LENGTHS)
        with _children_set_aside("systemuserroles", "owned_record"), op.batch_alter_table("systemuser") as batch:
            for column, (before, after) in CHANGED.items():
                batch.alter_column(
                    column, existing_type=sa.String(before), type_=sa.String(after), existing_nullable=True
                )
            for column, n in LENGTHS.items():
                batch.create_check_constraint(*_length_check(column, n))
        with _children_set_aside("sync_event"), op.batch_alter_table("sync_run") as batch:
            batch.add_column(sa.Column("restarts", sa.Integer(), server_default="0", nullable=False))
            batch.drop_constraint(op.f("ck_sync_run_outcome"), type_="check")
            batch.create_check_constraint(op.f("ck_sync_run_outcome"), _outcome_check(OUTCOMES_AFTER))
        return

    _cut({c: after for c, (_, after) in CHANGED.items()})
    for column, (before, after) in CHANGED.items():
        op.alter_column(
            "systemuser", column, existing_type=sa.String(before), type_=sa.String(after), existing_nullable=True
        )
    op.add_column("sync_run", sa.Column("restarts", sa.Integer(), server_default="0", nullable=False))
    op.drop_constraint(op.f("ck_sync_run_outcome"), "sync_run", type_="check")
    op.create_check_constraint(op.f("ck_sync_run_outcome"), "sync_run", _outcome_check(OUTCOMES_AFTER))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Before 0003 a run whose rows partly failed was recorded as succeeded (its `failed` count says so).
    op.execute("UPDATE sync_run SET outcome = 'succeeded' WHERE outcome = 'partial'")
    if sqlite:
        with _children_set_aside("sync_event"), op.batch_alter_table("sync_run") as batch:
            batch.drop_constraint(op.f("ck_sync_run_outcome"), type_="check")
            batch.create_check_constraint(op.f("ck_sync_run_outcome"), _outcome_check(OUTCOMES_BEFORE))
            batch.drop_column("restarts")
        with _children_set_aside("systemuserroles", "owned_record"), op.batch_alter_table("systemuser") as batch:
            for column, n in LENGTHS.items():
                batch.drop_constraint(_length_check(column, n)[0], type_="check")
            for column, (before, after) in CHANGED.items():
                batch.alter_column(
                    column, existing_type=sa.String(after), type_=sa.String(before), existing_nullable=True
                )
        return

    op.drop_constraint(op.f("ck_sync_run_outcome"), "sync_run", type_="check")
    op.create_check_constraint(op.f("ck_sync_run_outcome"), "sync_run", _outcome_check(OUTCOMES_BEFORE))
    op.drop_column("sync_run", "restarts")
    for column, (before, after) in CHANGED.items():
        op.alter_column(
            "systemuser", column, existing_type=sa.String(after), type_=sa.String(before), existing_nullable=True
        )
