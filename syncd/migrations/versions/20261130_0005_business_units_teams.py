"""business units (R26), teams (R25), systemuser.azurestate (R9), versionnumber; syncd_ columns

Creates `businessunit`, `team`, `teammembership` and `teamroles` as Dataverse has them, and:

* a root business unit, named after the environment, for every environment with a database (R26);
  every existing user and security role moves to it (`systemuser.businessunitid` and
  `role.businessunitid`, both required from now on);
* `systemuser` gains Dataverse's `azurestate`, `issyncwithdirectory`, `windowsliveid` (1024, not
  synced: null) and `versionnumber`;
* syncd's own columns take syncd's publisher prefix: `systemuser.kind` becomes `syncd_kind` and
  `systemuser.synced_internalemailaddress` becomes `syncd_syncedemail` (their CHECK constraints
  are renamed with them);
* `versionnumber` (systemuser, businessunit, team) is kept by the database, from one counter per
  database, on every insert and update of a row, whoever writes it: on PostgreSQL a sequence
  (`syncd_versionnumber`) and a BEFORE INSERT OR UPDATE row trigger; on SQLite a one-row counter
  table (`syncd_versioncounter`) and AFTER INSERT and AFTER UPDATE row triggers (SQLite's
  recursive triggers are off, its default, so a trigger's own update does not fire it again).
  Existing rows get their first numbers here.

How `azurestate` is filled (R9: 0 exists, 1 soft-deleted, 2 hard-deleted or not found). Before
this revision sync recorded, for each row it disabled, a `sync_event` whose reason says why, but it
did not tell a soft delete from a hard one (both read "The user is deleted from the directory").
So: a regular row that is disabled and whose latest writing event (create, update, enable,
disable) is such a disable gets 2 ("not found": the directory no longer listed the user); every
other row gets 0, including rows disabled for leaving the security group ("Not a direct member of
the security group, or gone from the directory": such users mostly still exist) and rows sync never
touches (built-in, application and stub users). A soft-deleted user thus reads 2 until the next
full run, which reads the directory's deleted items and sets 1 (a delta run sets it when the
directory next reports a change of the user): run `syncd sync ENV --full` after upgrading to have
every row exact at once. `issyncwithdirectory` is true for regular rows, false for the others.

Downgrade drops what this revision added (teams, business units, the new columns, the counter and
its triggers) and gives the columns their old names back.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# As of this revision, written out: a migration must not change with the code after it.
USER_KINDS = "('regular', 'application', 'support', 'delegated_admin', 'stub')"
VERSIONED = ("systemuser", "businessunit", "team")
DELETED_REASON = "The user is deleted from the directory%"
RENAMED = {"kind": "syncd_kind", "synced_internalemailaddress": "syncd_syncedemail"}
EMAIL_LENGTH = 100
WINDOWSLIVEID_LENGTH = 1024


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


def _versioned_column() -> sa.Column:
    return sa.Column("versionnumber", sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def _create_business_units() -> None:
    op.create_table(
        "businessunit",
        sa.Column("businessunitid", sa.Uuid(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("parentbusinessunitid", sa.Uuid(), nullable=True),
        sa.Column("createdon", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modifiedon", sa.DateTime(timezone=True), nullable=False),
        _versioned_column(),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_businessunit_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parentbusinessunitid"],
            ["businessunit.businessunitid"],
            name=op.f("fk_businessunit_parentbusinessunitid_businessunit"),
        ),
        sa.PrimaryKeyConstraint("businessunitid", name=op.f("pk_businessunit")),
    )
    where = sa.text("parentbusinessunitid IS NULL")
    op.create_index(
        "uq_businessunit_env_root",
        "businessunit",
        ["environment_id"],
        unique=True,
        sqlite_where=where,
        postgresql_where=where,
    )
    # R26: a root business unit, named after the environment, for each environment with a database.
    bind = op.get_bind()
    environment = sa.table(
        "environment",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("has_database", sa.Boolean()),
        sa.column("created_on", sa.DateTime(timezone=True)),
    )
    envs = bind.execute(
        sa.select(environment.c.id, environment.c.name, environment.c.created_on)
        .where(environment.c.has_database)
        .order_by(environment.c.id)
    ).all()
    table = sa.table(
        "businessunit",
        sa.column("businessunitid", sa.Uuid()),
        sa.column("environment_id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("parentbusinessunitid", sa.Uuid()),
        sa.column("createdon", sa.DateTime(timezone=True)),
        sa.column("modifiedon", sa.DateTime(timezone=True)),
    )
    if envs:
        op.bulk_insert(
            table,
            [
                {
                    "businessunitid": uuid.uuid4(),
                    "environment_id": env_id,
                    "name": name,
                    "parentbusinessunitid": None,
                    "createdon": created_on,
                    "modifiedon": created_on,
                }
                for env_id, name, created_on in envs
            ],
        )


_ROOT = (
    "(SELECT b.businessunitid FROM businessunit b WHERE b.environment_id = {t}.environment_id "
    "AND b.parentbusinessunitid IS NULL)"
)
_LATEST_WRITE = (
    "SELECT max(e2.id) FROM sync_event e2 WHERE e2.environment_id = e.environment_id "
    "AND e2.azureactivedirectoryobjectid = e.azureactivedirectoryobjectid "
    "AND e2.action IN ('create', 'update', 'enable', 'disable')"
)


def _fill_systemuser() -> None:
    op.execute(f"UPDATE systemuser SET businessunitid = {_ROOT.format(t='systemuser')}")
    op.execute("UPDATE systemuser SET issyncwithdirectory = (kind = 'regular')")
    op.execute(
        "UPDATE systemuser SET azurestate = 2 WHERE kind = 'regular' AND isdisabled AND EXISTS ("
        "SELECT 1 FROM sync_event e WHERE e.environment_id = systemuser.environment_id "
        "AND e.azureactivedirectoryobjectid = systemuser.azureactivedirectoryobjectid "
        f"AND e.action = 'disable' AND e.reason LIKE '{DELETED_REASON}' AND e.id = ({_LATEST_WRITE}))"
    )


def _add_systemuser_columns() -> None:
    op.add_column("systemuser", sa.Column("businessunitid", sa.Uuid(), nullable=True))
    op.add_column(
        "systemuser", sa.Column("azurestate", sa.SmallInteger(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column(
        "systemuser",
        sa.Column("issyncwithdirectory", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("systemuser", sa.Column("windowsliveid", sa.String(length=WINDOWSLIVEID_LENGTH), nullable=True))
    op.add_column("systemuser", _versioned_column())
    op.add_column("role", sa.Column("businessunitid", sa.Uuid(), nullable=True))


def _create_teams() -> None:
    op.create_table(
        "team",
        sa.Column("teamid", sa.Uuid(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("teamtype", sa.SmallInteger(), nullable=False),
        sa.Column("azureactivedirectoryobjectid", sa.Uuid(), nullable=True),
        sa.Column("membershiptype", sa.SmallInteger(), nullable=False),
        sa.Column("businessunitid", sa.Uuid(), nullable=False),
        sa.Column("administratorid", sa.Uuid(), nullable=False),
        sa.Column("createdon", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modifiedon", sa.DateTime(timezone=True), nullable=False),
        _versioned_column(),
        sa.CheckConstraint("teamtype IN (0, 1, 2, 3)", name=op.f("ck_team_teamtype")),
        sa.CheckConstraint("membershiptype IN (0, 1, 2, 3)", name=op.f("ck_team_membershiptype")),
        sa.CheckConstraint(
            "(teamtype IN (2, 3)) = (azureactivedirectoryobjectid IS NOT NULL)",
            name=op.f("ck_team_group_objectid"),
        ),
        sa.ForeignKeyConstraint(
            ["administratorid"], ["systemuser.systemuserid"], name=op.f("fk_team_administratorid_systemuser")
        ),
        sa.ForeignKeyConstraint(
            ["businessunitid"], ["businessunit.businessunitid"], name=op.f("fk_team_businessunitid_businessunit")
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"], ["environment.id"], name=op.f("fk_team_environment_id_environment"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("teamid", name=op.f("pk_team")),
        sa.UniqueConstraint(
            "environment_id",
            "azureactivedirectoryobjectid",
            "membershiptype",
            name="uq_team_env_objectid_membershiptype",
        ),
    )
    op.create_table(
        "teammembership",
        sa.Column("teammembershipid", sa.Uuid(), nullable=False),
        sa.Column("teamid", sa.Uuid(), nullable=False),
        sa.Column("systemuserid", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["systemuserid"],
            ["systemuser.systemuserid"],
            name=op.f("fk_teammembership_systemuserid_systemuser"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["teamid"], ["team.teamid"], name=op.f("fk_teammembership_teamid_team"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("teammembershipid", name=op.f("pk_teammembership")),
        sa.UniqueConstraint("teamid", "systemuserid", name="uq_teammembership_team_user"),
    )
    op.create_index("ix_teammembership_systemuserid", "teammembership", ["systemuserid"], unique=False)
    op.create_table(
        "teamroles",
        sa.Column("teamroleid", sa.Uuid(), nullable=False),
        sa.Column("teamid", sa.Uuid(), nullable=False),
        sa.Column("roleid", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["roleid"], ["role.roleid"], name=op.f("fk_teamroles_roleid_role"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["teamid"], ["team.teamid"], name=op.f("fk_teamroles_teamid_team"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("teamroleid", name=op.f("pk_teamroles")),
        sa.UniqueConstraint("teamid", "roleid", name="uq_teamroles_team_role"),
    )


def _create_versioning(sqlite: bool) -> None:
    """The database's row-version counter and the triggers that stamp every insert and update."""
    if sqlite:
        op.execute("CREATE TABLE syncd_versioncounter (value INTEGER NOT NULL)")
        op.execute("INSERT INTO syncd_versioncounter (value) VALUES (0)")
        for table in VERSIONED:
            for event in ("INSERT", "UPDATE"):
                op.execute(
                    f"CREATE TRIGGER trg_{table}_versionnumber_{event.lower()} AFTER {event} ON {table} "
                    "BEGIN UPDATE syncd_versioncounter SET value = value + 1; "
                    f"UPDATE {table} SET versionnumber = (SELECT value FROM syncd_versioncounter) "
                    "WHERE rowid = NEW.rowid; END"
                )
    else:
        op.execute("CREATE SEQUENCE syncd_versionnumber AS bigint")
        op.execute(
            "CREATE FUNCTION syncd_stamp_versionnumber() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN NEW.versionnumber := nextval('syncd_versionnumber'); RETURN NEW; END $$"
        )
        for table in VERSIONED:
            op.execute(
                f"CREATE TRIGGER trg_{table}_versionnumber BEFORE INSERT OR UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION syncd_stamp_versionnumber()"
            )
    # Existing rows get their first version numbers.
    for table in ("businessunit", "systemuser"):
        op.execute(f"UPDATE {table} SET versionnumber = 0")


def _drop_versioning(sqlite: bool) -> None:
    if sqlite:
        for table in VERSIONED:
            for event in ("insert", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_versionnumber_{event}")
        op.execute("DROP TABLE syncd_versioncounter")
    else:
        for table in VERSIONED:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_versionnumber ON {table}")
        op.execute("DROP FUNCTION syncd_stamp_versionnumber()")
        op.execute("DROP SEQUENCE syncd_versionnumber")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _create_business_units()
    _add_systemuser_columns()
    _fill_systemuser()
    op.execute(f"UPDATE role SET businessunitid = {_ROOT.format(t='role')}")
    if sqlite:
        with _children_set_aside("systemuserroles", "owned_record"):
            with op.batch_alter_table("role") as batch:
                batch.alter_column("businessunitid", existing_type=sa.Uuid(), nullable=False)
                batch.create_foreign_key(
                    op.f("fk_role_businessunitid_businessunit"), "businessunit", ["businessunitid"], ["businessunitid"]
                )
            with op.batch_alter_table("systemuser") as batch:
                batch.alter_column("businessunitid", existing_type=sa.Uuid(), nullable=False)
                batch.create_foreign_key(
                    op.f("fk_systemuser_businessunitid_businessunit"),
                    "businessunit",
                    ["businessunitid"],
                    ["businessunitid"],
                )
                batch.drop_constraint(op.f("ck_systemuser_kind"), type_="check")
                batch.drop_constraint(op.f("ck_systemuser_synced_internalemailaddress_length"), type_="check")
                for old, new in RENAMED.items():
                    batch.alter_column(old, new_column_name=new, existing_type=sa.String())
                batch.create_check_constraint(op.f("ck_systemuser_syncd_kind"), f"syncd_kind IN {USER_KINDS}")
                batch.create_check_constraint(
                    op.f("ck_systemuser_syncd_syncedemail_length"), f"length(syncd_syncedemail) <= {EMAIL_LENGTH}"
                )
                batch.create_check_constraint(
                    op.f("ck_systemuser_windowsliveid_length"), f"length(windowsliveid) <= {WINDOWSLIVEID_LENGTH}"
                )
                batch.create_check_constraint(op.f("ck_systemuser_azurestate"), "azurestate IN (0, 1, 2)")
    else:
        for table in ("role", "systemuser"):
            op.alter_column(table, "businessunitid", existing_type=sa.Uuid(), nullable=False)
            op.create_foreign_key(
                op.f(f"fk_{table}_businessunitid_businessunit"),
                table,
                "businessunit",
                ["businessunitid"],
                ["businessunitid"],
            )
        for old, new in RENAMED.items():
            op.alter_column("systemuser", old, new_column_name=new)
        op.execute("ALTER TABLE systemuser RENAME CONSTRAINT ck_systemuser_kind TO ck_systemuser_syncd_kind")
        op.create_check_constraint(op.f("ck_systemuser_azurestate"), "systemuser", "azurestate IN (0, 1, 2)")
    _create_teams()
    _create_versioning(sqlite)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_versioning(sqlite)
    op.drop_table("teamroles")
    op.drop_index("ix_teammembership_systemuserid", table_name="teammembership")
    op.drop_table("teammembership")
    op.drop_table("team")
    if sqlite:
        with _children_set_aside("systemuserroles", "owned_record"):
            with op.batch_alter_table("systemuser") as batch:
                for name in ("azurestate", "syncd_kind", "syncd_syncedemail_length", "windowsliveid_length"):
                    batch.drop_constraint(op.f(f"ck_systemuser_{name}"), type_="check")
                batch.drop_constraint(op.f("fk_systemuser_businessunitid_businessunit"), type_="foreignkey")
                for old, new in RENAMED.items():
                    batch.alter_column(new, new_column_name=old, existing_type=sa.String())
                for column in ("businessunitid", "azurestate", "issyncwithdirectory", "windowsliveid", "versionnumber"):
                    batch.drop_column(column)
                batch.create_check_constraint(op.f("ck_systemuser_kind"), f"kind IN {USER_KINDS}")
                batch.create_check_constraint(
                    op.f("ck_systemuser_synced_internalemailaddress_length"),
                    f"length(synced_internalemailaddress) <= {EMAIL_LENGTH}",
                )
            with op.batch_alter_table("role") as batch:
                batch.drop_constraint(op.f("fk_role_businessunitid_businessunit"), type_="foreignkey")
                batch.drop_column("businessunitid")
    else:
        op.drop_constraint(op.f("ck_systemuser_azurestate"), "systemuser", type_="check")
        op.execute("ALTER TABLE systemuser RENAME CONSTRAINT ck_systemuser_syncd_kind TO ck_systemuser_kind")
        for old, new in RENAMED.items():
            op.alter_column("systemuser", new, new_column_name=old)
        for table in ("systemuser", "role"):
            op.drop_constraint(op.f(f"fk_{table}_businessunitid_businessunit"), table, type_="foreignkey")
            op.drop_column(table, "businessunitid")
        for column in ("azurestate", "issyncwithdirectory", "windowsliveid", "versionnumber"):
            op.drop_column("systemuser", column)
    op.drop_index("uq_businessunit_env_root", table_name="businessunit")
    op.drop_table("businessunit")
