"""Benchmark: what syncd.testing's fixtures cost a user's test (issue target: after the first use,
a test's tenant + database + environment under 0.3 s).

Two measurements, each on SQLite and on PostgreSQL:
1. Through pytest, as a user's project sees it: a generated test file of `--tests` tests, each using
   `syncd_tenant` (marked `users=1000`), `syncd_database` and `syncd_environment("prod")` and
   running one full sync (what such a test does first; a PostgreSQL database is made in the
   background while the previous test runs, so a test that does nothing at all waits longer), run by
   pytest in a new process; a conftest records each test's setup time (pytest's own report
   duration). The first test pays for the session (server, tenant generation, migrated template).
2. The parts, timed directly: generating the 1,000-user template, one test's tenant copy (copy,
   open, mount), a fresh database from the template, creating the environment.

    .venv/bin/python benchmarks/bench_fixtures.py            # SQLite and PostgreSQL at 127.0.0.1
    .venv/bin/python benchmarks/bench_fixtures.py --tests 40 --pg-url postgresql://postgres@127.0.0.1:5432/postgres

Prints a table; writes benchmarks/results/fixtures.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "fixtures.json"

CONFTEST = """
import json, os
_OUT = os.environ["BENCH_OUT"]

def pytest_runtest_logreport(report):
    if report.when == "setup":
        with open(_OUT, "a") as f:
            f.write(json.dumps({"test": report.nodeid, "setup_s": report.duration}) + "\\n")
"""

TEST = """
import pytest

@pytest.mark.syncd_tenant(users=1000, seed=1)
def test_{i}(syncd_tenant, syncd_environment):
    env = syncd_environment("prod")
    assert env.name == "prod"
"""


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "median_s": statistics.median(ordered),
        "p95_s": ordered[max(0, round(0.95 * len(ordered)) - 1)],
        "max_s": ordered[-1],
    }


def through_pytest(tests: int, pg_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fixtures-") as folder:
        root = Path(folder)
        (root / "conftest.py").write_text(CONFTEST)
        (root / "test_bench.py").write_text("".join(TEST.format(i=i) for i in range(tests)))
        out = root / "setup.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        env["BENCH_OUT"] = str(out)
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-o",
            "addopts=",
        ]
        if pg_url:
            args.append(f"--syncd-pg-url={pg_url}")
        started = time.perf_counter()
        proc = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(
                f"the benchmark's pytest run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        setups = [json.loads(line)["setup_s"] for line in out.read_text().splitlines()]
    return {"first_setup_s": setups[0], "later_setup": _stats(setups[1:]), "pytest_wall_s": wall}


def parts(repeats: int, pg_url: str | None) -> dict[str, Any]:
    from syncd.testing.databases import DatabaseTemplates
    from syncd.testing.environments import SyncdEnvironment
    from syncd.testing.server import GraphServer
    from syncd.testing.tenants import FakeTenant, TenantTemplates

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-parts-") as folder, GraphServer() as server:
        root = Path(folder)
        started = time.perf_counter()
        template = TenantTemplates(root / "templates").path(1000, 1)
        out["tenant_template_1000_s"] = time.perf_counter() - started
        databases = DatabaseTemplates(root / "dbt", pg_url)
        started = time.perf_counter()
        databases.fresh(root)  # the first pays for the migrated template
        out["database_template_s"] = time.perf_counter() - started
        copies, fresh, envs = [], [], []
        for i in range(repeats):
            t0 = time.perf_counter()
            tenant = FakeTenant.copy_of(template, root / f"t{i}", server, users=1000, seed=1)
            t1 = time.perf_counter()
            url = databases.fresh(root)
            t2 = time.perf_counter()
            environment = SyncdEnvironment(url, tenant.graph_url, "prod")
            t3 = time.perf_counter()
            copies.append(t1 - t0)
            fresh.append(t2 - t1)
            envs.append(t3 - t2)
            environment.close()
            tenant.close()
            databases.drop(url)
        databases.close()
        out["tenant_copy"] = _stats(copies)
        out["fresh_database"] = _stats(fresh)
        out["environment"] = _stats(envs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=30, help="tests in the pytest run (default 30)")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SYNCD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server (a role that may create databases); '' to skip PostgreSQL",
    )
    args = parser.parse_args()
    backends: dict[str, str | None] = {"sqlite": None}
    if args.pg_url:
        backends["postgresql"] = args.pg_url
    results: dict[str, Any] = {}
    for backend, url in backends.items():
        results[backend] = {"pytest": through_pytest(args.tests, url), "parts": parts(args.tests, url)}

    print(
        f"syncd.testing fixture cost: {args.tests} tests, each a 1,000-user tenant, a database, an environment"
    )
    print(f"{'measure':<58}" + "".join(f"{b:>14}" for b in results))

    def row(label: str, pick: Any) -> None:
        print(f"{label:<58}" + "".join(f"{pick(r):>13.3f}s" for r in results.values()))

    row("first test's setup (session: server, tenant, template)", lambda r: r["pytest"]["first_setup_s"])
    row("later tests' setup, median", lambda r: r["pytest"]["later_setup"]["median_s"])
    row("later tests' setup, p95", lambda r: r["pytest"]["later_setup"]["p95_s"])
    row("later tests' setup, max", lambda r: r["pytest"]["later_setup"]["max_s"])
    row("  part: generate the 1,000-user tenant (once)", lambda r: r["parts"]["tenant_template_1000_s"])
    row("  part: migrate the database template (once)", lambda r: r["parts"]["database_template_s"])
    row("  part: a test's tenant copy, median", lambda r: r["parts"]["tenant_copy"]["median_s"])
    row("  part: a fresh database, median", lambda r: r["parts"]["fresh_database"]["median_s"])
    row("  part: creating the environment, median", lambda r: r["parts"]["environment"]["median_s"])
    row("whole pytest process (wall)", lambda r: r["pytest"]["pytest_wall_s"])
    target = 0.3
    for backend, r in results.items():
        p95 = r["pytest"]["later_setup"]["p95_s"]
        print(f"{backend}: later setup p95 / target {target}s = {p95 / target:.2f}x")
    RESULTS.parent.mkdir(exist_ok=True)
    import syncd

    RESULTS.write_text(
        json.dumps(
            {"tests": args.tests, "python": platform.python_version(), "syncd": syncd.__version__, **results},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
