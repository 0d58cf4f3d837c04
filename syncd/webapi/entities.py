"""The entity types the Web API serves, derived from the SQLAlchemy table metadata.

Nothing here lists a table's columns: every attribute is a column of the table as the schema
declares it (SQL name, type, length), so a column added, renamed or dropped in
`syncd.dataverse.schema` shows here as it is. Tables that are not there yet (businessunit, team and
their intersect tables) are simply not served until the schema has them.

Mapping (Dataverse "Web API types and operations", "Attribute metadata"):

- entity set name: the logical name (the table name) + "s", as Dataverse names these sets;
- every column but `environment_id` is an attribute (the environment is the organization itself);
- a column with a foreign key to another served table is a lookup, exposed as `_<name>_value`;
- SQL type -> attribute type: Uuid -> Uniqueidentifier (Edm.Guid), String -> String, Text -> Memo,
  Boolean -> Boolean, small/integer -> Integer (Picklist when the column has choice labels below),
  BigInteger -> BigInt, DateTime -> DateTime (Edm.DateTimeOffset).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, String, Table, Text, Uuid

ENV_COLUMN = "environment_id"

#: The tables served as entity types: logical name -> (primary name attribute candidates, alternate keys).
ENTITY_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "systemuser": (("fullname", "domainname"), ("azureactivedirectoryobjectid",)),
    "role": (("name",), ()),
    "businessunit": (("name",), ()),
    "team": (("name",), ("azureactivedirectoryobjectid",)),
}

#: Many-to-many navigation properties: (entity, property, intersect table, own column, target
#: entity, target column). Each is served only when all its tables exist.
MANY_TO_MANY: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("systemuser", "systemuserroles_association", "systemuserroles", "systemuserid", "role", "roleid"),
    ("role", "systemuserroles_association", "systemuserroles", "roleid", "systemuser", "systemuserid"),
    ("systemuser", "teammembership_association", "teammembership", "systemuserid", "team", "teamid"),
    ("team", "teammembership_association", "teammembership", "teamid", "systemuser", "systemuserid"),
    ("team", "teamroles_association", "teamroles", "teamid", "role", "roleid"),
    ("role", "teamroles_association", "teamroles", "roleid", "team", "teamid"),
)

#: Choice (option set) labels of integer columns, as Dataverse labels them (language 1033). A column
#: listed here that the table lacks is ignored.
CHOICES: dict[tuple[str, str], dict[int, str]] = {
    ("systemuser", "accessmode"): {
        0: "Read-Write",
        1: "Administrative",
        2: "Read",
        3: "Support User",
        4: "Non-interactive",
        5: "Delegated Admin",
    },
    ("systemuser", "azurestate"): {0: "Exists", 1: "Soft deleted", 2: "Not found or hard deleted"},
    ("systemuser", "caltype"): {0: "Professional", 1: "Administrative", 2: "Basic"},
    ("team", "teamtype"): {0: "Owner", 1: "Access", 2: "Security Group", 3: "Office Group"},
    ("team", "membershiptype"): {0: "Members and guests", 1: "Members", 2: "Owners", 3: "Guests"},
}

#: Two-option labels where Dataverse's are not Yes/No: (false label, true label).
BOOLEAN_LABELS: dict[tuple[str, str], tuple[str, str]] = {
    ("systemuser", "isdisabled"): ("Enabled", "Disabled"),
}

_NAMESPACE = uuid.UUID("6f1c2a53-0d7e-4c55-9b1e-1b9e0c0a5e11")


def metadata_id(*parts: str) -> str:
    """A stable MetadataId for an entity or an attribute (the same on every start)."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True, slots=True)
class Attribute:
    """One column as a Web API property."""

    logical_name: str  # the column's SQL name
    property: str  # the name in records, $select and $filter (`_x_value` for a lookup)
    column: Column  # type: ignore[type-arg]
    kind: str  # Dataverse AttributeType: String, Memo, Integer, BigInt, Boolean, DateTime, ...
    edm: str  # Edm.String, Edm.Int32, Edm.Int64, Edm.Boolean, Edm.DateTimeOffset, Edm.Guid
    max_length: int | None = None
    target: str | None = None  # the entity a lookup points at
    choices: Mapping[int, str] | None = None
    boolean_labels: tuple[str, str] = ("No", "Yes")


@dataclass(frozen=True)
class NavProperty:
    name: str
    intersect: Table
    own_column: str
    target: str
    target_column: str


@dataclass(frozen=True)
class EntityType:
    logical_name: str
    entity_set: str
    table: Table
    primary_id: str
    primary_name: str | None
    alternate_keys: tuple[str, ...]
    attributes: dict[str, Attribute]  # by property name
    navigation: dict[str, NavProperty] = field(default_factory=dict)

    @property
    def pk(self) -> Column:  # type: ignore[type-arg]
        return self.table.c[self.primary_id]

    @property
    def env_column(self) -> Column | None:  # type: ignore[type-arg]
        return self.table.c.get(ENV_COLUMN)

    def attribute(self, name: str) -> Attribute | None:
        return self.attributes.get(name)

    def by_logical(self, logical: str) -> Attribute | None:
        for a in self.attributes.values():
            if a.logical_name == logical:
                return a
        return None


def _kind(entity: str, col: Column) -> tuple[str, str]:  # type: ignore[type-arg]
    t = col.type
    if isinstance(t, Uuid):
        return "Uniqueidentifier", "Edm.Guid"
    if isinstance(t, Boolean):
        return "Boolean", "Edm.Boolean"
    if isinstance(t, DateTime):
        return "DateTime", "Edm.DateTimeOffset"
    if isinstance(t, BigInteger):
        return "BigInt", "Edm.Int64"
    if isinstance(t, Integer):
        return ("Picklist" if (entity, col.name) in CHOICES else "Integer"), "Edm.Int32"
    if isinstance(t, Text):
        return "Memo", "Edm.String"
    if isinstance(t, String):
        return "String", "Edm.String"
    return "String", "Edm.String"


def _lookup_target(col: Column, served: set[str]) -> str | None:  # type: ignore[type-arg]
    for fk in col.foreign_keys:
        target = fk.column.table.name
        if target in served:
            return target
    return None


def build_entity_types(metadata: MetaData) -> dict[str, EntityType]:
    """The served entity types of `metadata`, by logical name."""
    served = {name for name in ENTITY_TABLES if name in metadata.tables}
    out: dict[str, EntityType] = {}
    for name in ENTITY_TABLES:
        if name not in served:
            continue
        table = metadata.tables[name]
        pk_cols = list(table.primary_key.columns)
        if len(pk_cols) != 1 or ENV_COLUMN not in table.c:
            continue  # not an entity table as Dataverse has them
        primary_id = str(pk_cols[0].name)
        attrs: dict[str, Attribute] = {}
        for col in table.columns:
            if col.name == ENV_COLUMN:
                continue
            kind, edm = _kind(name, col)
            target = None if col.primary_key else _lookup_target(col, served)
            prop = str(col.name)  # a plain str: a copied table's names are `quoted_name`s
            if target is not None:
                kind, edm, prop = "Lookup", "Edm.Guid", f"_{col.name}_value"
            length = getattr(col.type, "length", None) if kind == "String" else None
            attrs[prop] = Attribute(
                logical_name=str(col.name),
                property=prop,
                column=col,
                kind=kind,
                edm=edm,
                max_length=length,
                target=target,
                choices=CHOICES.get((name, col.name)),
                boolean_labels=BOOLEAN_LABELS.get((name, col.name), ("No", "Yes")),
            )
        names, keys = ENTITY_TABLES[name]
        primary_name = next((str(n) for n in names if n in table.c), None)
        out[name] = EntityType(
            logical_name=name,
            entity_set=f"{name}s",
            table=table,
            primary_id=primary_id,
            primary_name=primary_name,
            alternate_keys=tuple(k for k in keys if k in table.c),
            attributes=attrs,
        )
    for entity, prop, intersect, own, target, target_col in MANY_TO_MANY:
        if entity in out and target in out and intersect in metadata.tables:
            table = metadata.tables[intersect]
            if own in table.c and target_col in table.c:
                out[entity].navigation[prop] = NavProperty(prop, table, own, target, target_col)
    return out


@cache
def entity_types() -> dict[str, EntityType]:
    """The entity types of syncd's schema (`syncd.dataverse.schema`)."""
    from syncd.dataverse.schema import Base

    return build_entity_types(Base.metadata)


def by_entity_set() -> dict[str, EntityType]:
    return {e.entity_set: e for e in entity_types().values()}
