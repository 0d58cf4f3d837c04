"""The Web API follows the schema, not a list: the tables and columns added with business units and
teams (businessunit, team and their intersect tables; systemuser.businessunitid, azurestate,
versionnumber; the renamed syncd_ columns) are served from the metadata alone, with no list of them
in `syncd.webapi` (`future_metadata` adds any that a schema lacks, as it did before they existed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Uuid,
    create_engine,
    event,
    insert,
)

from syncd.dataverse import textfold
from syncd.dataverse.schema import Base
from syncd.directory.transport import InProcessTransport
from syncd.webapi import create_webapi_app
from syncd.webapi.entities import build_entity_types
from tests.webapi.conftest import bearer
from tests.webapi.rows import complete, kind_column

ROOT_BU, CHILD_BU, OTHER_BU = (uuid.UUID(int=i) for i in (0xB1, 0xB2, 0xB3))
TEAM = uuid.UUID(int=0x7E)
USER, OTHER_USER = uuid.UUID(int=0xA1), uuid.UUID(int=0xA2)
OID = uuid.UUID("aa000000-0000-4000-8000-0000000000a1")
API = "/prod/api/data/v9.2/"


def future_metadata() -> MetaData:
    """syncd's schema, plus whichever of these tables and columns it does not have yet."""
    md = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(md)
    if "businessunit" not in md.tables:
        Table(
            "businessunit",
            md,
            Column("businessunitid", Uuid, primary_key=True),
            Column("environment_id", Integer, ForeignKey("environment.id"), nullable=False),
            Column("name", String(160), nullable=False),
            Column("parentbusinessunitid", Uuid, ForeignKey("businessunit.businessunitid")),
            Column("modifiedon", DateTime(timezone=True)),
        )
    if "team" not in md.tables:
        Table(
            "team",
            md,
            Column("teamid", Uuid, primary_key=True),
            Column("environment_id", Integer, ForeignKey("environment.id"), nullable=False),
            Column("name", String(160), nullable=False),
            Column("businessunitid", Uuid, ForeignKey("businessunit.businessunitid")),
            Column("teamtype", SmallInteger, nullable=False),
            Column("azureactivedirectoryobjectid", Uuid),
        )
    if "teammembership" not in md.tables:
        Table(
            "teammembership",
            md,
            Column("systemuserid", Uuid, ForeignKey("systemuser.systemuserid"), primary_key=True),
            Column("teamid", Uuid, ForeignKey("team.teamid"), primary_key=True),
        )
    if "teamroles" not in md.tables:
        Table(
            "teamroles",
            md,
            Column("teamid", Uuid, ForeignKey("team.teamid"), primary_key=True),
            Column("roleid", Uuid, ForeignKey("role.roleid"), primary_key=True),
        )
    users = md.tables["systemuser"]
    for column in (
        Column("businessunitid", Uuid, ForeignKey("businessunit.businessunitid")),
        Column("azurestate", SmallInteger),
        Column("versionnumber", BigInteger),
        Column("syncd_syncedemail", String(100)),
    ):
        if column.name not in users.c:
            users.append_column(column)
    return md


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Engine, MetaData]]:
    md = future_metadata()
    engine = create_engine(f"sqlite:///{tmp_path / 'future.db'}")
    event.listen(engine, "connect", lambda dbapi_conn, _: textfold.register(dbapi_conn))  # as make_engine
    md.create_all(engine)
    t = md.tables
    now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    with engine.begin() as conn:

        def add(table: str, env: int | None, **values: object) -> None:
            conn.execute(insert(t[table]).values(**complete(conn, t[table], values, env)))

        for env_id, name in ((1, "prod"), (2, "other")):
            add("environment", None, id=env_id, name=name, type="production", created_on=now)
        add(
            "businessunit",
            1,
            businessunitid=ROOT_BU,
            environment_id=1,
            name="prod",
            parentbusinessunitid=None,
        )
        add(
            "businessunit",
            1,
            businessunitid=CHILD_BU,
            environment_id=1,
            name="Sales",
            parentbusinessunitid=ROOT_BU,
        )
        add(
            "businessunit",
            2,
            businessunitid=OTHER_BU,
            environment_id=2,
            name="other",
            parentbusinessunitid=None,
        )
        add(
            "team",
            1,
            teamid=TEAM,
            environment_id=1,
            name="Sellers",
            businessunitid=CHILD_BU,
            teamtype=2,  # an Entra security group team: it carries the group's object id
            azureactivedirectoryobjectid=uuid.UUID("bb000000-0000-4000-8000-0000000000b1"),
        )
        common = {
            kind_column(t["systemuser"]): "regular",
            "createdon": now,
            "modifiedon": now,
            "accessmode": 0,
        }
        add(
            "systemuser",
            1,
            **common,
            systemuserid=USER,
            environment_id=1,
            domainname="u@contoso.com",
            azureactivedirectoryobjectid=OID,
            businessunitid=CHILD_BU,
            azurestate=0,
            versionnumber=4242,
            syncd_syncedemail="u@contoso.com",
        )
        add(
            "systemuser",
            2,
            **common,
            systemuserid=OTHER_USER,
            environment_id=2,
            domainname="x@other.com",
            businessunitid=OTHER_BU,
            azurestate=1,
            versionnumber=1,
        )
        add("teammembership", None, systemuserid=USER, teamid=TEAM)
    yield engine, md
    engine.dispose()


@pytest.fixture
def client(world: tuple[Engine, MetaData]) -> Iterator[httpx.Client]:
    engine, md = world
    transport = InProcessTransport(create_webapi_app(lambda: engine, md))
    with httpx.Client(transport=transport, base_url="http://testserver") as c:
        yield c


def test_the_new_tables_are_entity_sets(world: tuple[Engine, MetaData]) -> None:
    entities = build_entity_types(world[1])
    assert {e.entity_set for e in entities.values()} == {"systemusers", "roles", "businessunits", "teams"}
    assert set(entities["team"].navigation) == {"teammembership_association", "teamroles_association"}
    assert entities["team"].alternate_keys == ("azureactivedirectoryobjectid",)


def test_lookups_versions_choices_and_renamed_columns(client: httpx.Client) -> None:
    prefer = {"Prefer": 'odata.include-annotations="*"'}
    r = client.get(API + f"systemusers({USER})", headers=prefer)
    assert r.status_code == 200, (r.status_code, r.headers, r.text)
    rec = r.json()
    assert rec["_businessunitid_value"] == str(CHILD_BU) and "businessunitid" not in rec
    assert rec["_businessunitid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "businessunit"
    assert rec["@odata.etag"] == 'W/"4242"'
    assert rec["azurestate@OData.Community.Display.V1.FormattedValue"] == "Exists"
    assert rec["syncd_syncedemail"] == "u@contoso.com"
    got = client.get(API + "systemusers", params={"$filter": f"_businessunitid_value eq {CHILD_BU}"}).json()
    assert [v["systemuserid"] for v in got["value"]] == [str(USER)]
    attrs = client.get(API + "EntityDefinitions(LogicalName='systemuser')/Attributes").json()["value"]
    bu = next(a for a in attrs if a["LogicalName"] == "businessunitid")
    assert bu["AttributeType"] == "Lookup" and bu["Targets"] == ["businessunit"]


def test_business_units_and_teams(client: httpx.Client) -> None:
    units = client.get(API + "businessunits", params={"$select": "name", "$orderby": "name"}).json()["value"]
    assert [u["name"] for u in units] == ["prod", "Sales"]  # another environment's unit is not there
    sales = next(u for u in units if u["name"] == "Sales")
    assert sales["businessunitid"] == str(CHILD_BU)
    team = client.get(API + f"teams({TEAM})", headers={"Prefer": 'odata.include-annotations="*"'}).json()
    assert team["teamtype@OData.Community.Display.V1.FormattedValue"] == "Security Group"
    members = client.get(API + f"teams({TEAM})/teammembership_association", params={"$select": "domainname"})
    assert [m["domainname"] for m in members.json()["value"]] == ["u@contoso.com"]
    teams = client.get(API + f"systemusers({USER})/teammembership_association", params={"$select": "name"})
    assert [t["name"] for t in teams.json()["value"]] == ["Sellers"]
    who = client.get(API + "WhoAmI", headers=bearer(oid=str(OID))).json()
    assert who["UserId"] == str(USER) and who["BusinessUnitId"] == str(CHILD_BU)  # the caller's own unit
