"""A write request's body, checked and typed, and the errors Dataverse answers a customer's writes.

`PATCH <org>/api/data/v9.2/systemusers(<id>)` (or `systemusers(azureactivedirectoryobjectid=<id>)`)
with a JSON object of properties. Every property is checked before anything is written: an unknown
one is Dataverse's 400 `0x0` "Could not find a property named ..."; a value of the wrong type is
400 `0x0` "Cannot convert ..."; a string longer than its column is 400 `0x80044331`; a read-only or
sync-owned column is refused by `writer.column_refusal`. Annotations (`@odata.etag`, ...) are
ignored; `x@odata.bind` binds a lookup, and the only lookup of systemuser, its business unit, moves
only by Dataverse's SetBusinessSystemUser action.

`POST systemusers`: creating users is the sync's job here (and an on-demand add's), so it is
refused, as is a PATCH that would create (upsert) one. `DELETE systemusers(<id>)`: Dataverse never
deletes a user (R9: a user leaves by being disabled), and answers that the Delete message does not
support the entity. The codes are Dataverse's (`0x80040203` InvalidArgument where Dataverse has no
more precise one that we could confirm).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

from syncd.dataverse.schema import SystemUser
from syncd.webapi.entities import Attribute, EntityType
from syncd.webapi.errors import ODataError, no_property
from syncd.webapi.writer import INVALID_ARGUMENT, Written, column_refusal, update_systemuser

TOO_LONG = "0x80044331"  # Dataverse's validation error for an over-long string

update = update_systemuser

__all__ = ["Written", "create_refused", "delete_refused", "parse_body", "update", "writable"]


def writable(entity: EntityType) -> bool:
    """Whether `entity` takes customer writes: syncd's own systemuser table only."""
    return entity.logical_name == "systemuser" and entity.table is SystemUser.__table__


def create_refused() -> ODataError:
    return ODataError(
        400,
        INVALID_ARGUMENT,
        "Creating a systemuser is not allowed in this environment: users are created by the sync from "
        "Microsoft Entra ID, or by an on-demand add (`syncd user add`).",
    )


def delete_refused(entity: EntityType) -> ODataError:
    return ODataError(
        400,
        INVALID_ARGUMENT,
        f"The 'Delete' method does not support entities of type '{entity.logical_name}'. Users are never "
        "deleted: a user who leaves the directory keeps the row, disabled (R9).",
    )


def _cannot_convert(value: Any, edm: str) -> ODataError:
    shown = orjson.dumps(value).decode()
    return ODataError(400, "0x0", f"Cannot convert the literal '{shown}' to the expected type '{edm}'.")


def typed_value(entity: EntityType, attr: Attribute, value: Any) -> Any:
    """`value` from JSON as the column stores it; 400 when it can't be."""
    if value is None:
        if not attr.column.nullable:
            raise ODataError(
                400,
                INVALID_ARGUMENT,
                f"The attribute '{attr.logical_name}' of entity '{entity.logical_name}' can't be null.",
            )
        return None
    edm = attr.edm
    if edm == "Edm.String":
        if not isinstance(value, str):
            raise _cannot_convert(value, edm)
        if "\x00" in value:
            raise ODataError(
                400,
                INVALID_ARGUMENT,
                f"A validation error occurred. The value of the '{attr.logical_name}' attribute holds a NUL "
                "character, which a text column cannot store.",
            )
        if attr.max_length is not None and len(value) > attr.max_length:
            raise ODataError(
                400,
                TOO_LONG,
                f"A validation error occurred. The length of the '{attr.logical_name}' attribute of the "
                f"'{entity.logical_name}' entity exceeded the maximum allowed length of '{attr.max_length}'.",
            )
        return value
    if edm in ("Edm.Int32", "Edm.Int64"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _cannot_convert(value, edm)
        if attr.choices is not None and value not in attr.choices:
            raise ODataError(
                400,
                INVALID_ARGUMENT,
                f"A validation error occurred. The value {value} of '{attr.logical_name}' on record of type "
                f"'{entity.logical_name}' is outside the valid range.",
            )
        return value
    if edm == "Edm.Boolean":
        if not isinstance(value, bool):
            raise _cannot_convert(value, edm)
        return value
    if edm == "Edm.Guid":
        try:
            return uuid.UUID(str(value))
        except ValueError:
            raise _cannot_convert(value, edm) from None
    if edm == "Edm.DateTimeOffset":
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise _cannot_convert(value, edm) from None
    return value


def parse_body(entity: EntityType, body: bytes) -> dict[str, Any]:
    """The columns (SQL names) a PATCH body sets, typed; every refusal raised before any write."""
    try:
        data = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        raise ODataError(400, "0x0", "The request body is not valid JSON: an object of properties.") from None
    if not isinstance(data, dict):
        raise ODataError(400, "0x0", "The request body must be a JSON object of properties.")
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name.startswith("@"):
            continue  # instance annotations (@odata.etag, @odata.type) carry no column
        prop, at, annotation = name.partition("@")
        if at:
            if annotation != "odata.bind":
                continue
            target = entity.by_logical(prop)
            if target is None or target.kind != "Lookup":
                raise no_property(prop, entity.logical_name)
            refusal = column_refusal(target.logical_name, entity.logical_name)
            assert refusal is not None
            raise refusal
        attr = entity.attribute(name)
        if attr is None:
            raise no_property(name, entity.logical_name)
        refusal = column_refusal(attr.logical_name, entity.logical_name)
        if refusal is None and attr.kind == "Lookup":  # `_x_value` is read; `x@odata.bind` writes
            refusal = ODataError(
                400,
                INVALID_ARGUMENT,
                f"The property '{name}' of entity '{entity.logical_name}' is read-only: bind the lookup "
                f"with '{attr.logical_name}@odata.bind'.",
            )
        if refusal is not None:
            raise refusal
        values[attr.logical_name] = typed_value(entity, attr, value)
    return values
