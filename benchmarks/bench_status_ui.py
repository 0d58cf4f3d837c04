"""Benchmark: the status UI's reads on PostgreSQL at a million rows (issue 15).

Fills a PostgreSQL database at head with one environment of --users SystemUser rows and --events
provisioning-log events (200 runs of contiguous events, one a minute; a rare rule R12 on one event
in 20,000, 30 ``withheld`` events), next to a small second environment, then times each query the
status UI makes, --repeat times after one warm-up: a page of the log (50 events, newest first) for
each filter, a time range (narrow and old; wide and old), a deep page, the log across environments,
the user search (UPN prefix, full-name prefix, hex prefix, GUID), and the count a finished run
records (``users_enabled`` / ``users_disabled``). For each it prints p50 and p95 in ms and the plan
PostgreSQL chose (the index it reads), and writes them to benchmarks/results/status_ui.json.

    .venv/bin/python benchmarks/bench_status_ui.py [--url postgresql://postgres@127.0.0.1:5432/syncd_bench_status]
        [--users 1000000] [--events 1000000] [--repeat 20] [--keep]

The database is dropped and created again unless --keep (then it is reused as filled).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from syncd.dataverse import db
from syncd.dataverse.environments import EnvironmentSpec, create_environment, root_business_unit
from syncd.dataverse.provisioning_log import EventFilter, read_events
from syncd.dataverse.user_search import search_users

RESULTS = Path(__file__).resolve().parent / "results" / "status_ui.json"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUNS = 200


def _fresh(url: str) -> None:
    base, name = url.rsplit("/", 1)
    admin = create_engine(db.normalise_database_url(base + "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _fill(engine: Engine, users: int, events: int) -> dict[str, Any]:
    db.upgrade(engine)
    with Session(engine) as s, s.begin():
        big = create_environment(s, EnvironmentSpec(name="big"))
        small = create_environment(s, EnvironmentSpec(name="small"))
        s.flush()
        ids = {"big": big.id, "small": small.id}
        units = {k: root_business_unit(s, v).businessunitid for k, v in ids.items()}
    with engine.begin() as c:
        for name, n in (("big", users), ("small", 10_000)):
            c.execute(
                text(
                    "INSERT INTO systemuser (systemuserid, environment_id, businessunitid, "
                    "azureactivedirectoryobjectid, syncd_kind, domainname, fullname, isdisabled, accessmode, "
                    "islicensed, azurestate, issyncwithdirectory, createdon, modifiedon) "
                    "SELECT gen_random_uuid(), :env, :bu, gen_random_uuid(), 'regular', "
                    "'user' || i || '.' || substr(md5(i::text), 1, 6) || '@contoso.com', "
                    "initcap(substr(md5(i::text), 1, 7)) || ' ' || initcap(substr(md5((i + 7)::text), 1, 9)), "
                    "i % 10 = 0, 0, true, 0, true, now(), now() FROM generate_series(1, :n) i"
                ),
                {"env": ids[name], "bu": units[name], "n": n},
            )
        first = c.execute(
            text(
                "INSERT INTO sync_run (environment_id, kind, requested_kind, trigger, started_at, outcome, read, "
                "created, updated, enabled, disabled, unchanged, failed, blocked_disables, restarts) "
                "SELECT :env, 'full', 'full', 'cli', :t0, 'succeeded', 0, 0, 0, 0, 0, 0, 0, 0, 0 "
                "FROM generate_series(1, :runs) RETURNING id"
            ),
            {"env": ids["big"], "t0": T0, "runs": RUNS},
        ).all()
        first_run = min(r[0] for r in first)
        per_run = max(1, events // RUNS)
        c.execute(
            text(
                "INSERT INTO sync_event (run_id, environment_id, systemuserid, azureactivedirectoryobjectid, "
                "action, rule, reason, changes, previous, created_at) "
                "SELECT :first + (u.rn - 1) / :per_run, :env, u.systemuserid, u.aad, "
                "CASE WHEN u.rn % 3 = 0 THEN 'create' WHEN u.rn % 50 = 0 THEN 'disable' ELSE 'update' END, "
                "CASE WHEN u.rn % 20000 = 0 THEN 'R12' WHEN u.rn % 50 = 0 THEN 'R9' ELSE 'R10' END, "
                '\'The directory changed the user.\', \'{"jobtitle": "new"}\', \'{"jobtitle": "old"}\', '
                ":t0 + u.rn * interval '1 minute' FROM (SELECT systemuserid, azureactivedirectoryobjectid AS aad, "
                "row_number() OVER () AS rn FROM systemuser WHERE environment_id = :env AND syncd_kind = 'regular' "
                "LIMIT :n) u"
            ),
            {"first": first_run, "per_run": per_run, "env": ids["big"], "t0": T0, "n": events},
        )
        c.execute(
            text(
                "INSERT INTO sync_event (run_id, environment_id, systemuserid, azureactivedirectoryobjectid, "
                "action, rule, reason, created_at) SELECT :run, :env, systemuserid, azureactivedirectoryobjectid, "
                "'withheld', 'R9', 'Withheld by the mass-disable guard: gone', :t "
                "FROM systemuser WHERE environment_id = :env LIMIT 30"
            ),
            {"run": first_run + RUNS // 2, "env": ids["big"], "t": T0 + timedelta(minutes=events // 2)},
        )
        c.execute(
            text(
                "INSERT INTO sync_event (environment_id, systemuserid, azureactivedirectoryobjectid, action, rule, "
                "reason, created_at) SELECT :env, systemuserid, azureactivedirectoryobjectid, 'update', 'R10', "
                "'small', :t0 + row_number() OVER () * interval '100 minutes' FROM systemuser "
                "WHERE environment_id = :env"
            ),
            {"env": ids["small"], "t0": T0},
        )
        c.execute(text("ANALYZE"))
    return ids


def _context(engine: Engine, ids: dict[str, int], events: int) -> dict[str, Any]:
    with engine.connect() as c:
        big = ids["big"]
        sample = c.execute(
            text(
                "SELECT systemuserid::text, azureactivedirectoryobjectid::text, domainname FROM systemuser "
                "WHERE environment_id = :e AND syncd_kind = 'regular' ORDER BY systemuserid LIMIT 1 OFFSET 12345"
            ),
            {"e": big},
        ).one()
        mid_run = c.execute(
            text(
                "SELECT run_id FROM sync_event WHERE environment_id = :e AND run_id IS NOT NULL "
                "ORDER BY id LIMIT 1 OFFSET :o"
            ),
            {"e": big, "o": events // 2},
        ).scalar_one()
        deep = c.execute(
            text(
                "SELECT id FROM sync_event WHERE environment_id = :e ORDER BY created_at, id LIMIT 1 OFFSET :o"
            ),
            {"e": big, "o": events // 3},
        ).scalar_one()
    return {"sid": sample[0], "oid": sample[1], "upn": sample[2], "run": mid_run, "deep": deep}


def _queries(
    ids: dict[str, int], ctx: dict[str, Any], events: int
) -> list[tuple[str, Callable[[Session], Any]]]:
    big = ids["big"]
    middle = T0 + timedelta(minutes=events // 2)

    def log(label: str, before: int | None = None, **kw: Any) -> tuple[str, Callable[[Session], Any]]:
        return label, lambda s: read_events(s, EventFilter(**kw), limit=50, before=before)

    def search(label: str, q: str) -> tuple[str, Callable[[Session], Any]]:
        return label, lambda s: search_users(s, big, q, limit=50)

    def count(s: Session) -> Any:
        return s.execute(
            text(
                "SELECT coalesce(sum(CASE WHEN isdisabled THEN 0 ELSE 1 END), 0), "
                "coalesce(sum(CASE WHEN isdisabled THEN 1 ELSE 0 END), 0) FROM systemuser "
                "WHERE environment_id = :e AND syncd_kind = 'regular'"
            ),
            {"e": big},
        ).one()

    return [
        log("log: environment", environment_id=big),
        log("log: small environment", environment_id=ids["small"]),
        log("log: + rare rule R12", environment_id=big, rule="R12"),
        log("log: + common rule R10", environment_id=big, rule="R10"),
        log("log: + rare action withheld", environment_id=big, action="withheld"),
        log("log: + action disable", environment_id=big, action="disable"),
        log("log: + run (middle)", environment_id=big, run_id=ctx["run"]),
        log("log: + user (object id)", environment_id=big, object_id=ctx["oid"]),
        log("log: + user (systemuserid)", environment_id=big, systemuserid=ctx["sid"]),
        log("log: + 1 hour, mid-log", environment_id=big, since=middle, until=middle + timedelta(hours=1)),
        log("log: + until mid-log (wide, old)", environment_id=big, until=middle),
        log("log: + rule R12 + since mid-log", environment_id=big, rule="R12", since=middle),
        log("log: deep page (before)", before=ctx["deep"], environment_id=big),
        log("log: every environment + action", action="disable"),
        search("search: UPN prefix 'user12'", "user12"),
        search("search: name prefix 'ab'", "ab"),
        search("search: UPN exact", ctx["upn"]),
        search("search: hex prefix 4 digits", ctx["oid"][:4]),
        search("search: GUID", ctx["oid"]),
        ("finish_run: users count", count),
    ]


def _plans(engine: Engine, run: Callable[[Session], Any]) -> list[str]:
    """The plan of each statement ``run`` sends (EXPLAIN ANALYZE of the same SQL and parameters)."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as s:
            run(s)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as c:
        for statement, parameters in seen:
            rows = c.exec_driver_sql(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + statement, parameters
            )
            plans.append("\n".join(r[0] for r in rows))
    return plans


def _scan(line: str) -> str:
    """'Index Scan Backward using ix on t' -> 'Index Scan Backward ix'; 'Seq Scan on t' -> 'Seq Scan t'."""
    words = line.strip().removeprefix("->").strip().split(" ")
    if "using" in words:
        return " ".join(words[: words.index("using")] + [words[words.index("using") + 1]])
    return (
        " ".join(words[: words.index("on")] + [words[words.index("on") + 1]])
        if "on" in words
        else line.strip()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/syncd_bench_status")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="reuse the database as filled")
    args = parser.parse_args()
    if not args.keep:
        _fresh(args.url)
    engine = db.make_engine(args.url)
    t = time.perf_counter()
    if args.keep:
        with engine.connect() as c:
            ids = dict(c.execute(text("SELECT name, id FROM environment")).tuples().all())
    else:
        ids = _fill(engine, args.users, args.events)
        print(f"filled in {time.perf_counter() - t:.0f} s")
    ctx = _context(engine, ids, args.events)
    results = []
    print(f"{'query':40} {'p50 ms':>8} {'p95 ms':>8}  rows  plan (outermost index scans)")
    for label, run in _queries(ids, ctx, args.events):
        with Session(engine) as s:
            out = run(s)  # warm-up
        times = []
        for _ in range(args.repeat):
            with Session(engine) as s:
                t = time.perf_counter()
                run(s)
                times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        plans = _plans(engine, run)
        scans = sorted(
            {_scan(line) for plan in plans for line in plan.splitlines() if " Scan " in f" {line} "}
        )
        rows = len(out) if isinstance(out, list) else 1
        print(f"{label:40} {p50:8.2f} {p95:8.2f} {rows:5}  {'; '.join(scans)}")
        results.append(
            {"query": label, "p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "rows": rows, "plans": plans}
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": platform.platform(),
                "users": args.users,
                "events": args.events,
                "repeat": args.repeat,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
