"""A $filter AST compiled into a SQLAlchemy Core expression on an entity's table.

Values never enter SQL as text: each literal becomes a bound parameter of the column's own type,
after a check that its OData type fits the column (a GUID for Edm.Guid, a quoted string for
Edm.String, true/false for Edm.Boolean, an integer for Edm.Int32/Int64, a date or date-time for
Edm.DateTimeOffset; null for any). A mismatch is Dataverse's 400 "A binary operator with
incompatible types was detected" (0x80060888); an unknown property its 400 0x0.

Strings compare case-insensitively, as Dataverse's collation does, for every script:
`casefold(col) = casefold(value)` (`syncd.dataverse.textfold`, the same folding on SQLite and
PostgreSQL; not SQL's `lower()`, which folds ASCII only on SQLite), and contains/startswith/endswith
are LIKE patterns on the folded text with '%', '_' and the escape character escaped.
`x eq null` is `x IS NULL`, `x ne null` is `x IS NOT NULL`. `Microsoft.Dynamics.CRM.In`/`NotIn` is
`IN`/`NOT IN`, each listed value typed by the column.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, and_, false, literal, not_, or_, true

from syncd.dataverse.textfold import casefold
from syncd.webapi.entities import Attribute, EntityType
from syncd.webapi.errors import bad_query, no_property
from syncd.webapi.filter import And, Call, Compare, InList, Literal, Node, Not, Or, Prop, tokenize

_EDM_OF_LITERAL = {
    "string": "Edm.String",
    "int": "Edm.Int32",
    "decimal": "Edm.Decimal",
    "bool": "Edm.Boolean",
    "guid": "Edm.Guid",
    "datetime": "Edm.DateTimeOffset",
    "date": "Edm.Date",
}
_FITS = {
    "Edm.String": {"string"},
    "Edm.Guid": {"guid"},
    "Edm.Boolean": {"bool"},
    "Edm.Int32": {"int"},
    "Edm.Int64": {"int"},
    "Edm.DateTimeOffset": {"datetime", "date"},
}
_OP_NAMES = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_ESCAPE = "/"  # LIKE's escape character: case-folding leaves it as it is
_FLIP = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


def resolve(entity: EntityType, name: str) -> Attribute:
    attr = entity.attribute(name)
    if attr is None:
        raise no_property(name, entity.logical_name)
    return attr


def bind_value(attr: Attribute, lit: Literal, op: str = "eq") -> Any:
    """The literal as a Python value of the column's type; raises 400 when the types do not fit."""
    if lit.kind not in _FITS.get(attr.edm, set()):
        raise bad_query(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{attr.edm}' and '{_EDM_OF_LITERAL.get(lit.kind, lit.kind)}' for operator kind "
            f"'{_OP_NAMES.get(op, op)}'."
        )
    if lit.kind == "guid":
        return uuid.UUID(lit.value)
    if lit.kind == "date":
        return datetime.combine(lit.value, time(0), tzinfo=UTC)
    if lit.kind == "int" and attr.edm == "Edm.Int32" and not -(2**31) <= lit.value < 2**31:
        raise bad_query(f"The value {lit.value} is out of range for '{attr.property}' (Edm.Int32).")
    return lit.value


def db_value(attr: Attribute, value: Any) -> Any:
    """A value as the database binds it: date-times in UTC, naive for SQLite's text storage."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=UTC)
    return value


def _typed(attr: Attribute, text: str) -> Literal:
    """A PropertyValues item (always text in Dataverse's query functions) as the column's literal."""
    if attr.edm == "Edm.String":
        return Literal(text, "string")
    if attr.edm == "Edm.Boolean" and text.lower() in ("true", "false", "1", "0"):
        return Literal(text.lower() in ("true", "1"), "bool")
    toks = tokenize(text) if text.strip() else []
    if len(toks) == 1 and toks[0].kind in ("guid", "number", "datetime", "date"):
        from syncd.webapi.filter import parse_filter

        lit = parse_filter(toks[0].text)
        if isinstance(lit, Literal):
            return lit
    raise bad_query(f"The value '{text}' in PropertyValues is not a valid {attr.edm} for '{attr.property}'.")


def compile_filter(entity: EntityType, node: Node) -> ColumnElement[bool]:
    """The WHERE clause of `node` on `entity`'s table."""
    return _Compiler(entity).expr(node)


class _Compiler:
    def __init__(self, entity: EntityType) -> None:
        self.entity = entity

    def expr(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(self.expr(node.left), self.expr(node.right))
        if isinstance(node, Or):
            return or_(self.expr(node.left), self.expr(node.right))
        if isinstance(node, Not):
            return not_(self.expr(node.operand))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, InList):
            return self.in_list(node)
        if isinstance(node, Prop):
            attr = resolve(self.entity, node.name)
            if attr.edm != "Edm.Boolean":
                raise bad_query(
                    f"The $filter expression must evaluate to a single boolean value; '{node.name}' is "
                    f"{attr.edm}."
                )
            return attr.column == true()
        if isinstance(node, Literal) and node.kind == "bool":
            return true() if node.value else false()
        raise bad_query("The $filter expression must evaluate to a single boolean value.")

    def compare(self, node: Compare) -> ColumnElement[bool]:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Literal) and isinstance(right, Prop):
            left, right, op = right, left, _FLIP[op]
        if isinstance(left, Prop) and isinstance(right, Prop):
            a, b = resolve(self.entity, left.name), resolve(self.entity, right.name)
            if a.edm != b.edm:
                raise bad_query(
                    "A binary operator with incompatible types was detected. Found operand types "
                    f"'{a.edm}' and '{b.edm}' for operator kind '{_OP_NAMES[op]}'."
                )
            return _op(op, self._ci(a), self._ci(b))
        if not (isinstance(left, Prop) and isinstance(right, Literal)):
            raise bad_query(
                f"The operator '{op}' compares a property with a literal or another property; "
                "this $filter compares something else."
            )
        attr = resolve(self.entity, left.name)
        if right.kind == "null":
            if op == "eq":
                return attr.column.is_(None)
            if op == "ne":
                return attr.column.is_not(None)
            return false()  # an ordering comparison with null matches nothing
        value = db_value(attr, bind_value(attr, right, op))
        if attr.edm == "Edm.String":
            return _op(op, casefold(attr.column), casefold(literal(value, attr.column.type)))
        return _op(op, attr.column, literal(value, attr.column.type))

    def call(self, node: Call) -> ColumnElement[bool]:
        target, arg = node.args
        if not isinstance(target, Prop) or not isinstance(arg, Literal):
            raise bad_query(f"The function '{node.name}' takes a property and a string literal.")
        attr = resolve(self.entity, target.name)
        if attr.edm != "Edm.String" or arg.kind != "string":
            raise bad_query(
                f"No function signature for the function with name '{node.name}' matches the specified "
                f"arguments. The function signatures considered are: {node.name}(Edm.String Nullable=true, "
                "Edm.String)."
            )
        text = "".join(f"{_ESCAPE}{ch}" if ch in ("%", "_", _ESCAPE) else ch for ch in str(arg.value))
        pattern = {"contains": f"%{text}%", "startswith": f"{text}%"}.get(node.name, f"%{text}")
        return casefold(attr.column).like(casefold(literal(pattern, attr.column.type)), escape=_ESCAPE)

    def in_list(self, node: InList) -> ColumnElement[bool]:
        attr = resolve(self.entity, node.prop)
        values = [db_value(attr, bind_value(attr, _typed(attr, v))) for v in node.values]
        if attr.edm == "Edm.String":
            hit = casefold(attr.column).in_([casefold(literal(v, attr.column.type)) for v in values])
        else:
            hit = attr.column.in_(values)
        return not_(hit) if node.negate else hit

    @staticmethod
    def _ci(attr: Attribute) -> ColumnElement[Any]:
        return casefold(attr.column) if attr.edm == "Edm.String" else attr.column


def _op(op: str, a: Any, b: Any) -> ColumnElement[bool]:
    if op == "eq":
        return a == b  # type: ignore[no-any-return]
    if op == "ne":
        return a != b  # type: ignore[no-any-return]
    if op == "gt":
        return a > b  # type: ignore[no-any-return]
    if op == "ge":
        return a >= b  # type: ignore[no-any-return]
    if op == "lt":
        return a < b  # type: ignore[no-any-return]
    return a <= b  # type: ignore[no-any-return]
