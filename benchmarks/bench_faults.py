"""Benchmark: a fault campaign against syncd's runs, on SQLite and on PostgreSQL.

A generated tenant (`--users`) served by the fake Graph server over loopback HTTP; two
environments in one database: `scoped` (a security group, "Dataverse Users") and `open` (no
group). The directory changes before every step (POST /_sim/churn). Per backend:

- control: a step with no fault (checks the comparison itself);
- SIGKILL of the `syncd sync` process (`--kills`, spread evenly over four modes): a full or a
  delta run, killed at a random delay within the span of a clean run of its kind (measured at
  set-up, spawn to exit) or as soon as it writes (PostgreSQL: an INSERT/UPDATE/COPY/WITH of its
  sessions in pg_stat_activity; both backends: its first events committed), before a larger
  change of the directory (`--write-churn`) so that there is much to write;
- end of its database session (`--sessions`, PostgreSQL only): `pg_terminate_backend` at a random
  delay, on the session holding the run's advisory lock (pg_locks, classid 0x73796E63) or on
  every session of the process (found by the `application_name` appended to its URL); a
  recovery run starts at once, as another replica would; the step is judged once the faulted
  process has also ended. SQLite has no server session: n/a;
- the fake directory SIGKILLed mid-read (`--directory-stops`): once the run's first request
  has reached it, within the first 80% of the clean run's work; restarted on the same port and
  store after 0.5-4 s (the run's retries ride it out) or 10-30 s (the run fails), half each;
- 429/503 storms (`--storm-runs` per ratio in `--storm-ratios`): POST /_sim/faults with half of
  the failures 429 and half 503 (Retry-After 1 s), for one run; then cleared, and recovery;
- replicas (`--replica-minutes`): `--replicas` `syncd run` daemons on the database (delta
  interval `--delta-interval`, full interval `--full-interval`); every `--replica-period`
  seconds one, drawn at random, is SIGKILLed at a random moment and restarted at once, and the
  directory changes; each period is judged per environment once it has a successful run that
  started after the change. The full runs the replicas made are counted against the interval.

Recovery: `syncd sync ENV` until one succeeds (`--recovery-attempts`; a refusal because another
process holds the lock is retried after 0.5 s). Then the step is judged against a reference: a
fresh database (a copy of the migrated template) synced once with `--full` from the same
directory state, in this process. The definitions of converged, rows lost, rows wrong,
duplicate events, entitled disabled, overlapping runs, left running and time to converge are in
`fault_campaign.py`'s docstring and in benchmarks/README.md. A step that does not converge is
re-baselined with a `--full` run (and says whether that brought it back) so the next step starts
clean.

    .venv/bin/python benchmarks/bench_faults.py                      # the full campaign (hours)
    .venv/bin/python benchmarks/bench_faults.py --quick              # a few of each, 2,000 users

Prints progress lines and one table; writes benchmarks/results/faults.json. Target: every
injection converged, every loss column 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_campaign import Config, dumps, run_campaign  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "faults.json"

QUICK = {
    "users": 5000,
    "kills": 8,
    "sessions": 4,
    "directory_stops": 4,
    "storm_runs": 2,
    "replica_minutes": 2.0,
    "replica_period": 30.0,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Config()
    ap.add_argument("--users", type=int, default=d.users)
    ap.add_argument("--backends", default=",".join(d.backends), help="sqlite,postgresql")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--kills", type=int, default=d.kills, help="SIGKILLs per backend")
    ap.add_argument("--sessions", type=int, default=d.sessions, help="ended DB sessions (PostgreSQL)")
    ap.add_argument("--directory-stops", type=int, default=d.directory_stops)
    ap.add_argument("--storm-runs", type=int, default=d.storm_runs, help="runs per storm ratio")
    ap.add_argument("--storm-ratios", default=",".join(str(r) for r in d.storm_ratios))
    ap.add_argument("--replica-minutes", type=float, default=d.replica_minutes)
    ap.add_argument("--replica-period", type=float, default=d.replica_period)
    ap.add_argument("--replicas", type=int, default=d.replicas)
    ap.add_argument("--delta-interval", type=int, default=d.delta_interval)
    ap.add_argument("--full-interval", type=int, default=d.full_interval)
    ap.add_argument("--churn", type=int, default=0, help="changes before each step (0: users/200)")
    ap.add_argument("--write-churn", type=int, default=0, help="before a kill aimed at writes (0: users/20)")
    ap.add_argument("--control", type=int, default=d.control, help="steps with no fault")
    ap.add_argument("--latency-ms", type=float, default=d.latency_ms, help="every Graph answer's delay")
    ap.add_argument("--storm-retry-after", type=float, default=d.storm_retry_after)
    ap.add_argument("--recovery-attempts", type=int, default=d.recovery_attempts)
    ap.add_argument("--workdir", type=Path, help="keep logs and files here (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help=f"a small campaign: {QUICK}")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == getattr(d, key):
                setattr(args, key, value)
    cfg = Config(
        users=args.users,
        backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()),
        seed=args.seed,
        kills=args.kills,
        sessions=args.sessions,
        directory_stops=args.directory_stops,
        storm_runs=args.storm_runs,
        storm_ratios=tuple(float(r) for r in args.storm_ratios.split(",") if r),
        replica_minutes=args.replica_minutes,
        replica_period=args.replica_period,
        replicas=args.replicas,
        delta_interval=args.delta_interval,
        full_interval=args.full_interval,
        churn=args.churn,
        write_churn=args.write_churn,
        recovery_attempts=args.recovery_attempts,
        latency_ms=args.latency_ms,
        storm_retry_after=args.storm_retry_after,
        control=args.control,
        workdir=args.workdir,
    )

    def log(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)

    # SIGTERM (and SIGINT, which a background job ignores) end the campaign through its clean-ups:
    # the processes it started are ended and its databases dropped.
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    log(f"fault campaign: {cfg}")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def partial(result: dict[str, object]) -> None:
        args.out.write_text(dumps(result | {"command": command}))

    command = " ".join(["benchmarks/bench_faults.py", *sys.argv[1:]])
    result = run_campaign(cfg, log, partial)
    result["wall_s"] = round(time.monotonic() - started)
    result["command"] = command
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    print()
    print(result["table"])
    for backend, extra in result["extra"].items():
        if "replica_full_runs" in extra:
            print(f"{backend}: full runs made by the replicas: {json.dumps(extra['replica_full_runs'])}")
    print(
        f"\nwall time {result['wall_s'] / 60:.1f} min; {'all clean' if result['clean'] else 'FAULTS FOUND'}"
    )
    args.out.write_text(dumps(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
