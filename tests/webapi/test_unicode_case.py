"""Case-insensitive text filters and orders for every script, the same on SQLite and PostgreSQL.

Dataverse's collation is case-insensitive for every language ("Cafe" = "cafe"); SQLite's
built-in `lower()` folds ASCII only, and PostgreSQL's follows the database's LC_CTYPE. The Web
API folds with `syncd.dataverse.textfold.casefold` instead, so that the same data gives the same
rows on both backends (each case below runs once per backend, with the same expected ids).
Accents are kept: 'Celik' is not 'Çelik'.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine, create_engine, literal, select, text

from syncd.dataverse.textfold import casefold, fold_text
from syncd.directory.transport import InProcessTransport
from syncd.webapi import create_webapi_app
from tests.webapi.conftest import add_env, add_users

INTL_API = "/intl/api/data/v9.2/"

# key -> lastname
NAMES = {
    "cedilla_upper": "Çelik",
    "cedilla_lower": "çelik",
    "no_cedilla": "Celik",
    "umlaut": "ÄRGER",
    "sigma": "ΣΟΦΟΣ",
    "stroke": "Łukasz",
    "ascii": "Zimmer",
}
IDS = {key: uuid.UUID(int=0xC0DE0000 + i) for i, key in enumerate(NAMES)}
BY_ID = {str(v): k for k, v in IDS.items()}


@pytest.fixture
def intl(filled: Engine) -> Iterator[httpx.Client]:
    env = add_env(filled, "intl")
    add_users(
        filled,
        env,
        [
            {
                "systemuserid": IDS[key],
                "domainname": f"{key}@contoso.com",
                "lastname": name,
                "fullname": f"Test {name}",
                "isdisabled": False,
                "createdon": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for key, name in NAMES.items()
        ],
    )
    with httpx.Client(
        transport=InProcessTransport(create_webapi_app(lambda: filled)), base_url="http://testserver"
    ) as c:
        yield c


def _keys(client: httpx.Client, **params: str) -> list[str]:
    r = client.get(INTL_API + "systemusers", params={"$select": "lastname", **params})
    assert r.status_code == 200, r.text
    return [BY_ID[v["systemuserid"]] for v in r.json()["value"]]


FILTERS: list[tuple[str, set[str]]] = [
    ("lastname eq 'Çelik'", {"cedilla_upper", "cedilla_lower"}),
    ("lastname eq 'çELIK'", {"cedilla_upper", "cedilla_lower"}),
    ("lastname eq 'celik'", {"no_cedilla"}),  # accents are kept
    ("lastname ne 'ÇELIK'", set(NAMES) - {"cedilla_upper", "cedilla_lower"}),
    ("lastname eq 'ärger'", {"umlaut"}),
    ("lastname eq 'σοφος'", {"sigma"}),  # final sigma
    ("lastname eq 'Σοφοσ'", {"sigma"}),
    ("lastname eq 'łukasz'", {"stroke"}),
    ("contains(lastname,'ÄR')", {"umlaut"}),
    ("contains(lastname,'σ')", {"sigma"}),
    ("startswith(lastname,'ŁUK')", {"stroke"}),
    ("startswith(lastname,'ç')", {"cedilla_upper", "cedilla_lower"}),
    ("endswith(lastname,'ΦΟς')", {"sigma"}),
    ("contains(fullname,'TEST ç')", {"cedilla_upper", "cedilla_lower"}),
    (
        "Microsoft.Dynamics.CRM.In(PropertyName='lastname',PropertyValues=['ÇELIK','äRGER','ŁUKASZ'])",
        {"cedilla_upper", "cedilla_lower", "umlaut", "stroke"},
    ),
    (
        "Microsoft.Dynamics.CRM.NotIn(PropertyName='lastname',PropertyValues=['çelik','σοφοσ'])",
        set(NAMES) - {"cedilla_upper", "cedilla_lower", "sigma"},
    ),
]


@pytest.mark.parametrize(("expression", "expected"), FILTERS, ids=[f[0] for f in FILTERS])
def test_non_ascii_filters_are_case_insensitive(
    intl: httpx.Client, expression: str, expected: set[str]
) -> None:
    assert set(_keys(intl, **{"$filter": expression})) == expected


# Folded, then by code point (and the primary key between equal names): c < z < ä < ç < ł < σ.
ORDER = ["no_cedilla", "ascii", "umlaut", "cedilla_upper", "cedilla_lower", "stroke", "sigma"]


def test_orderby_folds_non_ascii_letters_and_pages_alike(intl: httpx.Client) -> None:
    assert _keys(intl, **{"$orderby": "lastname"}) == ORDER
    assert _keys(intl, **{"$orderby": "lastname desc"}) == [
        "sigma",
        "stroke",
        "cedilla_upper",  # equal names keep the primary key's ascending order
        "cedilla_lower",
        "umlaut",
        "ascii",
        "no_cedilla",
    ]
    seen: list[str] = []
    url: str | None = INTL_API + "systemusers?$select=lastname&$orderby=lastname"
    while url:
        body = intl.get(url, headers={"Prefer": "odata.maxpagesize=2"}).json()
        seen += [BY_ID[v["systemuserid"]] for v in body["value"]]
        url = body.get("@odata.nextLink")
    assert seen == ORDER


SAMPLES = ["ÇELİK", "Äsa", "ΣΟΦΟΣ", "Σοφος", "ŁUKASZ", "Straße", "ẞ", "ǅ", "plain"]


def test_casefold_in_sql_is_the_python_fold_on_each_backend(engine: Engine) -> None:
    with engine.connect() as conn:
        got = [conn.execute(select(casefold(literal(s)))).scalar_one() for s in SAMPLES]
        assert conn.execute(select(casefold(literal(None)))).scalar_one() is None
    assert got == [fold_text(s) for s in SAMPLES]
    assert fold_text("ΣΟΦΟΣ") == fold_text("σοφος") == "σοφοσ"


def test_casefold_on_a_postgresql_database_in_the_c_locale(pg_server: str) -> None:
    """A database created with LC_CTYPE=C folds ASCII only in `lower()`; `casefold` does not."""
    name = f"syncd_c_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'")
        )
    try:
        eng = create_engine(pg_server.rsplit("/", 1)[0] + "/" + name)
        try:
            with eng.connect() as conn:
                assert conn.execute(text("select lower('ÇA')")).scalar_one() == "Ça"  # ASCII only
                got = [conn.execute(select(casefold(literal(s)))).scalar_one() for s in SAMPLES]
                ordered = conn.execute(
                    select(text("v"))
                    .select_from(text("(values ('b'), ('ä'), ('Z'), ('ç'), ('a')) as t(v)"))
                    .order_by(casefold(text("v")))
                ).scalars()
                assert list(ordered) == ["a", "b", "Z", "ä", "ç"]
        finally:
            eng.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert got == [fold_text(s) for s in SAMPLES]
