"""The SQLite schema of the fake tenant.

Every object row carries `ver`, the change number of its last change; the tenant's
change counter lives in `meta`. Users keep a tombstone row after a hard delete
(state 2) so that a delta query can report the removal, and the JSON of their previous
version (`prev`) so that a delta read can repeat an older copy of them. A membership is
active, removed, or suspended while its member (a user) is soft-deleted.
"""

from __future__ import annotations

import sqlite3

USER_ACTIVE = 0
USER_SOFT_DELETED = 1
USER_HARD_DELETED = 2

MEMBER_ACTIVE = 0
MEMBER_REMOVED = 1
MEMBER_SUSPENDED = 2

TABLES = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  upn TEXT COLLATE NOCASE,
  ver INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  enabled INTEGER NOT NULL,
  guest INTEGER NOT NULL,
  blob BLOB NOT NULL,
  prev BLOB
);
CREATE TABLE IF NOT EXISTS groups(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  ver INTEGER NOT NULL,
  blob BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS groups_ver ON groups(ver);
CREATE TABLE IF NOT EXISTS members(
  seq INTEGER PRIMARY KEY,
  group_id TEXT NOT NULL,
  member_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  ver INTEGER NOT NULL,
  removed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS owners(
  seq INTEGER PRIMARY KEY,
  group_id TEXT NOT NULL,
  owner_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  UNIQUE(group_id, owner_id)
);
CREATE TABLE IF NOT EXISTS roles(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  template_id TEXT NOT NULL UNIQUE,
  blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS role_members(
  seq INTEGER PRIMARY KEY,
  role_id TEXT NOT NULL,
  member_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  UNIQUE(role_id, member_id)
);
CREATE TABLE IF NOT EXISTS skus(
  sku_id TEXT PRIMARY KEY,
  consumed INTEGER NOT NULL,
  prepaid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS service_principals(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  app_id TEXT NOT NULL UNIQUE,
  blob BLOB NOT NULL
);
"""

# Indexes on the big tables: dropped before a bulk load and built again after it.
BULK_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS users_id ON users(id);
CREATE UNIQUE INDEX IF NOT EXISTS users_upn ON users(upn);
CREATE UNIQUE INDEX IF NOT EXISTS users_ver ON users(ver);
CREATE INDEX IF NOT EXISTS users_soft ON users(seq) WHERE state = 1;
CREATE UNIQUE INDEX IF NOT EXISTS members_pair ON members(group_id, member_id);
CREATE INDEX IF NOT EXISTS members_group ON members(group_id);
CREATE INDEX IF NOT EXISTS members_member ON members(member_id);
"""

DROP_BULK_INDEXES = """
DROP INDEX IF EXISTS users_id;
DROP INDEX IF EXISTS users_upn;
DROP INDEX IF EXISTS users_ver;
DROP INDEX IF EXISTS users_soft;
DROP INDEX IF EXISTS members_pair;
DROP INDEX IF EXISTS members_group;
DROP INDEX IF EXISTS members_member;
"""


def _has_prev(conn: sqlite3.Connection) -> bool:
    return "prev" in {row[1] for row in conn.execute("PRAGMA table_info(users)")}


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring a tenant file written before `users.prev` and suspended memberships up to date, in
    one transaction (nothing to do, and no write lock taken, for a file of this layout)."""
    if _has_prev(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has_prev(conn):  # another process may have upgraded it meanwhile
            conn.execute("ALTER TABLE users ADD COLUMN prev BLOB")
            conn.execute(
                f"UPDATE members SET removed = {MEMBER_SUSPENDED} WHERE removed = {MEMBER_ACTIVE} "
                f"AND member_id IN (SELECT id FROM users WHERE state = {USER_SOFT_DELETED})"
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


CLEAR = """
DELETE FROM users; DELETE FROM groups; DELETE FROM members; DELETE FROM owners;
DELETE FROM roles; DELETE FROM role_members; DELETE FROM skus; DELETE FROM service_principals;
DELETE FROM meta;
"""
