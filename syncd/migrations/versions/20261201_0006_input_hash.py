"""systemuser.syncd_inputhash: what a row's last sync decision was made from

`syncd_inputhash` (BIGINT, null) is a 64-bit hash of everything the rules decided a row from: the
directory user's values as read, their deletion state, directory roles and relation to the security
group, the environment's settings and the code of the rules. Sync writes it with each row it
creates or changes, and on a row it decided to leave as it is. A later full run that reads the same
inputs for a row whose hash is unchanged skips deciding it: the same inputs against the same row
decide the same thing, which is nothing.

That holds only while nobody else has written the row since, so the database forgets the hash on
any other write: a row trigger sets it to null on every UPDATE that does not set a new value
(an administrator's edit, the Web API, the admin API, a hand-written statement). Sync then decides
that row in full again on its next run.

Existing rows start with null: the first full run after this revision decides every row and records
its hash.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# An UPDATE that leaves the hash as it was is not sync recording a decision: forget the hash.
_FORGET_WHEN = "NEW.syncd_inputhash IS NOT NULL AND NEW.syncd_inputhash = OLD.syncd_inputhash"


def upgrade() -> None:
    op.add_column("systemuser", sa.Column("syncd_inputhash", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # An AFTER trigger, which must not take the versionnumber triggers' own UPDATE (it sets only
        # versionnumber) for another writer's: it fires for statements that set any other column,
        # listed as the table has them at this revision. A later migration that adds a column to
        # systemuser recreates it (tests/foundation/test_migrations.py checks). SQLite never runs a
        # trigger inside itself.
        columns = [c["name"] for c in sa.inspect(bind).get_columns("systemuser")]
        watched = ", ".join(c for c in columns if c not in ("versionnumber", "syncd_inputhash"))
        op.execute(
            f"CREATE TRIGGER trg_systemuser_inputhash_forget AFTER UPDATE OF {watched} ON systemuser "
            f"WHEN {_FORGET_WHEN} "
            "BEGIN UPDATE systemuser SET syncd_inputhash = NULL WHERE rowid = NEW.rowid; END"
        )
    else:
        op.execute(
            "CREATE FUNCTION syncd_forget_inputhash() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN NEW.syncd_inputhash := NULL; RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER trg_systemuser_inputhash_forget BEFORE UPDATE ON systemuser FOR EACH ROW "
            f"WHEN ({_FORGET_WHEN}) EXECUTE FUNCTION syncd_forget_inputhash()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS trg_systemuser_inputhash_forget")
        # SQLite 3.35's own DROP COLUMN: batch mode would recreate the table and lose its triggers.
        op.execute("ALTER TABLE systemuser DROP COLUMN syncd_inputhash")
    else:
        op.execute("DROP TRIGGER IF EXISTS trg_systemuser_inputhash_forget ON systemuser")
        op.execute("DROP FUNCTION syncd_forget_inputhash()")
        op.drop_column("systemuser", "syncd_inputhash")
