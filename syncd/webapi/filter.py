"""$filter: a tokenizer and a recursive-descent parser into a small AST. No SQL here.

The grammar is the part of OData v4's $filter that Dataverse documents in "Filter rows"
(operators eq ne gt ge lt le, and or not, parentheses, the functions contains, startswith and
endswith, the literal null; and Dataverse's query functions In and NotIn, which the SDK's filter
builder writes):

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | compare
    compare := operand (('eq'|'ne'|'gt'|'ge'|'lt'|'le') operand)?
    operand := '(' expr ')' | function '(' operand ',' operand ')' | literal | property

Literals: 'text' (a quote doubled inside), integers, decimals, true, false, null, GUIDs
(unquoted, 8-4-4-4-12), dates (2026-01-31) and date-times (2026-01-31T08:00:00Z, with an offset or
fractional seconds). A syntax error raises `ODataError` 400 with code 0x80060888 and the position,
as Dataverse does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Union

from syncd.webapi.errors import bad_query

COMPARISONS = ("eq", "ne", "gt", "ge", "lt", "le")
FUNCTIONS = ("contains", "startswith", "endswith")


@dataclass(frozen=True, slots=True)
class Prop:
    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any  # str, int, Decimal, bool, None, uuid string (kind 'guid'), datetime, date
    kind: str  # 'string', 'int', 'decimal', 'bool', 'null', 'guid', 'datetime', 'date'


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class InList:
    """`Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=[...])` (or NotIn): the values as
    the text the client wrote, typed later by the column."""

    prop: str
    values: tuple[str, ...]
    negate: bool


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Node = Union[Prop, Literal, Compare, Call, InList, And, Or, Not]  # noqa: UP007

_QUERY_FUNCTION = re.compile(
    r"Microsoft\.Dynamics\.CRM\.(?P<fn>In|NotIn)\(\s*PropertyName\s*=\s*'(?P<prop>[A-Za-z_][A-Za-z0-9_]*)'\s*,"
    r"\s*PropertyValues\s*=\s*\[(?P<values>(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^\]\"'])*)\]\s*\)"
)
_LIST_ITEM = re.compile(r"\s*(?:\"((?:[^\"\\]|\\.)*)\"|'((?:[^']|'')*)'|([^,\s]+))\s*(?:,|$)")
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<qfunc>Microsoft\.Dynamics\.CRM\.[A-Za-z]+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?![\w-])
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:])
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)(?![\w.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        call = _QUERY_FUNCTION.match(text, pos)
        if call is not None:
            out.append(_Tok("qcall", call.group(), pos))
            pos = call.end()
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] == "'":
                raise bad_query(f"There is an unterminated string literal at position {pos} in '{text}'.")
            raise bad_query(
                f"Syntax error: character '{text[pos]}' is not valid at position {pos} in '{text}'."
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return out


#: The largest $filter accepted: nodes of its tree, and nesting depth. Deeper or larger trees get a
#: 400 instead of exhausting the stack of the parser, the compiler or SQLAlchemy's own compiler.
MAX_FILTER_NODES = 500
MAX_FILTER_DEPTH = 100
#: The range of an OData Edm.Int64, the widest integer a filter can name (versionnumber).
INT64 = (-(2**63), 2**63 - 1)


def parse_filter(text: str) -> Node:
    """The AST of a $filter expression; raises ODataError 400 when it cannot be parsed, holds a NUL
    character, names an integer beyond Edm.Int64, or is larger than MAX_FILTER_NODES nodes or deeper
    than MAX_FILTER_DEPTH."""
    if not text.strip():
        raise bad_query("The $filter query option is empty.")
    if "\x00" in text:
        raise bad_query("The $filter query option holds a NUL character.")
    try:
        node = _Parser(text).parse()
    except RecursionError:
        node = None
    if node is None or not _within_limits(node):
        raise bad_query(
            f"The $filter query option is too complex: at most {MAX_FILTER_NODES} terms, nested at most "
            f"{MAX_FILTER_DEPTH} deep."
        )
    return node


def _within_limits(root: Node) -> bool:
    """Whether the tree has at most MAX_FILTER_NODES nodes and MAX_FILTER_DEPTH levels (walked without
    recursion)."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_FILTER_NODES or depth > MAX_FILTER_DEPTH:
            return False
        if isinstance(node, And | Or | Compare):
            stack += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, Not):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, Call):
            stack += [(arg, depth + 1) for arg in node.args]
    return True


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def _peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _word(self, *words: str) -> str | None:
        t = self._peek()
        if t is not None and t.kind == "name" and t.text in words:
            self.i += 1
            return t.text
        return None

    def _punct(self, ch: str) -> None:
        t = self._peek()
        if t is None or t.kind != "punct" or t.text != ch:
            where = t.pos if t is not None else len(self.text)
            raise bad_query(f"Syntax error: '{ch}' expected at position {where} in '{self.text}'.")
        self.i += 1

    def parse(self) -> Node:
        node = self._or()
        t = self._peek()
        if t is not None:
            raise bad_query(f"Syntax error at position {t.pos} in '{self.text}'.")
        return node

    def _or(self) -> Node:
        node = self._and()
        while self._word("or"):
            node = Or(node, self._and())
        return node

    def _and(self) -> Node:
        node = self._unary()
        while self._word("and"):
            node = And(node, self._unary())
        return node

    def _unary(self) -> Node:
        if self._word("not"):
            return Not(self._unary())
        return self._compare()

    def _compare(self) -> Node:
        left = self._operand()
        op = self._word(*COMPARISONS)
        if op is None:
            return left
        return Compare(op, left, self._operand())

    def _operand(self) -> Node:
        t = self._peek()
        if t is None:
            raise bad_query(f"Syntax error: an expression is expected at the end of '{self.text}'.")
        self.i += 1
        if t.kind == "qcall":
            return _query_function(t.text, self.text)
        if t.kind == "qfunc":
            name = t.text.rsplit(".", 1)[-1]
            raise bad_query(f"The query function '{name}' is not supported here (In and NotIn are).")
        if t.kind == "punct" and t.text == "(":
            node = self._or()
            self._punct(")")
            return node
        if t.kind == "string":
            return Literal(t.text[1:-1].replace("''", "'"), "string")
        if t.kind == "guid":
            return Literal(t.text.lower(), "guid")
        if t.kind == "datetime":
            return Literal(_datetime(t.text, self.text), "datetime")
        if t.kind == "date":
            try:
                return Literal(date.fromisoformat(t.text), "date")
            except ValueError:
                raise bad_query(f"'{t.text}' is not a valid date in '{self.text}'.") from None
        if t.kind == "number":
            return _number(t.text)
        if t.kind == "name":
            if t.text in ("true", "false"):
                return Literal(t.text == "true", "bool")
            if t.text == "null":
                return Literal(None, "null")
            nxt = self._peek()
            if nxt is not None and nxt.kind == "punct" and nxt.text == "(":
                if t.text not in FUNCTIONS:
                    raise bad_query(f"An unknown function with name '{t.text}' was found.")
                self.i += 1
                first = self._operand()
                self._punct(",")
                second = self._operand()
                self._punct(")")
                return Call(t.text, (first, second))
            if t.text in COMPARISONS or t.text in ("and", "or", "not"):
                raise bad_query(f"Syntax error at position {t.pos} in '{self.text}'.")
            return Prop(t.text)
        raise bad_query(f"Syntax error at position {t.pos} in '{self.text}'.")


def _query_function(call: str, text: str) -> Node:
    """Dataverse's query functions In and NotIn (what the SDK's filter builder writes for
    `in_`/`not_in`)."""
    m = _QUERY_FUNCTION.fullmatch(call)
    assert m is not None
    values: list[str] = []
    raw = m.group("values")
    pos = 0
    while raw[pos:].strip():
        item = _LIST_ITEM.match(raw, pos)
        if item is None or item.end() == pos:
            raise bad_query(
                f"The PropertyValues of Microsoft.Dynamics.CRM.{m.group('fn')} cannot be read in '{text}'."
            )
        dq, sq, bare = item.groups()
        values.append(
            dq.replace('\\"', '"') if dq is not None else sq.replace("''", "'") if sq is not None else bare
        )
        pos = item.end()
    return InList(m.group("prop"), tuple(values), m.group("fn") == "NotIn")


def _datetime(token: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(token.replace("Z", "+00:00"))
    except ValueError:
        raise bad_query(f"'{token}' is not a valid DateTimeOffset in '{text}'.") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(token: str) -> Literal:
    t = token.rstrip("mMdDfFlL")
    if re.fullmatch(r"-?\d+", t):
        value = int(t)
        if not INT64[0] <= value <= INT64[1]:
            raise bad_query(f"The number {token} is out of range: integers are Edm.Int64.")
        return Literal(value, "int")
    return Literal(Decimal(t), "decimal")


def properties(node: Node) -> set[str]:
    """The property names an expression reads."""
    if isinstance(node, Prop):
        return {node.name}
    if isinstance(node, Compare | And | Or):
        return properties(node.left) | properties(node.right)
    if isinstance(node, Not):
        return properties(node.operand)
    if isinstance(node, InList):
        return {node.prop}
    if isinstance(node, Call):
        return set().union(*(properties(a) for a in node.args))
    return set()


def evaluate(node: Node, record: dict[str, Any]) -> Any:
    """Evaluate an expression against a plain record (metadata, in memory); strings compare
    case-insensitively, as Dataverse does."""
    if isinstance(node, Prop):
        return record.get(node.name)
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, And):
        return bool(evaluate(node.left, record)) and bool(evaluate(node.right, record))
    if isinstance(node, Or):
        return bool(evaluate(node.left, record)) or bool(evaluate(node.right, record))
    if isinstance(node, Not):
        return not evaluate(node.operand, record)
    if isinstance(node, InList):
        value = record.get(node.prop)
        hit = isinstance(value, str) and value.lower() in {v.lower() for v in node.values}
        return hit != node.negate
    if isinstance(node, Call):
        a, b = (evaluate(x, record) for x in node.args)
        if not isinstance(a, str) or not isinstance(b, str):
            return False
        a, b = a.lower(), b.lower()
        return {"contains": b in a, "startswith": a.startswith(b), "endswith": a.endswith(b)}[node.name]
    assert isinstance(node, Compare)
    a, b = evaluate(node.left, record), evaluate(node.right, record)
    if isinstance(a, str) and isinstance(b, str):
        a, b = a.lower(), b.lower()
    if node.op == "eq":
        return a == b
    if node.op == "ne":
        return a != b
    if a is None or b is None:
        return False
    try:
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[node.op]
    except TypeError:
        return False
