"""Small pieces of Graph's wire format: error bodies, page bodies, absolute links, paging options."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response

from syncd.directory.fake.errors import StoreError
from syncd.directory.fake.keys import object_key
from syncd.directory.ids import is_object_id

JSON = "application/json"


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def bad_request(message: str, code: str = "Request_BadRequest") -> StoreError:
    return StoreError(code, message, 400)


def json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=JSON)


def raw(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=JSON)


def link(request: Request, path: str, params: dict[str, str]) -> str:
    """An absolute URL on this server (the request's own base URL) with the given query."""
    base = str(request.base_url).rstrip("/")
    query = urlencode({k: v for k, v in params.items() if v is not None}, safe="$,'()")
    return f"{base}{path}" + (f"?{query}" if query else "")


def context(request: Request, what: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/v1.0/$metadata#{what}"


def page(
    ctx: str,
    items: list[bytes],
    *,
    next_link: str | None = None,
    delta_link: str | None = None,
    count: int | None = None,
) -> bytes:
    """A collection page; the items are spliced in as they are (already JSON), with one copy of
    their bytes (a page of 999 users is half a megabyte)."""
    parts = [b'{"@odata.context":', orjson.dumps(ctx)]
    if count is not None:
        parts += [b',"@odata.count":', str(count).encode()]
    if next_link is not None:
        parts += [b',"@odata.nextLink":', orjson.dumps(next_link)]
    parts.append(b',"value":[')
    if items:
        separated = [b","] * (2 * len(items) - 1)
        separated[::2] = items
        parts += separated
    parts.append(b"]")
    if delta_link is not None:
        parts += [b',"@odata.deltaLink":', orjson.dumps(delta_link)]
    parts.append(b"}")
    return b"".join(parts)


def max_page_size(request: Request, default: int = 200, most: int = 999) -> int:
    """The page size a `Prefer: odata.maxpagesize=N` header asks for (clamped to 1..most)."""
    prefer = request.headers.get("prefer", "")
    for part in prefer.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, min(most, int(value.strip())))
            except ValueError:
                break
    return default


def top(request: Request, default: int = 100) -> int:
    raw_top = request.query_params.get("$top")
    if raw_top is None:
        return default
    try:
        value = int(raw_top)
    except ValueError:
        raise bad_request("Invalid value for $top.") from None
    if not 1 <= value <= 999:
        raise bad_request("Invalid page size specified: '$top' must be between 1 and 999.")
    return value


def parse_filter(raw_filter: str | None, fields: dict[str, type]) -> dict[str, Any]:
    """`a eq true and b eq 'x'` over the given fields (bool or str) into {field: value}."""
    if raw_filter is None or not raw_filter.strip():
        return {}
    out: dict[str, Any] = {}
    for clause in raw_filter.replace(" AND ", " and ").split(" and "):
        words = clause.strip().split(" ", 2)
        if len(words) != 3 or words[1].lower() != "eq" or words[0] not in fields:
            raise bad_request(
                f"Unsupported or invalid filter clause: {clause.strip()!r}.", "Request_UnsupportedQuery"
            )
        name, value = words[0], words[2].strip()
        if fields[name] is bool and value in ("true", "false"):
            out[name] = value == "true"
        elif fields[name] is str and len(value) >= 2 and value[0] == value[-1] == "'":
            out[name] = value[1:-1].replace("''", "'")
        else:
            raise bad_request(
                f"Invalid value in filter clause: {clause.strip()!r}.", "Request_UnsupportedQuery"
            )
    return out


def parse_id_filter(raw_filter: str | None) -> tuple[str, ...]:
    """`id eq '...' or id eq '...'` (the groups delta filter) as canonical object ids."""
    if raw_filter is None or not raw_filter.strip():
        return ()
    ids: list[str] = []
    for clause in raw_filter.replace(" OR ", " or ").split(" or "):
        words = clause.strip().split(" ", 2)
        value = words[2].strip() if len(words) == 3 else ""
        quoted = len(value) >= 2 and value[0] == value[-1] == "'"
        if not quoted or words[0] != "id" or words[1].lower() != "eq":
            raise bad_request(
                f"Unsupported or invalid filter clause: {clause.strip()!r}.", "Request_UnsupportedQuery"
            )
        if not is_object_id(value[1:-1]):
            raise bad_request(f"Invalid object identifier {value}.")
        ids.append(object_key(value[1:-1]))
    return tuple(dict.fromkeys(ids))


#: Graph's default limit on the values of an `in` (each one an `or` clause to the directory): "When
#: using the in operator, the request is limited to 15 expressions in the filter clause by default"
#: (Graph known issues, query parameters; advanced queries lift it to a URL of 2,048 characters).
IN_LIMIT = 15
_ID_IN = re.compile(r"^\s*id\s+in\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def split_id_in(raw_filter: str | None) -> tuple[tuple[str, ...] | None, str | None]:
    """Take an `id in ('a','b',...)` clause out of a users `$filter` (joined to the rest by `and`):
    its ids (canonical, in order, without repeats) and the rest of the filter. (None, the filter)
    when there is no such clause. More than IN_LIMIT values: 400 Request_UnsupportedQuery, in
    Graph's words; a value that is not a quoted object id: 400."""
    if raw_filter is None or " in" not in raw_filter.lower():
        return None, raw_filter
    clauses = raw_filter.replace(" AND ", " and ").split(" and ")
    found: tuple[str, ...] | None = None
    rest: list[str] = []
    for clause in clauses:
        match = _ID_IN.match(clause)
        if match is None:
            rest.append(clause)
            continue
        if found is not None:
            raise bad_request("Only one 'id in (...)' clause is supported.", "Request_UnsupportedQuery")
        values = [v.strip() for v in match.group(1).split(",")]
        if values == [""]:
            raise bad_request(f"Invalid filter clause: {clause.strip()!r}.", "Request_UnsupportedQuery")
        if len(values) > IN_LIMIT:
            raise bad_request(
                "Too many child clauses specified in search filter expression containing 'OR' "
                f"operators: {len(values)}. Max allowed: {IN_LIMIT}.",
                "Request_UnsupportedQuery",
            )
        ids: list[str] = []
        for value in values:
            if not (len(value) >= 2 and value[0] == value[-1] == "'"):
                raise bad_request(f"Invalid filter clause: {clause.strip()!r}.", "Request_UnsupportedQuery")
            if not is_object_id(value[1:-1]):
                raise bad_request(f"Invalid object identifier {value}.")
            ids.append(object_key(value[1:-1]))
        found = tuple(dict.fromkeys(ids))
    return found, " and ".join(rest) if rest else None


async def body_json(request: Request) -> Any:
    data = await request.body()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad_request("Unable to read JSON request payload.") from None


def ref_id(body: Any) -> str:
    """The object id at the end of a `{"@odata.id": ".../directoryObjects/{id}"}` reference body."""
    if not isinstance(body, dict) or not isinstance(body.get("@odata.id"), str):
        raise bad_request('The request body must be {"@odata.id": ".../directoryObjects/{id}"}.')
    ref = body["@odata.id"].rstrip("/")
    object_id = ref.rsplit("/", 1)[-1]
    if "(" in object_id:  # directoryObjects('id') spelling
        object_id = object_id.split("(", 1)[1].strip("')")
    if not object_id or "directoryObjects" not in ref and "users" not in ref and "groups" not in ref:
        raise bad_request(f"Invalid object reference {ref!r}.")
    return object_key(object_id)
