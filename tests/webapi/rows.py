"""Rows for tests that insert by hand, robust to columns the schema gains: a NOT NULL column the
test does not name gets a plain value of its type, or, for a foreign key, a row of the referenced
table in the same environment (a business unit, say)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    select,
)


def complete(conn: Connection, table: Table, values: dict[str, Any], env_id: int | None) -> dict[str, Any]:
    out = dict(values)
    for col in table.columns:
        if col.name in out or col.nullable or col.default is not None or col.server_default is not None:
            continue
        if col.primary_key and isinstance(col.type, Integer):
            continue
        fks = list(col.foreign_keys)
        if fks:
            ref = fks[0].column
            stmt = select(ref)
            if env_id is not None and "environment_id" in ref.table.c:
                stmt = stmt.where(ref.table.c.environment_id == env_id)
            found = conn.execute(stmt.limit(1)).scalar()
            if found is not None:
                out[col.name] = found
                continue
        t = col.type
        if isinstance(t, Uuid):
            out[col.name] = uuid.uuid4()
        elif isinstance(t, Boolean):
            out[col.name] = False
        elif isinstance(t, (Integer, BigInteger)):
            out[col.name] = 0
        elif isinstance(t, DateTime):
            out[col.name] = datetime(2026, 1, 1, tzinfo=UTC)
        elif isinstance(t, (String, Text)):
            out[col.name] = "x"
    return out


def kind_column(table: Table) -> str:
    """The SQL name of the user's kind (renamed syncd_kind in a later schema)."""
    return next(c for c in ("syncd_kind", "kind") if c in table.c)
