"""COPY's binary format: object ids go to PostgreSQL's uuid as 16 bytes, and only GUIDs do."""

from __future__ import annotations

import uuid

import pytest

from syncd.sync.storage.postgres import GuidBinaryDumper

GUID = "0b5f2d3e-1111-2222-3333-444455556666"


@pytest.mark.parametrize("value", [GUID, GUID.replace("-", ""), GUID.upper(), uuid.UUID(GUID)])
def test_a_guid_in_any_spelling_dumps_to_its_16_bytes(value: object) -> None:
    assert GuidBinaryDumper(str).dump(value) == uuid.UUID(GUID).bytes


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x",
        GUID[:-1],
        GUID + "0",
        "0b5f2d3e 1111 2222 3333 44445555666",
        "zz" * 16,
        GUID.replace("-", ","),
    ],
)
def test_anything_else_is_refused_naming_the_value(value: str) -> None:
    with pytest.raises(ValueError, match="not a GUID"):
        GuidBinaryDumper(str).dump(value)
