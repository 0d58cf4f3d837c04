"""Table definitions, as "Query table definitions using the Web API" shows them.

Served: `EntityDefinitions` (with $select and $filter, e.g. `$filter=LogicalName eq 'systemuser'`,
which is how the SDK finds an entity set and its primary key), `EntityDefinitions(LogicalName='x')`
and `EntityDefinitions(<MetadataId>)`, their `/Attributes` (with $select and $filter) and
`/Attributes(LogicalName='y')`, each also with a type cast after it
(`/Attributes(LogicalName='accessmode')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`, as
"Reference Dataverse schema definitions by name" retrieves a column's options). A cast to a type
the attribute is not an instance of is 404, as OData's URL conventions say ("Addressing Derived
Types"). Property names are Dataverse's PascalCase ones; labels are
language 1033.
"""

from __future__ import annotations

from typing import Any

from syncd.webapi.entities import Attribute, EntityType, metadata_id
from syncd.webapi.errors import bad_query, no_property
from syncd.webapi.filter import evaluate, parse_filter, properties

_ODATA_TYPES = {
    "String": "StringAttributeMetadata",
    "Memo": "MemoAttributeMetadata",
    "Integer": "IntegerAttributeMetadata",
    "BigInt": "BigIntAttributeMetadata",
    "Boolean": "BooleanAttributeMetadata",
    "DateTime": "DateTimeAttributeMetadata",
    "Uniqueidentifier": "UniqueIdentifierAttributeMetadata",
    "Lookup": "LookupAttributeMetadata",
    "Picklist": "PicklistAttributeMetadata",
}


def label(text: str) -> dict[str, Any]:
    localized = {"Label": text, "LanguageCode": 1033, "IsManaged": True}
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def _display(name: str) -> str:
    return name.replace("_", " ").strip().title()


def entity_definition(entity: EntityType) -> dict[str, Any]:
    name = entity.logical_name
    return {
        "MetadataId": metadata_id(name),
        "LogicalName": name,
        "SchemaName": name[:1].upper() + name[1:],
        "EntitySetName": entity.entity_set,
        "LogicalCollectionName": entity.entity_set,
        "CollectionSchemaName": entity.entity_set[:1].upper() + entity.entity_set[1:],
        "PrimaryIdAttribute": entity.primary_id,
        "PrimaryNameAttribute": entity.primary_name,
        "ObjectTypeCode": {"systemuser": 8, "role": 1036, "businessunit": 10, "team": 9}.get(name, 10000),
        "OwnershipType": "BusinessOwned" if name in ("systemuser", "role", "businessunit") else "UserOwned",
        "IsCustomEntity": False,
        "IsPrivate": False,
        "IsValidForAdvancedFind": True,
        "IsActivity": False,
        "IsIntersect": False,
        "TableType": "Standard",
        "DisplayName": label(_display(name)),
        "DisplayCollectionName": label(_display(entity.entity_set)),
        "Description": label(""),
    }


def attribute_definition(entity: EntityType, attr: Attribute) -> dict[str, Any]:
    col = attr.column
    body: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{_ODATA_TYPES.get(attr.kind, 'AttributeMetadata')}",
        "MetadataId": metadata_id(entity.logical_name, attr.logical_name),
        "LogicalName": attr.logical_name,
        "SchemaName": attr.logical_name,
        "EntityLogicalName": entity.logical_name,
        "AttributeType": attr.kind,
        "AttributeTypeName": {"Value": f"{attr.kind}Type"},
        "IsPrimaryId": attr.logical_name == entity.primary_id,
        "IsPrimaryName": attr.logical_name == entity.primary_name,
        "IsCustomAttribute": attr.logical_name.startswith("new_"),
        "AttributeOf": None,
        "IsLogical": False,
        "IsSecured": False,
        "IsValidForAdvancedFind": True,
        "IsValidForRead": True,
        "IsValidForCreate": False,
        "IsValidForUpdate": False,
        "RequiredLevel": {"Value": "None" if col.nullable else "SystemRequired"},
        "DisplayName": label(_display(attr.logical_name)),
        "Description": label(""),
    }
    if attr.max_length is not None:
        body["MaxLength"] = attr.max_length
        body["Format"] = "Text"
    if attr.target is not None:
        body["Targets"] = [attr.target]
    if attr.choices is not None:
        body["OptionSet"] = {
            "Options": [{"Value": v, "Label": label(t)} for v, t in sorted(attr.choices.items())],
        }
        body["GlobalOptionSet"] = None  # a local option set: the column's own choices
    if attr.kind == "Boolean":
        no, yes = attr.boolean_labels
        body["OptionSet"] = {
            "TrueOption": {"Value": 1, "Label": label(yes)},
            "FalseOption": {"Value": 0, "Label": label(no)},
        }
    return body


def _expand_items(raw: str | None) -> list[tuple[str, str]]:
    """The items of `$expand`, each as (property, its options): `OptionSet($select=Options)` ->
    ("OptionSet", "$select=Options")."""
    if not raw:
        return []
    items, depth, name, options = [], 0, "", ""
    for ch in raw + ",":
        if ch == "," and depth == 0:
            if name.strip():
                items.append((name.strip(), options))
            name, options = "", ""
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and ch != ")":
            name += ch
        elif not (depth == 1 and ch == "("):
            options += ch if depth > 0 else ""
    return items


def _expanded(raw: str | None) -> list[str]:
    """The properties `$expand` names (`OptionSet($select=Options)` -> OptionSet): kept whole."""
    return [name for name, _ in _expand_items(raw)]


def _select(
    records: list[dict[str, Any]], raw: str | None, type_name: str, expand: str | None = None
) -> list[dict[str, Any]]:
    if raw is None or not raw.strip():
        return records
    names = [n.strip() for n in raw.split(",") if n.strip()] + _expanded(expand)
    known = set().union(*(r.keys() for r in records)) if records else set()
    for n in names:
        if records and n not in known:
            raise no_property(n, type_name)
    keep = {*names, "MetadataId", "@odata.type"}
    return [{k: v for k, v in r.items() if k in keep} for r in records]


def _filter(records: list[dict[str, Any]], raw: str | None, type_name: str) -> list[dict[str, Any]]:
    if raw is None:
        return records
    node = parse_filter(raw)
    known = set().union(*(r.keys() for r in records)) if records else set()
    for n in properties(node):
        if records and n not in known:
            raise no_property(n, type_name)
    return [r for r in records if evaluate(node, r)]


def query(records: list[dict[str, Any]], params: dict[str, str], type_name: str) -> list[dict[str, Any]]:
    for key in params:
        if key.startswith("$") and key not in ("$select", "$filter", "$expand"):
            raise bad_query(f"The query parameter '{key}' is not supported on table definitions.")
    filtered = _filter(records, params.get("$filter"), type_name)
    return _select(filtered, params.get("$select"), type_name, params.get("$expand"))


def entity_definitions(entities: list[EntityType], params: dict[str, str]) -> list[dict[str, Any]]:
    return query([entity_definition(e) for e in entities], params, "EntityMetadata")


#: The attribute metadata types a cast may name, with the types each is an instance of (its own
#: and its base types: PicklistAttributeMetadata derives from EnumAttributeMetadata, every type
#: from AttributeMetadata).
_CAST_TARGETS = {
    "AttributeMetadata": set(_ODATA_TYPES.values()) | {"AttributeMetadata"},
    "EnumAttributeMetadata": {"PicklistAttributeMetadata"},
    **{t: {t} for t in _ODATA_TYPES.values()},
}


def is_attribute_cast(segment: str) -> bool:
    """Whether `segment` is a type cast to one of the attribute metadata types served."""
    return segment.removeprefix("Microsoft.Dynamics.CRM.") in _CAST_TARGETS and segment.startswith(
        "Microsoft.Dynamics.CRM."
    )


def is_of_type(body: dict[str, Any], cast: str) -> bool:
    """Whether an attribute definition is an instance of the cast's type (OData: its own type or a
    type derived from it)."""
    own = str(body.get("@odata.type", "")).removeprefix("#Microsoft.Dynamics.CRM.")
    return own in _CAST_TARGETS.get(cast.removeprefix("Microsoft.Dynamics.CRM."), set())


def context_select(params: dict[str, str]) -> str:
    """The `(...)` an `@odata.context` carries for `$select` and `$expand`, as Dataverse writes it:
    `$select=LogicalName&$expand=OptionSet($select=Options)` is `(LogicalName,OptionSet(Options))`;
    empty without either."""
    names = [n.strip() for n in (params.get("$select") or "").split(",") if n.strip()]
    for name, options in _expand_items(params.get("$expand")):
        selected = next(
            (o.removeprefix("$select=") for o in options.split(";") if o.startswith("$select=")), ""
        )
        names.append(f"{name}({selected})" if selected else name)
    return "(" + ",".join(names) + ")" if names else ""


def attribute_definitions(
    entity: EntityType, params: dict[str, str], cast: str | None = None
) -> list[dict[str, Any]]:
    """The attributes of `entity`; with `cast` (`Microsoft.Dynamics.CRM.PicklistAttributeMetadata`),
    only those of that type, as Dataverse's type-cast segment after `Attributes` answers."""
    records = [attribute_definition(entity, a) for a in entity.attributes.values()]
    if cast is not None:
        records = [r for r in records if is_of_type(r, cast)]
    return query(records, params, "AttributeMetadata")
