"""Prometheus metrics, on a registry of the daemon's own (never the global one).

Counted in this process: runs by environment/kind/outcome (see RUN_OUTCOME_LABELS), run
durations, skipped runs, directory requests by HTTP status and throttles. Read from the database at scrape time,
so every replica reports the same values: users by state per environment, the last
successful sync per environment, and each environment's quarantine (see
`syncd.service.quarantine`): `syncd_environment_quarantined` (1 or 0),
`syncd_environment_consecutive_failures` and, while quarantined,
`syncd_environment_next_attempt_timestamp_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from syncd.dataverse.schema import Environment, SystemUser
from syncd.service import runs
from syncd.service.quarantine import QuarantinePolicy, read_states

log = structlog.get_logger(__name__)

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: The values of the ``outcome`` label of ``syncd_runs_total``: the outcome a run reports
#: ("partial": it finished, but some rows failed), "error" when the engine raised instead of
#: reporting, and "unknown" for anything else (so the label's values stay few).
RUN_OUTCOME_LABELS = frozenset(
    {"succeeded", "partial", "failed", "blocked", "dry_run", "interrupted", "abandoned", "error", "unknown"}
)


class DatabaseCollector(Collector):
    """Gauges read from the database when Prometheus scrapes (quarantine's only with a policy)."""

    def __init__(self, engine: Callable[[], Engine], quarantine: QuarantinePolicy | None = None) -> None:
        self._engine = engine
        self._quarantine = quarantine

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("syncd_database_up", "1 when the last scrape could read the database")
        users = GaugeMetricFamily(
            "syncd_users",
            "SystemUser rows by environment, kind and state",
            labels=["environment", "kind", "state"],
        )
        last_ok = GaugeMetricFamily(
            "syncd_last_success_timestamp_seconds",
            "Unix time the environment's last successful sync run finished",
            labels=["environment"],
        )
        quarantined = GaugeMetricFamily(
            "syncd_environment_quarantined",
            "1 while the environment is in quarantine (its scheduled runs back off), else 0",
            labels=["environment"],
        )
        failures = GaugeMetricFamily(
            "syncd_environment_consecutive_failures",
            "Failed runs since the environment's last succeeded or partial run (or its last resume)",
            labels=["environment"],
        )
        next_attempt = GaugeMetricFamily(
            "syncd_environment_next_attempt_timestamp_seconds",
            "Unix time before which no scheduled run of a quarantined environment starts",
            labels=["environment"],
        )
        try:
            with Session(self._engine()) as session:
                rows = session.execute(
                    select(Environment.name, SystemUser.kind, SystemUser.isdisabled, func.count())
                    .join(SystemUser, SystemUser.environment_id == Environment.id)
                    .group_by(Environment.name, SystemUser.kind, SystemUser.isdisabled)
                ).all()
                names = dict(session.execute(select(Environment.id, Environment.name)).tuples().all())
                ok = runs.last_success(session)
                states = read_states(session, self._quarantine) if self._quarantine is not None else {}
        except Exception as exc:
            log.warning("metrics_database_unreadable", error=str(exc), error_type=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for env, kind, disabled, n in rows:
            users.add_metric([env, kind, "disabled" if disabled else "enabled"], n)
        for env_id, ts in ok.items():
            if env_id in names:
                last_ok.add_metric([names[env_id]], runs.aware(ts).timestamp())
        for env_id, state in states.items():
            if env_id not in names:
                continue
            quarantined.add_metric([names[env_id]], 1 if state.quarantined else 0)
            failures.add_metric([names[env_id]], state.consecutive_failures)
            if state.next_attempt_at is not None:
                next_attempt.add_metric([names[env_id]], state.next_attempt_at.timestamp())
        yield up
        yield users
        yield last_ok
        if self._quarantine is not None:
            yield quarantined
            yield failures
            yield next_attempt


class Metrics:
    def __init__(
        self, engine: Callable[[], Engine] | None = None, *, quarantine: QuarantinePolicy | None = None
    ) -> None:
        """``engine``: the database the scrape-time gauges read (none: no such gauges);
        ``quarantine``: the policy of the quarantine gauges (none: no quarantine gauges)."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "syncd_runs",
            "Sync runs by environment, kind and outcome",
            ["environment", "kind", "outcome"],
            registry=r,
        )
        self.run_duration = Histogram(
            "syncd_run_duration_seconds",
            "Duration of sync runs",
            ["environment", "kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            "syncd_runs_skipped",
            "Scheduled runs skipped, by environment and reason (locked, recent, quarantined)",
            ["environment", "reason"],
            registry=r,
        )
        self.directory_requests = Counter(
            "syncd_directory_requests",
            "Graph requests by HTTP status (0: no response)",
            ["status"],
            registry=r,
        )
        self.directory_throttles = Counter(
            "syncd_directory_throttled", "Graph requests answered 429 Too Many Requests", registry=r
        )
        if engine is not None:
            r.register(DatabaseCollector(engine, quarantine))

    def on_directory_request(self, status: int) -> None:
        """The Graph client's `on_request` hook."""
        self.directory_requests.labels(str(status)).inc()
        if status == 429:
            self.directory_throttles.inc()

    def observe_run(self, environment: str, kind: str, outcome: str, duration_s: float) -> None:
        if outcome not in RUN_OUTCOME_LABELS:
            log.warning("metrics_unknown_run_outcome", environment=environment, outcome=outcome)
            outcome = "unknown"
        self.runs.labels(environment, kind, outcome).inc()
        self.run_duration.labels(environment, kind).observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
