"""Benchmark: the Graph requests of a full run right after a scope change (R24, R9).

A generated tenant (`--users`) served in-process by the fake Graph server; one environment synced
tenant-wide (a full run), then scoped to the tenant's security group ("Dataverse Users", `--group-size`
direct members), then one full run. That run no longer reads the rows of users outside the group, and
keeps their azurestate (R9) by asking the directory about them: this benchmark counts the requests it
makes for that (the fake's counters, by endpoint) and in all (the client's HTTP requests).

    .venv/bin/python benchmarks/bench_scope_change.py                      # 8,000 users, SQLite
    .venv/bin/python benchmarks/bench_scope_change.py --database-url postgresql+psycopg://...

The script uses only interfaces older than JSON batching, so the same file measures an earlier
commit too (`PYTHONPATH=<that checkout>`). Prints a table; writes benchmarks/results/scope_change.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import update

import syncd
from syncd.dataverse import db
from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.dataverse.schema import Environment
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.settings import load_settings
from syncd.sync.run import RunOptions, sync_environment

RESULTS = Path(__file__).parent / "results" / "scope_change.json"


def _commit(path: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(users: int, group_size: int, database_url: str | None, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'syncd.db'}"
        engine = db.make_engine(url)
        db.upgrade(engine)
        settings = load_settings(database_url=url, allow_mass_disable=True)
        store = TenantStore.open(None)
        tenant = generate_tenant(store, users=users, seed=seed, group_size=group_size)
        app = create_app(store)
        faults = app.state.faults
        client = GraphClient(
            "http://fake-entra.local/v1.0", token_provider=StaticToken("t"), transport=InProcessTransport(app)
        )
        with client:
            with db.session_factory(engine)() as s, s.begin():
                create_environment(s, EnvironmentSpec(name="bench"))
            first = sync_environment(engine, client, "bench", settings, RunOptions(kind="full"))
            assert first.outcome == "succeeded", first.error
            group = tenant["groups"]["main"]["id"]
            with db.session_factory(engine)() as s, s.begin():
                s.execute(
                    update(Environment).where(Environment.name == "bench").values(security_group_id=group)
                )
            faults.reset_counters()
            before = client.stats.requests
            started = time.perf_counter()
            report = sync_environment(engine, client, "bench", settings, RunOptions(kind="full"))
            seconds = time.perf_counter() - started
            assert report.outcome == "succeeded", report.error
            counters = faults.counters()["by_endpoint"]
        engine.dispose()
        store.close()
    lookups = {
        name: c["requests"]
        for name, c in counters.items()
        if name in ("GET /v1.0/users/{key}", "POST /v1.0/$batch", "GET /v1.0/users")
    }
    return {
        "users": users,
        "group_size": group_size,
        "rows": first.counts["created"],
        "disabled_by_scope_change": report.counts["disabled"],
        "run_requests": client.stats.requests - before,
        "lookup_requests": lookups,
        "run_seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=8000)
    parser.add_argument("--group-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    parser.add_argument("--label", default=None, help="a name for this measurement in the results file")
    args = parser.parse_args()
    code = Path(syncd.__file__).resolve().parent.parent
    result = measure(args.users, args.group_size, args.database_url, args.seed)
    result.update(
        {
            "label": args.label or _commit(code),
            "commit": _commit(code),
            "backend": (args.database_url or "sqlite").split(":", 1)[0],
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    print("| label | users | rows | disabled by the scope change | requests of the run | lookup requests |")
    print("|---|---|---|---|---|---|")
    looked = ", ".join(f"{k}: {v}" for k, v in sorted(result["lookup_requests"].items()))
    print(
        f"| {result['label']} | {result['users']:,} | {result['rows']:,} | {result['disabled_by_scope_change']:,} "
        f"| {result['run_requests']:,} | {looked} |"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    previous = [r for r in previous if r.get("label") != result["label"]]
    RESULTS.write_text(json.dumps([*previous, result], indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
