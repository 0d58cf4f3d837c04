"""owned records (R20: a stub's records, reassigned to a real user)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owned_record",
        sa.Column("recordid", sa.Uuid(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=True),
        sa.Column("ownerid", sa.Uuid(), nullable=False),
        sa.Column("createdon", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modifiedon", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_owned_record_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ownerid"],
            ["systemuser.systemuserid"],
            name=op.f("fk_owned_record_ownerid_systemuser"),
        ),
        sa.PrimaryKeyConstraint("recordid", name=op.f("pk_owned_record")),
    )
    op.create_index("ix_owned_record_owner", "owned_record", ["environment_id", "ownerid"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_owned_record_owner", table_name="owned_record")
    op.drop_table("owned_record")
