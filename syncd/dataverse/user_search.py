"""Find an environment's SystemUser rows by the start of a UPN, a name or an id (the status UI's search).

A query is matched three ways, and the answer is every row any of them finds:

- a prefix of ``domainname`` (the UPN) or of ``fullname``, ignoring the case of A-Z: both sides
  folded by ``syncd.dataverse.textfold.asciifold`` (A-Z lowered, nothing else; the same on SQLite
  and PostgreSQL) and compared by code point, as the range ``folded >= q AND folded < next(q)``
  (``next``: ``q`` with its last character moved one code point on). No ``LIKE``: ``%`` and ``_``
  are plain characters. Each is one range of an expression index of migration 0007
  (``ix_systemuser_env_folded_domainname``, ``ix_systemuser_env_folded_fullname``), which says why
  ASCII: UPNs are ASCII, so for them this is full case-insensitivity; "élodie" does not find
  "Élodie Martin" by her name (her UPN, elodie.martin@..., finds her);
- a GUID in any spelling (dashes or not, either case, in braces), or a hex prefix of at least
  ``MIN_HEX_DIGITS`` digits (dashes allowed): a range of ``azureactivedirectoryobjectid`` (the
  unique (environment_id, object id) index) and of ``systemuserid`` (the primary key). The prefix
  is padded with 0s and with fs: PostgreSQL compares uuids, and SQLite the 32 lower-case hex
  digits SQLAlchemy's ``Uuid`` stores, in the same order.

Each way reads at most ``limit`` rows in its index's order; the answer is the first ``limit`` of
their union by folded UPN (then UPN, then systemuserid), so both backends give the same rows in the
same order. (A name match whose UPN sorts late can be left out when more than ``limit`` names
match: the search narrows as the user types.)
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, select
from sqlalchemy.orm import Session

from syncd.dataverse.schema import SystemUser
from syncd.dataverse.textfold import asciifold, fold_ascii

MIN_HEX_DIGITS = 4
MAX_LIMIT = 500
_HEX = re.compile(r"[0-9a-f]+")
_MAX_CHAR = 0x10FFFF


@dataclass(frozen=True)
class UserHit:
    """One row a search found. Ids are dashed lower-case GUIDs; ``azureactivedirectoryobjectid`` is
    None for rows that come from no directory user (R18-R20); ``accessmode`` is R15's number."""

    systemuserid: str
    azureactivedirectoryobjectid: str | None
    domainname: str
    fullname: str | None
    isdisabled: bool
    accessmode: int
    syncd_kind: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields by name."""
        return asdict(self)


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix``, by code point
    (``prefix`` with its last character moved on, skipping the surrogates, which text can't hold).
    None when there is none (``prefix`` is all U+10FFFF): every string from ``prefix`` on matches."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i])
        if code < _MAX_CHAR:
            code += 1
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            return prefix[:i] + chr(code)
    return None


def hex_range(query: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The GUIDs a hex prefix covers (first, last), or None when ``query`` is not one: at least
    ``MIN_HEX_DIGITS`` and at most 32 hex digits, either case, dashes anywhere, optionally in
    braces. A whole GUID is the range of itself."""
    text = query.strip()
    if text.startswith("{"):
        text = text[1:].removesuffix("}")
    digits = text.replace("-", "").lower()
    if not MIN_HEX_DIGITS <= len(digits) <= 32 or not _HEX.fullmatch(digits):
        return None
    return uuid.UUID(hex=digits.ljust(32, "0")), uuid.UUID(hex=digits.ljust(32, "f"))


def _hit(row: Any) -> UserHit:
    oid = row.azureactivedirectoryobjectid
    return UserHit(
        systemuserid=str(row.systemuserid),
        azureactivedirectoryobjectid=str(oid) if oid is not None else None,
        domainname=row.domainname,
        fullname=row.fullname,
        isdisabled=bool(row.isdisabled),
        accessmode=int(row.accessmode),
        syncd_kind=row.syncd_kind,
    )


def _columns(environment_id: int, *, by_primary_key: bool = False) -> Select[Any]:
    """The hit's columns of the environment's rows. ``by_primary_key``: the environment is compared
    as ``environment_id + 0``, which no index serves, so that SQLite's planner reads the primary key's
    range instead of every row of the environment through an index that leads with it."""
    t = SystemUser.__table__.c
    env = (t.environment_id + 0) if by_primary_key else t.environment_id
    return select(
        t.systemuserid,
        t.azureactivedirectoryobjectid,
        t.domainname,
        t.fullname,
        t.isdisabled,
        t.accessmode,
        t.syncd_kind,
    ).where(env == environment_id)


def _prefix(column: ColumnElement[Any], folded: str) -> ColumnElement[bool]:
    key = asciifold(column)
    upper = prefix_upper_bound(folded)
    return key >= folded if upper is None else and_(key >= folded, key < upper)


def search_users(session: Session, environment_id: int, query: str, *, limit: int = 50) -> list[UserHit]:
    """The rows of environment ``environment_id`` that ``query`` finds (see the module), ordered by
    UPN (folded, then as written, then systemuserid), at most ``limit`` (1 to ``MAX_LIMIT``; more
    is read as ``MAX_LIMIT``). An empty or blank query, or one holding a NUL, finds nothing (``[]``). Same answer on
    SQLite and PostgreSQL. Raises ValueError for a ``limit`` below 1."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    limit = min(limit, MAX_LIMIT)
    text = query.strip()
    if not text or "\x00" in text:  # no row holds a NUL (PostgreSQL's text can't hold one)
        return []
    t = SystemUser.__table__.c
    folded = fold_ascii(text)
    statements = [
        _columns(environment_id)
        .where(_prefix(t.domainname, folded))
        .order_by(asciifold(t.domainname), t.systemuserid)
        .limit(limit),
        _columns(environment_id)
        .where(_prefix(t.fullname, folded))
        .order_by(asciifold(t.fullname), t.systemuserid)
        .limit(limit),
    ]
    ids = hex_range(text)
    if ids is not None:
        first, last = ids
        statements.append(
            _columns(environment_id)
            .where(t.azureactivedirectoryobjectid.between(first, last))
            .order_by(t.azureactivedirectoryobjectid)
            .limit(limit)
        )
        statements.append(
            _columns(environment_id, by_primary_key=True)
            .where(t.systemuserid.between(first, last))
            .order_by(t.systemuserid)
            .limit(limit)
        )
    found: dict[str, UserHit] = {}
    for statement in statements:
        for row in session.execute(statement):
            hit = _hit(row)
            found[hit.systemuserid] = hit
    ordered = sorted(found.values(), key=lambda h: (fold_ascii(h.domainname), h.domainname, h.systemuserid))
    return ordered[:limit]


__all__ = ["MAX_LIMIT", "MIN_HEX_DIGITS", "UserHit", "hex_range", "prefix_upper_bound", "search_users"]
