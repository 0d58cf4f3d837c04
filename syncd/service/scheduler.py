"""The daemon's schedule: a frequent delta run and a periodic full run per environment.

APScheduler 3 (BackgroundScheduler). Each environment with a database gets two jobs with
fixed ids, `delta:{name}` and `full:{name}`, both `coalesce=True` and `max_instances=1`,
with a little jitter so replicas and environments drift apart. A `rescan` job lists the
environments every few seconds: new ones get their jobs, removed ones lose them. An error
listener logs a failed job; the schedule keeps going.

The job itself is a parameter: `job(target, kind, trigger)`, where kind is "auto" for the
delta job (the engine runs a full when the environment has no checkpoint yet) and "full"
for the full job. The scheduler knows nothing of locks, databases or the directory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = structlog.get_logger(__name__)

RESCAN_JOB_ID = "rescan"


@dataclass(frozen=True)
class Target:
    """An environment the schedule runs: its id (for locks) and its name (for jobs and the engine)."""

    id: int
    name: str


JobFn = Callable[[Target, str, str], object]
ListTargets = Callable[[], Sequence[Target]]
#: When an environment's last full run finished (any replica), so a restart keeps the full cadence.
LastFull = Callable[[Target], datetime | None]


def delta_job_id(name: str) -> str:
    return f"delta:{name}"


def full_job_id(name: str) -> str:
    return f"full:{name}"


def default_jitter(interval_s: float) -> float:
    """A tenth of the interval, at most five minutes."""
    return min(interval_s / 10.0, 300.0)


class SyncScheduler:
    def __init__(
        self,
        job: JobFn,
        list_targets: ListTargets,
        *,
        delta_interval_s: float,
        full_interval_s: float,
        rescan_interval_s: float | None = None,
        delta_jitter_s: float | None = None,
        full_jitter_s: float | None = None,
        max_workers: int = 8,
        first_delta_delay_s: float = 0.0,
        last_full: LastFull | None = None,
    ) -> None:
        self.job = job
        self.list_targets = list_targets
        self.delta_interval_s = delta_interval_s
        self.full_interval_s = full_interval_s
        self.rescan_interval_s = rescan_interval_s or min(delta_interval_s, 5.0)
        self.delta_jitter_s = default_jitter(delta_interval_s) if delta_jitter_s is None else delta_jitter_s
        self.full_jitter_s = default_jitter(full_interval_s) if full_jitter_s is None else full_jitter_s
        self.first_delta_delay_s = first_delta_delay_s
        self.last_full = last_full
        self.errors = 0
        self._targets: dict[str, Target] = {}
        self._rescan_lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.scheduler.add_listener(
            self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.scheduler.start()
        self.rescan()
        self.scheduler.add_job(
            self.rescan,
            IntervalTrigger(seconds=self.rescan_interval_s),
            id=RESCAN_JOB_ID,
            name="rescan environments",
            replace_existing=True,
        )
        log.info(
            "scheduler_started",
            delta_interval_s=self.delta_interval_s,
            full_interval_s=self.full_interval_s,
            environments=sorted(self._targets),
        )

    def shutdown(self, wait: bool = True) -> None:
        """Stop firing jobs; with `wait`, wait for the running ones to return."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
            log.info("scheduler_stopped")

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    def add_periodic(self, job_id: str, fn: Callable[[], object], interval_s: float, **kwargs: Any) -> None:
        """Another periodic job (same defaults: coalesce, one instance)."""
        self.scheduler.add_job(
            fn, IntervalTrigger(seconds=interval_s), id=job_id, name=job_id, replace_existing=True, **kwargs
        )

    # -- environments ------------------------------------------------------------------------------

    def rescan(self) -> None:
        """Schedule environments that appeared, unschedule the ones that went."""
        with self._rescan_lock:
            try:
                current = {t.name: t for t in self.list_targets()}
            except Exception as exc:
                log.warning("rescan_failed", error=str(exc), error_type=type(exc).__name__)
                return
            for name, target in current.items():
                if self._targets.get(name) != target:
                    self._schedule(target)
            for name in set(self._targets) - set(current):
                self._unschedule(name)
            self._targets = current

    def _schedule(self, target: Target) -> None:
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self.job,
            IntervalTrigger(seconds=self.delta_interval_s, jitter=self.delta_jitter_s or None),
            args=[target, "auto", "schedule"],
            id=delta_job_id(target.name),
            name=f"delta sync of {target.name}",
            replace_existing=True,
            next_run_time=now + timedelta(seconds=self.first_delta_delay_s),
        )
        self.scheduler.add_job(
            self.job,
            IntervalTrigger(seconds=self.full_interval_s, jitter=self.full_jitter_s or None, start_date=now),
            args=[target, "full", "schedule"],
            id=full_job_id(target.name),
            name=f"full sync of {target.name}",
            replace_existing=True,
            next_run_time=self._first_full(target, now),
        )
        log.info("environment_scheduled", environment=target.name, environment_id=target.id)

    def _first_full(self, target: Target, now: datetime) -> datetime:
        """A full interval after the last full run of any replica; soon when that is overdue.

        Without a full run yet, one interval from now: the first delta run is a full run anyway.
        """
        last = None
        if self.last_full is not None:
            try:
                last = self.last_full(target)
            except Exception as exc:
                log.warning("last_full_unknown", environment=target.name, error=str(exc))
        if last is None:
            return now + timedelta(seconds=self.full_interval_s)
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        soonest = now + timedelta(seconds=self.first_delta_delay_s + min(self.delta_interval_s, 30.0))
        return max(last + timedelta(seconds=self.full_interval_s), soonest)

    def _unschedule(self, name: str) -> None:
        for job_id in (delta_job_id(name), full_job_id(name)):
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)
        log.info("environment_unscheduled", environment=name)

    def job_ids(self) -> list[str]:
        return sorted(j.id for j in self.scheduler.get_jobs())

    def next_runs(self, name: str) -> dict[str, datetime]:
        """When the environment's jobs fire next (UTC): ``{"delta": ..., "full": ...}``, each only
        while scheduled (an environment not scheduled, or a scheduler not running: ``{}``)."""
        out: dict[str, datetime] = {}
        for kind, job_id in (("delta", delta_job_id(name)), ("full", full_job_id(name))):
            job = self.scheduler.get_job(job_id)
            when = getattr(job, "next_run_time", None) if job is not None else None
            if isinstance(when, datetime):
                out[kind] = when
        return out

    def scheduled(self) -> list[Target]:
        return sorted(self._targets.values(), key=lambda t: t.name)

    # -- events ------------------------------------------------------------------------------------

    def _on_event(self, event: SchedulerEvent) -> None:
        if event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            self.errors += 1
            exc = event.exception
            log.error(
                "job_failed",
                job_id=event.job_id,
                error=str(exc),
                error_type=type(exc).__name__,
                traceback=event.traceback,
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            log.info("job_skipped", job_id=getattr(event, "job_id", None), reason="still running")
        elif event.code == EVENT_JOB_MISSED:
            log.info("job_missed", job_id=getattr(event, "job_id", None))
