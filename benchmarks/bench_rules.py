"""Benchmark: rules engine decisions (decide + column mapping) for a large tenant, in one process.

Builds N varied synthetic inputs (not timed): licensed, unlicensed, admins, guests, free-plan users,
disabled and deleted users, members, nested members and owners; with and without a current row, rows
whose columns are up to date or stale, disabled rows, non-interactive rows and customer-edited email.
Then times ``decide(..., explain=False)`` over all of them, in the background mode.

    .venv/bin/python benchmarks/bench_rules.py [--users 1000000] [--seed 7]

Prints a table and writes benchmarks/results/rules.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

from syncd.directory.catalogue import SKUS_BY_PART
from syncd.directory.models import AssignedLicense, Deletion, DirectoryUser
from syncd.rules import (
    DYNAMICS_365_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    POWER_PLATFORM_ADMINISTRATOR,
    EnvironmentFacts,
    EnvType,
    Membership,
    Mode,
    RowFacts,
    UserFacts,
    UserKind,
    decide,
    wanted_columns,
)

RESULTS = Path(__file__).resolve().parent / "results" / "rules.json"

_LICENCE_CHOICES: list[tuple[AssignedLicense, ...]] = [
    (),
    (AssignedLicense(SKUS_BY_PART["DYN365_ENTERPRISE_SALES"].sku_id),),
    (AssignedLicense(SKUS_BY_PART["DYN365_ENTERPRISE_CUSTOMER_SERVICE"].sku_id),),
    (AssignedLicense(SKUS_BY_PART["POWERAPPS_PER_USER"].sku_id),),
    (AssignedLicense(SKUS_BY_PART["ENTERPRISEPACK"].sku_id),),
    (
        AssignedLicense(SKUS_BY_PART["SPE_E3"].sku_id),
        AssignedLicense(SKUS_BY_PART["DYN365_ENTERPRISE_SALES"].sku_id),
    ),
    (AssignedLicense(SKUS_BY_PART["EXCHANGESTANDARD"].sku_id),),
    (
        AssignedLicense(
            SKUS_BY_PART["DYN365_ENTERPRISE_SALES"].sku_id,
            frozenset({"2da8e897-7791-486b-b08f-cc63c8129df7"}),
        ),
    ),
]
_LICENCE_WEIGHTS = [15, 35, 10, 10, 15, 5, 5, 5]
_ROLES = [
    frozenset(),
    frozenset({GLOBAL_ADMINISTRATOR}),
    frozenset({POWER_PLATFORM_ADMINISTRATOR}),
    frozenset({DYNAMICS_365_ADMINISTRATOR}),
]
_ROLE_WEIGHTS = [97, 1, 1, 1]
_MEMBERSHIPS = [Membership.DIRECT, Membership.NESTED_ONLY, Membership.OWNER, Membership.NONE]
_MEMBERSHIP_WEIGHTS = [80, 8, 2, 10]


def build_inputs(n: int, seed: int) -> list[tuple[UserFacts, RowFacts | None]]:
    rnd = random.Random(seed)
    lic_idx = rnd.choices(range(len(_LICENCE_CHOICES)), _LICENCE_WEIGHTS, k=n)
    role_idx = rnd.choices(range(len(_ROLES)), _ROLE_WEIGHTS, k=n)
    mem_idx = rnd.choices(range(len(_MEMBERSHIPS)), _MEMBERSHIP_WEIGHTS, k=n)
    out: list[tuple[UserFacts, RowFacts | None]] = []
    for i in range(n):
        oid = f"00000000-0000-4000-8000-{i:012d}"
        r = rnd.random()
        du = DirectoryUser(
            id=oid,
            user_principal_name=f"user{i}@contoso.example",
            display_name=f"User {i}",
            given_name=None if r < 0.02 else f"Given{i % 997}",
            surname=f"Surname{i % 1009}",
            job_title="Engineer" if r < 0.5 else None,
            mail=f"user{i}@contoso.example",
            business_phones=("+1 555 0100",) if r < 0.7 else (),
            mobile_phone=None,
            city="Seattle" if r < 0.3 else "Paris",
            country="US" if r < 0.3 else "FR",
            account_enabled=rnd.random() > 0.03,
            user_type="Guest" if rnd.random() < 0.05 else "Member",
            assigned_licenses=_LICENCE_CHOICES[lic_idx[i]],
        )
        deletion = Deletion.NONE
        user: DirectoryUser | None = du
        d = rnd.random()
        if d < 0.01:
            deletion, user = Deletion.HARD, None
        elif d < 0.02:
            deletion = Deletion.SOFT
        facts = UserFacts(user, oid, deletion, _ROLES[role_idx[i]], _MEMBERSHIPS[mem_idx[i]])
        row: RowFacts | None = None
        if rnd.random() < 0.7:  # most users already have a row
            cols = wanted_columns(du)
            if rnd.random() < 0.1:  # stale: the directory changed since the last run
                cols = dict(cols, jobtitle="Former title", address1_city="Lyon")
            row = RowFacts(
                kind=UserKind.REGULAR,
                isdisabled=rnd.random() < 0.1,
                accessmode=4 if rnd.random() < 0.001 else 0,
                islicensed=True,
                columns=cols,
                email_edited=rnd.random() < 0.02,
            )
        out.append((facts, row))
    return out


def run(n: int, seed: int) -> dict[str, object]:
    env = EnvironmentFacts(
        "bench", EnvType.PRODUCTION, security_group_id="5f1e4c1a-0000-4000-8000-000000000001"
    )
    t0 = time.perf_counter()
    inputs = build_inputs(n, seed)
    build_s = time.perf_counter() - t0

    def timed(gc_on: bool) -> tuple[float, Counter[str]]:
        gc.collect()
        if not gc_on:
            gc.disable()
        try:
            t0 = time.perf_counter()
            actions = Counter(str(decide(u, env, r, Mode.BACKGROUND).action) for u, r in inputs)
            return time.perf_counter() - t0, actions
        finally:
            gc.enable()

    seconds, actions = timed(gc_on=True)
    seconds_no_gc, _ = timed(gc_on=False)  # as a sync loop may run it; the rules' own cost
    return {
        "benchmark": "rules.decide",
        "users": n,
        "seconds": round(seconds, 3),
        "users_per_second": round(n / seconds),
        "seconds_gc_disabled": round(seconds_no_gc, 3),
        "build_seconds": round(build_s, 3),
        "actions": dict(sorted(actions.items())),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "seed": seed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="print only, don't write the JSON")
    args = ap.parse_args()
    res = run(args.users, args.seed)
    print(f"{'users':>10} {'seconds':>9} {'users/s':>11} {'s (gc off)':>11}")
    print(
        f"{res['users']:>10} {res['seconds']:>9.3f} {res['users_per_second']:>11} {res['seconds_gc_disabled']:>11}"
    )
    print("actions:", ", ".join(f"{k}={v}" for k, v in res["actions"].items()))  # type: ignore[union-attr]
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=2) + "\n")
        print("wrote", RESULTS)


if __name__ == "__main__":
    main()
