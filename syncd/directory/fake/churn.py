"""Random, realistic churn of a tenant, through the store's own write methods.

Deterministic for a given tenant and seed. The summary names every object touched, so a test
can check that a delta query afterwards returns exactly those objects.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from syncd.directory import catalogue
from syncd.directory.catalogue import SkuKind
from syncd.directory.fake import names
from syncd.directory.fake.errors import StoreError
from syncd.directory.fake.store import TenantStore
from syncd.directory.fake.userfields import load

KINDS: tuple[tuple[str, int], ...] = (
    ("edit", 30),
    ("disable", 8),
    ("enable", 6),
    ("create", 5),
    ("soft_delete", 6),
    ("restore", 4),
    ("hard_delete", 3),
    ("licence_add", 8),
    ("licence_remove", 6),
    ("group_add", 8),
    ("group_remove", 6),
    ("role_add", 3),
    ("role_remove", 2),
)
_USER_SKUS = [s.sku_id for s in catalogue.SKUS if s.kind is not SkuKind.MARKETING_TENANT]


class _Churn:
    def __init__(self, store: TenantStore, rng: random.Random) -> None:
        self.store, self.rng = store, rng
        self.counts: Counter[str] = Counter()
        self.users: dict[str, list[str]] = {
            k: [] for k in ("changed", "created", "soft_deleted", "restored", "hard_deleted")
        }
        self.groups: dict[str, dict[str, list[str]]] = {}
        self.roles: dict[str, dict[str, list[str]]] = {}

    def _pick_user(self, want: Any = None) -> tuple[str, dict[str, Any]] | None:
        top = self.store.max_user_seq()
        for _ in range(200 if top else 0):
            row = self.store.user_by_seq(self.rng.randint(1, top))
            if row is not None and row[1] == 0:
                user = load(row[2])
                if want is None or want(user):
                    return str(row[0]), user
        return None

    def _changed(self, user_id: str, kind: str) -> None:
        self.users["changed"].append(user_id)
        if kind in self.users:
            self.users[kind].append(user_id)

    def _group_touch(self, group_id: str, what: str, member_id: str) -> None:
        self.groups.setdefault(group_id, {"added": [], "removed": []})[what].append(member_id)

    def one(self, kind: str) -> str | None:
        """Apply one change of `kind`; returns the kind actually applied, or None if none was possible."""
        rng, store = self.rng, self.store
        if kind == "create":
            given, g = names.GIVEN_NAMES[rng.randrange(len(names.GIVEN_NAMES))]
            sur, s = names.SURNAMES[rng.randrange(len(names.SURNAMES))]
            upn = f"{g}.{s}.{rng.getrandbits(48):012x}@{store.meta('domain')}"
            try:
                blob = store.create_user(
                    {
                        "displayName": f"{given} {sur}",
                        "givenName": given,
                        "surname": sur,
                        "userPrincipalName": upn,
                        "mail": upn,
                        "accountEnabled": True,
                    }
                )
            except StoreError:
                return None  # the UPN is taken (a soft-deleted user may hold it)
            self._changed(str(load(blob)["id"]), "created")
            return kind
        if kind in ("restore", "hard_delete"):
            pool = store.soft_deleted_ids(50)
            if not pool:
                return self.one("soft_delete")
            user_id = rng.choice(pool)
            if kind == "restore":
                store.restore_user(user_id)
                for group_id in store.user_group_ids(user_id):  # its memberships come back
                    self._group_touch(group_id, "added", user_id)
                self._changed(user_id, "restored")
            else:
                store.hard_delete_user(user_id)  # its memberships left at the soft delete
                self._changed(user_id, "hard_deleted")
            return kind
        if kind in ("group_add", "group_remove"):
            return self._group(kind)
        if kind in ("role_add", "role_remove"):
            return self._role(kind)
        want = {
            "disable": lambda u: u["accountEnabled"],
            "enable": lambda u: not u["accountEnabled"],
            "licence_remove": lambda u: bool(u["assignedLicenses"]),
        }.get(kind)
        picked = self._pick_user(want)
        if picked is None:
            return None
        user_id, user = picked
        if kind == "edit":
            store.update_user(user_id, self._edit(user))
        elif kind in ("disable", "enable"):
            store.update_user(user_id, {"accountEnabled": kind == "enable"})
        elif kind == "soft_delete":
            groups = store.user_group_ids(user_id)
            store.soft_delete_user(user_id)
            for group_id in groups:  # its memberships are suspended
                self._group_touch(group_id, "removed", user_id)
        elif kind == "licence_add":
            held = {lic["skuId"] for lic in user["assignedLicenses"]}
            free = [s for s in _USER_SKUS if s not in held]
            if not free:
                return None
            store.assign_licenses(
                user_id,
                {"addLicenses": [{"skuId": rng.choice(free), "disabledPlans": []}], "removeLicenses": []},
            )
        else:
            sku_id = rng.choice(user["assignedLicenses"])["skuId"]
            store.assign_licenses(user_id, {"addLicenses": [], "removeLicenses": [sku_id]})
        self._changed(user_id, kind)
        return kind

    def _edit(self, user: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        field = rng.choice(
            ("jobTitle", "place", "mobilePhone", "surname", "givenName", "businessPhones", "mail")
        )
        if field == "jobTitle":
            return {"jobTitle": rng.choice(names.JOB_TITLES)}
        if field == "place":
            street, city, state, postal, country = rng.choice(names.PLACES)
            return {
                "streetAddress": f"{street} {rng.randint(1, 300)}",
                "city": city,
                "state": state,
                "postalCode": postal,
                "country": country,
            }
        if field == "mobilePhone":
            return {"mobilePhone": f"+1 555 {rng.randint(0, 9999):04d}"}
        if field == "surname":
            return {"surname": rng.choice(names.SURNAMES)[0]}
        if field == "givenName":
            return {"givenName": rng.choice([None, "", rng.choice(names.GIVEN_NAMES)[0]])}
        if field == "businessPhones":
            return {"businessPhones": [f"+44 20 {rng.randint(1000000, 9999999)}"]}
        return {"mail": f"{user['userPrincipalName'].split('@')[0]}.{rng.randint(1, 99)}@contoso.example"}

    def _group(self, kind: str) -> str | None:
        store, rng = self.store, self.rng
        group_ids = store.group_ids()
        if not group_ids:
            return None
        group_id = rng.choice(group_ids)
        if kind == "group_remove":
            size = store.member_count(group_id)
            member = store.member_at(group_id, rng.randrange(size)) if size else None
            if member is None:
                return None
            store.remove_group_member(group_id, member)
            self._group_touch(group_id, "removed", member)
            return kind
        picked = self._pick_user()
        if picked is None:
            return None
        try:
            store.add_group_member(group_id, picked[0])
        except StoreError:
            return None  # already a member
        self._group_touch(group_id, "added", picked[0])
        return kind

    def _role(self, kind: str) -> str | None:
        store, rng = self.store, self.rng
        role_ids = store.role_ids()
        if not role_ids:
            return None
        role_id = rng.choice(role_ids)
        if kind == "role_remove":
            held = store.role_member_ids(role_id)
            if not held:
                return None
            member = rng.choice(held)
            store.remove_role_member(role_id, member)
        else:
            picked = self._pick_user()
            if picked is None:
                return None
            member = picked[0]
            try:
                store.add_role_member(role_id, member)
            except StoreError:
                return None
        self.roles.setdefault(role_id, {"added": [], "removed": []})[
            "added" if kind == "role_add" else "removed"
        ].append(member)
        return kind


def apply_churn(store: TenantStore, changes: int, seed: int = 0) -> dict[str, Any]:
    """Apply `changes` random changes; returns counts per kind and the ids of what was touched."""
    # The tenant's change number is part of the seed: deterministic for a given tenant and seed, and a
    # second churn with the same seed on the changed tenant is a different one (no repeated creates).
    rng = random.Random(f"{seed}:{store.change}:churn")
    churn = _Churn(store, rng)
    kinds, weights = zip(*KINDS, strict=True)
    applied = 0
    for _ in range(changes * 3):
        if applied >= changes:
            break
        done = churn.one(rng.choices(kinds, weights)[0])
        if done is not None:
            churn.counts[done] += 1
            applied += 1
    users = {k: list(dict.fromkeys(v)) for k, v in churn.users.items()}
    return {
        "seed": seed,
        "changes": applied,
        "counts": dict(sorted(churn.counts.items())),
        "users": users,
        "groups": churn.groups,
        "roles": churn.roles,
        "change": store.change,
    }
