"""Collection queries: $select, $filter, $orderby, $top, $count, `Prefer: odata.maxpagesize`, and
keyset paging behind an opaque `$skiptoken`.

Follows "Query data using the Web API" and "Page results": the default and largest page is 5,000
records (a larger `odata.maxpagesize` is answered with 5,000), the applied size is echoed in
`Preference-Applied`, and `@odata.nextLink` is an absolute URL holding the same query plus a
`$skiptoken`. `$skip` is refused, as Dataverse refuses it. `@odata.count` counts at most 5,000, as
Dataverse's does, with `@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded` beyond.

Paging is keyset paging, so a page deep in a million rows costs what the first one does: the rows
are ordered by the $orderby keys (strings by `casefold()`, case-insensitively as Dataverse, and
by code point after folding on both backends) and then
the primary key (NULLs first ascending, last descending,
as SQL Server orders them), and the token carries the last row's key values; the next page is
the rows strictly after them. The token is base64url JSON, opaque to clients, and every value in
it is bound as a typed parameter.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, false, func, literal, or_, select, true

from syncd.dataverse.textfold import casefold
from syncd.webapi.compile import compile_filter, resolve
from syncd.webapi.entities import Attribute, EntityType
from syncd.webapi.errors import bad_query
from syncd.webapi.filter import parse_filter

MAX_PAGE_SIZE = 5000
MAX_COUNT = 5000
KNOWN_OPTIONS = ("$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$expand")


def parse_prefer(values: list[str]) -> dict[str, str]:
    """`Prefer` header(s) as {preference: value} (`odata.maxpagesize=10, odata.include-annotations="*"`)."""
    out: dict[str, str] = {}
    for header in values:
        for part in _split_commas(header):
            key, _, value = part.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip()
    return out


def _split_commas(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def page_size(prefer: dict[str, str]) -> int:
    raw = prefer.get("odata.maxpagesize")
    if raw is None:
        return MAX_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise bad_query(f"The value '{raw}' of the odata.maxpagesize preference is not an integer.") from None
    if size <= 0:
        raise bad_query(f"The value '{raw}' of the odata.maxpagesize preference must be positive.")
    return min(size, MAX_PAGE_SIZE)


#: Other ways Dataverse reads rows (a SQL query, FetchXML, saved and user views): not served, and
#: refused rather than ignored (ignored, they would answer every row).
UNSERVED_PARAMETERS = ("sql", "fetchXml", "savedQuery", "userQuery")


def check_options(params: dict[str, str], allowed: tuple[str, ...] = KNOWN_OPTIONS) -> None:
    for key in params:
        if key in UNSERVED_PARAMETERS:
            raise bad_query(f"The query parameter '{key}' is not supported by this simulated environment.")
        if key.startswith("$") and key not in allowed:
            if key == "$skip":
                raise bad_query("The query parameter $skip is not supported; page with odata.maxpagesize.")
            raise bad_query(f"The query parameter '{key}' is not supported.")
        if key.startswith("@"):
            raise bad_query(f"The parameter alias '{key}' is not supported.")
    if "$expand" in params:
        raise bad_query("The query option $expand is not supported by this simulated environment.")


def parse_select(entity: EntityType, raw: str | None) -> list[Attribute]:
    """The selected attributes; all of them when $select is absent (an empty one is a 400)."""
    if raw is None:
        return list(entity.attributes.values())
    if not raw.strip():
        raise bad_query("The $select query option is empty: name at least one property, or leave it out.")
    out: list[Attribute] = []
    for name in raw.split(","):
        name = name.strip()
        if name == "*":
            return list(entity.attributes.values())
        out.append(resolve(entity, name))
    return list({a.property: a for a in out}.values())


def parse_orderby(entity: EntityType, raw: str | None) -> list[tuple[Attribute, bool]]:
    """[(attribute, descending)]."""
    if raw is None or not raw.strip():
        return []
    out: list[tuple[Attribute, bool]] = []
    for item in raw.split(","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise bad_query(f"Syntax error in the $orderby expression '{raw}'.")
        out.append((resolve(entity, words[0]), len(words) == 2 and words[1].lower() == "desc"))
    return out


def parse_top(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        top = int(raw)
    except ValueError:
        raise bad_query(
            f"Invalid value '{raw}' for $top query option found. The $top query option requires a non-negative integer value."
        ) from None
    if top < 0:
        raise bad_query(
            f"Invalid value '{raw}' for $top query option found. The $top query option requires a non-negative integer value."
        )
    return top


def parse_count(raw: str | None) -> bool:
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise bad_query(f"'{raw}' is not a valid count option.")
    return raw.lower() == "true"


# -- the paging token -------------------------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return v.isoformat()
    return value


def _decode_value(attr: Attribute, value: Any) -> Any:
    """A key value of a $skiptoken, typed by its column; ValueError for one the column cannot hold."""
    if value is None:
        if not attr.column.nullable:
            raise ValueError("null for a column that is never null")
        return None
    if attr.edm == "Edm.Guid":
        return uuid.UUID(str(value))
    if attr.edm == "Edm.DateTimeOffset":
        return datetime.fromisoformat(str(value)).astimezone(UTC)
    if attr.edm == "Edm.Boolean":
        return bool(value)
    if attr.edm in ("Edm.Int32", "Edm.Int64"):
        number = int(value)
        if type(value) is not int or not -(2**63) <= number < 2**63:
            raise ValueError("not an Edm.Int64")
        return number
    text = str(value)
    if "\x00" in text:
        raise ValueError("a NUL character")
    return text


def encode_token(keys: list[Any], served: int, order: str) -> str:
    raw = orjson.dumps({"k": [_encode_value(v) for v in keys], "n": served, "o": order})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Token:
    keys: list[Any]
    served: int


def decode_token(raw: str, key_attrs: list[Attribute], order: str) -> Token:
    bad = bad_query("The $skiptoken is not valid for this query.")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        keys, served = data["k"], data["n"]
        if (
            data["o"] != order
            or not isinstance(keys, list)
            or len(keys) != len(key_attrs)
            or type(served) is not int
            or not 0 <= served < 2**63
        ):
            raise bad
        return Token([_decode_value(a, v) for a, v in zip(key_attrs, keys, strict=True)], served)
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise bad from None


def _key(attr: Attribute) -> ColumnElement[Any]:
    """What a property orders by: strings case-insensitively, as Dataverse's collation orders them."""
    return casefold(attr.column) if attr.edm == "Edm.String" else attr.column


def _ordering(attr: Attribute, desc: bool) -> Any:
    """ORDER BY term: NULLs first ascending, last descending; nothing said for a NOT NULL column, so
    that an index (the primary key's) serves the order and a deep page stays cheap."""
    key = _key(attr)
    if not attr.column.nullable:
        return key.desc() if desc else key.asc()
    return key.desc().nulls_last() if desc else key.asc().nulls_first()


# -- the query --------------------------------------------------------------------------------------


@dataclass
class Page:
    rows: list[Any]
    next_token: str | None
    count: int | None
    count_exceeded: bool
    size: int


@dataclass
class CollectionQuery:
    entity: EntityType
    selected: list[Attribute]
    where: ColumnElement[bool] | None
    order: list[tuple[Attribute, bool]]
    order_text: str
    top: int | None
    count: bool
    token: Token | None

    @classmethod
    def from_params(cls, entity: EntityType, params: dict[str, str]) -> CollectionQuery:
        check_options(params)
        selected = parse_select(entity, params.get("$select"))
        raw_filter = params.get("$filter")
        where = compile_filter(entity, parse_filter(raw_filter)) if raw_filter is not None else None
        order = parse_orderby(entity, params.get("$orderby"))
        pk = entity.by_logical(entity.primary_id)
        assert pk is not None
        keys = list(order)
        if not any(a is pk for a, _ in keys):
            keys.append((pk, False))
        else:  # the primary key is unique: nothing after it orders anything
            keys = keys[: [a for a, _ in keys].index(pk) + 1]
        order_text = ",".join(f"{a.property} {'desc' if d else 'asc'}" for a, d in keys)
        token = None
        if "$skiptoken" in params:
            token = decode_token(params["$skiptoken"], [a for a, _ in keys], order_text)
        return cls(
            entity=entity,
            selected=selected,
            where=where,
            order=keys,
            order_text=order_text,
            top=parse_top(params.get("$top")),
            count=parse_count(params.get("$count")),
            token=token,
        )

    def run(
        self,
        conn: Connection,
        env_id: int,
        columns: list[str],
        size: int,
        extra: ColumnElement[bool] | None = None,
    ) -> Page:
        entity = self.entity
        table = entity.table
        scope = [entity.env_column == env_id] if entity.env_column is not None else []
        if self.where is not None:
            scope.append(self.where)
        if extra is not None:
            scope.append(extra)
        served = self.token.served if self.token else 0
        if self.top is not None:
            size = min(size, max(self.top - served, 0))
        count = None
        exceeded = False
        if self.count and self.token is None:
            counted = select(func.count()).select_from(
                select(entity.pk).where(*scope).limit(MAX_COUNT + 1).subquery()
            )
            n = int(conn.execute(counted).scalar_one())  # $count ignores $top, as OData says
            count, exceeded = min(n, MAX_COUNT), n > MAX_COUNT
        if size == 0:
            return Page([], None, count, exceeded, 0)
        keys_sql = [_key(a).label(f"_key{i}") for i, (a, _) in enumerate(self.order)]
        cols = [*(table.c[name] for name in columns), *keys_sql]
        stmt = select(*cols).where(*scope)
        if self.token is not None:
            stmt = stmt.where(self._after(self.token.keys))
        stmt = stmt.order_by(*(_ordering(a, desc) for a, desc in self.order)).limit(size + 1)
        rows = list(conn.execute(stmt).all())
        next_token = None
        more = len(rows) > size
        rows = rows[:size]
        if more and (self.top is None or served + size < self.top):
            keys = list(rows[-1][len(columns) :])  # the _key<i> columns, selected last
            next_token = encode_token(keys, served + len(rows), self.order_text)
        return Page(rows, next_token, count, exceeded, size)

    def _after(self, keys: list[Any]) -> ColumnElement[bool]:
        """Rows strictly after `keys` in the query's order."""
        clauses: list[ColumnElement[bool]] = []
        equal: list[ColumnElement[bool]] = []
        for (attr, desc), value in zip(self.order, keys, strict=True):
            col = _key(attr)
            after: ColumnElement[bool]
            same: ColumnElement[bool]
            if value is None:
                after = false() if desc else col.is_not(None)
                same = col.is_(None)
            else:
                bound = literal(value, col.type)
                after = or_(col < bound, col.is_(None)) if desc else col > bound
                same = col == bound
            clauses.append(and_(*equal, after) if equal else after)
            equal.append(same)
        return or_(*clauses) if clauses else true()
