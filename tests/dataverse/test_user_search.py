"""User search (syncd.dataverse.user_search): prefixes of UPN and full name ignoring case, GUIDs and
hex prefixes, literal wildcards; the same answer on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from dataverse_helpers import add_user, environment
from sqlalchemy import Engine

from syncd.dataverse import db
from syncd.dataverse.user_search import hex_range, prefix_upper_bound, search_users

OID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
SID = "f0e1d2c3-b4a5-4968-8776-a5b4c3d2e1f0"


@pytest.fixture
def people(engine: Engine) -> Engine:
    with db.session_factory(engine)() as s, s.begin():
        env = environment(s)
        other = environment(s, "other")
        add_user(s, env, "Alice.Archer@contoso.com", "Alice Archer", object_id=OID, systemuserid=SID)
        add_user(s, env, "alan.ash@contoso.com", "Alan Ash")
        add_user(s, env, "bob@contoso.com", "Ålesund Bob")
        add_user(s, env, "émile@contoso.com", "Émile Zola")
        add_user(s, env, "per%cent@contoso.com", "100% Sure")
        add_user(s, env, "under_score@contoso.com", "Under Score")
        add_user(s, env, "underXscore@contoso.com", "Under X")
        add_user(s, env, "html@contoso.com", "<b>Bold</b> & Co")
        add_user(s, env, "stub@contoso.com", "A Stub", kind="stub")
        add_user(s, other, "alice.other@contoso.com", "Alice Other")
    return engine


def _search(engine: Engine, query: str, env: str = "prod", **kw: int) -> list[str]:
    from sqlalchemy import select

    from syncd.dataverse.schema import Environment

    with db.session_factory(engine)() as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == env))
        assert env_id is not None
        return [h.domainname for h in search_users(s, env_id, query, **kw)]


def test_upn_prefix_ignores_case_and_keeps_to_the_environment(people: Engine) -> None:
    assert _search(people, "AL") == ["alan.ash@contoso.com", "Alice.Archer@contoso.com"]
    assert _search(people, "alice.") == ["Alice.Archer@contoso.com"]
    assert _search(people, "alice.", "other") == ["alice.other@contoso.com"]


def test_full_name_prefix_ignores_the_case_of_ascii_letters_only(people: Engine) -> None:
    assert _search(people, "ZOLA") == [] and _search(people, "under x") == ["underXscore@contoso.com"]
    assert _search(people, "Ålesund") == ["bob@contoso.com"]  # by full name, as written
    assert _search(people, "ålesund") == []  # A-Z only, the same on both backends (migration 0007)
    assert _search(people, "émile") == ["émile@contoso.com"]
    assert _search(people, "ÉMILE@") == []  # É is not lowered (A-Z only)
    assert _search(people, "ÉMILE z") == ["émile@contoso.com"]  # the full name, as written but for A-Z


def test_like_wildcards_are_plain_characters(people: Engine) -> None:
    assert _search(people, "under_") == ["under_score@contoso.com"]
    assert _search(people, "per%") == ["per%cent@contoso.com"]
    assert _search(people, "%") == []
    assert _search(people, "100%") == ["per%cent@contoso.com"]


def test_names_with_html_are_found_as_written(people: Engine) -> None:
    hits = _search(people, "<b>")
    assert hits == ["html@contoso.com"]


@pytest.mark.parametrize(
    "spelling",
    [OID, OID.upper(), OID.replace("-", ""), "{" + OID + "}", OID[:4], OID[:9], OID[:6].upper()],
)
def test_object_id_in_any_spelling_or_hex_prefix(people: Engine, spelling: str) -> None:
    assert _search(people, spelling) == ["Alice.Archer@contoso.com"]


def test_systemuserid_and_its_prefix(people: Engine) -> None:
    assert _search(people, SID) == ["Alice.Archer@contoso.com"]
    assert _search(people, SID[:5]) == ["Alice.Archer@contoso.com"]


def test_short_hex_is_only_a_name_prefix(people: Engine) -> None:
    assert _search(people, OID[:3]) == []  # under 4 hex digits: not an id prefix
    assert hex_range("0a1") is None and hex_range("0a1g") is None


def test_empty_query_limit_and_kinds(people: Engine) -> None:
    assert _search(people, "") == [] and _search(people, "   ") == []
    assert _search(people, "a", limit=1) == ["alan.ash@contoso.com"]
    assert "stub@contoso.com" in _search(people, "stub")  # every kind of row is found, marked by kind
    with pytest.raises(ValueError, match="limit"):
        _search(people, "a", limit=0)


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound("ab") == "ac"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\ud7ff"[:0] + "a\ud7ff") == "a\ue000"
    assert prefix_upper_bound("\U0010ffff") is None
