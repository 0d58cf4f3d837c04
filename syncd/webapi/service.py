"""One Web API request -> one response, independent of HTTP framing (the ASGI app and `$batch`
both call `handle`).

Resources under an environment's `api/data/v9.2/`:

    (empty)                                   service document: the entity sets
    WhoAmI, WhoAmI()                          the caller's UserId and BusinessUnitId, OrganizationId
                                              (403 for a caller who is no enabled user: `caller`)
    EntityDefinitions[(key)][/Attributes[(LogicalName='x')][/<cast>]]   table definitions (`metadata`)
    <set>                                     records (see `query`)
    <set>/$count                              the number of records, as text (at most 5,000)
    <set>(<guid>) | <set>(<altkey>=<value>)   one record, 404 0x80040217 when there is none
    <set>(<key>)/<property>                   one property: {"value": ...}
    <set>(<key>)/<navigation>                 the related records of a many-to-many relationship

Only the environment's own rows are ever read: every statement carries `environment_id = :env`,
and `environment_id` is no property. Writes: PATCH of one systemuser (see `writes` and `writer`);
POST and DELETE of systemusers are refused as Dataverse refuses them here; other writes are 501.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from syncd.webapi import caller, metadata, writes
from syncd.webapi.compile import bind_value, db_value
from syncd.webapi.entities import EntityType, entity_types
from syncd.webapi.errors import (
    ODataError,
    bad_query,
    method_not_allowed,
    no_property,
    no_record,
    no_segment,
    not_implemented,
)
from syncd.webapi.filter import Literal, tokenize
from syncd.webapi.query import CollectionQuery, check_options, page_size, parse_prefer, parse_select
from syncd.webapi.records import RecordWriter, wants_formatted

JSON_TYPE = (
    "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
)
_SEGMENT = re.compile(r"^(?P<name>[A-Za-z_$][\w.$]*)(?:\((?P<key>.*)\))?$", re.DOTALL)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SAFE = "'(),:"
_WRITES = ("POST", "PATCH", "PUT", "DELETE", "MERGE")


@dataclass
class Environment:
    id: int
    name: str


@dataclass
class Request:
    method: str
    segments: list[str]  # decoded path segments after api/data/v9.2/
    params: dict[str, str]
    headers: dict[str, list[str]]  # lower-case names
    root: str  # absolute service root of the environment, ending in '/'
    env: Environment
    entities: dict[str, EntityType] = field(default_factory=entity_types)  # by logical name
    body: bytes = b""  # the request's body (a write's JSON)
    writes: bool = True  # whether this server takes writes (the daemon's endpoint does not)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None

    @property
    def path(self) -> str:
        return "/".join(self.segments)


@dataclass
class Response:
    status: int
    body: Any = None  # a JSON value, or bytes/str sent as they are
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body)

    def content_type(self) -> str:
        if "Content-Type" in self.headers:
            return self.headers["Content-Type"]
        return JSON_TYPE


def error_response(exc: ODataError) -> Response:
    return Response(exc.status, exc.body())


def handle(engine: Engine, request: Request) -> Response:
    """Answer one request; every failure the client can fix is a Dataverse error body."""
    try:
        with engine.connect() as conn:
            return _Handler(conn, request, engine).dispatch()
    except ODataError as exc:
        return error_response(exc)


def find_environment(engine: Engine, name: str) -> Environment | None:
    from syncd.dataverse.environments import impossible_name
    from syncd.dataverse.schema import Environment as EnvRow

    if impossible_name(name):  # a NUL would fail the query on PostgreSQL: no such environment
        return None
    with engine.connect() as conn:
        row = conn.execute(select(EnvRow.id, EnvRow.name).where(EnvRow.name == name)).first()
    return Environment(row.id, row.name) if row is not None else None


def parse_key(entity: EntityType, raw: str) -> tuple[str, Any]:
    """`(guid)` or `(altkey=value)` as (column, typed value); 400 for anything else."""
    raw = raw.strip()
    if _GUID.match(raw):
        return entity.primary_id, uuid.UUID(raw)
    name, eq, value = raw.partition("=")
    name = name.strip()
    if not eq:
        raise bad_query(f"Bad Request - Error in query syntax: the key '{raw}' is not a GUID.")
    if name != entity.primary_id and name not in entity.alternate_keys:
        raise bad_query(f"The key '{name}' is not a key of '{entity.logical_name}'.")
    attr = entity.by_logical(name)
    assert attr is not None
    toks = tokenize(value.strip())
    if len(toks) != 1:
        raise bad_query(f"Bad Request - Error in query syntax: the key value '{value}' is not one literal.")
    tok = toks[0]
    if tok.kind == "guid":
        lit = Literal(tok.text.lower(), "guid")
    elif tok.kind == "string":
        lit = Literal(tok.text[1:-1].replace("''", "'"), "string")
        if attr.edm == "Edm.Guid" and _GUID.match(lit.value):
            lit = Literal(lit.value.lower(), "guid")
    elif tok.kind == "number":
        lit = Literal(int(tok.text), "int")
    else:
        raise bad_query(f"Bad Request - Error in query syntax: the key value '{value}' is not valid.")
    return name, db_value(attr, bind_value(attr, lit))


def _context_select(selected_raw: str | None) -> str:
    if not selected_raw:
        return ""
    return "(" + ",".join(s.strip() for s in selected_raw.split(",") if s.strip()) + ")"


class _Handler:
    def __init__(self, conn: Connection, request: Request, engine: Engine | None = None) -> None:
        self.conn = conn
        self.engine = engine
        self.req = request
        self.entities = request.entities
        self.prefer = parse_prefer(request.headers.get("prefer", []))

    def dispatch(self) -> Response:
        segs = self.req.segments
        if not segs or segs == [""]:
            self._get_only()
            return self.service_document()
        first = _SEGMENT.match(segs[0])
        if first is None:
            raise no_segment(segs[0])
        name, key = first.group("name"), first.group("key")
        if name == "WhoAmI" and len(segs) == 1 and key in (None, ""):
            if self.req.method != "GET":
                raise method_not_allowed(self.req.method, self.req.path)
            return self.who_am_i()
        if name == "EntityDefinitions":
            return self.entity_definitions(key, segs[1:])
        entity = {e.entity_set: e for e in self.entities.values()}.get(name)
        if entity is None:
            raise no_segment(name)
        if self.req.method in _WRITES:
            return self.write(entity, key, segs)
        self._get_only()
        if key is None:
            if len(segs) == 2 and segs[1] == "$count":
                return self.count(entity)
            if len(segs) > 1:
                raise no_segment(segs[1])
            return self.collection(entity, self.req.root + entity.entity_set)
        column, value = parse_key(entity, key)
        if len(segs) == 1:
            return self.single(entity, column, value)
        if len(segs) == 2:
            nav = entity.navigation.get(segs[1])
            if nav is not None:
                return self.related(entity, column, value, segs[1])
            if entity.attribute(segs[1]) is not None:
                return self.property(entity, column, value, segs[1])
            raise no_segment(segs[1])
        raise no_segment(segs[2])

    def _get_only(self) -> None:
        if self.req.method != "GET":
            raise method_not_allowed(self.req.method, self.req.path)

    def _headers(self, size: int | None = None) -> dict[str, str]:
        applied = []
        if size is not None and "odata.maxpagesize" in self.prefer:
            applied.append(f"odata.maxpagesize={size}")
        if "odata.include-annotations" in self.prefer:
            applied.append(f"odata.include-annotations={self.prefer['odata.include-annotations']}")
        return {"Preference-Applied": ",".join(applied)} if applied else {}

    # -- documents -----------------------------------------------------------------------------

    def service_document(self) -> Response:
        sets = [
            {"name": e.entity_set, "kind": "EntitySet", "url": e.entity_set} for e in self.entities.values()
        ]
        sets.append({"name": "EntityDefinitions", "kind": "EntitySet", "url": "EntityDefinitions"})
        return Response(200, {"@odata.context": self.req.root + "$metadata", "value": sets})

    def who_am_i(self) -> Response:
        """The caller's UserId, its business unit and the organization; the caller must be an
        enabled user of the environment (see `caller`)."""
        env = self.req.env
        claims = caller.unchecked_claims(self.req.header("authorization"))
        user_id = caller.find_caller(self.conn, self.entities, env.id, env.name, claims)
        org = caller.organization_id(env.id, env.name)
        bu = self._business_unit_of(user_id) or self._root_business_unit() or uuid.uuid5(org, "businessunit")
        return Response(
            200,
            {
                "@odata.context": self.req.root + "$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": str(bu),
                "UserId": str(user_id),
                "OrganizationId": str(org),
            },
        )

    def _business_unit_of(self, user_id: uuid.UUID) -> uuid.UUID | None:
        users = self.entities.get("systemuser")
        if users is None or "businessunitid" not in users.table.c:
            return None
        t = users.table
        row = self.conn.execute(
            select(t.c.businessunitid).where(t.c.environment_id == self.req.env.id, users.pk == user_id)
        ).first()
        return row[0] if row is not None else None

    def _root_business_unit(self) -> uuid.UUID | None:
        bu = self.entities.get("businessunit")
        if bu is None:
            return None
        t = bu.table
        stmt = select(bu.pk).where(t.c.environment_id == self.req.env.id)
        if "parentbusinessunitid" in t.c:
            stmt = stmt.order_by(t.c.parentbusinessunitid.is_not(None))
        row = self.conn.execute(stmt.limit(1)).first()
        return row[0] if row is not None else None

    def entity_definitions(self, key: str | None, rest: list[str]) -> Response:
        if self.req.method in _WRITES:
            raise not_implemented(self.req.method)
        self._get_only()
        root = self.req.root
        entities = list(self.entities.values())
        if key is None and not rest:
            values = metadata.entity_definitions(entities, self.req.params)
            return Response(200, {"@odata.context": root + "$metadata#EntityDefinitions", "value": values})
        if key is None:
            raise no_segment(rest[0])
        entity = _entity_by_definition_key(entities, key)
        if not rest:
            check_options(self.req.params, ("$select", "$expand"))
            [one] = metadata.query([metadata.entity_definition(entity)], self.req.params, "EntityMetadata")
            return Response(200, {"@odata.context": root + "$metadata#EntityDefinitions/$entity", **one})
        m = _SEGMENT.match(rest[0])
        if (
            m is not None
            and m.group("name") == "Attributes"
            and m.group("key") is None
            and len(rest) == 2
            and metadata.is_attribute_cast(rest[1])
        ):
            values = metadata.attribute_definitions(entity, self.req.params, rest[1])
            ctx = root + f"$metadata#EntityDefinitions('{entity.logical_name}')/Attributes/{rest[1]}"
            return Response(200, {"@odata.context": ctx, "value": values})
        attributes = m is not None and m.group("name") == "Attributes"
        cast = rest[1] if attributes and len(rest) == 2 else None
        if m is None or not attributes or len(rest) > 2 or (cast and not metadata.is_attribute_cast(cast)):
            raise no_segment(rest[-1] if attributes else rest[0])
        if m.group("key") is None:
            values = metadata.attribute_definitions(entity, self.req.params)
            ctx = root + f"$metadata#EntityDefinitions('{entity.logical_name}')/Attributes"
            return Response(200, {"@odata.context": ctx, "value": values})
        return self.attribute_definition(entity, m.group("key"), cast)

    def attribute_definition(self, entity: EntityType, attr_key: str, cast: str | None) -> Response:
        """One attribute's definition, by `LogicalName='x'` or MetadataId; with `cast`, only when
        the attribute is of that type (else 404, as OData's "Addressing Derived Types" says), with
        the type in the context instead of an `@odata.type`, as Dataverse answers."""
        ctx = f"{self.req.root}$metadata#EntityDefinitions('{entity.logical_name}')/Attributes"
        for a in entity.attributes.values():
            body = metadata.attribute_definition(entity, a)
            if attr_key not in (f"LogicalName='{a.logical_name}'", body["MetadataId"]):
                continue
            if cast is None:
                [one] = metadata.query([body], self.req.params, "AttributeMetadata")
                return Response(200, {"@odata.context": ctx + "/$entity", **one})
            if not metadata.is_of_type(body, cast):
                raise no_segment(cast)
            [one] = metadata.query([body], self.req.params, cast.removeprefix("Microsoft.Dynamics.CRM."))
            one.pop("@odata.type", None)
            ctx += f"/{cast}{metadata.context_select(self.req.params)}/$entity"
            return Response(200, {"@odata.context": ctx, **one})
        raise ODataError(404, "0x80040217", f"Could not find attribute with key {attr_key}.")

    # -- writes --------------------------------------------------------------------------------

    def write(self, entity: EntityType, key: str | None, segs: list[str]) -> Response:
        """PATCH of one systemuser (`writes`); POST and DELETE answered as Dataverse answers a
        customer for users; every other write is not served."""
        method = self.req.method
        if not self.req.writes:
            raise ODataError(
                501,
                "0x80060888",
                "This endpoint serves reads only: the daemon's endpoint checks no token, so it takes no "
                "writes. Use `syncd dataverse serve` (with --require-token) to write.",
            )
        if not writes.writable(entity) or len(segs) != 1:
            raise not_implemented(method)
        if method == "POST" and key is None:
            raise writes.create_refused()
        if method == "DELETE" and key is not None:
            parse_key(entity, key)
            raise writes.delete_refused(entity)
        if method != "PATCH" or key is None or self.engine is None:
            raise method_not_allowed(method, self.req.path)
        column, value = parse_key(entity, key)
        values = writes.parse_body(entity, self.req.body)
        written = writes.update(
            self.engine,
            self.req.env.id,
            column,
            value,
            values,
            if_match=self.req.header("if-match"),
            caller=_caller(caller.unchecked_claims(self.req.header("authorization"))),
        )
        location = f"{self.req.root}{entity.entity_set}({written.systemuserid})"
        if self.prefer.get("return") == "representation":
            response = self.single(entity, entity.primary_id, written.systemuserid)
            response.headers["Preference-Applied"] = "return=representation"
            response.headers["OData-EntityId"] = location
            return response
        return Response(204, None, {"OData-EntityId": location})

    # -- data ----------------------------------------------------------------------------------

    def _scope(self, entity: EntityType, column: str, value: Any) -> list[Any]:
        t = entity.table
        return [t.c.environment_id == self.req.env.id, t.c[column] == value]

    def count(self, entity: EntityType) -> Response:
        query = CollectionQuery.from_params(
            entity, {k: v for k, v in self.req.params.items() if k == "$filter"}
        )
        query.count = True
        page = query.run(self.conn, self.req.env.id, [entity.primary_id], 0)
        return Response(200, str(page.count), {"Content-Type": "text/plain;charset=utf-8"})

    def collection(self, entity: EntityType, base_url: str, extra: Any = None) -> Response:
        params = self.req.params
        query = CollectionQuery.from_params(entity, params)
        writer = RecordWriter(entity, query.selected, wants_formatted(self.prefer))
        size = page_size(self.prefer)
        page = query.run(self.conn, self.req.env.id, writer.columns(), size, extra)
        body: dict[str, Any] = {
            "@odata.context": self.req.root
            + "$metadata#"
            + entity.entity_set
            + _context_select(params.get("$select"))
        }
        if page.count is not None:
            body["@odata.count"] = page.count
            if page.count_exceeded:
                body["@Microsoft.Dynamics.CRM.totalrecordcount"] = -1
                body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = True
        body["value"] = writer.records(page.rows)
        if page.next_token is not None:
            kept = {k: v for k, v in params.items() if k in ("$select", "$filter", "$orderby", "$top")}
            kept["$skiptoken"] = page.next_token
            body["@odata.nextLink"] = base_url + "?" + _query_string(kept)
        return Response(200, body, self._headers(size))

    def single(self, entity: EntityType, column: str, value: Any) -> Response:
        check_options(self.req.params, ("$select", "$expand"))
        selected = parse_select(entity, self.req.params.get("$select"))
        writer = RecordWriter(entity, selected, wants_formatted(self.prefer))
        cols = [entity.table.c[c] for c in writer.columns()]
        row = self.conn.execute(select(*cols).where(*self._scope(entity, column, value)).limit(2)).first()
        if row is None:
            raise no_record(entity.logical_name, _shown_key(value))
        ctx = (
            self.req.root + "$metadata#" + entity.entity_set + _context_select(self.req.params.get("$select"))
        )
        return Response(200, {"@odata.context": ctx + "/$entity", **writer.record(row)}, self._headers())

    def property(self, entity: EntityType, column: str, value: Any, prop: str) -> Response:
        attr = entity.attribute(prop)
        if attr is None:
            raise no_property(prop, entity.logical_name)
        row = self.conn.execute(select(attr.column).where(*self._scope(entity, column, value))).first()
        if row is None:
            raise no_record(entity.logical_name, _shown_key(value))
        from syncd.webapi.records import wire

        ctx = f"{self.req.root}$metadata#{entity.entity_set}({_shown_key(value)})/{prop}"
        return Response(200, {"@odata.context": ctx, "value": wire(row[0])})

    def related(self, entity: EntityType, column: str, value: Any, nav_name: str) -> Response:
        nav = entity.navigation[nav_name]
        row = self.conn.execute(select(entity.pk).where(*self._scope(entity, column, value))).first()
        if row is None:
            raise no_record(entity.logical_name, _shown_key(value))
        target = self.entities[nav.target]
        link = nav.intersect.c
        extra = target.table.c[nav.target_column].in_(
            select(link[nav.target_column]).where(link[nav.own_column] == row[0])
        )
        base = f"{self.req.root}{entity.entity_set}({row[0]})/{nav_name}"
        return self.collection(target, base, extra)


def _entity_by_definition_key(entities: list[EntityType], key: str) -> EntityType:
    for e in entities:
        if key in (f"LogicalName='{e.logical_name}'", metadata.entity_definition(e)["MetadataId"]):
            return e
    raise ODataError(404, "0x80040217", f"Could not find entity with key {key}.")


def _shown_key(value: Any) -> str:
    return str(value)


def _query_string(params: dict[str, str]) -> str:
    from urllib.parse import quote

    return "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in params.items())


def _caller(claims: dict[str, Any]) -> str:
    """Who a write is recorded as: the token's app, user or object id."""
    for claim, label in (("upn", "user"), ("appid", "app"), ("azp", "app"), ("oid", "object")):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return f"{label} {value}"
    return "an unauthenticated caller"
