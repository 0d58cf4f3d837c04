"""Benchmark: the status pages' user search and provisioning-log filter on a large environment.

One environment of USERS SystemUser rows (default 1,000,000) and EVENTS provisioning-log events
(default 1,000,000, over RUNS runs and 60 days), on PostgreSQL (a fresh database, migrated by
`syncd db upgrade`, the environment made by `syncd env create`), or on a SQLite file with
`--backend sqlite`. The rows and events are written by SQL straight into the migrated schema (a
sync of a million users is `bench_sync.py`'s subject; here only the reads are measured), then
analysed. The daemon's HTTP app is served by uvicorn in its own process, without a scheduler (so
that no run touches the data while it is measured), and each page is asked for REPEATS times over
loopback HTTP, in a shuffled order: UPN, name and object-id prefixes (found and not found, any
case), and the log filtered by environment, run, user, action, rule (common and rare), a time
window, and a second page. The same queries through the JSON API are measured alongside.

    .venv/bin/python benchmarks/bench_pages.py [--users 1000000] [--events 1000000] [--repeats 20]

Prints a table (p50, p95, max per query; p95 over each page's queries) and writes
benchmarks/results/pages.json. Target: p95 under 200 ms for the search and the log filter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))

from procs import PG_ADMIN_URL, SYNCD, free_port, pg_database, wait_for  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "pages.json"
ENV = "big"
FIRST = [
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Donald",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "Ivan",
    "John",
    "Katherine",
    "Leslie",
    "Margaret",
    "Niklaus",
    "Ole",
    "Peter",
    "Radia",
    "Shafi",
    "Tim",
    "Ursula",
    "Vint",
    "Whitfield",
    "Xiaoyun",
    "Yukihiro",
    "Zhores",
    "Anita",
    "Bjarne",
    "Cynthia",
    "Dennis",
    "Elena",
    "Fran",
    "Guido",
    "Hal",
    "Irene",
    "Jean",
    "Ken",
    "Lynn",
    "Mary",
    "Nancy",
]
LAST = [
    "Lovelace",
    "Turing",
    "Liskov",
    "Shannon",
    "Knuth",
    "Dijkstra",
    "Allen",
    "Hopper",
    "Lamarr",
    "Sutherland",
    "McCarthy",
    "Johnson",
    "Lamport",
    "Hamilton",
    "Wirth",
    "Dahl",
    "Naur",
    "Perlman",
    "Goldwasser",
    "Berners-Lee",
    "Franklin",
    "Cerf",
    "Diffie",
    "Wang",
    "Matsumoto",
    "Alferov",
    "Borg",
    "Stroustrup",
    "Dwork",
    "Ritchie",
    "Ochoa",
    "Bilas",
    "van Rossum",
    "Abelson",
    "Greif",
    "Sammet",
    "Thompson",
    "Conway",
    "Keller",
    "Lynch",
]
# What the events are, by j % 100, and their rules: creates, updates, disables, enables, failures,
# withheld disables; one event in 10,007 is a stub's (R20), the rare rule.
ACTIONS_SQL = """CASE WHEN j % 100 < 55 THEN 'create' WHEN j % 100 < 85 THEN 'update'
  WHEN j % 100 < 93 THEN 'disable' WHEN j % 100 < 98 THEN 'enable' WHEN j % 100 < 99 THEN 'failed'
  ELSE 'withheld' END"""
RULES_SQL = """CASE WHEN j % 10007 = 0 THEN 'R20' WHEN j % 100 < 55 THEN 'R2'
  WHEN j % 100 < 70 THEN 'R10' WHEN j % 100 < 80 THEN 'R12' WHEN j % 100 < 85 THEN 'R13'
  WHEN j % 100 < 93 THEN (ARRAY['R3','R4','R5','R9'])[1 + j % 4] WHEN j % 100 < 98 THEN 'R2'
  ELSE 'R9' END"""


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (``p`` in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def syncd(url: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["SYNCD_DATABASE_URL"] = url
    subprocess.run([SYNCD, *args], env=env, check=True, capture_output=True)


def _columns(conn: Any, table: str) -> set[str]:
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"), {"t": table}
        )
    else:
        rows = conn.execute(text(f"SELECT name FROM pragma_table_info('{table}')"))
    return {r[0] for r in rows}


def populate(url: str, users: int, events: int, runs: int) -> dict[str, Any]:
    """USERS rows, RUNS runs and EVENTS events in environment ENV; returns ids the queries use."""
    engine = create_engine(url)
    pg = engine.dialect.name == "postgresql"
    first = "ARRAY[" + ",".join(f"'{n}'" for n in FIRST) + "]"
    last = "ARRAY[" + ",".join(f"'{n}'" for n in LAST) + "]"
    with engine.begin() as conn:
        env_id, bu = conn.execute(
            text(
                "SELECT e.id, b.businessunitid FROM environment e JOIN businessunit b ON b.environment_id = e.id "
                "WHERE e.name = :n AND b.parentbusinessunitid IS NULL"
            ),
            {"n": ENV},
        ).one()
        run_cols = _columns(conn, "sync_run")
        event_cols = _columns(conn, "sync_event")
    t0 = time.perf_counter()
    with engine.begin() as conn:
        if pg:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(
                text(
                    f"""INSERT INTO systemuser (systemuserid, environment_id, businessunitid,
                    azureactivedirectoryobjectid, syncd_kind, domainname, fullname, firstname, lastname,
                    jobtitle, internalemailaddress, isdisabled, accessmode, islicensed, azurestate,
                    issyncwithdirectory, syncd_syncedemail, createdon, modifiedon, versionnumber)
                    SELECT md5('s' || i)::uuid, :env, :bu, md5('u' || i)::uuid, 'regular',
                      lower(f || '.' || replace(l, ' ', '') || i || '@contoso.onmicrosoft.com'),
                      f || ' ' || l, f, l, 'Engineer ' || (i % 7),
                      lower(f || '.' || replace(l, ' ', '') || i || '@contoso.com'),
                      i % 10 = 0, 0, i % 10 <> 0, 0, true,
                      lower(f || '.' || replace(l, ' ', '') || i || '@contoso.com'), now(), now(), 1
                    FROM (SELECT i, ({first})[1 + i % {len(FIRST)}] AS f, ({last})[1 + (i / {len(FIRST)}) % {len(LAST)}] AS l
                          FROM generate_series(1, :n) AS i) g"""
                ),
                {"env": env_id, "bu": bu, "n": users},
            )
        else:
            _sqlite_users(conn, env_id, bu, users)
    t_users = time.perf_counter() - t0
    t0 = time.perf_counter()
    start = "2026-10-01 00:00:00+00"
    per_run = max(1, events // runs)
    extra = ", users_enabled, users_disabled" if "users_enabled" in run_cols else ""
    with engine.begin() as conn:
        for r in range(runs):
            values = {
                "env": env_id,
                "kind": "full" if r % 10 == 0 else "delta",
                "outcome": "blocked" if r == runs - 1 else ("failed" if r % 37 == 5 else "succeeded"),
                "off": r * 60 * 24 * 60 // runs,
                "n": per_run,
            }
            ts = (
                "CAST(:start AS timestamptz) + make_interval(mins => :off)"
                if pg
                else "strftime('%Y-%m-%d %H:%M:%f', datetime('2026-10-01 00:00:00', '+' || :off || ' minutes'))"
            )
            conn.execute(
                text(
                    f"INSERT INTO sync_run (environment_id, kind, requested_kind, trigger, started_at, finished_at, "
                    f"outcome, read, created, updated, enabled, disabled, unchanged, failed, blocked_disables, restarts{extra}) "
                    f"VALUES (:env, :kind, :kind, 'schedule', {ts}, {ts}, :outcome, :n, :n / 2, :n / 4, :n / 20, :n / 12, 0, :n / 100, 0, 0"
                    + (", :enabled, :disabled" if extra else "")
                    + ")"
                ),
                values | {"start": start, "enabled": users - users // 10, "disabled": users // 10},
            )
        run_ids = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM sync_run WHERE environment_id = :e ORDER BY id"), {"e": env_id}
            )
        ]
    previous = "previous, " if "previous" in event_cols else ""
    previous_sql = (
        "CASE WHEN j % 100 BETWEEN 55 AND 84 THEN '{\"jobtitle\": \"Engineer ' || ((j + 1) % 7) || '\"}' END,"
        if previous
        else ""
    )
    with engine.begin() as conn:
        if pg:
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            conn.execute(
                text(
                    f"""INSERT INTO sync_event (run_id, environment_id, systemuserid, azureactivedirectoryobjectid,
                    action, rule, reason, changes, {previous}created_at)
                    SELECT (:runs)[1 + (j - 1) / :per_run], :env, md5('s' || u)::uuid, md5('u' || u)::uuid,
                      {ACTIONS_SQL}, {RULES_SQL}, 'Benchmark event ' || j,
                      CASE WHEN j % 100 BETWEEN 55 AND 84 THEN '{{"jobtitle": "Engineer ' || (j % 7) || '"}}' END,
                      {previous_sql}
                      CAST(:start AS timestamptz) + make_interval(secs => j * (60.0 * 86400 / :n))
                    FROM (SELECT j, 1 + (j * 7919) % :users AS u FROM generate_series(1::bigint, :n) AS j) g"""
                ),
                {
                    "runs": run_ids,
                    "per_run": per_run,
                    "env": env_id,
                    "n": events,
                    "users": users,
                    "start": start,
                },
            )
        else:
            _sqlite_events(conn, env_id, run_ids, per_run, events, users, bool(previous))
    t_events = time.perf_counter() - t0
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("ANALYZE"))
        some = [
            str(uuid.UUID(str(r[0])))
            for r in conn.execute(
                text(
                    "SELECT azureactivedirectoryobjectid FROM systemuser WHERE environment_id = :e AND syncd_kind = 'regular' LIMIT 5 OFFSET 777"
                ),
                {"e": env_id},
            )
        ]
    engine.dispose()
    return {
        "run_ids": run_ids,
        "object_ids": some,
        "load_s": {"users": round(t_users, 1), "events": round(t_events, 1)},
    }


def _sqlite_users(conn: Any, env_id: int, bu: Any, users: int) -> None:
    """SQLite has no md5 or generate_series: the rows come from Python, in batches."""
    import hashlib
    import uuid

    def guid(s: str) -> str:
        return uuid.UUID(hashlib.md5(s.encode()).hexdigest()).hex

    bu_hex = bu.hex if hasattr(bu, "hex") else str(bu).replace("-", "")
    batch: list[dict[str, Any]] = []
    sql = text(
        "INSERT INTO systemuser (systemuserid, environment_id, businessunitid, azureactivedirectoryobjectid, syncd_kind, "
        "domainname, fullname, firstname, lastname, jobtitle, internalemailaddress, isdisabled, accessmode, islicensed, "
        "azurestate, issyncwithdirectory, syncd_syncedemail, createdon, modifiedon, versionnumber) VALUES "
        "(:sid, :env, :bu, :oid, 'regular', :upn, :full, :f, :l, :job, :mail, :dis, 0, :lic, 0, 1, :mail, "
        "'2026-10-01 00:00:00.000000', '2026-10-01 00:00:00.000000', 1)"
    )
    for i in range(1, users + 1):
        f, last_name = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        local = f"{f}.{last_name.replace(' ', '')}{i}".lower()
        batch.append(
            {
                "sid": guid(f"s{i}"),
                "env": env_id,
                "bu": bu_hex,
                "oid": guid(f"u{i}"),
                "upn": f"{local}@contoso.onmicrosoft.com",
                "full": f"{f} {last_name}",
                "f": f,
                "l": last_name,
                "job": f"Engineer {i % 7}",
                "mail": f"{local}@contoso.com",
                "dis": i % 10 == 0,
                "lic": i % 10 != 0,
            }
        )
        if len(batch) == 20000:
            conn.execute(sql, batch)
            batch = []
    if batch:
        conn.execute(sql, batch)


def _sqlite_events(
    conn: Any, env_id: int, run_ids: list[int], per_run: int, events: int, users: int, previous: bool
) -> None:
    import hashlib
    import uuid
    from datetime import UTC, datetime, timedelta

    def guid(s: str) -> str:
        return uuid.UUID(hashlib.md5(s.encode()).hexdigest()).hex

    start = datetime(2026, 10, 1, tzinfo=UTC)
    step = timedelta(seconds=60 * 86400 / events)
    cols = "run_id, environment_id, systemuserid, azureactivedirectoryobjectid, action, rule, reason, changes, created_at"
    vals = ":run, :env, :sid, :oid, :action, :rule, :reason, :changes, :at"
    if previous:
        cols, vals = cols + ", previous", vals + ", :previous"
    sql = text(f"INSERT INTO sync_event ({cols}) VALUES ({vals})")
    batch: list[dict[str, Any]] = []
    for j in range(1, events + 1):
        u = 1 + (j * 7919) % users
        m = j % 100
        action = (
            "create"
            if m < 55
            else "update"
            if m < 85
            else "disable"
            if m < 93
            else "enable"
            if m < 98
            else "failed"
            if m < 99
            else "withheld"
        )
        if j % 10007 == 0:
            rule = "R20"
        elif m < 55:
            rule = "R2"
        elif m < 70:
            rule = "R10"
        elif m < 80:
            rule = "R12"
        elif m < 85:
            rule = "R13"
        elif m < 93:
            rule = ("R3", "R4", "R5", "R9")[j % 4]
        elif m < 98:
            rule = "R2"
        else:
            rule = "R9"
        row = {
            "run": run_ids[min(len(run_ids) - 1, (j - 1) // per_run)],
            "env": env_id,
            "sid": guid(f"s{u}"),
            "oid": guid(f"u{u}"),
            "action": action,
            "rule": rule,
            "reason": f"Benchmark event {j}",
            "changes": f'{{"jobtitle": "Engineer {j % 7}"}}' if 55 <= m <= 84 else None,
            "at": (start + j * step).strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
        if previous:
            row["previous"] = f'{{"jobtitle": "Engineer {(j + 1) % 7}"}}' if 55 <= m <= 84 else None
        batch.append(row)
        if len(batch) == 20000:
            conn.execute(sql, batch)
            batch = []
    if batch:
        conn.execute(sql, batch)


SERVER = """
import sys, uvicorn
from syncd.context import AppContext
from syncd.service.app import create_app
from syncd.service.metrics import Metrics
from syncd.settings import load_settings
app = create_app(AppContext(load_settings(database_url=sys.argv[1])), Metrics())
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def upn(i: int) -> str:
    """The UPN of generated user ``i`` (as the SQL above spells it)."""
    f, last_name = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    return f"{f}.{last_name.replace(' ', '')}{i}@contoso.onmicrosoft.com".lower()


Query = tuple[str, str, str | None]  # (label, path, a text the answer must hold, or None)


def queries(ids: dict[str, Any], users: int) -> dict[str, list[Query]]:
    """Per page, each query measured, with a text its answer must hold (so that a page that
    answers fast but wrong is caught)."""
    oid = ids["object_ids"][0]
    run = ids["run_ids"][len(ids["run_ids"]) // 2]
    env = f"environment={ENV}"
    one = upn(min(users, 4007))
    search: list[tuple[str, str, str | None]] = [
        ("UPN prefix, many hits", upn(1600)[: len("ada.lovelace1")], upn(1600)),
        ("UPN prefix, one hit", one, one),
        ("UPN prefix, upper case", upn(91).split("@")[0].upper(), upn(91)),
        ("name prefix", f"{FIRST[2]} {LAST[2][:3]}", f"{FIRST[2]} {LAST[2]}"),
        ("object id prefix (6 hex)", oid[:6], oid),
        ("whole object id", oid.upper(), oid),
        ("no match", "zzz-nobody", None),
    ]
    log: list[tuple[str, str, str | None]] = [
        ("environment only", env, "Benchmark event"),
        ("rule, common (R10)", f"{env}&rule=R10", "R10"),
        ("rule, rare (R20)", f"{env}&rule=R20", "R20"),
        ("action disable", f"{env}&action=disable", "disable"),
        ("action + rule (withheld, R9)", f"{env}&action=withheld&rule=R9", "withheld"),
        ("one run", f"{env}&run={run}", "Benchmark event"),
        ("one user (object id)", f"{env}&user={oid}", "Benchmark event"),
        (
            "time window (one day)",
            f"{env}&since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z",
            "Benchmark event",
        ),
        (
            "rule R10 + time window",
            f"{env}&rule=R10&since=2026-10-10T00:00:00Z&until=2026-10-11T00:00:00Z",
            "R10",
        ),
    ]
    q = httpx.QueryParams
    return {
        "search page": [(label, f"/environments/{ENV}?{q({'q': v})}", hit) for label, v, hit in search],
        "search API": [
            (label, f"/api/environments/{ENV}/users?{q({'q': v})}", hit) for label, v, hit in search
        ],
        "log page": [(label, f"/log?{v}", hit) for label, v, hit in log],
        "log API": [(label, f"/api/events?{v}", hit) for label, v, hit in log],
    }


def measure(base: str, pages: dict[str, list[Query]], repeats: int, rng: random.Random) -> dict[str, Any]:
    """Each query REPEATS times, shuffled; SystemExit when an answer is not a 200 holding its text."""
    with httpx.Client(base_url=base, timeout=60) as client:
        for page, qs in pages.items():  # each once first: checks it, warms the connection and caches
            for label, path, hit in qs:
                r = client.get(path)
                if r.status_code != 200 or (hit is not None and hit.lower() not in r.text.lower()):
                    raise SystemExit(
                        f"{page} / {label}: {path} answered {r.status_code} without {hit!r}: {r.text[:300]!r}"
                    )
    todo = [(page, label, path) for page, qs in pages.items() for label, path, _ in qs] * repeats
    rng.shuffle(todo)
    times: dict[tuple[str, str], list[float]] = {}
    statuses: dict[tuple[str, str], set[int]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for page, label, path in todo:
            t0 = time.perf_counter()
            r = client.get(path)
            times.setdefault((page, label), []).append(time.perf_counter() - t0)
            statuses.setdefault((page, label), set()).add(r.status_code)
    out: dict[str, Any] = {}
    for (page, label), ts in times.items():
        out.setdefault(page, {})[label] = {
            "p50_ms": round(percentile(ts, 50) * 1000, 1),
            "p95_ms": round(percentile(ts, 95) * 1000, 1),
            "max_ms": round(max(ts) * 1000, 1),
            "status": sorted(statuses[(page, label)]),
        }
    for page in pages:
        every = [t for (p, _), ts in times.items() if p == page for t in ts]
        out[page]["(all queries)"] = {
            "p50_ms": round(percentile(every, 50) * 1000, 1),
            "p95_ms": round(percentile(every, 95) * 1000, 1),
            "max_ms": round(max(every) * 1000, 1),
            "status": sorted({s for (p, _), ss in statuses.items() if p == page for s in ss}),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "postgresql":
            with pg_database(PG_ADMIN_URL) as url:
                result = run(url, args, rng)
        else:
            result = run(f"sqlite:///{tmp}/pages.db", args, rng)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous[args.backend] = result
    RESULTS.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


def run(url: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    print(f"{args.backend}: {args.users:,} users, {args.events:,} events, {args.runs} runs", flush=True)
    syncd(url, "db", "upgrade")
    syncd(url, "env", "create", ENV)
    ids = populate(url, args.users, args.events, args.runs)
    print(f"loaded in {ids['load_s']}", flush=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port)])
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, 60, "the HTTP app")
        result = measure(base, queries(ids, args.users), args.repeats, rng)
    finally:
        server.terminate()
        server.wait(10)
    print("\n| page | query | p50 ms | p95 ms | max ms | status |\n|---|---|---|---|---|---|")
    for page, rows in result.items():
        for label, r in rows.items():
            print(f"| {page} | {label} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} | {r['status']} |")
    for page in ("search page", "log page"):
        p95 = result[page]["(all queries)"]["p95_ms"]
        print(f"{page}: p95 {p95} ms, {p95 / 200:.2f}x the 200 ms target")
    return {
        "users": args.users,
        "events": args.events,
        "runs": args.runs,
        "repeats": args.repeats,
        "load_s": ids["load_s"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "pages": result,
    }


if __name__ == "__main__":
    main()
