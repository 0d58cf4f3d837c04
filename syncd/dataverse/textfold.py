"""Case-insensitive text comparison that answers the same on SQLite and on PostgreSQL.

Dataverse compares text under a case-insensitive collation, for every script. SQL's `lower()`
cannot stand in for it on both backends: SQLite's built-in `lower()` folds ASCII letters only
('Ç' stays 'Ç'), and PostgreSQL's follows the database's LC_CTYPE (a database in the C locale
folds ASCII only as well). `casefold(x)` is one SQL expression that folds the same way on both:

- SQLite: `syncd_casefold(x)`, an application-defined deterministic function that `register`
  installs on every connection of an engine made by `syncd.dataverse.db.make_engine`. It is a
  function of its own, so SQLite's built-in `lower()` (which indexes may use) is left as it is.
- PostgreSQL: `lower(x COLLATE "und-x-icu")`, Unicode's full lower-case mapping from ICU's root
  locale whatever the database's locale (ICU is part of every usual PostgreSQL build).

Both apply the same mapping as Python's `str.lower()` (Unicode's full mapping, no language
tailoring), then write the final sigma 'ς' as 'σ', so that "ΣΟΦΟΣ", "Σοφος" and "σοφοσ" are one
word wherever the sigma stands. The result is compared and ordered by code point on both
backends (`COLLATE "C"` on PostgreSQL, SQLite's BINARY), so an $orderby and the keyset paging
behind it give the same rows in the same order on either.

Accents are kept: "cafe" and "café" differ, as under Dataverse's accent-sensitive (_CI_AS)
collations; its accent-insensitive ones (_CI_AI, English among them) would treat them as equal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

SQLITE_FUNCTION = "syncd_casefold"


def fold_text(value: Any) -> Any:
    """The case-folded form of a text, as `casefold` computes it in SQL (None stays None)."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.lower().replace("ς", "σ")


def register(dbapi_conn: Any) -> None:
    """Install `syncd_casefold` on one SQLite connection (from an engine's "connect" event)."""
    dbapi_conn.create_function(SQLITE_FUNCTION, 1, fold_text, deterministic=True)


class casefold(FunctionElement[str]):  # noqa: N801 - named like the SQL functions it stands beside
    """`casefold(expr)`: `expr` case-folded the same way on SQLite and PostgreSQL (see the module)."""

    type = String()
    inherit_cache = True
    name = "casefold"


@compiles(casefold)
def _compile_sqlite(element: casefold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_FUNCTION}({compiler.process(element.clauses, **kw)})"


@compiles(casefold, "postgresql")
def _compile_postgresql(element: casefold, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"translate(lower(CAST({arg} AS TEXT) COLLATE \"und-x-icu\"), 'ς', 'σ') COLLATE \"C\""


# -- ASCII case folding, for the expression indexes of migration 0007 -----------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_ascii(value: str) -> str:
    """``value`` with the ASCII letters A-Z in lower case and every other character as it is: what
    `asciifold` computes in SQL."""
    return value.translate(_ASCII_LOWER)


class asciifold(FunctionElement[str]):  # noqa: N801 - named like the SQL functions it stands beside
    """`asciifold(expr)`: `expr` with A-Z lowered and nothing else changed, compared by code point, the
    same on both backends: SQLite's built-in `lower(x)` (ASCII only, BINARY), PostgreSQL's
    `lower(x COLLATE "C")` (the C collation lowers ASCII only, and compares bytes). Cheaper than
    `casefold` to keep in an index (no ICU call, no application function), so it is what the
    expression indexes of the UPN and full name hold (migration 0007): UPNs are ASCII (Entra's
    rule), so for them it is the same as `casefold`."""

    type = String()
    inherit_cache = True
    name = "asciifold"


@compiles(asciifold)
def _compile_ascii_sqlite(element: asciifold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(asciifold, "postgresql")
def _compile_ascii_postgresql(element: asciifold, compiler: SQLCompiler, **kw: Any) -> str:
    return f'lower({compiler.process(element.clauses, **kw)} COLLATE "C")'
