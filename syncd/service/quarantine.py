"""Quarantine: an environment whose runs keep failing is run less and less often, until it succeeds.

Modelled on Microsoft Entra's application provisioning quarantine ("Application provisioning in
quarantine status", learn.microsoft.com): a provisioning job whose runs keep failing is marked
*in quarantine*, its incremental cycles are run less and less often, down to once a day, and it
leaves quarantine when a cycle succeeds again or when an administrator restarts it. Here:

- **What counts.** Only delta and full runs (kind "user", a one-user operation, is neither here
  nor there). ``failed`` counts; ``succeeded`` and ``partial`` (the directory was read to its end,
  some rows failed to be written) end the count; ``blocked`` (the mass-disable guard waits for a
  person), ``dry_run``, ``interrupted`` (a shutdown), ``abandoned`` (a dead process) and
  ``running`` are neutral: they neither count nor end the count. Every trigger counts alike
  (schedule, ``syncd sync``, the API): a failure is a failure, a success is a success.
- **When.** ``after_failures`` (``SYNCD_QUARANTINE_AFTER_FAILURES``, N) consecutive failed runs,
  since the last succeeded/partial one and since ``environment.sync_resumed_at``, put the
  environment in quarantine. 0 switches quarantine off (failures are still counted).
- **Backoff.** In quarantine, the next *scheduled* run waits, after the last failure, twice the
  delta interval, doubling with each further failure, at most ``max_backoff_s``
  (``SYNCD_QUARANTINE_MAX_BACKOFF_SECONDS``, a day by default, as Entra's): with N failures
  ``2 × delta``, N+1 ``4 × delta``, and so on. The first scheduled tick at or after that time runs.
- **Leaving.** The next succeeded or partial run (a person's ``syncd sync`` or ``POST .../sync``
  is never held back), or ``syncd env resume NAME`` / ``POST /api/environments/{name}/resume``,
  which sets ``sync_resumed_at``: failed runs that finished at or before it no longer count.

The state is derived from ``sync_run`` and ``environment`` only, so every replica agrees.
``quarantine_state`` is pure; ``read_states``/``read_state`` read the database for it;
``QuarantineGate`` is the check in the daemon's scheduled path; ``resume`` is the way out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, or_, select
from sqlalchemy import func as sqlfunc
from sqlalchemy.orm import Session

from syncd.dataverse.environments import get_environment
from syncd.dataverse.schema import Environment, SyncRun

log = structlog.get_logger(__name__)

#: Outcomes that count towards quarantine.
COUNTED = frozenset({"failed"})
#: Outcomes that end the count (and quarantine): the directory was read to its end.
RESETS = frozenset({"succeeded", "partial"})
#: Outcomes that neither count nor reset.
NEUTRAL = frozenset({"blocked", "dry_run", "interrupted", "abandoned", "running"})
#: The kinds of run quarantine looks at; a one-user operation ("user") is neutral.
RUN_KINDS = ("full", "delta")
#: At most this many failed runs are read back per environment (the backoff has long reached
#: its cap by then); ``consecutive_failures`` is never shown above it.
MAX_COUNTED = 1000


@dataclass(frozen=True, slots=True)
class QuarantinePolicy:
    """The settings quarantine follows.

    ``after_failures``: consecutive failed runs that put an environment in quarantine (0: never).
    ``delta_interval_s``: seconds between scheduled delta runs, the unit of the backoff.
    ``max_backoff_s``: the longest wait, in seconds, between scheduled runs in quarantine.
    """

    after_failures: int
    delta_interval_s: float
    max_backoff_s: float

    @classmethod
    def from_settings(cls, settings: Any) -> QuarantinePolicy:
        """From ``syncd.settings.Settings`` (``quarantine_after_failures``,
        ``delta_interval_seconds``, ``quarantine_max_backoff_seconds``)."""
        return cls(
            after_failures=int(settings.quarantine_after_failures),
            delta_interval_s=float(settings.delta_interval_seconds),
            max_backoff_s=float(settings.quarantine_max_backoff_seconds),
        )

    @property
    def enabled(self) -> bool:
        return self.after_failures > 0

    def backoff_s(self, failures: int) -> float:
        """Seconds a scheduled run waits after the last of ``failures`` consecutive failed runs.

        0 below the threshold (or with quarantine off); from it, ``2 × delta × 2^(failures − N)``,
        capped at ``max_backoff_s``.
        """
        if not self.enabled or failures < self.after_failures:
            return 0.0
        doublings = failures - self.after_failures + 1
        if doublings >= 64:  # far past any cap; keeps the power small
            return self.max_backoff_s
        return min(self.max_backoff_s, self.delta_interval_s * 2.0**doublings)


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """One run as quarantine sees it: its outcome (``sync_run.outcome``), when it finished (a
    timezone-aware datetime; a naive one is taken as UTC) and its kind ("full", "delta", "user")."""

    outcome: str
    finished_at: datetime
    kind: str = "delta"


@dataclass(frozen=True, slots=True)
class QuarantineState:
    """An environment's quarantine state; datetimes are timezone-aware UTC, durations seconds.

    ``consecutive_failures``: failed runs since the last succeeded/partial run and the last
    resume. ``since``: when the failure that started the quarantine finished.
    ``next_attempt_at``: the earliest time a scheduled run may start (None: not held back).
    """

    quarantined: bool
    consecutive_failures: int
    since: datetime | None
    last_failure_at: datetime | None
    next_attempt_at: datetime | None
    backoff_s: float
    resumed_at: datetime | None

    def holds_back(self, now: datetime) -> bool:
        """Whether a scheduled run at ``now`` (aware) must wait for ``next_attempt_at``."""
        return self.quarantined and self.next_attempt_at is not None and _utc(now) < self.next_attempt_at

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 strings."""
        return {
            "quarantined": self.quarantined,
            "consecutive_failures": self.consecutive_failures,
            "since": _iso(self.since),
            "last_failure_at": _iso(self.last_failure_at),
            "next_attempt_at": _iso(self.next_attempt_at),
            "backoff_s": self.backoff_s,
            "resumed_at": _iso(self.resumed_at),
        }

    def describe(self) -> str:
        """One line for a person, e.g. ``quarantined since ... (4 consecutive failed runs); ...``."""
        if self.quarantined:
            return (
                f"quarantined since {_iso(self.since)} ({_runs(self.consecutive_failures)}); "
                f"next scheduled run not before {_iso(self.next_attempt_at)}"
            )
        if self.consecutive_failures:
            return f"not quarantined ({_runs(self.consecutive_failures)})"
        return "not quarantined"


def quarantine_state(
    runs: Iterable[FinishedRun], policy: QuarantinePolicy, resumed_at: datetime | None = None
) -> QuarantineState:
    """The quarantine state that ``runs`` (an environment's finished runs, any order) imply.

    Counts the failed delta/full runs newer than the newest succeeded/partial one and finished
    after ``resumed_at``; neutral outcomes and "user" runs are skipped (see the module's doc).
    Pure: no clock, no I/O. Raises nothing for unknown outcomes (they are neutral).
    """
    resumed = _utc(resumed_at) if resumed_at is not None else None
    failures: list[datetime] = []  # newest first
    for run in sorted(runs, key=lambda r: _utc(r.finished_at), reverse=True):
        finished = _utc(run.finished_at)
        if resumed is not None and finished <= resumed:
            break
        if run.kind not in RUN_KINDS:
            continue
        if run.outcome in RESETS:
            break
        if run.outcome in COUNTED:
            failures.append(finished)
    count = len(failures)
    quarantined = policy.enabled and count >= policy.after_failures
    backoff = policy.backoff_s(count)
    last = failures[0] if failures else None
    return QuarantineState(
        quarantined=quarantined,
        consecutive_failures=count,
        since=failures[count - policy.after_failures] if quarantined else None,
        last_failure_at=last,
        next_attempt_at=last + timedelta(seconds=backoff) if quarantined and last is not None else None,
        backoff_s=backoff,
        resumed_at=resumed,
    )


# -- the database --------------------------------------------------------------------------------


def read_states(
    session: Session, policy: QuarantinePolicy, environment_ids: Collection[int] | None = None
) -> dict[int, QuarantineState]:
    """Each environment's quarantine state (all, or those of ``environment_ids``), by id.

    Reads ``environment.sync_resumed_at`` and, per environment, its newest succeeded/partial
    delta/full run and the failed ones after it (at most MAX_COUNTED), from ``sync_run``: what
    every replica sees alike. SQLAlchemy errors propagate.
    """
    envs = select(Environment.id, Environment.sync_resumed_at)
    if environment_ids is not None:
        envs = envs.where(Environment.id.in_(list(environment_ids)))
    resumed = {env_id: ts for env_id, ts in session.execute(envs).tuples().all()}
    if not resumed:
        return {}
    relevant = (SyncRun.kind.in_(RUN_KINDS), SyncRun.finished_at.is_not(None))
    last_reset = (
        select(SyncRun.environment_id, sqlfunc.max(SyncRun.finished_at).label("at"))
        .where(*relevant, SyncRun.environment_id.in_(list(resumed)), SyncRun.outcome.in_(sorted(RESETS)))
        .group_by(SyncRun.environment_id)
        .subquery()
    )
    ranked = (
        select(
            SyncRun.environment_id,
            SyncRun.outcome,
            SyncRun.finished_at,
            SyncRun.kind,
            sqlfunc.row_number()
            .over(
                partition_by=SyncRun.environment_id,
                order_by=(SyncRun.finished_at.desc(), SyncRun.id.desc()),
            )
            .label("n"),
        )
        .join(Environment, Environment.id == SyncRun.environment_id)
        .outerjoin(last_reset, last_reset.c.environment_id == SyncRun.environment_id)
        .where(
            *relevant,
            SyncRun.environment_id.in_(list(resumed)),
            SyncRun.outcome.in_(sorted(COUNTED | RESETS)),
            or_(last_reset.c.at.is_(None), SyncRun.finished_at >= last_reset.c.at),
            or_(Environment.sync_resumed_at.is_(None), SyncRun.finished_at > Environment.sync_resumed_at),
        )
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.environment_id, ranked.c.outcome, ranked.c.finished_at, ranked.c.kind).where(
            ranked.c.n <= MAX_COUNTED + 1
        )
    ).all()
    by_env: dict[int, list[FinishedRun]] = {env_id: [] for env_id in resumed}
    for env_id, outcome, finished_at, kind in rows:
        by_env[env_id].append(FinishedRun(outcome, finished_at, kind))
    return {env_id: quarantine_state(runs, policy, resumed[env_id]) for env_id, runs in by_env.items()}


def read_state(session: Session, environment_id: int, policy: QuarantinePolicy) -> QuarantineState:
    """One environment's quarantine state (see ``read_states``); not quarantined for an unknown id."""
    found = read_states(session, policy, [environment_id])
    return found.get(environment_id) or quarantine_state([], policy)


# -- the daemon's scheduled path -----------------------------------------------------------------


class QuarantineGate:
    """Holds back the scheduled runs of a quarantined environment until its backoff is over.

    ``holds_back(target, metrics)`` is called by ``SyncJobs.scheduled`` before a scheduled run;
    a person's run (``SyncJobs.run``) never asks. The state is read from the database on each
    call, so replicas agree; when it can't be read, the run goes ahead (it will fail or succeed
    on its own). A hold-back is counted in ``syncd_runs_skipped_total{reason="quarantined"}`` and
    logged (``run_skipped``, at info the first time for each next attempt, at debug after).
    """

    def __init__(
        self,
        engine: Callable[[], Engine],
        policy: QuarantinePolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self._announced: dict[int, datetime] = {}  # only so that the log says it once per attempt

    def holds_back(self, target: Any, metrics: Any) -> bool:
        """True when the scheduled run of ``target`` (a ``Target``: ``id``, ``name``) must be skipped."""
        if not self.policy.enabled:
            return False
        try:
            with Session(self.engine()) as session:
                state = read_state(session, target.id, self.policy)
        except Exception as exc:
            log.warning("quarantine_unknown", environment=target.name, error=str(exc)[:300])
            return False
        next_attempt = state.next_attempt_at
        if next_attempt is None or not state.holds_back(self.clock()):
            self._announced.pop(target.id, None)
            return False
        metrics.skipped.labels(target.name, "quarantined").inc()
        first = self._announced.get(target.id) != next_attempt
        self._announced[target.id] = next_attempt
        (log.info if first else log.debug)(
            "run_skipped",
            environment=target.name,
            reason="quarantined",
            consecutive_failures=state.consecutive_failures,
            quarantined_since=_iso(state.since),
            next_attempt_at=next_attempt.isoformat(),
        )
        return True


# -- the way out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resumed:
    """What ``resume`` did: ``changed`` is False when no failed run counted (nothing to do)."""

    environment: str
    changed: bool
    was_quarantined: bool
    failures_cleared: int
    resumed_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "changed": self.changed,
            "was_quarantined": self.was_quarantined,
            "failures_cleared": self.failures_cleared,
            "resumed_at": _iso(self.resumed_at),
        }

    def describe(self) -> str:
        """One line for a person."""
        name = repr(self.environment)
        if self.was_quarantined:
            return (
                f"environment {name} left quarantine: its {_runs(self.failures_cleared)} no longer count; "
                "the next scheduled run goes ahead"
            )
        if self.changed:
            return f"environment {name} was not in quarantine; its {_runs(self.failures_cleared)} no longer count"
        return f"environment {name} is not in quarantine and no failed run counts against it: nothing to do"


def resume(engine: Engine, name: str, policy: QuarantinePolicy, now: datetime | None = None) -> Resumed:
    """``syncd env resume NAME``: failed runs finished until now stop counting (``sync_resumed_at``).

    Idempotent: when no failed run counts, nothing is written. Raises ``syncd.errors.NotFound``
    for an unknown environment. Takes no lock: a run in progress that fails later still counts.
    """
    at = _utc(now) if now is not None else datetime.now(UTC)
    with Session(engine) as session, session.begin():
        env = get_environment(session, name)
        before = read_state(session, env.id, policy)
        if before.consecutive_failures == 0:
            return Resumed(env.name, False, False, 0, before.resumed_at)
        env.sync_resumed_at = at
    log.info(
        "environment_resumed",
        environment=name,
        was_quarantined=before.quarantined,
        failures_cleared=before.consecutive_failures,
    )
    return Resumed(name, True, before.quarantined, before.consecutive_failures, at)


def _utc(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def _runs(n: int) -> str:
    return f"{n} consecutive failed run" + ("" if n == 1 else "s")
