"""Benchmark: the `syncd` command as its user sees it, a whole process per run.

Times the process of `syncd --help`, `syncd runs --help`, `syncd runs` (on a fresh SQLite database at
head, and on a PostgreSQL database at head), `syncd env list` and `syncd config show`: N runs each
(after one warm-up run), their minimum and median. The process is the one the `syncd` script starts
(``from syncd.cli import main; main()``) with this checkout first on the path, in an empty working
directory (no ./syncd.toml).

    .venv/bin/python benchmarks/bench_cli.py [--runs 15] [--label after] [--no-postgres] [--root DIR]

``--root DIR`` times the syncd of another checkout (DIR holds its ``syncd`` package), e.g. an export
of an earlier commit: ``git archive COMMIT syncd | tar -x -C DIR``.

Prints a table with the targets (0.3 s for --help, 0.4 s for runs) and writes the figures under the
label to benchmarks/results/cli.json (the other labels there are kept, so that a run before a change
and a run after it sit side by side).
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "cli.json"
PG_ADMIN = os.environ.get("SYNCD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "syncd_bench_cli"
# What the `syncd` console script runs.
ENTRY = "import sys; sys.argv[0] = 'syncd'; from syncd.cli import main; sys.exit(main())"
TARGETS = {"--help": 0.3, "runs": 0.4}
# The libraries `syncd runs` cannot do without (the CLI, the settings, the ORM and the schema's
# PostgreSQL index options, the logging, the table), imported and nothing else: a floor for it.
FLOOR = (
    "import typer, pydantic_settings, sqlalchemy.orm, sqlalchemy.dialects.postgresql, structlog, "
    "rich.console, rich.table"
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


def measure(args: list[str], env: dict[str, str], cwd: Path, runs: int, code: str = ENTRY) -> dict[str, Any]:
    syncd(args, env, cwd, code)  # warm-up: the page cache and Python's bytecode cache
    times = [syncd(args, env, cwd, code) for _ in range(runs)]
    return {"min": min(times), "median": statistics.median(times), "runs": runs}


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
        ]
        if not args.no_postgres:
            postgres = {**base, "SYNCD_DATABASE_URL": pg_url()}
            syncd(["db", "upgrade"], postgres, cwd)
            plan.insert(3, ("runs", ["runs"], postgres))
        try:
            for name, argv, env in plan:
                database = (
                    "postgresql"
                    if env.get("SYNCD_DATABASE_URL", "").startswith("postgres")
                    else ("sqlite" if "SYNCD_DATABASE_URL" in env else "-")
                )
                figures = measure(argv, env, cwd, args.runs)
                cases.append(
                    {"command": f"syncd {name}", "database": database, **figures, "target": TARGETS.get(name)}
                )
                print(f"  {name:<12} {database:<10} min {figures['min']:.3f} s", file=sys.stderr)
            figures = measure([], base, cwd, args.runs, FLOOR)
            cases.append(
                {
                    "command": "floor: import the libraries of syncd runs",
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
