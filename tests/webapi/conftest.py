"""Fixtures for the Web API: a database with two environments of hand-made rows, and a client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete, insert, select

from syncd.dataverse import db
from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.dataverse.schema import Base, Environment
from syncd.directory.transport import InProcessTransport
from syncd.webapi import create_webapi_app
from tests.webapi.rows import complete

ALICE = uuid.UUID("0a1b2c3d-0000-4000-8000-000000000001")
OBJ_ALICE = uuid.UUID("aa000000-0000-4000-8000-00000000000a")

# The rows of environment "prod": (systemuserid, values). Only columns that every version of the
# schema has, by their SQL names.
ROWS: list[dict[str, Any]] = [
    {
        "systemuserid": ALICE,
        "azureactivedirectoryobjectid": OBJ_ALICE,
        "domainname": "alice@contoso.com",
        "fullname": "Alice Adams",
        "jobtitle": "Engineer",
        "accessmode": 0,
        "isdisabled": False,
        "islicensed": True,
        "createdon": datetime(2026, 1, 10, 8, 0, tzinfo=UTC),
    },
    {
        "systemuserid": uuid.UUID("0a1b2c3d-0000-4000-8000-000000000002"),
        "azureactivedirectoryobjectid": uuid.UUID("bb000000-0000-4000-8000-00000000000b"),
        "domainname": "bob@contoso.com",
        "fullname": "Bob O'Brien",
        "jobtitle": None,
        "accessmode": 1,
        "isdisabled": True,
        "islicensed": False,
        "createdon": datetime(2026, 1, 20, 8, 0, tzinfo=UTC),
    },
    {
        "systemuserid": uuid.UUID("0a1b2c3d-0000-4000-8000-000000000003"),
        "azureactivedirectoryobjectid": uuid.UUID("cc000000-0000-4000-8000-00000000000c"),
        "domainname": "carol@fabrikam.org",
        "fullname": "carol 100%_done",
        "jobtitle": "Manager",
        "accessmode": 4,
        "isdisabled": False,
        "islicensed": True,
        "createdon": datetime(2026, 2, 1, 8, 0, tzinfo=UTC),
    },
    {
        "systemuserid": uuid.UUID("0a1b2c3d-0000-4000-8000-000000000004"),
        "azureactivedirectoryobjectid": None,
        "domainname": "dave@contoso.com",
        "fullname": "Dave",
        "jobtitle": "engineer lead",
        "accessmode": 0,
        "isdisabled": False,
        "islicensed": False,
        "createdon": datetime(2026, 2, 15, 8, 0, tzinfo=UTC),
    },
    {
        "systemuserid": uuid.UUID("0a1b2c3d-0000-4000-8000-000000000005"),
        "azureactivedirectoryobjectid": uuid.UUID("ee000000-0000-4000-8000-00000000000e"),
        "domainname": "erin@contoso.com",
        "fullname": None,
        "jobtitle": "Engineer",
        "accessmode": 2,
        "isdisabled": False,
        "islicensed": True,
        "createdon": datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
    },
]
OTHER_ENV_USER = uuid.UUID("0a1b2c3d-0000-4000-8000-0000000000ff")


def env_id(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(Environment.id).where(Environment.name == name)).scalar_one())


def add_env(engine: Engine, name: str, *, builtins: bool = False) -> int:
    """A new environment, by default without its built-in users (so a test sees its own rows only)."""
    with db.session_factory(engine)() as s, s.begin():
        create_environment(s, EnvironmentSpec(name=name))
    env = env_id(engine, name)
    if not builtins:
        users = Base.metadata.tables["systemuser"]
        links = Base.metadata.tables["systemuserroles"]
        with engine.begin() as conn:
            ids = select(users.c.systemuserid).where(users.c.environment_id == env)
            conn.execute(delete(links).where(links.c.systemuserid.in_(ids)))
            conn.execute(delete(users).where(users.c.environment_id == env))
    return env


def add_users(engine: Engine, env: int, rows: list[dict[str, Any]]) -> None:
    table = Base.metadata.tables["systemuser"]
    with engine.begin() as conn:
        for row in rows:
            values = {"environment_id": env, "modifiedon": row.get("createdon"), **row}
            conn.execute(insert(table).values(**complete(conn, table, values, env)))


@pytest.fixture
def filled(engine: Engine) -> Engine:
    prod = add_env(engine, "prod")
    other = add_env(engine, "other")
    add_users(engine, prod, ROWS)
    add_users(
        engine,
        other,
        [{**ROWS[0], "systemuserid": OTHER_ENV_USER, "fullname": "Alice Adams", "domainname": "a@other.com"}],
    )
    return engine


@pytest.fixture
def client(filled: Engine) -> Iterator[httpx.Client]:
    transport = InProcessTransport(create_webapi_app(lambda: filled))
    with httpx.Client(transport=transport, base_url="http://testserver") as c:
        yield c


API = "/prod/api/data/v9.2/"


def bearer(**claims: object) -> dict[str, str]:
    """An Authorization header with an unsigned token of these claims (the Web API without
    --require-token reads a token's claims unchecked)."""
    import base64
    import json

    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return {"Authorization": f"Bearer e30.{body}.sig"}
