"""A row as a Web API record, in the shapes of "Query data using the Web API".

- GUIDs lower case; date-times in UTC as `2026-11-30T06:13:42Z` (whole seconds, as Dataverse);
- `@odata.etag` on every record: `W/"<versionnumber>"` when the table has that column, else a number
  derived from `modifiedon` (microseconds since the epoch), else from a hash of the row's values;
- the primary key in every record, selected or not;
- with `Prefer: odata.include-annotations="OData.Community.Display.V1.FormattedValue"` (or "*"),
  `<property>@OData.Community.Display.V1.FormattedValue` for choices, two-options, date-times and
  numbers, as Dataverse formats them for language 1033.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from syncd.webapi.entities import Attribute, EntityType

FORMATTED = "OData.Community.Display.V1.FormattedValue"


def wire(value: Any) -> Any:
    """A column value as JSON carries it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return v.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, Decimal):
        return float(value)
    return value


def formatted(attr: Attribute, value: Any) -> str | None:
    """The formatted value Dataverse adds for `value`, or None when it adds none."""
    if value is None:
        return None
    if attr.choices is not None and isinstance(value, int):
        return attr.choices.get(value, str(value))
    if attr.edm == "Edm.Boolean":
        return attr.boolean_labels[1 if value else 0]
    if isinstance(value, datetime):
        v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        hour = v.hour % 12 or 12
        return f"{v.month}/{v.day}/{v.year} {hour}:{v.minute:02d} {'AM' if v.hour < 12 else 'PM'}"
    if attr.edm in ("Edm.Int32", "Edm.Int64") and isinstance(value, int):
        return f"{value:,}"
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _wire_datetime(value: Any) -> Any:
    if value is None:
        return None
    v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%SZ")


def converter(attr: Attribute) -> Callable[[Any], Any] | None:
    """How a column's values go on the wire (None: as they come)."""
    if attr.edm == "Edm.Guid":
        return None  # uuid.UUID: orjson writes it as Dataverse does, lower case with dashes
    if attr.edm == "Edm.DateTimeOffset":
        return _wire_datetime
    if attr.edm in ("Edm.String", "Edm.Boolean", "Edm.Int32", "Edm.Int64"):
        return None
    return wire


def _etag(version: Any, modified: Any, row: Any) -> str:
    if version is not None:
        return f'W/"{version}"'
    if isinstance(modified, datetime):
        v = modified.replace(tzinfo=UTC) if modified.tzinfo is None else modified
        return f'W/"{(v - _EPOCH) // _MICROSECOND}"'
    return f'W/"{zlib.crc32(repr(tuple(row)).encode())}"'


def etag_columns(entity: EntityType) -> list[str]:
    """The columns the etag is made of (added to the query when not selected)."""
    if "versionnumber" in entity.table.c:
        return ["versionnumber", *(["modifiedon"] if "modifiedon" in entity.table.c else [])]
    if "modifiedon" in entity.table.c:
        return ["modifiedon"]
    return [c.name for c in entity.table.columns if c.name != "environment_id"]


class RecordWriter:
    """Turns rows of one query into records (the attributes, converters and annotations fixed
    once). Rows are read by position: the query selects `columns()` first, in that order."""

    def __init__(self, entity: EntityType, selected: Sequence[Attribute], annotate: bool) -> None:
        self.entity = entity
        self.attrs = list(selected)
        if not any(a.logical_name == entity.primary_id for a in self.attrs):
            pk = entity.by_logical(entity.primary_id)
            assert pk is not None
            self.attrs.append(pk)
        self.annotate = annotate
        self._columns = list(dict.fromkeys([*(a.logical_name for a in self.attrs), *etag_columns(entity)]))
        index = {name: i for i, name in enumerate(self._columns)}
        self._plan = [(a, index[a.logical_name], converter(a)) for a in self.attrs]
        self._version = index.get("versionnumber")
        self._modified = index.get("modifiedon")

    def columns(self) -> list[str]:
        """The SQL columns the query must read, first and in this order."""
        return list(self._columns)

    def etag(self, row: Any) -> str:
        version = row[self._version] if self._version is not None else None
        modified = row[self._modified] if self._modified is not None else None
        return _etag(version, modified, row[: len(self._columns)])

    def record(self, row: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": self.etag(row)}
        if not self.annotate:
            for a, i, convert in self._plan:
                value = row[i]
                out[a.property] = value if convert is None else convert(value)
            return out
        for a, i, _ in self._plan:
            value = row[i]
            text = formatted(a, value)
            if text is not None:
                out[f"{a.property}@{FORMATTED}"] = text
            if a.target is not None and value is not None:
                out[f"{a.property}@Microsoft.Dynamics.CRM.lookuplogicalname"] = a.target
            out[a.property] = wire(value)
        return out

    def records(self, rows: Iterable[Any]) -> list[dict[str, Any]]:
        record = self.record
        return [record(r) for r in rows]


def wants_formatted(prefer: dict[str, str]) -> bool:
    pattern = prefer.get("odata.include-annotations", "").strip('"')
    if not pattern:
        return False
    return any(
        p.strip() in ("*", FORMATTED, "OData.Community.Display.V1.*", "OData.Community.*")
        for p in pattern.split(",")
    )
