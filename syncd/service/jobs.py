"""One sync run of one environment, as the daemon runs it: under the environment's lock.

Both the schedule and the admin API come through here. A run that cannot take the
environment's lock does not happen (the schedule skips the tick; the API answers 409).
A full run skipped that way stays pending: the next delta tick of this process runs a
full instead, unless some replica has finished a full run since.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.service import runs
from syncd.service.locks import EnvironmentLocks, Lease
from syncd.service.metrics import Metrics
from syncd.service.quarantine import QuarantineGate
from syncd.service.scheduler import Target

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunRequest:
    kind: str  # "auto", "delta" or "full"
    trigger: str = "schedule"
    dry_run: bool = False
    allow_mass_disable: bool | None = None


class SyncFn(Protocol):
    def __call__(self, target: Target, request: RunRequest, stop: threading.Event, lease: Lease) -> Any:
        """Run one sync under ``lease`` (writing on its connection, if it has one); returns the
        engine's RunReport."""
        ...


class EnvironmentBusy(Exception):
    """Another run of the environment holds its lock (in this process or another replica)."""


class SyncJobs:
    def __init__(
        self,
        engine: Callable[[], Engine],
        locks: EnvironmentLocks,
        sync: SyncFn,
        metrics: Metrics,
        stop: threading.Event,
        *,
        min_gap_s: float = 0.0,
        min_full_gap_s: float = 0.0,
        quarantine: QuarantineGate | None = None,
    ) -> None:
        """`min_gap_s`: a scheduled delta is skipped when some run of the environment started
        less than this long ago (replicas then share the ticks instead of multiplying them).
        `min_full_gap_s`: likewise, a scheduled full run is skipped when a completed full run of the
        environment (``runs.FULL_RUN_DONE``, by any replica or person) started less than this long ago.
        `quarantine`: holds back the scheduled runs of a quarantined environment (none: never)."""
        self.engine = engine
        self.locks = locks
        self.sync = sync
        self.metrics = metrics
        self.stop = stop
        self.min_gap_s = min_gap_s
        self.min_full_gap_s = min_full_gap_s
        self.quarantine = quarantine
        self._full_pending: dict[int, datetime] = {}
        self._pending_guard = threading.Lock()

    def scheduled(self, target: Target, kind: str, trigger: str = "schedule") -> Any:
        """The scheduler's job: run unless stopping, quarantined, locked out, or another replica just ran."""
        if self.stop.is_set():
            return None
        if self.quarantine is not None and self.quarantine.holds_back(target, self.metrics):
            return None
        try:
            return self.run(target, RunRequest(kind=kind, trigger=trigger), scheduled=True)
        except EnvironmentBusy:
            if kind == "full":
                with self._pending_guard:
                    self._full_pending.setdefault(target.id, datetime.now(UTC))
            self.metrics.skipped.labels(target.name, "locked").inc()
            log.debug("run_skipped", environment=target.name, kind=kind, reason="locked")
            return None

    def run(self, target: Target, request: RunRequest, *, scheduled: bool = False) -> Any:
        """Run one sync under the environment's lock; raises EnvironmentBusy when it is held.

        Returns the engine's report, or None when a scheduled delta was skipped.
        """
        with self.locks.hold(target.id) as held:
            if not held:
                raise EnvironmentBusy(target.name)
            if scheduled and request.kind == "auto":
                request = self._promote_pending_full(target, request)
                if request.kind == "auto" and self._ran_recently(target):
                    self.metrics.skipped.labels(target.name, "recent").inc()
                    log.debug("run_skipped", environment=target.name, kind="auto", reason="recent")
                    return None
            elif scheduled and request.kind == "full" and self._full_not_due(target):
                self.metrics.skipped.labels(target.name, "recent").inc()
                log.info(
                    "run_skipped", environment=target.name, kind="full", reason="a full run finished recently"
                )
                return None
            return self._execute(target, request, held)

    def _execute(self, target: Target, request: RunRequest, lease: Lease) -> Any:
        started = time.monotonic()
        try:
            report = self.sync(target, request, self.stop, lease)
        except Exception:
            self.metrics.observe_run(target.name, request.kind, "error", time.monotonic() - started)
            raise
        kind = str(getattr(report, "kind", request.kind))
        outcome = str(getattr(report, "outcome", "unknown"))
        duration = getattr(report, "duration_s", None)
        self.metrics.observe_run(
            target.name,
            kind,
            outcome,
            float(duration) if duration is not None else time.monotonic() - started,
        )
        if kind == "full" and outcome in runs.FULL_RUN_DONE:
            with self._pending_guard:
                self._full_pending.pop(target.id, None)
        return report

    def _promote_pending_full(self, target: Target, request: RunRequest) -> RunRequest:
        with self._pending_guard:
            since = self._full_pending.get(target.id)
        if since is None:
            return request
        with Session(self.engine()) as session:
            done = runs.full_succeeded_since(session, target.id, since)
        # The run that held the lock may have been a full run that finished just before the skip was
        # noted: a full run started within the gap settles the pending one too.
        if done or self._full_not_due(target):
            with self._pending_guard:
                self._full_pending.pop(target.id, None)
            return request
        log.info("pending_full_run", environment=target.name, pending_since=since.isoformat())
        return RunRequest(kind="full", trigger=request.trigger)

    def _ran_recently(self, target: Target) -> bool:
        """Whether some run of the environment started less than ``min_gap_s`` ago."""
        return self._started_within(target, runs.last_started_at, self.min_gap_s)

    def _full_not_due(self, target: Target) -> bool:
        """Whether some run (any replica's, or a person's) completed a full run of the environment that
        started less than ``min_full_gap_s`` ago: the database, not this process, says when a full
        run is due, so N replicas run one full run per interval, not N."""
        return self._started_within(target, runs.last_full_started_at, self.min_full_gap_s)

    def _started_within(
        self, target: Target, last_start: Callable[[Session, int], datetime | None], gap_s: float
    ) -> bool:
        """Whether ``last_start`` (a reader of ``runs``) finds a start less than ``gap_s`` seconds ago."""
        if gap_s <= 0:
            return False
        with Session(self.engine()) as session:
            last = last_start(session, target.id)
        return last is not None and runs.aware(last) > datetime.now(UTC) - timedelta(seconds=gap_s)

    def full_pending(self) -> dict[int, datetime]:
        with self._pending_guard:
            return dict(self._full_pending)


def engine_sync(settings: Any, engine: Callable[[], Engine], metrics: Metrics) -> SyncFn:
    """The real sync: open the directory, hook its requests into the metrics, run the engine."""
    from syncd.sync.directory import open_directory, token_provider
    from syncd.sync.run import RunOptions, sync_environment

    # One token provider for every run: the credential's cached token outlives a run.
    tokens = None if settings.is_embedded_directory else token_provider(settings)

    def sync(target: Target, request: RunRequest, stop: threading.Event, lease: Lease) -> Any:
        with open_directory(settings, tokens=tokens) as directory:
            _chain_on_request(directory, metrics.on_directory_request)
            options = RunOptions(
                kind=request.kind,
                dry_run=request.dry_run,
                allow_mass_disable=request.allow_mass_disable,
                trigger=request.trigger,
                holds_lock=True,  # the daemon runs every sync under the environment's lock
            )
            return sync_environment(
                engine(), directory, target.name, settings, options, stop=stop, connection=lease.connection
            )

    return sync


def _chain_on_request(directory: Any, hook: Callable[[int], None]) -> None:
    before = getattr(directory, "on_request", None)
    if before is None:
        directory.on_request = hook
        return

    def both(status: int) -> None:
        before(status)
        hook(status)

    directory.on_request = both
