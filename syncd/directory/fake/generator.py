"""Deterministic generation of a realistic fake tenant.

Same seed and options, same tenant byte for byte: ids come from seeded random streams, and
nothing reads the clock. One stream (`structure`) picks group members, owners and admins
by user number; the other (`users`) draws each user in turn.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from syncd.directory import catalogue
from syncd.directory.catalogue import SkuKind
from syncd.directory.fake import names
from syncd.directory.fake.mutations import group_json
from syncd.directory.fake.store import TenantStore

ROLE_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("62e90394-69f5-4237-9190-012177145e10", "Global Administrator", "Can manage all aspects of the tenant."),
    ("11648597-926c-4cf3-9c36-bcebb0ba8dcd", "Power Platform Administrator", "Can manage Power Platform."),
    ("44367163-eba1-44c3-98af-f5787879f96a", "Dynamics 365 Administrator", "Can manage Dynamics 365."),
)

Progress = Callable[[int, int], None]


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _licence_buckets() -> list[tuple[float, str, list[list[dict[str, Any]]]]]:
    """(cumulative share, category, choices of assignedLicenses) for members."""

    def lic(sku: catalogue.CatalogueSku, disabled: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"disabledPlans": list(disabled), "skuId": sku.sku_id}

    by_kind = {k: [s for s in catalogue.SKUS if s.kind is k] for k in SkuKind}
    dataverse, m365, office = (
        by_kind[SkuKind.DATAVERSE],
        by_kind[SkuKind.M365_FREE_PLAN],
        by_kind[SkuKind.OFFICE_ONLY],
    )
    e3 = catalogue.SKUS_BY_PART["ENTERPRISEPACK"]

    def dv_disabled(s: catalogue.CatalogueSku) -> dict[str, Any]:
        return lic(s, tuple(p.service_plan_id for p in s.plans if p.service_plan_id in catalogue.PLAN_GRANTS))

    return [
        (0.18, "unlicensed", [[]]),
        (0.48, "dataverse", [[lic(s)] for s in dataverse]),
        (0.53, "dataverse_plan_disabled", [[dv_disabled(s)] for s in dataverse]),
        (0.63, "office_only", [[lic(s)] for s in office]),
        (0.73, "o365_e3_free_plan_only", [[lic(e3)]]),
        (0.85, "m365_free_plan", [[lic(s)] for s in m365 if s is not e3]),
        (1.00, "m365_and_dataverse", [[lic(m), lic(d)] for m in m365 for d in dataverse]),
    ]


class _Plan:
    """The structure stream: which user numbers are group members, owners and admins."""

    def __init__(self, seed: int, users: int, group_size: int | None, admins_per_role: int | None) -> None:
        rng = random.Random(f"{seed}:structure")
        n = users
        size = min(n, group_size if group_size is not None else max(1, n // 10))
        small = min(n, max(1, min(5000, n // 50)))
        self.main = rng.sample(range(n), size) if n else []
        self.nested = rng.sample(range(n), min(n, max(1, size // 10))) if n else []
        self.sales = rng.sample(range(n), small) if n else []
        self.service = rng.sample(range(n), small) if n else []
        self.staff = rng.sample(range(n), min(n, 3)) if n else []
        per_role = admins_per_role if admins_per_role is not None else max(2, min(20, n // 1000))
        self.admins: list[list[int]] = [
            rng.sample(range(n), min(n, per_role)) if n else [] for _ in ROLE_TEMPLATES
        ]
        # Owners of the main group: one member and one user outside it.
        outside = [i for i in rng.sample(range(n), min(n, 50)) if i not in set(self.main)] if n else []
        self.owners = ([self.main[0]] if self.main else []) + outside[:1]
        # Even positions in each role's list are licensed admins, odd ones unlicensed.
        self.admin_licensed = {i: pos % 2 == 0 for role in self.admins for pos, i in enumerate(role)}
        self.needed = (
            set(self.main) | set(self.nested) | set(self.sales) | set(self.service) | set(self.staff)
        )
        self.needed |= set(self.owners) | set(self.admin_licensed)


def _users(
    rng: random.Random,
    n: int,
    domain: str,
    plan: _Plan,
    ids: dict[int, str],
    stats: dict[str, int],
    progress: Progress | None,
) -> Iterator[tuple[str, str, int, int, bytes]]:
    buckets = _licence_buckets()
    dumps, r, bits = orjson.dumps, rng.random, rng.getrandbits
    given_n, sur_n, place_n = len(names.GIVEN_NAMES), len(names.SURNAMES), len(names.PLACES)
    jobs, phones, gdomains = names.JOB_TITLES, names.PHONE_PREFIXES, names.GUEST_DOMAINS
    needed, admin_licensed = plan.needed, plan.admin_licensed
    for i in range(n):
        h = f"{bits(128):032x}"
        uid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
        if i in needed:
            ids[i] = uid
        given, g_ascii = names.GIVEN_NAMES[int(r() * given_n)]
        surname, s_ascii = names.SURNAMES[int(r() * sur_n)]
        street, city, state, postal, country = names.PLACES[int(r() * place_n)]
        guest = r() < 0.03 and i not in admin_licensed
        enabled = r() >= 0.04
        blank = r()
        display = f"{given} {surname}"
        given_value: str | None = given
        if blank < 0.02:
            given_value = None if blank < 0.01 else ""
            display = surname
        if guest:
            ext = gdomains[int(r() * len(gdomains))]
            mail: str | None = f"{g_ascii}.{s_ascii}{i}@{ext}"
            upn = f"{g_ascii}.{s_ascii}{i}_{ext}#EXT#@{domain}"
        else:
            upn = f"{g_ascii}.{s_ascii}{i}@{domain}"
            mail = upn if r() < 0.95 else None
        lr = r()
        if i in admin_licensed:
            lr = 0.3 if admin_licensed[i] else 0.0
        elif guest and lr < 0.7:
            lr = 0.0
        for share, category, choices in buckets:
            if lr < share:
                licences = choices[int(r() * len(choices))]
                stats[category] += 1
                break
        stats["guests"] += guest
        stats["disabled"] += not enabled
        stats["blank_given_name"] += blank < 0.02
        for lic in licences:
            stats["sku:" + lic["skuId"]] += 1
        blob = dumps(
            {
                "id": uid,
                "userPrincipalName": upn,
                "displayName": display,
                "givenName": given_value,
                "surname": surname,
                "jobTitle": jobs[int(r() * len(jobs))],
                "mail": mail,
                "businessPhones": [f"{phones[int(r() * len(phones))]} {1000000 + i}"] if r() < 0.8 else [],
                "mobilePhone": f"+1 555 {i % 10000:04d}" if r() < 0.5 else None,
                "streetAddress": f"{street} {1 + i % 200}",
                "city": city,
                "state": state,
                "postalCode": postal,
                "country": country,
                "accountEnabled": enabled,
                "userType": "Guest" if guest else "Member",
                "assignedLicenses": licences,
            }
        )
        if progress is not None and i % 20000 == 0:
            progress(i, n)
        yield uid, upn, int(enabled), int(guest), blob
    if progress is not None:
        progress(n, n)


def generate_tenant(
    store: TenantStore,
    users: int,
    seed: int = 0,
    *,
    group_size: int | None = None,
    admins_per_role: int | None = None,
    marketing: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replace the store's tenant with a generated one; returns a summary (ids of the notable objects)."""
    if users < 0:
        raise ValueError("users must be >= 0")
    started = time.perf_counter()
    rng = random.Random(seed)
    tenant_id = _uuid(rng)
    domain = f"contoso{seed}.onmicrosoft.com"
    plan = _Plan(seed, users, group_size, admins_per_role)
    ids: dict[int, str] = {}
    stats: dict[str, int] = dict.fromkeys(
        ["guests", "disabled", "blank_given_name"] + [b[1] for b in _licence_buckets()], 0
    )
    stats.update({"sku:" + s.sku_id: 0 for s in catalogue.SKUS})
    meta = {"tenant_id": tenant_id, "tenant_name": f"Contoso {seed}", "domain": domain, "seed": str(seed)}
    srng = random.Random(f"{seed}:objects")
    with store.bulk(meta) as load:
        load.users(_users(rng, users, domain, plan, ids, stats, progress))
        sps = [(_uuid(srng), _uuid(srng), name) for name in names.SERVICE_PRINCIPALS]
        load.service_principals(
            (
                sp_id,
                app_id,
                orjson.dumps(
                    {
                        "id": sp_id,
                        "appId": app_id,
                        "displayName": name,
                        "servicePrincipalType": "Application",
                        "accountEnabled": True,
                    }
                ),
            )
            for sp_id, app_id, name in sps
        )
        group_defs = [
            ("main", "Dataverse Users", "Security group of the Dataverse environment"),
            (
                "nested",
                "Dataverse Users (nested)",
                "Nested inside Dataverse Users; its members are not direct",
            ),
            ("sales", "Sales", None),
            ("service", "Customer Service", None),
            ("empty", "Finance", "A group without members"),
            ("staff", "All Staff", "Holds other groups"),
        ]
        groups = {key: (_uuid(srng), name, desc) for key, name, desc in group_defs}
        load.groups(
            (
                gid,
                group_json(
                    gid,
                    name,
                    desc,
                    name.lower().replace(" ", "").replace("(", "").replace(")", ""),
                    "2024-01-01T00:00:00Z",
                ),
            )
            for gid, name, desc in groups.values()
        )
        members: dict[str, list[tuple[str, str]]] = {k: [] for k in groups}
        for key, idx in (
            ("main", plan.main),
            ("nested", plan.nested),
            ("sales", plan.sales),
            ("service", plan.service),
            ("staff", plan.staff),
        ):
            members[key] = [(ids[i], "user") for i in idx]
        members["main"] += [(groups["nested"][0], "group"), (sps[0][0], "servicePrincipal")]
        members["staff"] += [(groups["sales"][0], "group"), (groups["service"][0], "group")]
        load.members((groups[k][0], mid, kind) for k, rows in members.items() for mid, kind in rows)
        owners = [(groups["main"][0], ids[i], "user") for i in plan.owners]
        owners += [(groups["sales"][0], ids[plan.sales[0]], "user")] if plan.sales else []
        owners += [(groups["service"][0], sps[1][0], "servicePrincipal")]
        load.owners(owners)
        roles = [(_uuid(srng), tid, name, desc) for tid, name, desc in ROLE_TEMPLATES]
        load.roles(
            (
                rid,
                tid,
                orjson.dumps({"id": rid, "displayName": name, "description": desc, "roleTemplateId": tid}),
            )
            for rid, tid, name, desc in roles
        )
        load.role_members((roles[r][0], ids[i], "user") for r, idx in enumerate(plan.admins) for i in idx)
        load.skus(
            (
                s.sku_id,
                stats["sku:" + s.sku_id] if s.kind is not SkuKind.MARKETING_TENANT else 0,
                max(25, users + users // 10) if s.kind is not SkuKind.MARKETING_TENANT else 1,
            )
            for s in catalogue.SKUS
            if marketing or s.kind is not SkuKind.MARKETING_TENANT
        )
    return {
        "users": users,
        "seed": seed,
        "tenant_id": tenant_id,
        "domain": domain,
        "change": store.change,
        "seconds": round(time.perf_counter() - started, 3),
        "categories": {k: v for k, v in stats.items() if not k.startswith("sku:")},
        "groups": {
            key: {
                "id": gid,
                "displayName": name,
                "members": len(members[key]),
                "owners": [o[1] for o in owners if o[0] == gid],
            }
            for key, (gid, name, _) in groups.items()
        },
        "roles": {
            name: {
                "id": rid,
                "roleTemplateId": tid,
                "licensed": [ids[i] for i in plan.admins[r] if plan.admin_licensed[i]],
                "unlicensed": [ids[i] for i in plan.admins[r] if not plan.admin_licensed[i]],
            }
            for r, (rid, tid, name, _) in enumerate(roles)
        },
        "service_principals": [{"id": s, "appId": a, "displayName": n} for s, a, n in sps],
    }
