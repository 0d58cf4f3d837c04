"""Benchmark decoding Graph users pages: the decoder of a git revision against the current one.

Generates a tenant with the fake's generator (in memory), builds the pages of a full users delta
read as `syncd entra serve` serves them (page size 999, `users_api.delta_items` and
`graphio.page`, every field selected), and decodes all of them with each path in the same run:

* **before**: `syncd/directory/decode.py` of the git revision ``--baseline`` (default ``16f2920``,
  the revision before msgspec), loaded from `git show` as a module of its own: orjson's parse
  (`parse_page`), then per item what the client did (`decode_removed`, the partial-user check,
  `decode_user`) for a delta page, or `decode_items(..., decode_user)` for a list page;
* **after**: the current package: `decode_users_delta_page` / `decode_users_page` from the bytes.

The two paths' users are compared for equality first. Each path decodes every page ``--rounds``
times, taking turns with the other page by page; a page's best process CPU time counts, and a
path's figure is the sum of its pages' best over the users. Prints a table (µs per user, and the
ratio) and writes benchmarks/results/decode.json (or ``--out``):

    .venv/bin/python benchmarks/bench_decode.py [--pages 100] [--rounds 5] [--baseline REV]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.directory import decode  # noqa: E402
from syncd.directory.fake import graphio, users_api  # noqa: E402
from syncd.directory.fake.generator import generate_tenant  # noqa: E402
from syncd.directory.fake.store import TenantStore  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "decode.json"
PAGE_SIZE = 999
BASE = "http://127.0.0.1:8000"


def baseline_module(rev: str) -> ModuleType:
    """`syncd/directory/decode.py` as it was at ``rev``, as a module of its own (its imports are
    the current package's models and errors)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:syncd/directory/decode.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("baseline_decode", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look the module up by name
    exec(compile(source, f"{rev}:syncd/directory/decode.py", "exec"), module.__dict__)
    return module


def pages_of(users: int, seed: int) -> list[tuple[str, bytes]]:
    """(URL, body) of each page of a full users delta read of a generated tenant, as the fake
    server builds them (the links are only text here)."""
    store = TenantStore.open(None)
    try:
        generate_tenant(store, users, seed)
        out: list[tuple[str, bytes]] = []
        after, n = 0, 0
        url = f"{BASE}/v1.0/users/delta?$select={decode.USER_SELECT}"
        while True:
            rows = store.users_delta(after, PAGE_SIZE + 1, since=0, start=store.change, bounded=True)
            more = len(rows) > PAGE_SIZE
            rows = rows[:PAGE_SIZE]
            items = users_api.delta_items(rows, None)
            ctx = f"{BASE}/v1.0/$metadata#users"
            if more:
                n += 1
                nxt = f"{BASE}/v1.0/users/delta?$skiptoken=page{n}"
                out.append((url, graphio.page(ctx, items, next_link=nxt)))
                url, after = nxt, rows[-1][0]
            else:
                done = f"{BASE}/v1.0/users/delta?$deltatoken=end"
                out.append((url, graphio.page(ctx, items, delta_link=done)))
                return out
    finally:
        store.close()


def old_delta(old: ModuleType) -> Callable[[bytes, str], list[Any]]:
    expected = frozenset(old.USER_FIELDS)
    decode_removed, decode_user, parse_page = old.decode_removed, old.decode_user, old.parse_page

    def run(content: bytes, url: str) -> list[Any]:
        # GraphClient._users_delta_page of the baseline, without the partial users' batch read.
        entries: list[Any] = []
        for item in parse_page(content, url).items:
            gone = decode_removed(item)
            if gone is not None:
                entries.append(gone)
            elif item.keys() >= expected:
                entries.append(decode_user(item))
            else:
                entries.append(item["id"].lower())
        return entries

    return run


def old_list(old: ModuleType) -> Callable[[bytes, str], list[Any]]:
    def run(content: bytes, url: str) -> list[Any]:
        return old.decode_items(old.parse_page(content, url).items, url, old.decode_user)  # type: ignore[no-any-return]

    return run


def new_delta(content: bytes, url: str) -> list[Any]:
    return decode.decode_users_delta_page(content, url).items


def new_list(content: bytes, url: str) -> list[Any]:
    return decode.decode_users_page(content, url).items


def cpu_seconds(fn: Callable[[bytes, str], list[Any]], url: str, content: bytes) -> float:
    """The process CPU time of decoding one page (and dropping what it gave)."""
    started = time.process_time()
    fn(content, url)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=100, help="pages of 999 users (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per page; the best counts")
    parser.add_argument("--baseline", default="16f2920", help="git revision of the old decoder")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    old = baseline_module(args.baseline)
    users = args.pages * PAGE_SIZE
    pages = pages_of(users, args.seed)
    megabytes = sum(len(c) for _, c in pages) / 1e6
    print(f"{len(pages)} pages, {users:,} users, {megabytes:.0f} MB of JSON; baseline {args.baseline}")

    cases = [
        ("users delta page (full sync)", old_delta(old), new_delta),
        ("users list page (GET /users)", old_list(old), new_list),
    ]
    for _, before, after in cases:  # the same users either way
        for url, content in pages[:3]:
            assert before(content, url) == after(content, url)

    rows = []
    for name, before, after in cases:
        # Per page, the best of the rounds of each path, the two paths taking turns: on a shared
        # machine a page's best is what it costs without a neighbour in the way.
        best = {"before": [float("inf")] * len(pages), "after": [float("inf")] * len(pages)}
        for _ in range(args.rounds):
            gc.collect()
            for n, (url, content) in enumerate(pages):
                for label, fn in (("before", before), ("after", after)):
                    best[label][n] = min(best[label][n], cpu_seconds(fn, url, content))
        total = {label: sum(seconds) for label, seconds in best.items()}
        rows.append(
            {
                "case": name,
                "before_us_per_user": total["before"] / users * 1e6,
                "after_us_per_user": total["after"] / users * 1e6,
                "ratio": total["before"] / total["after"],
            }
        )

    print()
    print(f"| case | before µs/user ({args.baseline}) | after µs/user | before/after |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['before_us_per_user']:.2f} | {r['after_us_per_user']:.2f} | {r['ratio']:.2f}x |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "baseline": args.baseline,
                "pages": len(pages),
                "users": users,
                "rounds": args.rounds,
                "cases": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
