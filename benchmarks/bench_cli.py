"""Benchmark: the `syncd` command as its user sees it, a whole process per run.

Times the process of `syncd --help`, `syncd runs --help`, `syncd runs` (on a fresh SQLite database at
head, and on a PostgreSQL database at head), `syncd env list`, `syncd config show` and
`syncd sync bench --delta --json` (a small environment, synced once in full from a generated tenant
that `syncd entra serve` serves on loopback; before each timed run, outside its time, the tenant gets
--delta-changes changes): N runs each (after one warm-up run), their minimum and median. The process
is the one the `syncd` script starts (``from syncd.cli import main; main()``) with this checkout first
on the path, in an empty working directory (no ./syncd.toml), stdout and stderr not a terminal.

    .venv/bin/python benchmarks/bench_cli.py [--runs 15] [--label after] [--no-postgres] [--root DIR]
        [--delta-users 3000] [--delta-changes 100]

``--root DIR`` times the syncd of another checkout (DIR holds its ``syncd`` package), e.g. an export
of an earlier commit: ``git archive COMMIT syncd | tar -x -C DIR``.

Prints a table with the targets (0.3 s for --help, 0.4 s for runs, 0.5 s for a delta run: issue 14's
is at 1M users with 1,000 changes, where the run itself takes 0.08 s) and writes the figures under the
label to benchmarks/results/cli.json (the other labels there are kept, so that a run before a change
and a run after it sit side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cli.json"
PG_ADMIN = os.environ.get("SYNCD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "syncd_bench_cli"
# What the `syncd` console script runs.
ENTRY = "import sys; sys.argv[0] = 'syncd'; from syncd.cli import main; sys.exit(main())"
TARGETS = {"--help": 0.3, "runs": 0.4, "sync --delta": 0.5}
# The libraries `syncd runs` cannot do without (the CLI, the settings, the ORM and the schema's
# PostgreSQL index options, the logging, the table), imported and nothing else: a floor for it.
FLOOR = (
    "import typer, pydantic_settings, sqlalchemy.orm, sqlalchemy.dialects.postgresql, structlog, "
    "rich.console, rich.table"
)
# The same for a delta run with --json off a terminal: the CLI, the settings, SQLAlchemy Core, the
# logging and the HTTP client (structlog and httpx without rich, as syncd imports them), the file
# lock of a SQLite run.
SYNC_FLOOR = (
    "import sys; sys.modules['rich'] = sys.modules['click'] = None; "
    "import typer, pydantic_settings, sqlalchemy, structlog, httpx, httpcore, filelock, orjson"
)


def syncd(args: list[str], env: dict[str, str], cwd: Path, code: str = ENTRY) -> float:
    """Seconds of one whole `syncd ARGS` process (or of `python -c CODE`); fails on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"syncd {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return elapsed


def measure(
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    runs: int,
    code: str = ENTRY,
    before: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """``runs`` timed processes after a warm-up one (the page cache, Python's bytecode cache);
    ``before`` runs ahead of each, outside its time."""
    times = []
    for i in range(runs + 1):
        if before is not None:
            before()
        seconds = syncd(args, env, cwd, code)
        if i:
            times.append(seconds)
    return {"min": min(times), "median": statistics.median(times), "runs": runs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fake_graph(store: Path, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """`syncd entra serve` on loopback for the tenant in ``store``: its origin."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    args = ["--log-level", "warning", "entra", "serve", "--port", str(port), "--store", str(store)]
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{origin}/v1.0/organization", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("syncd entra serve did not start")
        yield origin
    finally:
        proc.terminate()
        proc.wait(10)


def churn(origin: str, changes: int) -> Callable[[], None]:
    """A call that makes ``changes`` changes in the served tenant (a new seed each time)."""
    seeds = iter(range(1000, 10**6))

    def call() -> None:
        body = json.dumps({"changes": changes, "seed": next(seeds)}).encode()
        request = urllib.request.Request(
            f"{origin}/_sim/churn", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            r.read()

    return call


def case(name: str, env: dict[str, str], figures: dict[str, Any]) -> dict[str, Any]:
    url = env.get("SYNCD_DATABASE_URL")
    database = "-" if url is None else "postgresql" if url.startswith("postgres") else "sqlite"
    print(f"  {name:<12} {database:<10} min {figures['min']:.3f} s", file=sys.stderr)
    command = "syncd sync bench --delta" if name == "sync --delta" else f"syncd {name}"
    return {"command": command, "database": database, **figures, "target": TARGETS.get(name)}


def pg_url() -> str:
    """A fresh PostgreSQL database of its own (dropped first if left over)."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{PG_DB}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DB}"


def drop_pg() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--label", default="latest", help="the key the figures are stored under")
    parser.add_argument("--no-postgres", action="store_true", help="skip `syncd runs` on PostgreSQL")
    parser.add_argument("--table-only", action="store_true", help="reprint the recorded figures")
    parser.add_argument("--root", type=Path, default=ROOT, help="the directory holding the syncd timed")
    parser.add_argument("--delta-users", type=int, default=3000, help="the delta run's tenant")
    parser.add_argument("--delta-changes", type=int, default=100, help="changes before each delta run")
    args = parser.parse_args()

    if args.table_only:
        print_tables(json.loads(RESULTS.read_text()))
        return

    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    base["PYTHONPATH"] = str(args.root.resolve()) + (
        os.pathsep + base["PYTHONPATH"] if base.get("PYTHONPATH") else ""
    )
    base["SYNCD_LOG_LEVEL"] = "warning"
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        cwd = Path(tmp)
        sqlite = {**base, "SYNCD_DATABASE_URL": f"sqlite:///{cwd / 'bench.db'}"}
        syncd(["db", "upgrade"], sqlite, cwd)
        plan: list[tuple[str, list[str], dict[str, str]]] = [
            ("--help", ["--help"], base),
            ("runs --help", ["runs", "--help"], base),
            ("runs", ["runs"], sqlite),
            ("env list", ["env", "list"], sqlite),
            ("config show", ["config", "show"], sqlite),
            ("sync --help", ["sync", "--help"], base),
        ]
        databases = [sqlite]
        if not args.no_postgres:
            postgres = {**base, "SYNCD_DATABASE_URL": pg_url()}
            syncd(["db", "upgrade"], postgres, cwd)
            plan.insert(3, ("runs", ["runs"], postgres))
            databases.append(postgres)
        tenant = cwd / "tenant.db"
        syncd(
            ["entra", "generate", "--users", str(args.delta_users), "--seed", "1", "--store", str(tenant)],
            base,
            cwd,
        )
        try:
            with fake_graph(tenant, base, cwd) as origin:
                for name, argv, env in plan:
                    figures = measure(argv, env, cwd, args.runs)
                    cases.append(case(name, env, figures))
                for database in databases:
                    env = {**database, "SYNCD_DIRECTORY_URL": f"{origin}/v1.0"}
                    syncd(["env", "create", "bench"], env, cwd)
                    syncd(["sync", "bench", "--full", "--json"], env, cwd)
                    argv = ["sync", "bench", "--delta", "--json", "--allow-mass-disable"]
                    figures = measure(argv, env, cwd, args.runs, before=churn(origin, args.delta_changes))
                    cases.append(case("sync --delta", env, figures))
            for command, code in (("syncd runs", FLOOR), ("syncd sync --delta", SYNC_FLOOR)):
                figures = measure([], base, cwd, args.runs, code)
                cases.append(
                    {
                        "command": f"floor: import the libraries of {command}",
                        "database": "-",
                        **figures,
                        "target": None,
                    }
                )
        finally:
            if not args.no_postgres:
                drop_pg()

    recorded = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    recorded[args.label] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "bytecode_written": not os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "delta": {"users": args.delta_users, "changes": args.delta_changes},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "cases": cases,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(recorded, indent=2) + "\n")
    print_tables({args.label: recorded[args.label]})


def print_tables(recorded: dict[str, Any]) -> None:
    for label, run in recorded.items():
        print(f"\n{label} ({run['when']}, {run['cases'][0]['runs']} runs each)\n")
        print("| command | database | min s | median s | target |")
        print("|---|---|---|---|---|")
        for c in run["cases"]:
            target = c["target"]
            verdict = "" if target is None else f"<= {target} s " + ("ok" if c["min"] <= target else "MISSED")
            print(f"| {c['command']} | {c['database']} | {c['min']:.3f} | {c['median']:.3f} | {verdict} |")


if __name__ == "__main__":
    main()
