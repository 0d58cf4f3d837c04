"""The write operations of the tenant store: each one transaction, validated before anything changes.

Every write takes a new change number and stamps it on what it changed: a user, or a group whose
membership changed (and the membership row itself, for `members@delta`). A user's update keeps its
previous JSON (`prev`). Soft-deleting a user suspends its group memberships (they leave the member
lists and `members@delta` reports them removed), restoring it brings them back, and a hard delete
ends them. Object ids come in any case (`keys.object_key`) and are stored in lower case.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from contextlib import AbstractContextManager
from typing import Any

import orjson

from syncd.directory import catalogue
from syncd.directory.fake import userfields
from syncd.directory.fake.errors import StoreError, not_found
from syncd.directory.fake.keys import object_key
from syncd.directory.fake.schema import MEMBER_ACTIVE, MEMBER_REMOVED, MEMBER_SUSPENDED
from syncd.directory.fake.userfields import bad


def group_json(
    group_id: str,
    display_name: str,
    description: str | None,
    nickname: str,
    created: str,
    *,
    unified: bool = False,
    security_enabled: bool = True,
    domain: str | None = None,
) -> bytes:
    """A group's JSON: a security group, or with ``unified`` a Microsoft 365 group (groupTypes
    ["Unified"], mail-enabled, with a mail address at ``domain``)."""
    return orjson.dumps(
        {
            "id": group_id,
            "displayName": display_name,
            "description": description,
            "mailNickname": nickname,
            "mail": f"{nickname}@{domain}" if unified and domain else None,
            "mailEnabled": unified,
            "securityEnabled": security_enabled,
            "groupTypes": ["Unified"] if unified else [],
            "createdDateTime": created,
        }
    )


class Mutations:
    _conn: sqlite3.Connection
    _lock: threading.RLock

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _next_change(self) -> int:
        raise NotImplementedError

    def meta(self, key: str) -> str | None:
        raise NotImplementedError

    def _domain(self) -> str:
        return self.meta("domain") or "contoso.example"

    # ----------------------------------------------------------------- helpers
    def _active_user(self, c: sqlite3.Connection, key: str) -> tuple[str, dict[str, Any]]:
        row = c.execute(
            "SELECT id, blob FROM users WHERE id = ? AND state = 0", (object_key(key),)
        ).fetchone()
        if row is None and "@" in key:  # upn compares without case (COLLATE NOCASE)
            row = c.execute("SELECT id, blob FROM users WHERE upn = ? AND state = 0", (key,)).fetchone()
        if row is None:
            raise not_found("user", key)
        return str(row[0]), userfields.load(row[1])

    def _check_upn_free(self, c: sqlite3.Connection, upn: str, user_id: str | None) -> None:
        row = c.execute("SELECT id FROM users WHERE upn = ?", (upn,)).fetchone()
        if row is not None and row[0] != user_id:
            raise StoreError(
                "Request_BadRequest",
                "Another object with the same value for property userPrincipalName already exists.",
                400,
            )

    def _write_user(self, c: sqlite3.Connection, user: dict[str, Any]) -> bytes:
        blob = userfields.dump(user)
        c.execute(
            "UPDATE users SET upn = ?, enabled = ?, guest = ?, prev = blob, blob = ?, ver = ? WHERE id = ?",
            (
                user["userPrincipalName"],
                int(user["accountEnabled"]),
                int(user["userType"] == "Guest"),
                blob,
                self._next_change(),
                user["id"],
            ),
        )
        return blob

    def _kind_of(self, c: sqlite3.Connection, object_id: str) -> str:
        """What an object (by its canonical id) is; an inactive user is no object here."""
        if c.execute("SELECT 1 FROM users WHERE id = ? AND state = 0", (object_id,)).fetchone():
            return "user"
        if c.execute("SELECT 1 FROM groups WHERE id = ?", (object_id,)).fetchone():
            return "group"
        if c.execute("SELECT 1 FROM service_principals WHERE id = ?", (object_id,)).fetchone():
            return "servicePrincipal"
        raise not_found("directoryObject", object_id)

    def _group_exists(self, c: sqlite3.Connection, group_id: str) -> None:
        if not c.execute("SELECT 1 FROM groups WHERE id = ?", (group_id,)).fetchone():
            raise not_found("group", group_id)

    def _touch_group(self, c: sqlite3.Connection, group_id: str, ver: int) -> None:
        c.execute("UPDATE groups SET ver = ? WHERE id = ?", (ver, group_id))

    def _move_memberships(self, c: sqlite3.Connection, user_id: str, old: int, new: int, ver: int) -> None:
        """Turn a user's memberships in state `old` into `new`, stamping them and their groups `ver`."""
        groups = c.execute(
            "SELECT group_id FROM members WHERE member_id = ? AND removed = ?", (user_id, old)
        ).fetchall()
        c.execute(
            "UPDATE members SET removed = ?, ver = ? WHERE member_id = ? AND removed = ?",
            (new, ver, user_id, old),
        )
        for (group_id,) in groups:
            self._touch_group(c, group_id, ver)

    # ----------------------------------------------------------------- users
    def create_user(self, body: Any) -> bytes:
        fields = userfields.check_user_body(body, create=True)
        with self._tx() as c:
            self._check_upn_free(c, fields["userPrincipalName"], None)
            user = userfields.new_user(str(uuid.uuid4()), fields)
            blob = userfields.dump(user)
            c.execute(
                "INSERT INTO users(id, upn, enabled, guest, blob, ver) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    user["id"],
                    user["userPrincipalName"],
                    int(user["accountEnabled"]),
                    int(user["userType"] == "Guest"),
                    blob,
                    self._next_change(),
                ),
            )
        return blob

    def update_user(self, key: str, body: Any) -> bytes:
        fields = userfields.check_user_body(body, create=False)
        with self._tx() as c:
            user_id, user = self._active_user(c, key)
            if "userPrincipalName" in fields:
                self._check_upn_free(c, fields["userPrincipalName"], user_id)
            user.update(fields)
            return self._write_user(c, user)

    def soft_delete_user(self, key: str) -> str:
        """Move an active user to the deleted items; its memberships are suspended until a restore."""
        with self._tx() as c:
            user_id, _ = self._active_user(c, key)
            ver = self._next_change()
            c.execute("UPDATE users SET state = 1, prev = blob, ver = ? WHERE id = ?", (ver, user_id))
            self._move_memberships(c, user_id, MEMBER_ACTIVE, MEMBER_SUSPENDED, ver)
        return user_id

    def restore_user(self, user_id: str) -> bytes:
        """Bring a soft-deleted user back, with the memberships it had."""
        user_id = object_key(user_id)
        with self._tx() as c:
            row = c.execute("SELECT blob FROM users WHERE id = ? AND state = 1", (user_id,)).fetchone()
            if row is None:
                raise not_found("deletedItem", user_id)
            ver = self._next_change()
            c.execute("UPDATE users SET state = 0, prev = NULL, ver = ? WHERE id = ?", (ver, user_id))
            self._move_memberships(c, user_id, MEMBER_SUSPENDED, MEMBER_ACTIVE, ver)
            return bytes(row[0])

    def hard_delete_user(self, user_id: str) -> list[str]:
        """Purge a soft-deleted user; its (suspended) memberships, ownerships and role memberships
        end for good. Returns the groups it was a suspended member of. The memberships already left
        the member lists and `members@delta` at the soft delete, so they keep their change number."""
        user_id = object_key(user_id)
        with self._tx() as c:
            row = c.execute("SELECT blob FROM users WHERE id = ? AND state = 1", (user_id,)).fetchone()
            if row is None:
                raise not_found("deletedItem", user_id)
            for lic in userfields.load(row[0]).get("assignedLicenses") or []:
                c.execute("UPDATE skus SET consumed = consumed - 1 WHERE sku_id = ?", (lic["skuId"],))
            ver = self._next_change()
            groups = c.execute(
                "SELECT group_id FROM members WHERE member_id = ? AND removed = ?",
                (user_id, MEMBER_SUSPENDED),
            ).fetchall()
            c.execute(
                "UPDATE members SET removed = ? WHERE member_id = ? AND removed = ?",
                (MEMBER_REMOVED, user_id, MEMBER_SUSPENDED),
            )
            c.execute("DELETE FROM owners WHERE owner_id = ?", (user_id,))
            c.execute("DELETE FROM role_members WHERE member_id = ?", (user_id,))
            c.execute(
                "UPDATE users SET state = 2, upn = NULL, blob = x'', prev = NULL, ver = ? WHERE id = ?",
                (ver, user_id),
            )
        return [str(g) for (g,) in groups]

    def assign_licenses(self, key: str, body: Any) -> bytes:
        """Graph's assignLicense: `addLicenses` [{skuId, disabledPlans}] and `removeLicenses` [skuId]."""
        if not isinstance(body, dict) or set(body) - {"addLicenses", "removeLicenses"}:
            raise bad("The body must be an object with 'addLicenses' and 'removeLicenses'.")
        add, remove = body.get("addLicenses"), body.get("removeLicenses")
        if not isinstance(add, list) or not isinstance(remove, list):
            raise bad("'addLicenses' and 'removeLicenses' are both required lists.")
        subscribed = {s.sku_id: s for s in catalogue.SKUS if s.kind is not catalogue.SkuKind.MARKETING_TENANT}
        adds: dict[str, list[str]] = {}
        for item in add:
            if not isinstance(item, dict) or not isinstance(item.get("skuId"), str):
                raise bad("Each of 'addLicenses' needs a 'skuId'.")
            sku = subscribed.get(item["skuId"])
            if sku is None:
                raise bad(f"License {item['skuId']} does not correspond to a valid company License.")
            disabled = item.get("disabledPlans") or []
            plan_ids = {p.service_plan_id for p in sku.plans}
            if not isinstance(disabled, list) or not all(p in plan_ids for p in disabled):
                raise bad(f"disabledPlans of {sku.part_number} must be service plans of that SKU.")
            adds[sku.sku_id] = list(dict.fromkeys(disabled))
        if not all(isinstance(r, str) for r in remove):
            raise bad("'removeLicenses' must be a list of skuId strings.")
        with self._tx() as c:
            _, user = self._active_user(c, key)
            current = {lic["skuId"]: lic for lic in user["assignedLicenses"]}
            for sku_id in remove:
                if sku_id not in current:
                    raise bad(f"User does not have a license for SKU {sku_id}.")
                del current[sku_id]
                c.execute("UPDATE skus SET consumed = consumed - 1 WHERE sku_id = ?", (sku_id,))
            for sku_id, disabled in adds.items():
                if sku_id not in current:
                    c.execute("UPDATE skus SET consumed = consumed + 1 WHERE sku_id = ?", (sku_id,))
                current[sku_id] = {"disabledPlans": disabled, "skuId": sku_id}
            user["assignedLicenses"] = list(current.values())
            return self._write_user(c, user)

    # ----------------------------------------------------------------- groups
    def create_group(self, body: Any) -> bytes:
        if not isinstance(body, dict):
            raise bad("The request body must be a JSON object.")
        name, nick = body.get("displayName"), body.get("mailNickname")
        if not isinstance(name, str) or not name or not isinstance(nick, str) or not nick:
            raise bad("Properties 'displayName' and 'mailNickname' are required strings.")
        types = body.get("groupTypes", [])
        unified = types == ["Unified"]
        if not unified and (
            body.get("securityEnabled") is not True or body.get("mailEnabled", False) is not False
        ):
            raise bad(
                "Only security groups (securityEnabled true, mailEnabled false) and Microsoft 365 "
                "groups (groupTypes ['Unified'], mailEnabled true) are supported."
            )
        if unified and (
            body.get("mailEnabled") is not True or type(body.get("securityEnabled", False)) is not bool
        ):
            raise bad("A Microsoft 365 group (groupTypes ['Unified']) is mailEnabled true.")
        extra = set(body) - {
            "displayName",
            "mailNickname",
            "securityEnabled",
            "mailEnabled",
            "description",
            "groupTypes",
        }
        if extra:
            raise bad(f"Property '{sorted(extra)[0]}' does not exist on type 'microsoft.graph.group'.")
        if types not in ([], ["Unified"]):
            raise bad("groupTypes must be [] (a security group) or ['Unified'] (a Microsoft 365 group).")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise bad("Property 'description' must be a string.")
        group_id = str(uuid.uuid4())
        domain = self._domain() if unified else None
        blob = group_json(
            group_id,
            name,
            description,
            nick,
            "2024-01-01T00:00:00Z",
            unified=unified,
            security_enabled=body.get("securityEnabled") is True,
            domain=domain,
        )
        with self._tx() as c:
            c.execute(
                "INSERT INTO groups(id, blob, ver) VALUES (?, ?, ?)", (group_id, blob, self._next_change())
            )
        return blob

    def add_group_member(self, group_id: str, member_id: str) -> None:
        group_id, member_id = object_key(group_id), object_key(member_id)
        with self._tx() as c:
            self._group_exists(c, group_id)
            kind = self._kind_of(c, member_id)
            if member_id == group_id:
                raise bad("A group cannot be a member of itself.")
            row = c.execute(
                "SELECT removed FROM members WHERE group_id = ? AND member_id = ?", (group_id, member_id)
            ).fetchone()
            if row is not None and row[0] == 0:
                raise bad(
                    "One or more added object references already exist for the following modified "
                    "properties: 'members'."
                )
            ver = self._next_change()
            if row is None:
                c.execute(
                    "INSERT INTO members(group_id, member_id, kind, ver) VALUES (?, ?, ?, ?)",
                    (group_id, member_id, kind, ver),
                )
            else:
                c.execute(
                    "UPDATE members SET removed = 0, ver = ? WHERE group_id = ? AND member_id = ?",
                    (ver, group_id, member_id),
                )
            self._touch_group(c, group_id, ver)

    def remove_group_member(self, group_id: str, member_id: str) -> None:
        group_id, member_id = object_key(group_id), object_key(member_id)
        with self._tx() as c:
            self._group_exists(c, group_id)
            cur = c.execute(
                "UPDATE members SET removed = 1, ver = ? WHERE group_id = ? AND member_id = ? AND removed = 0",
                (ver := self._next_change(), group_id, member_id),
            )
            if cur.rowcount == 0:
                raise not_found("member", member_id)
            self._touch_group(c, group_id, ver)

    def add_group_owner(self, group_id: str, owner_id: str) -> None:
        group_id, owner_id = object_key(group_id), object_key(owner_id)
        with self._tx() as c:
            self._group_exists(c, group_id)
            kind = self._kind_of(c, owner_id)
            if kind == "group":
                raise bad("A group cannot own a group.")
            try:
                c.execute(
                    "INSERT INTO owners(group_id, owner_id, kind) VALUES (?, ?, ?)",
                    (group_id, owner_id, kind),
                )
            except sqlite3.IntegrityError:
                raise bad(
                    "One or more added object references already exist for the following modified "
                    "properties: 'owners'."
                ) from None
            self._touch_group(c, group_id, self._next_change())

    def remove_group_owner(self, group_id: str, owner_id: str) -> None:
        group_id, owner_id = object_key(group_id), object_key(owner_id)
        with self._tx() as c:
            self._group_exists(c, group_id)
            cur = c.execute("DELETE FROM owners WHERE group_id = ? AND owner_id = ?", (group_id, owner_id))
            if cur.rowcount == 0:
                raise not_found("owner", owner_id)
            self._touch_group(c, group_id, self._next_change())

    # ----------------------------------------------------------------- roles
    def _role_id(self, c: sqlite3.Connection, key: str) -> str:
        key = object_key(key)
        row = c.execute("SELECT id FROM roles WHERE id = ? OR template_id = ?", (key, key)).fetchone()
        if row is None:
            raise not_found("directoryRole", key)
        return str(row[0])

    def add_role_member(self, role_key: str, member_id: str) -> None:
        member_id = object_key(member_id)
        with self._tx() as c:
            role_id = self._role_id(c, role_key)
            kind = self._kind_of(c, member_id)
            if kind == "group":
                raise bad("Only users and service principals can hold a directory role here.")
            try:
                c.execute(
                    "INSERT INTO role_members(role_id, member_id, kind) VALUES (?, ?, ?)",
                    (role_id, member_id, kind),
                )
            except sqlite3.IntegrityError:
                raise bad(
                    "One or more added object references already exist for the following modified "
                    "properties: 'members'."
                ) from None
            self._next_change()

    def remove_role_member(self, role_key: str, member_id: str) -> None:
        member_id = object_key(member_id)
        with self._tx() as c:
            role_id = self._role_id(c, role_key)
            cur = c.execute(
                "DELETE FROM role_members WHERE role_id = ? AND member_id = ?", (role_id, member_id)
            )
            if cur.rowcount == 0:
                raise not_found("member", member_id)
            self._next_change()
