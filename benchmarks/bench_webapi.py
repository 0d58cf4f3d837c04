"""Benchmark the Dataverse Web API read surface on PostgreSQL: list 100,000 users.

An environment of at least 100,000 users is made once (a generated tenant, cached under
benchmarks/.cache, and a full sync into a fresh PostgreSQL database); then, in one run:

* the Web API, `syncd dataverse serve --tls-dir` in its own process over HTTPS on loopback, read
  with httpx following `@odata.nextLink`: `$select` of five columns, `Prefer: odata.maxpagesize=5000`,
  `$top=100000`;
* the same through Microsoft's SDK (`client.records.list_pages`, page_size=5000), when installed;
* the floor: the same rows and columns read with one SQL query (SQLAlchemy Core, psycopg 3);
* the first and the last page's time, to show that keyset paging keeps a deep page as cheap as
  the first.

Each measure is the best of `--repeat` rounds. Prints one table and writes
benchmarks/results/webapi.json.

    .venv/bin/python benchmarks/bench_webapi.py [--users 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import create_engine, select

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results" / "webapi.json"
SYNCD = str(Path(sys.executable).with_name("syncd"))
PG_ADMIN = os.environ.get("SYNCD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "syncd_bench_webapi"
COLUMNS = ["domainname", "fullname", "isdisabled", "accessmode", "azureactivedirectoryobjectid"]
PAGE = 5000
# About 42% of a generated tenant's users are entitled to a row: generate enough of them.
TENANT_FACTOR = 2.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(args: list[str], env: dict[str, str] | None = None) -> str:
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return out.stdout


def db_url() -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + DB_NAME


def rows_in(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=5) as c:
            row = c.execute(
                "SELECT count(*) FROM systemuser u JOIN environment e ON e.id = u.environment_id "
                "WHERE e.name = 'bench'"
            ).fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def prepare(users: int) -> int:
    """A database with environment 'bench' of at least `users` rows (made once, then reused)."""
    url = db_url()
    have = rows_in(url)
    if have >= users:
        return have
    CACHE.mkdir(exist_ok=True)
    size = int(users * TENANT_FACTOR)
    store = CACHE / f"tenant-webapi-{size}.db"
    if not store.exists():
        print(f"generating a tenant of {size:,} users ...", file=sys.stderr)
        sh([SYNCD, "entra", "generate", "--users", str(size), "--seed", "1", "--store", str(store)])
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{DB_NAME}"')
    env = {
        **os.environ,
        "SYNCD_DATABASE_URL": url,
        "SYNCD_DIRECTORY_STORE": str(store),
        "SYNCD_LOG_LEVEL": "warning",
    }
    sh([SYNCD, "db", "upgrade"], env)
    sh([SYNCD, "env", "create", "bench"], env)
    print("full sync ...", file=sys.stderr)
    sh([SYNCD, "sync", "bench", "--full", "--allow-mass-disable"], env)
    have = rows_in(url)
    if have < users:
        raise SystemExit(f"the environment has {have:,} rows, fewer than {users:,}: raise TENANT_FACTOR")
    return have


class WebApi:
    """`syncd dataverse serve --tls-dir` in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.tls = CACHE / "tls"
        self.origin = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WebApi:
        self.proc = subprocess.Popen(
            [SYNCD, "--database-url", db_url(), "--log-level", "warning", "dataverse", "serve"]
            + ["--port", str(self.port), "--tls-dir", str(self.tls)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ctx = None
        for _ in range(300):
            try:
                ctx = ctx or ssl.create_default_context(cafile=self.tls / "ca.pem")
                httpx.get(f"{self.origin}/bench/api/data/v9.2/", verify=ctx, timeout=1)
                return self
            except (OSError, httpx.HTTPError):
                time.sleep(0.1)
        raise RuntimeError("the Web API did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def via_httpx(api: WebApi, users: int) -> dict[str, Any]:
    ctx = ssl.create_default_context(cafile=api.tls / "ca.pem")
    headers = {
        "Prefer": f"odata.maxpagesize={PAGE}",
        "Authorization": "Bearer bench",
        "Accept": "application/json",
    }
    params = {"$select": ",".join(COLUMNS), "$top": str(users)}
    n, pages = 0, []
    with httpx.Client(verify=ctx, headers=headers, timeout=120) as client:
        t0 = time.perf_counter()
        url: str | None = f"{api.origin}/bench/api/data/v9.2/systemusers"
        query: dict[str, str] | None = params
        while url:
            t = time.perf_counter()
            body = client.get(url, params=query).raise_for_status().json()
            pages.append(time.perf_counter() - t)
            n += len(body["value"])
            url, query = body.get("@odata.nextLink"), None
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rows": n,
        "pages": len(pages),
        "first_page_s": pages[0],
        "last_page_s": pages[-1],
    }


def via_sdk(api: WebApi, users: int) -> dict[str, Any] | None:
    try:
        from azure.core.credentials import AccessToken
        from PowerPlatform.Dataverse.client import DataverseClient
    except ImportError:
        return None

    class Fake:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("bench", int(time.time()) + 3600)

    os.environ["REQUESTS_CA_BUNDLE"] = str(api.tls / "ca.pem")
    client = DataverseClient(f"{api.origin}/bench", Fake())
    t0 = time.perf_counter()
    n = 0
    for page in client.records.list_pages("systemuser", select=COLUMNS, top=users, page_size=PAGE):
        n += len(page)
    seconds = time.perf_counter() - t0
    client.close()
    return {"seconds": seconds, "rows": n}


def via_sql(users: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent))
    from syncd.dataverse.schema import Base, Environment

    users_t = Base.metadata.tables["systemuser"]
    engine = create_engine(db_url().replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        env_id = conn.execute(select(Environment.id).where(Environment.name == "bench")).scalar_one()
        t0 = time.perf_counter()
        rows = conn.execute(
            select(users_t.c.systemuserid, *(users_t.c[c] for c in COLUMNS))
            .where(users_t.c.environment_id == env_id)
            .order_by(users_t.c.systemuserid)
            .limit(users)
        ).all()
        seconds = time.perf_counter() - t0
    engine.dispose()
    return {"seconds": seconds, "rows": len(rows)}


def best(fn: Any, repeat: int, *args: Any) -> dict[str, Any] | None:
    results = [fn(*args) for _ in range(repeat)]
    if results[0] is None:
        return None
    return min(results, key=lambda r: r["seconds"])


def table(res: dict[str, Any]) -> str:
    sql = res["sql"]["seconds"]
    lines = [
        "| measure | rows | seconds | users/s | ratio to one SQL query |",
        "|---|---|---|---|---|",
    ]
    for key, label in (
        ("sql", "one SQL query (SQLAlchemy Core, psycopg)"),
        ("httpx", "Web API over HTTPS, httpx following nextLink"),
        ("sdk", "Web API over HTTPS, Microsoft's SDK (list_pages)"),
    ):
        r = res.get(key)
        if not r:
            continue
        lines.append(
            f"| {label} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['seconds'] / sql:.1f}x |"
        )
    h = res["httpx"]
    lines.append(
        f"| Web API: last page ({h['pages']} of {PAGE:,}) vs first page | | {h['last_page_s']:.3f} vs "
        f"{h['first_page_s']:.3f} | | {h['last_page_s'] / h['first_page_s']:.2f}x |"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--table-only", action="store_true", help="reprint the recorded results")
    args = ap.parse_args()
    if args.table_only:
        print(table(json.loads(RESULTS.read_text())["results"]))
        return
    rows = prepare(args.users)
    res: dict[str, Any] = {"environment_rows": rows, "users": args.users}
    res["sql"] = best(via_sql, args.repeat, args.users)
    with WebApi() as api:
        via_httpx(api, PAGE)  # warm up: connections, caches
        res["httpx"] = best(via_httpx, args.repeat, api, args.users)
        res["sdk"] = best(via_sdk, args.repeat, api, args.users)
    for key in ("sql", "httpx", "sdk"):
        if res.get(key):
            assert res[key]["rows"] == args.users, (key, res[key])
    print(table(res))
    RESULTS.parent.mkdir(exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    RESULTS.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "commit": commit,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": res,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
