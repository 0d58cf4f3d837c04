"""Benchmark the fake directory: generate N users, then read them all over loopback HTTP.

For each size: generate into a fresh SQLite file (a subprocess), serve it with uvicorn (a
subprocess), and read the full users delta with page size 999 using plain httpx + orjson (a
subprocess). Prints a table and writes benchmarks/results/directory.json.

    .venv/bin/python benchmarks/bench_directory.py [--sizes 100000,1000000]
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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "users": users, "pages": pages, "rss_kb": rss}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_size(n: int, workdir: Path) -> dict[str, float | int]:
    db = workdir / f"tenant-{n}.db"
    group_size = min(n, 10_000)
    out = subprocess.run(
        [sys.executable, "-c", GENERATE, str(db), str(n), str(group_size)],
        check=True,
        capture_output=True,
        text=True,
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
        out = subprocess.run(
            [sys.executable, __file__, "--read", base], check=True, capture_output=True, text=True
        )
        read = json.loads(out.stdout)
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
        "client_peak_rss_mb": round(read["rss_kb"] / 1024, 1),
        "server_peak_rss_mb": round(server_rss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--read", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read_all(args.read)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-directory-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(run_size(n, Path(tmp)))
            print(f"  done {n} users", file=sys.stderr)
    cols = [
        ("users", "users"),
        ("generate_seconds", "gen s"),
        ("generate_users_per_s", "gen users/s"),
        ("generate_peak_rss_mb", "gen RSS MB"),
        ("read_seconds", "read s"),
        ("read_users_per_s", "read users/s"),
        ("client_peak_rss_mb", "client RSS MB"),
        ("server_peak_rss_mb", "server RSS MB"),
        ("db_mb", "db MB"),
    ]
    print(" | ".join(f"{h:>13}" for _, h in cols))
    for row in rows:
        print(" | ".join(f"{row[k]:>13,}" for k, _ in cols))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "directory",
                "what": "generate N users into SQLite; read the full users delta (page size 999) over loopback HTTP",
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
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
