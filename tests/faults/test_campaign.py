"""The fault campaign of benchmarks/bench_faults.py, small and seeded, on SQLite and on PostgreSQL.

A 300-user tenant, a scoped and an open environment, the directory changing before every step;
a few injections of each kind (SIGKILL of a full and of a delta run, at a random moment and
during writes; PostgreSQL sessions ended; the directory SIGKILLed mid-read; 429/503 storms at
30% and 90%; three replicas, one SIGKILLed and restarted per period). After each fault the
recovered rows equal a clean reference sync's, with no lost or wrong row, no duplicate event,
no entitled user disabled, no overlapping runs and no run left 'running'.

The engine is the bench's own (benchmarks/fault_campaign.py); the definitions are in its
docstring and in benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fault_campaign import Config, run_campaign  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def small(backend: str, workdir: Path, pg_admin_url: str | None) -> Config:
    return Config(
        users=300,
        backends=(backend,),
        seed=7,
        kills=4,  # one of each: full/delta x random time/during writes
        sessions=2,
        directory_stops=1,
        directory_down_s=((0.5, 4.0),),
        storm_runs=1,
        storm_retry_after=0.2,
        replica_minutes=20 / 60,
        replica_period=10,
        delta_interval=5,
        control=1,
        workdir=workdir,
        **({"pg_admin_url": pg_admin_url} if pg_admin_url else {}),
    )


def failures(result: dict[str, Any]) -> list[str]:
    out = []
    for i in result["injections"]:
        bad = not i["converged"] or any(
            i[k]
            for k in ("lost", "wrong", "duplicate_events", "entitled_disabled", "overlapping", "left_running")
        )
        if bad:
            out.append(f"{i['kind']} ({i['env']}, {i['detail']}): " + "; ".join(i["notes"][:6]))
    return out


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_seeded_fault_campaign_converges_with_nothing_lost(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pg_admin_url = request.getfixturevalue("pg_server") if backend == "postgresql" else None
    lines: list[str] = []
    result = run_campaign(small(backend, tmp_path, pg_admin_url), lines.append)
    report = result["table"] + "\n" + "\n".join(lines[-60:])

    kinds = {t["kind"]: t for t in result["totals"]}
    for kind in (
        "control (no fault)",
        "SIGKILL full, random time",
        "SIGKILL full, during writes",
        "SIGKILL delta, random time",
        "SIGKILL delta, during writes",
        "directory stopped mid-read",
        "429/503 storm 30%",
        "429/503 storm 90%",
        "replicas: SIGKILL + restart",
    ):
        assert kinds.get(kind, {}).get("injections"), f"no {kind} injected:\n{report}"
    if backend == "postgresql":
        assert kinds["end DB session"]["injections"], report
    else:
        assert kinds["end DB session"]["na"], report
    assert failures(result) == [], report
    assert result["clean"], report
