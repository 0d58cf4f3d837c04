"""Microsoft's own SDK (`powerplatform-dataverse-client`) reads a synced environment over HTTPS
with a fake credential, and gets the rows that are in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from syncd.dataverse.schema import Base, Environment
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.settings import load_settings
from syncd.webapi.urls import organization_url
from tests.sync.sync_helpers import make_env, run
from tests.webapi.sdk_server import FakeCredential, serve_https

dataverse = pytest.importorskip("PowerPlatform.Dataverse.client")

SELECT = ["fullname", "domainname", "azureactivedirectoryobjectid", "isdisabled", "accessmode", "createdon"]


@pytest.fixture
def synced(engine: Engine, db_url: str, clean_env: Path) -> Engine:
    """Environment 'prod' after a full sync of a generated 120-user tenant."""
    store = TenantStore.open(None)
    generate_tenant(store, users=120, seed=7, group_size=40)
    directory = GraphClient(
        "http://fake-entra.local/v1.0",
        token_provider=StaticToken("t"),
        transport=InProcessTransport(create_app(store)),
        page_size=25,
    )
    settings = load_settings(database_url=db_url, allow_mass_disable=True)
    make_env(engine, "prod")
    make_env(engine, "other env/2")
    run(engine, directory, "prod", settings)
    run(engine, directory, "other env/2", settings)
    directory.close()
    store.close()
    return engine


@pytest.fixture
def sdk(synced: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with serve_https(synced, tmp_path / "tls") as (origin, ca):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
        client = dataverse.DataverseClient(organization_url(origin, "prod"), FakeCredential())
        yield client
        client.close()


def _rows(engine: Engine, env: str, where: Any = None) -> list[dict[str, Any]]:
    users = Base.metadata.tables["systemuser"]
    envs = Base.metadata.tables["environment"]
    stmt = select(users).join(envs, envs.c.id == users.c.environment_id).where(envs.c.name == env)
    if where is not None:
        stmt = stmt.where(where)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def _wire(row: dict[str, Any]) -> dict[str, Any]:
    from syncd.webapi.records import wire

    return {c: wire(row[c]) for c in SELECT}


def test_the_sdk_lists_every_page_with_select_filter_and_order(sdk: Any, synced: Engine) -> None:
    users = Base.metadata.tables["systemuser"]
    pages = list(
        sdk.records.list_pages(
            "systemuser",
            select=SELECT,
            filter="isdisabled eq false and accessmode ne 4",
            orderby=["domainname desc"],
            page_size=7,
        )
    )
    expected = _rows(synced, "prod", (users.c.isdisabled.is_(False)) & (users.c.accessmode != 4))
    assert len(expected) > 14  # several pages
    got = [r.to_dict() for page in pages for r in page]
    assert all(len(page) == 7 for page in pages[:-1])
    assert [g["domainname"] for g in got] == sorted((e["domainname"] for e in expected), reverse=True)
    by_id = {str(e["systemuserid"]): _wire(e) for e in expected}
    for g in got:
        assert {c: g[c] for c in SELECT} == by_id[g["systemuserid"]]


def test_the_sdk_retrieves_by_id_and_by_object_id_and_reads_404_as_none(sdk: Any, synced: Engine) -> None:
    row = next(r for r in _rows(synced, "prod") if r["azureactivedirectoryobjectid"] is not None)
    one = sdk.records.retrieve("systemuser", str(row["systemuserid"]), select=["fullname", "domainname"])
    assert one["fullname"] == row["fullname"] and one["domainname"] == row["domainname"]
    assert one.etag and one.etag.startswith('W/"')
    by_object = sdk.records.retrieve(
        "systemuser",
        f"azureactivedirectoryobjectid={row['azureactivedirectoryobjectid']}",
        select=["domainname"],
    )
    assert by_object["systemuserid"] == str(row["systemuserid"])
    assert sdk.records.retrieve("systemuser", str(uuid.uuid4())) is None
    other = _rows(synced, "other env/2")[0]
    assert sdk.records.retrieve("systemuser", str(other["systemuserid"])) is None  # another environment's row


def test_the_sdk_counts_through_batch(sdk: Any, synced: Engine) -> None:
    batch = sdk.batch.new()
    batch.records.list("systemuser", select=["systemuserid"], count=True, top=1)
    batch.records.list("systemuser", select=["systemuserid"], filter="isdisabled eq true", count=True, top=1)
    batch.records.list("role", select=["name"], count=True)
    result = batch.execute()
    assert not result.has_errors
    users = Base.metadata.tables["systemuser"]
    all_users, disabled, roles = (r.data for r in result.responses)
    assert all_users["@odata.count"] == len(_rows(synced, "prod"))
    assert disabled["@odata.count"] == len(_rows(synced, "prod", users.c.isdisabled.is_(True)))
    with synced.connect() as conn:
        prod = conn.execute(select(Environment.id).where(Environment.name == "prod")).scalar_one()
        role_names = conn.execute(
            select(Base.metadata.tables["role"].c.name).where(
                Base.metadata.tables["role"].c.environment_id == prod
            )
        ).scalars()
        assert sorted(r["name"] for r in roles["value"]) == sorted(role_names)


def test_the_sdk_reads_formatted_values_and_another_environment(
    sdk: Any, synced: Engine, tmp_path: Path
) -> None:
    [page] = list(
        sdk.records.list_pages(
            "systemuser",
            select=["accessmode", "isdisabled"],
            top=1,
            include_annotations="OData.Community.Display.V1.FormattedValue",
        )
    )
    rec = page[0].to_dict()
    assert rec["accessmode@OData.Community.Display.V1.FormattedValue"] in {
        "Read-Write",
        "Administrative",
        "Read",
        "Support User",
        "Non-interactive",
        "Delegated Admin",
    }
    origin = sdk._base_url.rsplit("/", 1)[0]
    other = dataverse.DataverseClient(organization_url(origin, "other env/2"), FakeCredential())
    got = {
        r["systemuserid"]
        for page in other.records.list_pages("systemuser", select=["fullname"])
        for r in page
    }
    assert got == {str(r["systemuserid"]) for r in _rows(synced, "other env/2")}
    other.close()


def test_the_sdks_query_builder(sdk: Any, synced: Engine) -> None:
    from PowerPlatform.Dataverse.models.filters import col

    users = Base.metadata.tables["systemuser"]
    result = (
        sdk.query.builder("systemuser")
        .select("domainname", "accessmode", "isdisabled")
        .where(col("accessmode").in_([0, 1]) & (col("isdisabled") == False) & col("domainname").contains("a"))  # noqa: E712
        .order_by("domainname", descending=True)
        .page_size(10)
        .include_formatted_values()
        .execute()
    )
    got = [r["domainname"] for r in result]
    expected = _rows(
        synced,
        "prod",
        users.c.accessmode.in_([0, 1]) & users.c.isdisabled.is_(False) & users.c.domainname.contains("a"),
    )
    assert len(got) > 10
    assert got == sorted((e["domainname"] for e in expected), key=str.lower, reverse=True)
    first = result[0].to_dict()
    assert first["isdisabled@OData.Community.Display.V1.FormattedValue"] == "Enabled"
    info = sdk.tables.get("systemuser")
    assert (info.entity_set_name, info.primary_id_attribute) == ("systemusers", "systemuserid")
    assert {t["LogicalName"] for t in sdk.tables.list()} >= {"systemuser", "role"}
    columns = {c["LogicalName"] for c in sdk.tables.list_columns("systemuser")}
    assert columns == {c.name for c in users.columns} - {"environment_id"}


def test_what_is_not_served_is_refused_not_ignored(sdk: Any) -> None:
    from PowerPlatform.Dataverse.core.errors import HttpError

    with pytest.raises(HttpError) as caught:
        sdk.query.sql("SELECT TOP 3 fullname FROM systemuser")
    assert caught.value.status_code == 400
