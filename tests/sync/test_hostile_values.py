"""Hostile directory values give the same table on SQLite and PostgreSQL (R10, R13).

One generated tenant, plus users whose values a Dataverse column can't hold as they are: display
names of 256 characters, over-long job titles and emails, emoji, right-to-left text, combining
characters, NUL and the other control characters, empty strings. A full run on each backend must
give every one of them a row, with the same values on both; values are cut to the column's length
and stripped of control characters, and a second full run changes nothing.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from sync_helpers import SNAPSHOT_COLUMNS, make_env, snapshot

from syncd.dataverse import db
from syncd.dataverse.lengths import SYSTEMUSER_LENGTHS
from syncd.directory import catalogue
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.store import TenantStore
from syncd.settings import load_settings
from syncd.sync.run import RunOptions, sync_environment

C0_OR_DEL = re.compile("[\x00-\x1f\x7f]")
DOMAIN = "hostile.example"
LONG_NAME = "Ñ" + "a" * 254 + "Z"  # 256 characters: Entra allows it, fullname holds 200


def _hostile_bodies() -> list[dict[str, Any]]:
    """Graph-shaped create bodies; `mailNickname` and the rest as Graph requires them."""
    base = {"accountEnabled": True, "mailNickname": "x", "usageLocation": "GB"}
    bodies: list[dict[str, Any]] = [
        {"displayName": LONG_NAME, "givenName": "Long", "surname": "Name"},
        {
            "displayName": "Over Long",
            "jobTitle": "Chief " + "Very " * 60 + "Officer",  # 312 characters
            "mail": "x" * 140 + "@" + DOMAIN,  # 155 characters
        },
        {
            "displayName": "😀 Émoji 👩‍👩‍👧 Person",
            "givenName": "🎉",
            "surname": "🙂" * 300,
            "city": "🏙️ Emoji City",
            "jobTitle": "🚀" * 101,
        },
        {
            "displayName": "مريم الأحمد",
            "givenName": "מרים",
            "surname": "\u200fכהן",
            "streetAddress": "شارع الملك فهد ١٢",
            "city": "الرياض",
            "country": "المملكة العربية السعودية",
        },
        {
            "displayName": "Zoe\u0308 A\u030angstro\u0308m",  # combining diaeresis and ring
            "givenName": "Zoe\u0308",
            "surname": "A\u030angstro\u0308m",
            "jobTitle": "e" + "\u0301" * 120,  # one letter, 120 combining accents: 121 code points
        },
        {
            "displayName": "Nul\x00Name\x07",
            "givenName": "\x00",  # nothing left: the placeholder (R13)
            "surname": "DEL\x7f",
            "jobTitle": "Tab\tbed\nline\r",
            "mobilePhone": "\x1b[31m+44 7700 900123",
            "businessPhones": ["+44\x0020 7946 0000"],
            "city": "\x01\x02\x03",
        },
        {
            "displayName": "\x00" + "N" * 255,  # 256 characters, one of them NUL
            "jobTitle": "\x00" * 5 + "J" * 99,
        },
        {
            "displayName": "Empty Strings",
            "givenName": "",
            "surname": "",
            "jobTitle": "",
            "mail": "",
            "mobilePhone": "",
            "streetAddress": "",
            "city": "",
            "state": "",
            "postalCode": "",
            "country": "",
            "businessPhones": [""],
        },
        {
            "displayName": "Everything Long",
            "givenName": "G" * 300,
            "surname": "S" * 300,
            "jobTitle": "J" * 101,
            "mail": "m" * 95 + "@" + DOMAIN,
            "mobilePhone": "7" * 80,
            "businessPhones": ["9" * 70, "8"],
            "streetAddress": "1 " + "Long Street " * 100,
            "city": "C" * 200,
            "state": "S" * 200,
            "postalCode": "P" * 60,
            "country": "K" * 200,
        },
    ]
    out = []
    for i, body in enumerate(bodies):
        upn = "hostile.üser" if i == 4 else "hostile"
        out.append(base | {"userPrincipalName": f"{upn}{i}@{DOMAIN}"} | body)
    return out


@pytest.fixture
def hostile_ids(store: TenantStore) -> list[str]:
    """A generated tenant, plus the hostile users, each with a licence that grants Dataverse (R4)."""
    generate_tenant(store, users=60, seed=11, group_size=20)
    sku = next(s for s in catalogue.SKUS if s.kind is catalogue.SkuKind.DATAVERSE).sku_id
    ids = []
    for body in _hostile_bodies():
        user = orjson.loads(store.create_user(body))
        store.assign_licenses(user["id"], {"addLicenses": [{"skuId": sku}], "removeLicenses": []})
        ids.append(user["id"])
    return ids


def _root_conftest(config: pytest.Config) -> Any:
    root = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == str(root):
            return plugin
    raise AssertionError("tests/conftest.py is not loaded")


@pytest.fixture
def both_backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh database at head on each backend: {"sqlite": url, "postgresql": url}."""
    path = tmp_path / "hostile.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    pg_server = request.getfixturevalue("pg_server")
    pg_template = request.getfixturevalue("pg_template")
    with _root_conftest(request.config)._pg_database(pg_server, pg_template) as pg_url:
        yield {"sqlite": f"sqlite:///{path}", "postgresql": pg_url}


def _full_run(engine: Engine, directory: GraphClient, url: str) -> dict[str, int]:
    settings = load_settings(database_url=url, batch_size=16, allow_mass_disable=True)
    report = sync_environment(engine, directory, "prod", settings, RunOptions(kind="full"))
    assert report.outcome == "succeeded", report.error
    return report.counts


def test_hostile_values_give_identical_tables_on_both_backends(  # R10, R13
    both_backends: dict[str, str], directory: GraphClient, hostile_ids: list[str], clean_env: Path
) -> None:
    tables: dict[str, dict[str, tuple[Any, ...]]] = {}
    with ExitStack() as stack:
        engines = {}
        for backend, url in both_backends.items():
            engine = db.make_engine(url)
            stack.callback(engine.dispose)
            engines[backend] = engine
            make_env(engine, "prod")
            first = _full_run(engine, directory, url)
            assert first["failed"] == 0, (backend, first)
            assert first["created"] > len(hostile_ids), (backend, first)
            tables[backend] = snapshot(engine, "prod")

        # Same directory, same table: every row, every synced column and the row's state.
        assert tables["sqlite"] == tables["postgresql"]
        table = tables["postgresql"]

        # R10: every hostile user got a row, on both backends.
        assert set(hostile_ids) <= set(table)

        # No stored value holds a control character or is longer than its column.
        for oid, values in table.items():
            for column, value in zip(SNAPSHOT_COLUMNS, values, strict=True):
                if isinstance(value, str):
                    assert not C0_OR_DEL.search(value), (oid, column, value)
                    assert len(value) <= SYSTEMUSER_LENGTHS[column], (oid, column, len(value))

        col = {c: i for i, c in enumerate(SNAPSHOT_COLUMNS)}
        long_name, over_long, emoji, rtl, combining, controls, nul_long, empty, everything = (
            table[i] for i in hostile_ids
        )
        # A licensed user whose displayName has 256 characters gets a row, cut to 200.
        assert long_name[col["fullname"]] == LONG_NAME[:200]
        assert over_long[col["jobtitle"]] == ("Chief " + "Very " * 60)[:100]
        assert over_long[col["internalemailaddress"]] == "x" * 100
        # Clean values pass through unchanged (cut only when too long).
        assert emoji[col["fullname"]] == "😀 Émoji 👩‍👩‍👧 Person"
        assert emoji[col["firstname"]] == "🎉"
        assert emoji[col["lastname"]] == "🙂" * 256
        assert emoji[col["jobtitle"]] == "🚀" * 100
        assert rtl[col["lastname"]] == "\u200fכהן"
        assert rtl[col["address1_line1"]] == "شارع الملك فهد ١٢"
        assert combining[col["fullname"]] == "Zoe\u0308 A\u030angstro\u0308m"
        assert combining[col["jobtitle"]] == ("e" + "\u0301" * 120)[:100]
        # Control characters are removed, then the value is cut.
        assert controls[col["fullname"]] == "NulName"
        assert controls[col["firstname"]] == "#"  # R13: nothing left of givenName
        assert controls[col["lastname"]] == "DEL"
        assert controls[col["jobtitle"]] == "Tabbedline"
        assert controls[col["mobilephone"]] == "[31m+44 7700 900123"
        assert controls[col["address1_telephone1"]] == "+4420 7946 0000"
        assert controls[col["address1_city"]] == ""
        assert nul_long[col["fullname"]] == "N" * 200
        assert nul_long[col["jobtitle"]] == "J" * 99
        assert empty[col["firstname"]] == "#"  # R13
        for c in ("lastname", "jobtitle", "internalemailaddress", "address1_telephone1", "address1_city"):
            assert empty[col[c]] == "", c
        for c, n in (
            ("firstname", 256),
            ("lastname", 256),
            ("mobilephone", 64),
            ("address1_telephone1", 64),
            ("address1_line1", 1024),
            ("address1_city", 128),
            ("address1_stateorprovince", 128),
            ("address1_postalcode", 40),
            ("address1_country", 128),
        ):
            assert len(everything[col[c]]) == n, c
        for i in hostile_ids:
            assert table[i][col["isdisabled"]] is False

        # A second full run over the same directory changes nothing, on either backend.
        for backend, url in both_backends.items():
            again = _full_run(engines[backend], directory, url)
            changed = {k: again[k] for k in ("created", "updated", "enabled", "disabled", "failed")}
            assert changed == dict.fromkeys(changed, 0), (backend, again)
            assert snapshot(engines[backend], "prod") == table
