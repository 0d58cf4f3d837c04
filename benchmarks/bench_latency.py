"""Benchmark: from a directory change to the SystemUser row being disabled, through the daemon.

Real processes on PostgreSQL: the fake Graph server over loopback HTTP (`syncd entra serve`) and
the daemon (`syncd run`, delta interval 5 s) syncing one environment scoped to a security group.
Then CHANGES directory changes, in small waves at random moments (so they land at every phase of
the delta interval), cycling through: account disabled (PATCH accountEnabled=false), every
licence removed (assignLicense), removed from the environment's security group. For each change,
the time from the Graph write's answer to the row's `isdisabled` (the database polled every 20 ms).

    .venv/bin/python benchmarks/bench_latency.py [--changes 100] [--users 5000] [--interval 5]

Prints a table and writes benchmarks/results/latency.json. Target: p99 <= 2 x interval (10 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

# The process helpers are shared with the daemon's process tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))

from procs import (  # noqa: E402
    PG_ADMIN_URL,
    Stack,
    admin_ids,
    disable_user,
    enabled_regular_users,
    group_id,
    pg_database,
    remove_licences,
    remove_member,
    wait_for,
)

RESULTS = Path(__file__).parent / "results" / "latency.json"
KINDS = ("disable", "licence_removal", "group_removal")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


class Poller(threading.Thread):
    """Polls the rows of the changed users; records when each becomes disabled."""

    def __init__(self, stack: Stack, env_id: int) -> None:
        super().__init__(daemon=True)
        self.stack, self.env_id = stack, env_id
        self.pending: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def watch(self, object_id: str, changed_at: float) -> None:
        with self.lock:
            self.pending[object_id] = changed_at

    def run(self) -> None:
        engine = self.stack.engine()
        while not self.stop.is_set():
            with self.lock:
                ids = list(self.pending)
            if ids:
                with engine.connect() as conn:
                    rows = conn.execute(
                        text(
                            "SELECT CAST(azureactivedirectoryobjectid AS text) FROM systemuser "
                            "WHERE environment_id = :e AND isdisabled AND "
                            "CAST(azureactivedirectoryobjectid AS text) = ANY(:ids)"
                        ),
                        {"e": self.env_id, "ids": ids},
                    ).all()
                seen = time.monotonic()
                with self.lock:
                    for (oid,) in rows:
                        if oid in self.pending:
                            self.done[oid] = seen - self.pending.pop(oid)
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--max-wave", type=int, default=4, help="changes per wave, 1..N")
    ap.add_argument("--max-gap", type=float, default=3.0, help="seconds between waves, 0..N")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as tmp, pg_database(PG_ADMIN_URL) as url:
        stack = Stack(Path(tmp), url.replace("postgresql+psycopg://", "postgresql://", 1), args.interval)
        try:
            result = run(stack, args, rng)
        finally:
            stack.close()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


def run(stack: Stack, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    print(f"tenant: {args.users} users; PostgreSQL; delta interval {args.interval}s", flush=True)
    stack.start_directory(users=args.users, seed=3, group_size=max(args.users // 2, args.changes * 2))
    stack.upgrade()
    with stack.graph_client() as g:
        group = group_id(g, "Dataverse Users")
        admins = admin_ids(g)
    stack.create_env("scoped", "--security-group", group)
    daemon, _ = stack.start_daemon("bench")
    engine = stack.engine()
    with engine.connect() as conn:
        env_id = conn.execute(text("SELECT id FROM environment WHERE name = 'scoped'")).scalar_one()

    def first_run_done() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT count(*) FROM sync_run WHERE environment_id = :e AND outcome = 'succeeded'"),
                    {"e": env_id},
                ).scalar()
            )

    wait_for(first_run_done, 300, "the first full run")
    users = enabled_regular_users(engine, "scoped", admins)
    if len(users) < args.changes:
        raise SystemExit(f"only {len(users)} enabled users to change; raise --users")
    rng.shuffle(users)
    targets = users[: args.changes]

    poller = Poller(stack, env_id)
    poller.start()
    kinds: dict[str, str] = {}
    started = time.monotonic()
    with stack.graph_client() as g:
        i = 0
        while i < len(targets):
            wave = targets[i : i + rng.randint(1, args.max_wave)]
            for oid in wave:
                kind = KINDS[i % len(KINDS)]
                if kind == "disable":
                    disable_user(g, oid)
                elif kind == "licence_removal":
                    remove_licences(g, oid)
                else:
                    remove_member(g, group, oid)
                poller.watch(oid, time.monotonic())
                kinds[oid] = kind
                i += 1
            time.sleep(rng.uniform(0, args.max_gap))
    wait_for(lambda: not poller.pending, 4 * args.interval + 30, "every change to reach its row", 0.1)
    poller.stop.set()
    poller.join()
    elapsed = time.monotonic() - started
    code = daemon.stop()

    with engine.connect() as conn:
        runs = conn.execute(
            text(
                "SELECT kind, outcome, EXTRACT(EPOCH FROM finished_at - started_at) FROM sync_run "
                "WHERE environment_id = :e ORDER BY id"
            ),
            {"e": env_id},
        ).all()
    delta_s = [float(d) for k, o, d in runs if k == "delta" and o == "succeeded" and d is not None]
    lat = list(poller.done.values())
    by_kind = {k: [poller.done[o] for o, kk in kinds.items() if kk == k] for k in KINDS}

    def summary(values: list[float]) -> dict[str, float]:
        return {
            "n": len(values),
            "p50_s": round(percentile(values, 50), 3),
            "p90_s": round(percentile(values, 90), 3),
            "p99_s": round(percentile(values, 99), 3),
            "max_s": round(max(values), 3),
            "mean_s": round(statistics.fmean(values), 3),
        }

    result: dict[str, Any] = {
        "benchmark": "change-to-row latency through the daemon",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "setup": {
            "database": "PostgreSQL",
            "directory": "fake Graph over loopback HTTP",
            "users": args.users,
            "delta_interval_s": args.interval,
            "changes": args.changes,
            "waves": f"1..{args.max_wave} changes, 0..{args.max_gap}s apart",
            "environment": "scoped to a security group",
        },
        "latency": summary(lat),
        "by_kind": {k: summary(v) for k, v in by_kind.items() if v},
        "delta_runs": {
            "count": len(delta_s),
            "median_duration_s": round(statistics.median(delta_s), 3) if delta_s else None,
            "max_duration_s": round(max(delta_s), 3) if delta_s else None,
        },
        "wall_s": round(elapsed, 1),
        "daemon_exit_code_on_sigterm": code,
        "target_p99_s": 2 * args.interval,
        "meets_target": percentile(lat, 99) <= 2 * args.interval,
    }
    print()
    print(f"{'changes':<18}{'n':>5}{'p50 s':>9}{'p90 s':>9}{'p99 s':>9}{'max s':>9}")
    rows = [("all", result["latency"])] + list(result["by_kind"].items())
    for name, s in rows:
        print(
            f"{name:<18}{s['n']:>5}{s['p50_s']:>9.2f}{s['p90_s']:>9.2f}{s['p99_s']:>9.2f}{s['max_s']:>9.2f}"
        )
    d = result["delta_runs"]
    print(f"\ndelta runs: {d['count']}, median {d['median_duration_s']} s, max {d['max_duration_s']} s")
    print(f"target p99 <= {2 * args.interval} s: {'met' if result['meets_target'] else 'NOT met'}")
    return result


if __name__ == "__main__":
    main()
