"""Benchmark the fake directory: generate N users, then read them all over loopback HTTP.

For each size: generate into a fresh SQLite file (a subprocess), serve it with uvicorn (a
subprocess), and read the full users delta with page size 999 using plain httpx + orjson (a
subprocess). Prints a table and writes benchmarks/results/directory.json (or --out).

The server's and the reader's CPU seconds during the read say which of them holds the read up: the
reader's (httpx, and orjson building a million users' objects) is the floor of the read's time.
``--root DIR`` measures the fake of another checkout (DIR holds its ``syncd`` package), e.g.
``git worktree add /tmp/base COMMIT``; the generator and the server run with DIR first on the path,
in the temporary directory (so that no ``syncd`` in the working directory shadows it):

    .venv/bin/python benchmarks/bench_directory.py [--sizes 100000,1000000] [--label after]
    .venv/bin/python benchmarks/bench_directory.py --root /tmp/base --label before --out /tmp/before.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "directory.json"
ROOT = Path(__file__).resolve().parent.parent

GENERATE = """
import json, resource, sys, time
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.store import TenantStore
store = TenantStore.open(sys.argv[1])
t = time.perf_counter()
generate_tenant(store, int(sys.argv[2]), 1, group_size=int(sys.argv[3]))
seconds = time.perf_counter() - t
store.close()
print(json.dumps({"seconds": seconds, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def read_all(base: str) -> None:
    """The reader subprocess: one full users delta round, page size 999."""
    import httpx
    import orjson

    url = f"{base}/v1.0/users/delta"
    users = pages = 0
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        while True:
            r = client.get(url, headers={"Prefer": "odata.maxpagesize=999"})
            r.raise_for_status()
            body = orjson.loads(r.content)
            users += len(body["value"])
            pages += 1
            url = body.get("@odata.nextLink")
            if url is None:
                break
    seconds = time.perf_counter() - started
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = end.ru_utime + end.ru_stime - cpu.ru_utime - cpu.ru_stime
    out = {"seconds": seconds, "users": users, "pages": pages, "rss_kb": end.ru_maxrss, "cpu": cpu_seconds}
    print(json.dumps(out))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_size(n: int, workdir: Path, root: Path) -> dict[str, float | int]:
    db = workdir / f"tenant-{n}.db"
    group_size = min(n, 10_000)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root.resolve()) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    out = subprocess.run(
        [sys.executable, "-c", GENERATE, str(db), str(n), str(group_size)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
    )
    gen = json.loads(out.stdout)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from syncd.directory.fake.cli import entra_app; entra_app()",
            "serve",
            "--port",
            str(port),
            "--store",
            str(db),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=workdir,
    )
    try:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/_sim/tenant", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        server_cpu = cpu_seconds(server.pid)
        out = subprocess.run(
            [sys.executable, __file__, "--read", base], check=True, capture_output=True, text=True
        )
        read = json.loads(out.stdout)
        server_cpu = cpu_seconds(server.pid) - server_cpu
        server_rss = vm_hwm_kb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert read["users"] == n, read
    return {
        "users": n,
        "group_size": group_size,
        "generate_seconds": round(gen["seconds"], 2),
        "generate_users_per_s": round(n / gen["seconds"]),
        "generate_peak_rss_mb": round(gen["rss_kb"] / 1024, 1),
        "db_mb": round(db.stat().st_size / 2**20, 1),
        "read_seconds": round(read["seconds"], 2),
        "read_users_per_s": round(n / read["seconds"]),
        "read_pages": read["pages"],
        "read_server_cpu_seconds": round(server_cpu, 2),
        "read_client_cpu_seconds": round(read["cpu"], 2),
        "client_peak_rss_mb": round(read["rss_kb"] / 1024, 1),
        "server_peak_rss_mb": round(server_rss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--root", type=Path, default=ROOT, help="the directory holding the syncd measured")
    parser.add_argument("--label", default="", help="what code was measured (kept in the results)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--read", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read_all(args.read)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-directory-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(run_size(n, Path(tmp), args.root))
            print(f"  done {n} users", file=sys.stderr)
    cols = [
        ("users", "users"),
        ("generate_seconds", "gen s"),
        ("generate_users_per_s", "gen users/s"),
        ("generate_peak_rss_mb", "gen RSS MB"),
        ("read_seconds", "read s"),
        ("read_users_per_s", "read users/s"),
        ("read_server_cpu_seconds", "server CPU s"),
        ("read_client_cpu_seconds", "client CPU s"),
        ("client_peak_rss_mb", "client RSS MB"),
        ("server_peak_rss_mb", "server RSS MB"),
        ("db_mb", "db MB"),
    ]
    print(" | ".join(f"{h:>13}" for _, h in cols))
    for row in rows:
        print(" | ".join(f"{row[k]:>13,}" for k, _ in cols))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "directory",
                "what": "generate N users into SQLite; read the full users delta (page size 999) over loopback HTTP",
                "label": args.label,
                "root": str(args.root.resolve()),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
