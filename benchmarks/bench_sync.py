"""Benchmark the sync engine on PostgreSQL (and SQLite), against the fake server over loopback HTTP.

For each tenant size: generate the tenant (cached under benchmarks/.cache), serve it with
`syncd entra serve` in a subprocess, and run each sync as a user does: `syncd sync ENV --full`
(or `--delta`) as a whole process, timed from its start to its exit, its peak RSS its own (from
the kernel's accounting of that child). Each run also reports the run's own duration (`--json`'s
`duration_s`, the in-process figure: what is left once the CLI has started). Measured in one run:

* initial full sync of an empty environment, and the raw COPY of the very same rows into an empty
  SystemUser table (the floor);
* a no-change full run;
* a delta run after 1,000 changes (the median of three rounds);
* a full run of an environment scoped to a 10,000-member security group (R24);
* SQLite: the initial full sync and a no-change full run, at 10k and 100k (growth must be linear);
* a straightforward ORM loop (query each user, merge, commit per batch) on 10k users, as a baseline.

    .venv/bin/python benchmarks/bench_sync.py [--sizes 10000,100000,1000000] [--sqlite-sizes 10000,100000] [--skip-sqlite]
    .venv/bin/python benchmarks/bench_sync.py --sizes 10000,1000000,10000000   # opt-in 10M (its tenant is cached)

Prints one table with the ratios and writes benchmarks/results/sync.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results" / "sync.json"
PY = sys.executable
SYNCD = str(Path(PY).with_name("syncd"))
PG_ADMIN = os.environ.get("SYNCD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
GROUP_SIZE = 10_000
# syncd runs as an installed package does: with its modules' bytecode compiled (pip compiles at
# install time; see compile_package), whatever PYTHONDONTWRITEBYTECODE says in this shell.
AS_INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

CHILD_ORM = r"""
import json, resource, sys, time, uuid, logging
from datetime import UTC, datetime
from sqlalchemy import select
from sqlalchemy.orm import Session
from syncd.dataverse.db import make_engine
from syncd.dataverse.environments import root_business_unit
from syncd.dataverse.schema import Environment, SystemUser
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.rules import wanted_columns
db_url, directory_url, env_name = sys.argv[1:4]
engine = make_engine(db_url)
client = GraphClient(directory_url, token_provider=StaticToken("x"))
t = time.perf_counter()
n = 0
with Session(engine) as s:
    env_id = s.scalar(select(Environment.id).where(Environment.name == env_name))
    unit = root_business_unit(s, env_id).businessunitid
    for page in client.users_delta():
        for u in page.users:
            row = s.scalar(select(SystemUser).where(SystemUser.environment_id == env_id,
                                                    SystemUser.azureactivedirectoryobjectid == uuid.UUID(u.id)))
            values = wanted_columns(u)
            values["azureactivedirectoryobjectid"] = uuid.UUID(u.id)
            if row is None:
                row = SystemUser(environment_id=env_id, businessunitid=unit, kind="regular",
                                 createdon=datetime.now(UTC), **values)
            else:
                for k, v in values.items():
                    setattr(row, k, v)
            row.isdisabled = not u.account_enabled
            row.modifiedon = datetime.now(UTC)
            s.merge(row)
            n += 1
        s.commit()
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "users": n, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

COPY_COLUMNS = (
    "systemuserid, environment_id, azureactivedirectoryobjectid, syncd_kind, domainname, fullname, firstname, "
    "lastname, jobtitle, internalemailaddress, address1_telephone1, mobilephone, address1_line1, address1_city, "
    "address1_stateorprovince, address1_postalcode, address1_country, isdisabled, accessmode, islicensed, "
    "syncd_syncedemail, azurestate, issyncwithdirectory, createdon, modifiedon, businessunitid, syncd_inputhash"
)
# Above this size only the initial sync, its floor and the no-change run are measured (the opt-in
# 10M run: each further measure would add minutes and says nothing the 1M run does not).
FULL_MEASURES_UP_TO = 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(args: list[str], env: dict[str, str] | None = None) -> str:
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return out.stdout


def whole(db_url: str, directory_url: str, env: str, kind: str) -> dict[str, Any]:
    """`syncd sync ENV --full|--delta --json` as a whole process: wall seconds from start to exit,
    its peak RSS (the kernel's account of this child alone), and the run's own `duration_s`."""
    args = [SYNCD, "--log-level", "warning", "--database-url", db_url, "--directory-url", directory_url]
    args += ["sync", env, f"--{kind}", "--json", "--allow-mass-disable"]
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, env=AS_INSTALLED)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        out.seek(0)
        text = out.read().decode()
    if proc.returncode not in (0, 4):
        raise RuntimeError(f"syncd sync exited {proc.returncode}: {err[-3000:]}")
    report = json.loads(text)
    return {
        "seconds": seconds,
        "in_process_s": report["duration_s"],
        "outcome": report["outcome"],
        "kind": report["kind"],
        "counts": report["counts"],
        "rss_mb": usage.ru_maxrss / 1024,
    }


def child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def tenant(users: int) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"tenant-{users}-g{GROUP_SIZE}.db"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
        sh(
            [
                SYNCD,
                "entra",
                "generate",
                "--users",
                str(users),
                "--seed",
                "1",
                "--group-size",
                str(min(GROUP_SIZE, users)),
                "--store",
                str(tmp),
            ]
        )
        tmp.rename(path)
    return path


class Server:
    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            [
                SYNCD,
                "--log-level",
                "warning",
                "entra",
                "serve",
                "--port",
                str(self.port),
                "--store",
                str(self.store),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{self.base}/v1.0/organization", timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the fake server did not start")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.base}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=600) as r:
            return dict(json.loads(r.read()))

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=60) as r:
            return json.loads(r.read())

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


def fresh_pg(name: str) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    sh([SYNCD, "--database-url", url, "db", "upgrade"])
    return url


def create_env(db_url: str, name: str, *extra: str, directory_url: str | None = None) -> None:
    """`syncd env create`; with a security group, `directory_url` is where its id is checked."""
    env = {**os.environ, "SYNCD_DIRECTORY_URL": directory_url} if directory_url else None
    sh([SYNCD, "--database-url", db_url, "env", "create", name, *extra], env=env)


def copy_floor(src_url: str, env: str) -> dict[str, Any]:
    """The raw COPY of the same rows into an empty SystemUser table of a fresh database at head."""
    dst_url = fresh_pg("syncd_bench_floor")
    create_env(dst_url, env)
    with tempfile.NamedTemporaryFile(suffix=".copy", delete=False) as f:
        dump = Path(f.name)
    with psycopg.connect(dst_url.replace("+psycopg", "")) as dst:
        unit = dst.execute(
            "SELECT businessunitid FROM businessunit WHERE parentbusinessunitid IS NULL"
        ).fetchone()[0]  # type: ignore[index]
    # The rows go to the destination's root business unit (R26).
    selected = COPY_COLUMNS.replace("businessunitid", f"'{unit}'::uuid")
    query = f"COPY (SELECT {selected} FROM systemuser WHERE syncd_kind = 'regular') TO STDOUT"
    with (
        psycopg.connect(src_url.replace("+psycopg", "")) as src,
        dump.open("wb") as out,
        src.cursor().copy(query) as copy,
    ):
        for block in copy:
            out.write(block)
    with psycopg.connect(dst_url.replace("+psycopg", "")) as dst:
        env_id = dst.execute("SELECT id FROM environment WHERE name = %s", (env,)).fetchone()[0]  # type: ignore[index]
        assert env_id == 1
        t = time.perf_counter()
        with (
            dst.cursor().copy(f"COPY systemuser ({COPY_COLUMNS}) FROM STDIN") as copy,
            dump.open("rb") as src_f,
        ):
            while block := src_f.read(1 << 20):
                copy.write(block)
        dst.commit()
        seconds = time.perf_counter() - t
        rows = dst.execute("SELECT count(*) FROM systemuser WHERE syncd_kind = 'regular'").fetchone()[0]  # type: ignore[index]
    dump.unlink()
    return {"seconds": seconds, "rows": rows}


def run_size(users: int, results: dict[str, Any]) -> None:
    store = tenant(users)
    work = CACHE / f"work-{users}.db"
    for p in CACHE.glob(f"work-{users}.db*"):
        p.unlink()
    sh(["cp", str(store), str(work)])
    db_url = fresh_pg("syncd_bench")
    create_env(db_url, "bench")
    with Server(work) as server:
        directory_url = f"{server.base}/v1.0"
        r: dict[str, Any] = {}
        r["initial"] = whole(db_url, directory_url, "bench", "full")
        r["floor"] = copy_floor(db_url, "bench")
        r["nochange"] = whole(db_url, directory_url, "bench", "full")
        if users > FULL_MEASURES_UP_TO:
            results[str(users)] = r
            return
        # A delta run of 1,000 changes takes a fraction of a second: the median of three rounds.
        rounds = []
        for seed in (5, 6, 7):
            churn = server.post("/_sim/churn", {"changes": 1000, "seed": seed})
            r["churn"] = churn.get("counts")
            rounds.append(whole(db_url, directory_url, "bench", "delta"))
        r["delta"] = sorted(rounds, key=lambda x: x["seconds"])[1]
        r["delta_rounds"] = [x["seconds"] for x in rounds]
        group = server.get("/v1.0/groups")["value"]
        main = next(g["id"] for g in group if g["displayName"] == "Dataverse Users")
        create_env(db_url, "scoped", "--security-group", main, directory_url=directory_url)
        r["scoped"] = whole(db_url, directory_url, "scoped", "full")
        if users <= 10_000:
            orm_url = fresh_pg("syncd_bench_orm")
            create_env(orm_url, "bench")
            r["orm"] = child(CHILD_ORM, orm_url, directory_url, "bench")
    results[str(users)] = r
    print(
        f"  {users:,}: "
        + ", ".join(
            f"{k} {v['seconds']:.2f}s" for k, v in r.items() if isinstance(v, dict) and "seconds" in v
        ),
        flush=True,
    )


def run_sqlite(users: int, results: dict[str, Any]) -> None:
    store = tenant(users)
    work = CACHE / f"work-sqlite-{users}.db"
    for p in CACHE.glob(f"work-sqlite-{users}.db*"):
        p.unlink()
    sh(["cp", str(store), str(work)])
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{tmp}/bench.db"
        sh([SYNCD, "--database-url", db_url, "db", "upgrade"])
        create_env(db_url, "bench")
        with Server(work) as server:
            url = f"{server.base}/v1.0"
            results[f"sqlite-{users}"] = {
                "initial": whole(db_url, url, "bench", "full"),
                "nochange": whole(db_url, url, "bench", "full"),
            }
    r = results[f"sqlite-{users}"]
    print(
        f"  sqlite {users:,}: {r['initial']['seconds']:.2f}s, no change {r['nochange']['seconds']:.2f}s",
        flush=True,
    )


def table(results: dict[str, Any], sizes: list[int]) -> str:
    """The run's figures and the ratios the targets are stated in (one run, side by side)."""
    lines = [
        "| measure | users | whole process s | in-process s | users/s | peak RSS MB | ratio | target |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(
        label: str, n: int, res: dict[str, Any], ratio: str = "", target: str = "", rate: bool = True
    ) -> None:
        secs = res["seconds"]
        if "in_process_s" in res or "in-process" in label or "COPY" in label:
            outer, inner = f"{secs:.2f}", f"{res['in_process_s']:.2f}" if "in_process_s" in res else "-"
        else:  # a run recorded before the script timed whole processes: its seconds are in-process
            outer, inner = "-", f"{secs:.2f}"
        per_s = f"{n / secs:,.0f}" if secs and rate else "-"
        rss = f"{res['rss_mb']:.0f}" if "rss_mb" in res else "-"
        lines.append(f"| {label} | {n:,} | {outer} | {inner} | {per_s} | {rss} | {ratio} | {target} |")

    for n in sizes:
        r = results[str(n)]
        floor = r["floor"]["seconds"]
        row("raw COPY of the same rows", n, r["floor"])
        row(
            "initial full sync", n, r["initial"], f"{r['initial']['seconds'] / floor:.2f}x COPY", "<= 3x COPY"
        )
        row(
            "no-change full run",
            n,
            r["nochange"],
            f"{r['nochange']['seconds'] / r['initial']['seconds']:.2f}x initial",
            "<= 0.5x initial",
        )
        if "delta" in r:
            row("delta, 1,000 changes (median of 3)", n, r["delta"], "", "<= 0.5 s at 1M", rate=False)
            row(f"full run, {GROUP_SIZE:,}-member group", n, r["scoped"], rate=False)
        if "orm" in r:
            row(
                "ORM loop baseline (in-process)",
                n,
                r["orm"],
                f"{r['orm']['seconds'] / r['initial']['seconds']:.1f}x syncd",
            )
    scoped_sizes = [n for n in sizes if "scoped" in results[str(n)]]
    small, big = str(min(scoped_sizes)), str(max(scoped_sizes))
    if small != big:
        same = results[big]["scoped"]["seconds"] / results[small]["scoped"]["seconds"]
        lines.append(
            f"| {GROUP_SIZE:,}-member group: full run in {int(big):,} / the same run in {int(small):,} "
            f"| | | | | | {same:.2f}x | <= 1.2x |"
        )
        rss = " vs ".join(f"{results[str(n)]['initial']['rss_mb']:.0f}" for n in sizes)
        peak = max(
            results[str(n)][k]["rss_mb"]
            for n in sizes
            for k in ("initial", "nochange", "scoped")
            if k in results[str(n)]
        )
        lines.append(
            f"| peak RSS of the initial sync, {' vs '.join(f'{n:,}' for n in sizes)} | | | | | {rss} MB | max {peak:.0f} MB | <= 200 MB, flat |"
        )
    if "1000000" in results and "10000000" in results:
        ten = results["10000000"]["initial"]["seconds"] / results["1000000"]["initial"]["seconds"]
        lines.append(f"| initial full sync, 10,000,000 / 1,000,000 | | | | | | {ten:.2f}x | <= 11x |")
    sqlite = sorted((int(k.split("-")[1]), v) for k, v in results.items() if k.startswith("sqlite-"))
    for n, res in sqlite:
        row("SQLite initial full sync", n, res["initial"])
        if "nochange" in res:
            row("SQLite no-change full run", n, res["nochange"])
    if len(sqlite) > 1 and all("nochange" in v for _, v in sqlite):
        (n0, r0), (n1, r1) = sqlite[0], sqlite[-1]
        growth = r1["nochange"]["seconds"] / r0["nochange"]["seconds"]
        lines.append(
            f"| SQLite no-change full run: {n1:,} vs {n0:,} ({n1 / n0:.0f}x the rows) | | | | | | "
            f"{growth:.2f}x | linear: <= {1.2 * n1 / n0:.0f}x |"
        )
    return "\n".join(lines)


def compile_package() -> None:
    """Compile syncd's modules to bytecode, as ``pip install`` does, so no timed process compiles."""
    import syncd

    subprocess.run([PY, "-m", "compileall", "-q", str(Path(syncd.__file__).parent)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--sqlite-sizes", default="10000,100000")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--table-only", action="store_true", help="print the table of the last recorded run")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.table_only:
        print(table(json.loads(RESULTS.read_text())["results"], sizes))
        return
    compile_package()
    results: dict[str, Any] = {}
    for n in sizes:
        print(f"PostgreSQL, {n:,} users", flush=True)
        run_size(n, results)
    if not args.skip_sqlite:
        for n in sorted(int(s) for s in args.sqlite_sizes.split(",")):
            run_sqlite(n, results)
    out = table(results, sizes)
    print(out)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "results": results,
                "table": out,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
