"""run outcome "abandoned"; environment.sync_resumed_at (quarantine)

sync_run gains the outcome "abandoned": a run left "running" by a process that died, closed by the
next holder of the environment's lock. Runs closed that way before this revision were recorded as
"interrupted" with the error "the process running it ended before it finished"; they become
"abandoned".

environment gains `sync_resumed_at`: when `syncd env resume` last took the environment out of
quarantine. Failed runs that finished before it no longer count towards quarantine.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 04:00:00
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OUTCOMES_BEFORE = ("running", "succeeded", "partial", "failed", "blocked", "dry_run", "interrupted")
OUTCOMES_AFTER = ("running", "succeeded", "partial", "failed", "blocked", "dry_run", "interrupted", "abandoned")
REAPED_ERROR = "the process running it ended before it finished"


def _outcome_check(outcomes: tuple[str, ...]) -> str:
    return "outcome IN (" + ", ".join(f"'{o}'" for o in outcomes) + ")"


@contextmanager
def _children_set_aside(*tables: str) -> Iterator[None]:
    """SQLite: keep the rows of `tables` while batch mode recreates the table they reference (see 0003)."""
    for t in tables:
        op.execute(f"CREATE TEMP TABLE _aside_{t} AS SELECT * FROM {t}")
        op.execute(f"DELETE FROM {t}")
    yield
    for t in tables:
        op.execute(f"INSERT INTO {t} SELECT * FROM temp._aside_{t}")
        op.execute(f"DROP TABLE temp._aside_{t}")


def _set_outcomes(outcomes: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with _children_set_aside("sync_event"), op.batch_alter_table("sync_run") as batch:
            batch.drop_constraint(op.f("ck_sync_run_outcome"), type_="check")
            batch.create_check_constraint(op.f("ck_sync_run_outcome"), _outcome_check(outcomes))
        return
    op.drop_constraint(op.f("ck_sync_run_outcome"), "sync_run", type_="check")
    op.create_check_constraint(op.f("ck_sync_run_outcome"), "sync_run", _outcome_check(outcomes))


def upgrade() -> None:
    op.add_column("environment", sa.Column("sync_resumed_at", sa.DateTime(timezone=True), nullable=True))
    _set_outcomes(OUTCOMES_AFTER)
    op.execute(
        f"UPDATE sync_run SET outcome = 'abandoned' WHERE outcome = 'interrupted' AND error = '{REAPED_ERROR}'"
    )


def downgrade() -> None:
    op.execute("UPDATE sync_run SET outcome = 'interrupted' WHERE outcome = 'abandoned'")
    _set_outcomes(OUTCOMES_BEFORE)
    # Plain DROP COLUMN on both (SQLite 3.35+): batch mode would recreate `environment`, and with
    # foreign keys on, dropping the old table would delete every row that references it.
    op.execute("ALTER TABLE environment DROP COLUMN sync_resumed_at")
