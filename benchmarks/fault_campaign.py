"""The fault campaign's engine, shared by `bench_faults.py` and the seeded test in tests/faults/.

Real processes only, as in production: the fake Graph server (`syncd entra serve`) over loopback
HTTP, every run under test a `syncd sync` process, the replicas `syncd run` daemons. The bench
process itself only injects faults, computes references and reads the databases.

One *step* of the campaign: change the directory (POST /_sim/churn), compute the reference for
the step's environment (a fresh database from the migrated template, one in-process `--full`
sync of that environment from the directory as it now is; nothing changes the directory again
until the step is judged), inject one fault into a run of the environment, then recover
(`syncd sync ENV` until one succeeds, bounded) and judge:

- converged: every row of the environment equals the reference's, column by column, except the
  per-database values ``systemuserid``, ``createdon``, ``modifiedon``, ``businessunitid`` and ``versionnumber`` (the environment's id is
  the same in both: both databases are copies of one template). Rows are keyed by
  (environment, azureactivedirectoryobjectid), built-in users (no object id) by (kind, domainname).
- rows lost: rows of the reference missing from the database under test.
- rows wrong: rows in both that differ in any compared column; plus rows that only the database
  under test has and that differ from a *shadow*'s. Such rows are history a fresh database cannot
  have: rows are never deleted (a user who left keeps a disabled row), and a row whose user keeps
  only on-demand grounds (R5 owner, R7a free plan) stays enabled though a fresh run would not create
  it. The shadow is a second database that lives through the same directory states as the one
  under test, synced in this process without faults (one run after every change of the directory).
- duplicate events: a ``create`` event, in the step's window, for an (environment, object id)
  that already had a ``create`` event; and the same (run, object id, action) more than once.
- entitled disabled: a ``disable`` event in the step's window for a user enabled in the reference
  before the fault and after it (in a step, the directory does not change between the two, so
  both are the step's reference; in the replica phase, the previous and this period's).
- left running: ``sync_run`` rows still ``running`` once the step has recovered.
- overlapping runs: per environment, runs sorted by ``started_at``; a pair where a run starts
  before the previous one finished (a run closed ``abandoned`` by the next lock holder has
  ``finished_at`` = that holder's start, so it does not count; a ``running`` row is counted as
  left running instead).
- time to converge: from the injection to the end of the first successful run after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, Uuid, bindparam, create_engine, select, text
from sqlalchemy.orm import Session

SYNCD = str(Path(sys.executable).with_name("syncd"))
PG_ADMIN_URL = os.environ.get("SYNCD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ENVS = ("scoped", "open")  # an environment scoped to a security group, and an open one
SKIPPED_COLUMNS = ("systemuserid", "createdon", "modifiedon", "businessunitid", "versionnumber")
LOCK_CLASS = 0x73796E63  # syncd's advisory-lock class ("sync")

Log = Callable[[str], None]


# -- processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def base_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    # The mass-disable guard is not under test: a blocked run waits for a person, and a small
    # tenant's churn often crosses its threshold.
    env.update({"SYNCD_LOG_FORMAT": "json", "SYNCD_LOG_LEVEL": "warning", "SYNCD_ALLOW_MASS_DISABLE": "true"})
    env.update(settings)
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([SYNCD, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)


class Directory:
    """The fake tenant: a store file served over HTTP; can be SIGKILLed and restarted on its port."""

    def __init__(self, workdir: Path, users: int, seed: int, latency_ms: float = 0) -> None:
        self.workdir, self.users, self.seed = workdir, users, seed
        # Every answer takes this long (Graph's own answers take tens to hundreds of milliseconds).
        self.base_faults: dict[str, Any] = {"latency_ms": latency_ms} if latency_ms else {}
        self.store = workdir / "tenant.db"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1.0"

    def generate(self) -> None:
        args = ["entra", "generate", "--users", str(self.users), "--seed", str(self.seed)]
        subprocess.run(
            [SYNCD, *args, "--store", str(self.store)], env=base_env(), check=True, capture_output=True
        )

    def start(self) -> None:
        args = ["entra", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--store", str(self.store)]
        self.proc = spawn(args, base_env(), self.workdir / "graph.log")
        wait_for(
            lambda: httpx.get(f"{self.url}/organization", timeout=2).status_code == 200, 60, "fake Graph"
        )
        self.set_faults({})

    def set_faults(self, faults: dict[str, Any]) -> None:
        """These faults on top of the base latency; {} for the base alone."""
        if faults or self.base_faults:
            self.sim("POST", "faults", self.base_faults | faults)
        else:
            self.sim("DELETE", "faults")

    def kill(self) -> None:
        if self.proc is not None:
            kill(self.proc)

    def sim(self, method: str, what: str, body: Any = None) -> Any:
        r = httpx.request(method, f"http://127.0.0.1:{self.port}/_sim/{what}", json=body, timeout=120)
        r.raise_for_status()
        return r.json()

    def requests(self) -> int:
        return int(self.sim("GET", "counters")["requests"])

    def group_id(self, name: str = "Dataverse Users") -> str:
        r = httpx.get(f"{self.url}/groups", headers={"Authorization": "Bearer t"}, timeout=30)
        return next(str(g["id"]) for g in r.json()["value"] if g["displayName"] == name)


# -- databases ---------------------------------------------------------------------------------------


class Backend:
    """Databases of one backend: a migrated template with the environments, and copies of it."""

    def __init__(self, name: str, workdir: Path, pg_admin_url: str = PG_ADMIN_URL) -> None:
        self.name, self.workdir, self.pg_admin_url = name, workdir, pg_admin_url
        self.tag = uuid.uuid4().hex[:8]
        self.template = self._new_name("tmpl")
        self._made: list[str] = []
        self._admin: Engine | None = None
        if name == "postgresql":
            self._admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
        elif name != "sqlite":
            raise ValueError(f"unknown backend {name!r}")

    def _new_name(self, what: str) -> str:
        return f"syncd_faults_{self.tag}_{what}"

    def url(self, dbname: str) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.workdir / (dbname + '.db')}"
        return self.pg_admin_url.rsplit("/", 1)[0] + "/" + dbname

    def make_template(self, group_id: str) -> None:
        from syncd.dataverse import db
        from syncd.dataverse.environments import EnvironmentSpec, create_environment

        if self._admin is not None:
            with self._admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{self.template}"'))
        self._made.append(self.template)
        engine = db.make_engine(self.url(self.template))
        db.upgrade(engine)
        with Session(engine) as session, session.begin():
            create_environment(session, EnvironmentSpec(name="scoped", security_group_id=group_id))
            create_environment(session, EnvironmentSpec(name="open"))
        engine.dispose()

    def copy(self, what: str) -> str:
        """A new database, a copy of the template; its URL."""
        name = self._new_name(f"{what}_{uuid.uuid4().hex[:6]}")
        if self._admin is None:
            shutil.copy(self.workdir / (self.template + ".db"), self.workdir / (name + ".db"))
        else:
            with self._admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self._made.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].removesuffix(".db")
        if name not in self._made:
            return
        self._made.remove(name)
        if self._admin is None:
            for suffix in (".db", ".db-wal", ".db-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (self.workdir / (name + suffix)).unlink()
            return
        with self._admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        for name in list(self._made):
            self.drop(self.url(name))
        if self._admin is not None:
            self._admin.dispose()


def engine_for(url: str) -> Engine:
    from syncd.dataverse import db

    return db.make_engine(url)


def with_app_name(url: str, app: str) -> str:
    """A PostgreSQL URL naming its sessions in pg_stat_activity.application_name."""
    if not url.startswith("postgresql"):
        return url
    return url + ("&" if "?" in url else "?") + f"application_name={app}"


def reference_sync(url: str, env: str, directory_url: str, kind: str = "full") -> None:
    """One clean run (`--full` by default) of the environment into the database at url, in this process."""
    from syncd.logs import configure_logging
    from syncd.settings import Settings
    from syncd.sync.directory import open_directory
    from syncd.sync.run import RunOptions, sync_environment

    configure_logging("warning", "json", sys.stderr)
    settings = Settings(database_url=url, directory_url=directory_url, allow_mass_disable=True)
    engine = engine_for(url)
    try:
        with open_directory(settings) as directory:
            report = sync_environment(engine, directory, env, settings, RunOptions(kind=kind))
    finally:
        engine.dispose()
    if report.outcome != "succeeded":
        raise RuntimeError(f"the reference sync of {env} ended {report.outcome}: {report.error}")


# -- reading and judging a database ------------------------------------------------------------------

Row = tuple[Any, ...]


def _norm(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


Rows = dict[tuple[str, ...], dict[str, Any]]


def user_rows(engine: Engine, env_id: int) -> Rows:
    from syncd.dataverse.schema import SystemUser

    table = SystemUser.__table__
    cols = [c for c in table.columns if c.name not in SKIPPED_COLUMNS]
    out: Rows = {}
    with engine.connect() as conn:
        for r in conn.execute(select(*cols).where(table.c.environment_id == env_id)).mappings():
            row = {k: _norm(v) for k, v in r.items()}
            oid = row["azureactivedirectoryobjectid"]
            key = ("oid", str(oid).lower()) if oid else ("builtin", row["syncd_kind"], row["domainname"])
            out[key] = row
    return out


@dataclass
class Diff:
    lost: int = 0
    wrong: int = 0
    history_wrong: int = 0
    examples: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # object ids of the first differences

    @property
    def equal(self) -> bool:
        return self.lost == 0 and self.wrong == 0 and self.history_wrong == 0


@dataclass
class Ref:
    """A step's references: the fresh database's rows, and the shadow's (the same history, no faults)."""

    fresh: Rows
    shadow: Rows


def compare(test: Rows, refs: Ref) -> Diff:
    d = Diff()
    ref = refs.fresh
    for key, want in ref.items():
        got = test.get(key)
        if got is None:
            d.lost += 1
            if len(d.examples) < 5:
                d.examples.append(f"lost {key[-1]} (reference isdisabled={want['isdisabled']})")
                d.keys.append(key[-1])
            continue
        cols = [c for c in want if want[c] != got[c]]
        if cols:
            d.wrong += 1
            if len(d.examples) < 5:
                d.keys.append(key[-1])
                d.examples.append(
                    f"wrong {key[-1]}: " + ", ".join(f"{c} {got[c]!r} != {want[c]!r}" for c in cols)
                )
    for key, got in test.items():
        if key in ref:
            continue
        # A row a fresh database would not have: history (rows are never deleted; a row whose user
        # keeps only on-demand grounds is kept, R5/R7a). It must be what the shadow has.
        twin = refs.shadow.get(key)
        if twin != got:
            d.history_wrong += 1
            if len(d.examples) < 5:
                d.keys.append(key[-1])
                if twin is None:
                    d.examples.append(
                        f"row {key[-1]} (isdisabled={got['isdisabled']}) that neither reference has"
                    )
                else:
                    cols = [c for c in twin if twin[c] != got[c]]
                    d.examples.append(
                        f"history row {key[-1]} unlike the shadow's: "
                        + ", ".join(f"{c} {got[c]!r} != {twin[c]!r}" for c in cols)
                    )
    return d


def history(engine: Engine, env_id: int, object_id: str) -> list[str]:
    """The sync events of one user, with their runs: evidence for a difference."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.run_id, r.kind, r.outcome, e.action, e.rule, e.reason FROM sync_event e "
                "LEFT JOIN sync_run r ON r.id = e.run_id WHERE e.environment_id = :e "
                "AND e.azureactivedirectoryobjectid = :o ORDER BY e.id"
            ).bindparams(bindparam("o", type_=Uuid)),  # stored as each backend stores a Uuid
            {"e": env_id, "o": uuid.UUID(object_id)},
        ).all()
    return [f"run {r[0]} ({r[1]}, {r[2]}): {r[3]} {r[4]} {r[5][:90]}" for r in rows]


def _history_or_none(engine: Engine, env_id: int, object_id: str) -> list[str]:
    try:
        return history(engine, env_id, object_id)
    except ValueError:  # a built-in user's key is no object id
        return []


def env_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(n): int(i) for i, n in conn.execute(text("SELECT id, name FROM environment"))}


def marks(engine: Engine) -> tuple[int, int]:
    """The last sync_run id and sync_event id: a step's window starts after them."""
    with engine.connect() as conn:
        run = conn.execute(text("SELECT coalesce(max(id), 0) FROM sync_run")).scalar_one()
        event = conn.execute(text("SELECT coalesce(max(id), 0) FROM sync_event")).scalar_one()
    return int(run), int(event)


def runs(engine: Engine) -> list[dict[str, Any]]:
    from syncd.dataverse.schema import SyncRun

    t = SyncRun.__table__
    with engine.connect() as conn:
        q = select(
            t.c.id, t.c.environment_id, t.c.kind, t.c.trigger, t.c.outcome, t.c.started_at, t.c.finished_at
        )
        return [dict(r) for r in conn.execute(q.order_by(t.c.id)).mappings()]


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def overlaps(all_runs: list[dict[str, Any]], after_run: int = 0) -> list[str]:
    """Pairs of runs of one environment where one starts before the previous one finished; only pairs
    whose later run is in the window (id > after_run)."""
    out: list[str] = []
    by_env: dict[int, list[dict[str, Any]]] = {}
    for r in all_runs:
        by_env.setdefault(r["environment_id"], []).append(r)
    for env_runs in by_env.values():
        env_runs.sort(key=lambda r: (_aware(r["started_at"]), r["id"]))
        for prev, nxt in zip(env_runs, env_runs[1:], strict=False):
            end, start = _aware(prev["finished_at"]), _aware(nxt["started_at"])
            if nxt["id"] <= after_run and prev["id"] <= after_run:
                continue
            if end is not None and start is not None and start < end:
                out.append(
                    f"env {prev['environment_id']}: run {prev['id']} ({prev['kind']}, {prev['outcome']}, "
                    f"{prev['started_at']}..{prev['finished_at']}) and run {nxt['id']} ({nxt['kind']}, "
                    f"{nxt['outcome']}, started {nxt['started_at']})"
                )
    return out


def left_running(all_runs: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in all_runs if r["outcome"] == "running"]


def duplicate_events(engine: Engine, after_event: int) -> tuple[int, list[str]]:
    """Events of the window that repeat another: a second `create` of an (environment, object id),
    or one run's same action for one user twice. The count, and a few of them as evidence."""
    with engine.connect() as conn:
        twice_created = conn.execute(
            text(
                "SELECT e.id, e.run_id, o.id, o.run_id, e.azureactivedirectoryobjectid FROM sync_event e "
                "JOIN sync_event o ON o.action = 'create' AND o.environment_id = e.environment_id "
                "AND o.azureactivedirectoryobjectid = e.azureactivedirectoryobjectid AND o.id < e.id "
                "WHERE e.id > :m AND e.action = 'create' ORDER BY e.id"
            ),
            {"m": after_event},
        ).all()
        same_in_run = conn.execute(
            text(
                "SELECT run_id, azureactivedirectoryobjectid, action, count(*) FROM sync_event WHERE id > :m "
                "AND azureactivedirectoryobjectid IS NOT NULL AND action <> 'create' "
                "GROUP BY run_id, azureactivedirectoryobjectid, action HAVING count(*) > 1"
            ),
            {"m": after_event},
        ).all()
    seconds = {r[0] for r in twice_created}
    examples = [
        f"create event {r[0]} (run {r[1]}) repeats create {r[2]} (run {r[3]}) of {r[4]}"
        for r in twice_created
    ]
    examples += [f"run {r[0]}: {r[2]} of {r[1]} {r[3]} times" for r in same_in_run]
    return len(seconds) + sum(int(r[3]) - 1 for r in same_in_run), examples[:3]


def disabled_ids(engine: Engine, env_id: int, after_event: int, upto_event: int | None = None) -> set[str]:
    q = (
        "SELECT azureactivedirectoryobjectid FROM sync_event WHERE environment_id = :e AND id > :m "
        "AND action = 'disable' AND azureactivedirectoryobjectid IS NOT NULL"
    )
    params: dict[str, Any] = {"e": env_id, "m": after_event}
    if upto_event is not None:
        q += " AND id <= :u"
        params["u"] = upto_event
    with engine.connect() as conn:
        return {str(r[0]).lower() for r in conn.execute(text(q), params)}


def enabled_ids(ref: Ref) -> set[str]:
    return {k[1] for k, row in ref.fresh.items() if k[0] == "oid" and not row["isdisabled"]}


# -- results -----------------------------------------------------------------------------------------


@dataclass
class Injection:
    backend: str
    kind: str
    env: str
    detail: str
    converged: bool
    lost: int
    wrong: int
    duplicate_events: int
    entitled_disabled: int
    overlapping: int
    left_running: int
    converge_s: float | None
    notes: list[str] = field(default_factory=list)


@dataclass
class KindTotals:
    backend: str
    kind: str
    injections: int = 0
    converged: int = 0
    lost: int = 0
    wrong: int = 0
    duplicate_events: int = 0
    entitled_disabled: int = 0
    overlapping: int = 0
    left_running: int = 0
    longest_s: float = 0.0
    na: str | None = None  # why the kind does not apply to the backend

    def add(self, i: Injection) -> None:
        self.injections += 1
        self.converged += int(i.converged)
        self.lost += i.lost
        self.wrong += i.wrong
        self.duplicate_events += i.duplicate_events
        self.entitled_disabled += i.entitled_disabled
        self.overlapping += i.overlapping
        self.left_running += i.left_running
        if i.converge_s is not None:
            self.longest_s = max(self.longest_s, i.converge_s)

    @property
    def clean(self) -> bool:
        return self.na is not None or (
            self.converged == self.injections
            and not (self.lost or self.wrong or self.duplicate_events or self.entitled_disabled)
            and not (self.overlapping or self.left_running)
        )


COLUMNS = (
    "backend",
    "fault kind",
    "injections",
    "converged",
    "rows lost",
    "rows wrong",
    "duplicate events",
    "entitled disabled",
    "overlapping runs",
    "left running",
    "longest time to converge",
)


def table(totals: list[KindTotals]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for t in totals:
        if t.na:
            cells = [t.backend, t.kind, "n/a", t.na, *([""] * (len(COLUMNS) - 4))]
        else:
            cells = [
                t.backend,
                t.kind,
                str(t.injections),
                f"{t.converged}/{t.injections}",
                str(t.lost),
                str(t.wrong),
                str(t.duplicate_events),
                str(t.entitled_disabled),
                str(t.overlapping),
                str(t.left_running),
                f"{t.longest_s:.1f} s",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the campaign ------------------------------------------------------------------------------------


@dataclass
class Config:
    users: int = 20_000
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    seed: int = 1
    kills: int = 50  # SIGKILLs per backend, spread over full/delta x random time/at writes
    sessions: int = 25  # ended database sessions (PostgreSQL only)
    directory_stops: int = 25
    # How long the stopped directory stays down: a range drawn at random, then a time within it.
    # Short outages are ridden out by the client's retries (6, backoff up to 30 s); long ones fail the run.
    directory_down_s: tuple[tuple[float, float], ...] = ((0.5, 4.0), (10.0, 30.0))
    storm_runs: int = 10  # per storm ratio
    storm_ratios: tuple[float, ...] = (0.3, 0.9)
    storm_retry_after: float = 1.0  # the storm's Retry-After, seconds
    latency_ms: float = 50.0  # every Graph answer takes this long
    replica_minutes: float = 10.0
    replica_period: float = 60.0  # one replica killed and restarted per period
    replicas: int = 3
    delta_interval: int = 10
    full_interval: int = 60
    churn: int = 0  # directory changes before each step; 0: users // 200 (at least 10)
    write_churn: int = 0  # before a kill aimed at writes; 0: users // 20 (at least 30)
    recovery_attempts: int = 10
    control: int = 2  # steps with no fault at all: the comparison's own check
    pg_admin_url: str = PG_ADMIN_URL
    workdir: Path | None = None

    def step_churn(self) -> int:
        return self.churn or max(10, self.users // 200)

    def big_churn(self) -> int:
        return self.write_churn or max(30, self.users // 20)


@dataclass
class Span:
    """A clean run's wall time: from spawn to its first Graph request (start-up: imports, settings,
    the lock, the run row), and from there to its exit (the work a fault is injected within)."""

    full: dict[str, tuple[float, float]] = field(default_factory=dict)
    delta: dict[str, tuple[float, float]] = field(default_factory=dict)

    def of(self, env: str, full: bool) -> float:
        """The work span: from the first request to the exit."""
        return (self.full if full else self.delta)[env][1]


class Campaign:
    """One backend's campaign."""

    def __init__(self, cfg: Config, backend: str, workdir: Path, log: Log) -> None:
        self.cfg, self.backend_name, self.workdir, self.log = cfg, backend, workdir, log
        self.rng = random.Random(f"{cfg.seed}-{backend}")
        self.directory = Directory(workdir, cfg.users, cfg.seed, cfg.latency_ms)
        self.backend = Backend(backend, workdir, cfg.pg_admin_url)
        self.url = ""
        self.shadow_url = ""
        self.engine: Engine | None = None
        self.ids: dict[str, int] = {}
        self.span = Span()
        self.results: list[Injection] = []
        self.seq = 0
        self.steps_done = 0
        self.shrink = 1.0
        self.on_result: Callable[[], None] = lambda: None  # called after each judged injection
        self.harness_errors: list[str] = []
        self.churn_seed = cfg.seed * 1000
        self.extra: dict[str, Any] = {}

    # ---- set-up ----

    def setup(self) -> None:
        t0 = time.monotonic()
        self.directory.generate()
        self.directory.start()
        self.backend.make_template(self.directory.group_id())
        self.url = self.backend.copy("test")
        self.shadow_url = self.backend.copy("shadow")
        self.engine = engine_for(self.url)
        self.ids = env_ids(self.engine)
        for env in ENVS:
            self.sync(env, full=True, check=True)
            self.shadow_sync(env, full=True)
        for env in ENVS:
            for full in (True, False):
                self.churn(self.cfg.step_churn())
                before = self.directory.requests()
                t = time.monotonic()
                proc = self.spawn_sync(env, full, "syncd-calibration")
                started = self.wait_first_request(proc, before, 300)
                t_first = time.monotonic()
                if proc.wait(600) != 0 or not started:
                    raise RuntimeError(f"a clean sync of {env} failed; see {self.workdir}")
                self.shadow_sync(env, full=full)
                (self.span.full if full else self.span.delta)[env] = (t_first - t, time.monotonic() - t_first)
        self.log(
            f"[{self.backend_name}] set up in {time.monotonic() - t0:.0f}s; clean runs (start-up + work): "
            + ", ".join(
                f"{e} {k} {s[e][0]:.1f}+{s[e][1]:.1f}s"
                for e in ENVS
                for k, s in (("full", self.span.full), ("delta", self.span.delta))
            )
        )

    def work_span(self, env: str, full: bool) -> float:
        """The clean run's work span, shrunk by half for each draw that found the run already over."""
        return self.span.of(env, full) * self.shrink

    def wait_first_request(self, proc: subprocess.Popen[bytes], before: int, timeout: float) -> bool:
        """Until the run's first Graph request (the counter passes `before`); False if it exited first."""
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: proc.poll() is not None or self.directory.requests() > before, timeout, "a read", 0.01
            )
        return proc.poll() is None

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        self.directory.kill()
        self.backend.close()

    # ---- helpers ----

    def env_vars(self, app: str, **extra: str) -> dict[str, str]:
        return base_env(
            SYNCD_DATABASE_URL=with_app_name(self.url, app),
            SYNCD_DIRECTORY_URL=self.directory.url,
            **extra,
        )

    def spawn_sync(self, env: str, full: bool | None, app: str) -> subprocess.Popen[bytes]:
        args = ["sync", env, "--json"] + (["--full"] if full else [])
        return spawn(args, self.env_vars(app), self.workdir / f"{self.backend_name}-sync.log")

    def sync(self, env: str, full: bool | None = None, check: bool = False) -> int:
        self.seq += 1
        proc = self.spawn_sync(env, full, f"syncd-step-{self.seq}")
        rc = proc.wait(600)
        if check and rc != 0:
            raise RuntimeError(f"a clean sync of {env} exited {rc}; see {self.workdir}")
        return rc

    def churn(self, changes: int) -> None:
        self.churn_seed += 1
        self.directory.sim("POST", "churn", {"changes": changes, "seed": self.churn_seed})

    def shadow_sync(self, env: str, full: bool | None = None) -> Rows:
        reference_sync(self.shadow_url, env, self.directory.url, "full" if full else "auto")
        engine = engine_for(self.shadow_url)
        try:
            return user_rows(engine, self.ids[env])
        finally:
            engine.dispose()

    def reference(self, env: str) -> Ref:
        """The fresh reference of the directory as it is, and the shadow brought to it."""
        shadow = self.shadow_sync(env)
        url = self.backend.copy("ref")
        try:
            reference_sync(url, env, self.directory.url)
            engine = engine_for(url)
            try:
                return Ref(user_rows(engine, env_ids(engine)[env]), shadow)
            finally:
                engine.dispose()
        finally:
            self.backend.drop(url)

    def recover(
        self, env: str, since: float, *, alive: subprocess.Popen[bytes] | None = None
    ) -> float | None:
        """`syncd sync ENV` until one succeeds (a refusal while another holds the lock is retried),
        then wait for a faulted process still alive; seconds from `since` to the first success."""
        done: float | None = None
        for attempt in range(self.cfg.recovery_attempts):
            rc = self.sync(env)
            if rc == 0:
                done = time.monotonic() - since
                break
            time.sleep(0.5 if rc == 2 else min(5.0, 1.0 + attempt))
        if alive is not None:
            try:
                alive.wait(300)
            except subprocess.TimeoutExpired:
                kill(alive)
        return done

    def judge(
        self,
        kind: str,
        env: str,
        detail: str,
        ref: Ref,
        mark: tuple[int, int],
        converge_s: float | None,
        before: Ref | None = None,
    ) -> Injection:
        assert self.engine is not None
        env_id = self.ids[env]
        diff = compare(user_rows(self.engine, env_id), ref)
        all_runs = runs(self.engine)
        over = overlaps(all_runs, mark[0])
        running = left_running(all_runs)
        dupes, dupe_examples = duplicate_events(self.engine, mark[1])
        entitled = enabled_ids(ref) & enabled_ids(before if before is not None else ref)
        wrongly = disabled_ids(self.engine, env_id, mark[1]) & entitled
        converged = converge_s is not None and diff.equal
        notes = list(diff.examples)
        for oid in diff.keys[:2]:
            with contextlib.suppress(ValueError):
                notes += [f"  {oid[:8]} event: {h}" for h in history(self.engine, env_id, oid)[-4:]]
        notes += [f"overlap: {o}" for o in over]
        notes += [f"duplicate: {d}" for d in dupe_examples]
        if running:
            notes.append(f"runs left running: {running}")
        if wrongly:
            notes.append(f"entitled users disabled: {sorted(wrongly)[:5]}")
        inj = Injection(
            self.backend_name,
            kind,
            env,
            detail,
            converged,
            diff.lost,
            diff.wrong + diff.history_wrong,
            dupes,
            len(wrongly),
            len(over),
            len(running),
            None if converge_s is None else round(converge_s, 2),
            notes,
        )
        self.results.append(inj)
        self.on_result()
        bad = not inj.converged or inj.lost or inj.wrong or dupes or wrongly or over or running
        took = "never" if converge_s is None else f"{converge_s:.1f}s"
        self.log(
            f"[{self.backend_name}] {kind:<26} {env:<6} {detail:<34} "
            f"{'converged' if inj.converged else 'NOT CONVERGED'} in {took}"
            + (
                f"; lost {inj.lost} wrong {inj.wrong} dup {dupes} entitled-disabled {len(wrongly)} "
                f"overlap {len(over)} running {len(running)}"
                if bad
                else ""
            )
        )
        for n in notes[:14] if bad else []:
            self.log(f"      {n}")
        if not diff.equal:
            # Bring the environment back in line so the next step starts clean (and say so).
            self.sync(env, full=True)
            again = compare(user_rows(self.engine, env_id), ref)
            self.log(f"      re-baselined with a --full run: {'equal' if again.equal else 'STILL DIFFERENT'}")
        return inj

    def step(
        self, kind: str, fault: Callable[[str, Any], tuple[str, float | None, bool]], *, big: bool = False
    ) -> None:
        """Churn, the reference, the fault (returns detail, seconds to converge, injected?), judge.
        A fault that finds the run already over (nothing injected) is drawn again."""
        self.steps_done += 1
        env = ENVS[self.steps_done % 2]
        for draw in range(6):
            self.shrink = 0.5**draw
            self.churn(self.cfg.big_churn() if big else self.cfg.step_churn())
            assert self.engine is not None
            mark = marks(self.engine)
            ref = self.reference(env)
            detail, converge_s, injected = fault(env, ref)
            if injected:
                self.judge(kind, env, detail, ref, mark, converge_s)
                return
            self.log(
                f"[{self.backend_name}] {kind}: the run ended before the fault ({detail}); drawing again"
            )
        self.log(f"[{self.backend_name}] {kind}: gave up injecting after 6 draws")

    # ---- faults ----

    def control(self, env: str, ref: Any) -> tuple[str, float | None, bool]:
        t = time.monotonic()
        return "no fault", self.recover(env, t), True

    def sigkill(self, full: bool, at_writes: bool) -> Callable[[str, Any], tuple[str, float | None, bool]]:
        def fault(env: str, ref: Any) -> tuple[str, float | None, bool]:
            assert self.engine is not None
            self.seq += 1
            app = f"syncd-victim-{self.seq}"
            _, event_mark = marks(self.engine)
            span = self.work_span(env, full)
            before = self.directory.requests()
            proc = self.spawn_sync(env, full, app)
            t_spawn = time.monotonic()
            if at_writes:
                writing = self._wait_for_writes(proc, app, event_mark, 4 * span + 30)
                if not writing:
                    return "no write seen", None, False
                if self.rng.random() < 0.5:
                    time.sleep(self.rng.uniform(0, min(0.3, span / 4)))
                detail = f"at {writing} +{time.monotonic() - t_spawn:.2f}s"
            else:
                # At a random point of its work: from its first Graph request to the end of a clean run.
                self.wait_first_request(proc, before, 4 * span + 30)
                delay = self.rng.uniform(0, span)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(delay)
                detail = f"first request +{delay:.2f}s of {span:.1f}s"
            if proc.poll() is not None:
                return f"exited {proc.returncode} first", None, False
            t = time.monotonic()
            kill(proc)
            return detail, self.recover(env, t), True

        return fault

    def _wait_for_writes(
        self, proc: subprocess.Popen[bytes], app: str, event_mark: int, timeout: float
    ) -> str | None:
        """Polls until the run writes: an INSERT/UPDATE/COPY of its sessions in progress (PostgreSQL),
        or its first events committed."""
        assert self.engine is not None
        deadline = time.monotonic() + timeout
        pg = self.backend_name == "postgresql"
        while proc.poll() is None and time.monotonic() < deadline:
            with self.engine.connect() as conn:
                if pg:
                    q = conn.execute(
                        text(
                            "SELECT left(query, 30) FROM pg_stat_activity WHERE application_name = :a "
                            "AND state = 'active' AND (query ILIKE 'insert%' OR query ILIKE 'update%' "
                            "OR query ILIKE 'copy%' OR query ILIKE 'with%')"
                        ),
                        {"a": app},
                    ).scalar()
                    if q:
                        return "a write statement (" + " ".join(q.split()[:2]).lower() + ")"
                n = conn.execute(
                    text("SELECT count(*) FROM sync_event WHERE id > :m"), {"m": event_mark}
                ).scalar()
                if n:
                    return "committed events"
            time.sleep(0.01)
        return None

    def end_session(self, env: str, ref: Any) -> tuple[str, float | None, bool]:
        """pg_terminate_backend on the run's lock session (its advisory lock), or on all its sessions."""
        assert self.engine is not None
        self.seq += 1
        app = f"syncd-victim-{self.seq}"
        full = self.rng.random() < 0.5
        which = self.rng.choice(("lock session", "all sessions"))
        span = self.work_span(env, full)
        before = self.directory.requests()
        proc = self.spawn_sync(env, full, app)
        self.wait_first_request(proc, before, 4 * span + 30)
        delay = self.rng.uniform(0, span)
        t0 = time.monotonic()
        ended: list[int] = []
        while proc.poll() is None and not ended:
            wait = delay - (time.monotonic() - t0)
            if wait > 0:
                time.sleep(min(wait, 0.05))
                continue
            with self.engine.connect() as conn:
                where = "a.application_name = :a"
                if which == "lock session":
                    where += (
                        " AND a.pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND classid = :c AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database()))"
                    )
                ended = [
                    int(r[0])
                    for r in conn.execute(
                        text(
                            f"SELECT a.pid, pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE {where}"
                        ),
                        {"a": app, "c": LOCK_CLASS},
                    )
                ]
            if not ended:
                time.sleep(0.01)
        detail = f"{'full' if full else 'delta'}, {which} at first request +{time.monotonic() - t0:.2f}s"
        if not ended:
            return detail + f", exited {proc.returncode} first", None, False
        t = time.monotonic()
        # Another run may start at once (as another replica would): the lock is free again.
        return f"{detail} ({len(ended)} backends)", self.recover(env, t, alive=proc), True

    def stop_directory(self, env: str, ref: Any) -> tuple[str, float | None, bool]:
        """SIGKILL the fake Graph server while the run reads; restart it on its port and store."""
        full = self.rng.random() < 0.6
        span = self.work_span(env, full)
        before = self.directory.requests()
        self.seq += 1
        proc = self.spawn_sync(env, full, f"syncd-victim-{self.seq}")
        if not self.wait_first_request(proc, before, 4 * span + 30):
            return "exited first", None, False
        t0 = time.monotonic()
        # Within the first 80% of its work: the reading part of a run.
        time.sleep(self.rng.uniform(0, 0.8 * span))
        if proc.poll() is not None:
            return "exited first", None, False
        t = time.monotonic()
        at = t - t0
        self.directory.kill()
        down = self.rng.uniform(*self.rng.choice(self.cfg.directory_down_s))
        time.sleep(down)
        self.directory.start()
        # The faulted run may ride out the outage with its retries: then it is the recovery.
        rc = proc.wait(600)
        detail = f"{'full' if full else 'delta'} at first request +{at:.2f}s, down {down:.1f}s, run exit {rc}"
        if rc == 0:
            return detail, time.monotonic() - t, True
        return detail, self.recover(env, t), True

    def storm(self, ratio: float) -> Callable[[str, Any], tuple[str, float | None, bool]]:
        def fault(env: str, ref: Any) -> tuple[str, float | None, bool]:
            full = self.rng.random() < 0.5
            half = ratio / 2  # 429 for half the failures, 503 for the other half (drawn when not 429)
            self.directory.set_faults(
                {
                    "throttle_ratio": half,
                    "unavailable_ratio": half / (1 - half),
                    "retry_after": self.cfg.storm_retry_after,
                    "seed": self.rng.randrange(1 << 30),
                },
            )
            t = time.monotonic()
            try:
                rc = self.sync(env, full=full)
            finally:
                self.directory.set_faults({})
            detail = f"{'full' if full else 'delta'} under the storm: exit {rc}"
            if rc == 0:
                return detail, time.monotonic() - t, True
            return detail, self.recover(env, t), True

        return fault

    # ---- replicas ----

    def replica_phase(self) -> None:
        """Three `syncd run` daemons on the database; every period one is SIGKILLed and restarted,
        and the directory changes; each period is judged once every environment has a successful
        run that started after the change."""
        cfg = self.cfg
        assert self.engine is not None
        periods = max(1, round(cfg.replica_minutes * 60 / cfg.replica_period))
        daemons: dict[int, subprocess.Popen[bytes]] = {}

        def start(i: int) -> None:
            port = free_port()
            daemons[i] = spawn(
                ["run", "--http-port", str(port)],
                self.env_vars(
                    f"replica-{i}",
                    SYNCD_DELTA_INTERVAL_SECONDS=str(cfg.delta_interval),
                    SYNCD_FULL_INTERVAL_SECONDS=str(cfg.full_interval),
                ),
                self.workdir / f"{self.backend_name}-replica-{i}.log",
            )

        phase_mark = marks(self.engine)
        phase_started = datetime.now(UTC)
        for i in range(cfg.replicas):
            start(i)
        refs = {env: self.reference(env) for env in ENVS}
        try:
            for p in range(periods):
                t_period = time.monotonic()
                time.sleep(self.rng.uniform(0.1, 0.5) * cfg.replica_period)
                victim = self.rng.randrange(cfg.replicas)
                mark = marks(self.engine)
                killed_at = datetime.now(UTC)
                kill(daemons[victim])
                self.churn(self.cfg.step_churn())
                changed_at = datetime.now(UTC)
                start(victim)
                new_refs = {env: self.reference(env) for env in ENVS}
                deadline = t_period + cfg.replica_period
                for env in ENVS:
                    wait = max(deadline - time.monotonic(), 3 * cfg.delta_interval + 30)
                    done = self._wait_for_success(env, changed_at, wait)
                    converge_s = None if done is None else (done - killed_at).total_seconds()
                    detail = f"period {p + 1}/{periods}: replica-{victim} killed"
                    inj = self._judge_replica(env, detail, new_refs[env], refs[env], mark, converge_s)
                    if not inj.converged and done is not None:
                        # Maybe judged in the middle of a run: judge again after the next successful one.
                        again = self._wait_for_success(env, datetime.now(UTC), 3 * cfg.delta_interval + 60)
                        if again is not None:
                            self.results.pop()
                            converge_s = (again - killed_at).total_seconds()
                            detail += " (judged again)"
                            self._judge_replica(env, detail, new_refs[env], refs[env], mark, converge_s)
                refs = new_refs
                rest = t_period + cfg.replica_period - time.monotonic()
                if rest > 0:
                    time.sleep(rest)
        finally:
            for proc in daemons.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in daemons.values():
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    kill(proc)
        phase_s = (datetime.now(UTC) - phase_started).total_seconds()
        full_runs = [
            r
            for r in runs(self.engine)
            if r["id"] > phase_mark[0] and r["kind"] == "full" and r["trigger"] != "cli"
        ]
        fulls = Counter(r["environment_id"] for r in full_runs)
        expected = phase_s / cfg.full_interval
        self.extra["replica_full_runs"] = {
            "phase_s": round(phase_s),
            "full_interval_s": cfg.full_interval,
            "expected_per_env": round(expected, 1),
            "per_env": {env: fulls.get(self.ids[env], 0) for env in ENVS},
            "runs": [
                f"env {r['environment_id']} run {r['id']} {r['trigger']} {r['outcome']} "
                f"{r['started_at']}..{r['finished_at']}"
                for r in full_runs
            ],
        }
        self.log(
            f"[{self.backend_name}] replicas: full runs in {phase_s:.0f}s with a {cfg.full_interval}s full "
            f"interval: {self.extra['replica_full_runs']['per_env']} (about {expected:.1f} each expected, "
            "plus one at start-up when the last full run is older than the interval)"
        )

    def _wait_for_success(self, env: str, after: datetime, timeout: float) -> datetime | None:
        """The finish time of the first successful run of env that started after `after`."""
        assert self.engine is not None
        env_id = self.ids[env]

        def found() -> datetime | None:
            for r in runs(self.engine):  # type: ignore[arg-type]
                if r["environment_id"] == env_id and r["outcome"] == "succeeded":
                    start = _aware(r["started_at"])
                    if start is not None and start > after:
                        return _aware(r["finished_at"])
            return None

        try:
            return wait_for(found, timeout, f"a successful run of {env}", 0.25)  # type: ignore[no-any-return]
        except TimeoutError:
            return None

    def _judge_replica(
        self,
        env: str,
        detail: str,
        ref: Ref,
        before: Ref,
        mark: tuple[int, int],
        converge_s: float | None,
    ) -> Injection:
        assert self.engine is not None
        env_id = self.ids[env]
        diff = compare(user_rows(self.engine, env_id), ref)
        all_runs = runs(self.engine)
        over = overlaps(all_runs, mark[0])
        # The victim's run (if any) is closed by the next lock holder of its environment, and a run of
        # this environment may be under way: count this environment's runs started before the period.
        running = [
            r["id"]
            for r in all_runs
            if r["outcome"] == "running" and r["id"] <= mark[0] and r["environment_id"] == env_id
        ]
        dupes, dupe_examples = duplicate_events(self.engine, mark[1])
        wrongly = disabled_ids(self.engine, env_id, mark[1]) & enabled_ids(ref) & enabled_ids(before)
        converged = converge_s is not None and diff.equal
        inj = Injection(
            self.backend_name,
            "replicas: SIGKILL + restart",
            env,
            detail,
            converged,
            diff.lost,
            diff.wrong + diff.history_wrong,
            dupes,
            len(wrongly),
            len(over),
            len(running),
            None if converge_s is None else round(converge_s, 2),
            list(diff.examples)
            + [
                f"  {oid[:8]} event: {h}"
                for oid in diff.keys[:2]
                for h in _history_or_none(self.engine, env_id, oid)[-4:]
            ]
            + [f"overlap: {o}" for o in over]
            + [f"duplicate: {d}" for d in dupe_examples],
        )
        self.results.append(inj)
        self.on_result()
        bad = not converged or inj.lost or inj.wrong or dupes or wrongly or over or running
        self.log(
            f"[{self.backend_name}] replicas {env:<6} {detail:<40} "
            f"{'converged' if converged else 'NOT CONVERGED'}"
            + ("" if converge_s is None else f" in {converge_s:.1f}s")
            + (
                f"; lost {inj.lost} wrong {inj.wrong} dup {dupes} entitled-disabled {len(wrongly)} "
                f"overlap {len(over)} running {len(running)}"
                if bad
                else ""
            )
        )
        for n in inj.notes[:12] if bad else []:
            self.log(f"      {n}")
        return inj

    # ---- the whole campaign of the backend ----

    def plan(self) -> list[tuple[str, Callable[[], None]]]:
        cfg = self.cfg
        out: list[tuple[str, Callable[[], None]]] = []
        for _ in range(cfg.control):
            out.append(("control (no fault)", lambda: self.step("control (no fault)", self.control)))
        modes = [(full, writes) for full in (True, False) for writes in (False, True)]
        for n in range(cfg.kills):
            full, writes = modes[n % 4]
            kind = f"SIGKILL {'full' if full else 'delta'}, {'during writes' if writes else 'random time'}"
            out.append((kind, lambda k=kind, f=full, w=writes: self.step(k, self.sigkill(f, w), big=w)))
        if self.backend_name == "postgresql":
            for _ in range(cfg.sessions):
                out.append(("end DB session", lambda: self.step("end DB session", self.end_session)))
        for _ in range(cfg.directory_stops):
            out.append(
                (
                    "directory stopped mid-read",
                    lambda: self.step("directory stopped mid-read", self.stop_directory),
                )
            )
        for ratio in cfg.storm_ratios:
            kind = f"429/503 storm {ratio:.0%}"
            for _ in range(cfg.storm_runs):
                out.append((kind, lambda k=kind, r=ratio: self.step(k, self.storm(r))))
        return out

    def run(self) -> None:
        self.setup()
        steps = self.plan()
        # Interleave the kinds (a seeded shuffle), so every kind meets every state of the database.
        self.rng.shuffle(steps)
        t0 = time.monotonic()
        for n, (kind, go) in enumerate(steps, 1):
            try:
                go()
            except Exception as exc:  # the harness's own trouble: say so, and go on with the next step
                self.harness_errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                self.log(f"[{self.backend_name}] {kind}: HARNESS ERROR {type(exc).__name__}: {exc}")
            if n % 10 == 0 or n == len(steps):
                left = (time.monotonic() - t0) / n * (len(steps) - n)
                self.log(
                    f"[{self.backend_name}] {n}/{len(steps)} steps, about {left / 60:.0f} min left before the replicas"
                )
        if self.cfg.replica_minutes > 0 and self.cfg.replicas > 0:
            self.replica_phase()

    def totals(self) -> list[KindTotals]:
        order = ["control (no fault)"] + [
            f"SIGKILL {k}, {w}" for k in ("full", "delta") for w in ("random time", "during writes")
        ]
        order += ["end DB session", "directory stopped mid-read"]
        order += [f"429/503 storm {r:.0%}" for r in self.cfg.storm_ratios]
        order += ["replicas: SIGKILL + restart"]
        by: dict[str, KindTotals] = {}
        for kind in order:
            by[kind] = KindTotals(self.backend_name, kind)
        for i in self.results:
            by.setdefault(i.kind, KindTotals(self.backend_name, i.kind)).add(i)
        if self.backend_name == "sqlite":
            by["end DB session"].na = "SQLite has no server session to end"
        return [t for t in by.values() if t.injections or t.na]


def run_campaign(
    cfg: Config, log: Log = print, partial: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Every backend's campaign; the per-kind totals, every injection, and extra findings."""
    out: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    }
    done: list[Campaign] = []

    def collect(campaigns: list[Campaign]) -> dict[str, Any]:
        totals = [t for c in campaigns for t in c.totals()]
        return out | {
            "totals": [asdict(t) for t in totals],
            "injections": [asdict(i) for c in campaigns for i in c.results],
            "extra": {
                c.backend_name: c.extra | {"spans": asdict(c.span), "harness_errors": c.harness_errors}
                for c in campaigns
            },
            "table": table(totals),
            "clean": all(t.clean for t in totals) and not any(c.harness_errors for c in campaigns),
        }

    with contextlib.ExitStack() as stack:
        base = cfg.workdir or Path(stack.enter_context(_tempdir()))
        for backend in cfg.backends:
            workdir = base / backend
            workdir.mkdir(parents=True, exist_ok=True)
            c = Campaign(cfg, backend, workdir, log)
            if partial is not None:
                # What is known so far, rewritten after every injection (a long campaign cut short keeps it).
                c.on_result = lambda c=c: partial(collect([*done, c]) | {"partial": True})
            try:
                c.run()
            finally:
                c.close()
            done.append(c)
    return collect(done)


@contextlib.contextmanager
def _tempdir() -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="syncd-faults-") as d:
        yield d


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, default=str) + "\n"


__all__ = ["Config", "Injection", "KindTotals", "run_campaign", "table"]
