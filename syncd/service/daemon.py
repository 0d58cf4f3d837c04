"""The daemon: the schedule, the HTTP endpoint and, on the embedded default, a little churn.

Start-up refuses a database not at head (the embedded SQLite default upgrades itself).
SIGTERM or SIGINT sets the stop event: the scheduler fires nothing more, the running
runs see the event and end after committing or rolling back their current batch (their
checkpoint stays consistent), the HTTP endpoint closes, and `run()` returns 0.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.types import ASGIApp

from syncd.context import AppContext
from syncd.service import runs
from syncd.service.app import create_app
from syncd.service.jobs import SyncFn, SyncJobs, engine_sync
from syncd.service.locks import locks_for
from syncd.service.metrics import Metrics
from syncd.service.quarantine import QuarantineGate, QuarantinePolicy
from syncd.service.scheduler import SyncScheduler, Target
from syncd.service.server import HttpServer
from syncd.settings import Settings
from syncd.webapi import mount_webapi

log = structlog.get_logger(__name__)

CHURN_MODULE = "syncd.directory.fake.churn"


@dataclass
class DaemonOptions:
    #: seconds between bursts of churn of the embedded tenant (0: none); only on the embedded directory
    churn_interval_s: float = 30.0
    churn_changes: int = 5
    #: a scheduled delta is skipped when some run of the environment started this share of the
    #: delta interval ago or less, and a scheduled full run when a completed full run started this
    #: share of the full interval ago or less (replicas share the ticks rather than multiply them)
    min_gap_ratio: float = 0.5
    install_signal_handlers: bool = True
    sync: SyncFn | None = None
    extra_info: dict[str, Any] = field(default_factory=dict)


class Daemon:
    def __init__(self, appctx: AppContext, options: DaemonOptions | None = None) -> None:
        self.appctx = appctx
        self.settings = appctx.settings
        self.options = options or DaemonOptions()
        self.stop = threading.Event()
        self.scheduler: SyncScheduler | None = None
        self.http: HttpServer | None = None
        self.metrics: Metrics | None = None
        self.jobs: SyncJobs | None = None
        self._signals = 0

    def engine(self) -> Engine:
        return self.appctx.engine()

    @property
    def embedded_directory(self) -> bool:
        return self.settings.is_embedded_directory

    def start(self) -> None:
        engine = self.engine()  # refuses a database not at head
        # Our own listener logs job errors; APScheduler's stdlib records would repeat them.
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
        if self.embedded_directory:
            from syncd.sync.embedded import ensure_embedded_default

            ensure_embedded_default(self.appctx)
        s = self.settings
        quarantine = QuarantinePolicy.from_settings(s)
        self.metrics = Metrics(self.engine, quarantine=quarantine)
        sync = self.options.sync or engine_sync(s, self.engine, self.metrics)
        self.jobs = SyncJobs(
            self.engine,
            locks_for(engine),
            sync,
            self.metrics,
            self.stop,
            min_gap_s=s.delta_interval_seconds * self.options.min_gap_ratio,
            min_full_gap_s=s.full_interval_seconds * self.options.min_gap_ratio,
            quarantine=QuarantineGate(self.engine, quarantine),
        )
        self.scheduler = SyncScheduler(
            self.jobs.scheduled,
            lambda: runs.targets(engine),
            delta_interval_s=s.delta_interval_seconds,
            full_interval_s=s.full_interval_seconds,
            last_full=self._last_full,
        )
        info = {
            "pid": os.getpid(),
            "database": engine.url.render_as_string(hide_password=True),
            "directory": s.directory_url,
            "delta interval (s)": s.delta_interval_seconds,
            "full interval (s)": s.full_interval_seconds,
            "quarantine": _quarantine_info(quarantine),
            "admin API": "enabled" if _admin_token_set(s) else "read-only (no SYNCD_ADMIN_TOKEN)",
        } | self.options.extra_info
        if s.dataverse_api:
            info["Dataverse Web API"] = f"{s.dataverse_api_base_url}/<environment>/api/data/v9.2/"
        app: ASGIApp = create_app(
            self.appctx,
            self.metrics,
            self.jobs,
            scheduler_running=self._scheduler_running,
            info=info,
            next_runs=self.scheduler.next_runs,
        )
        if s.dataverse_api:
            app = mount_webapi(app, lambda: self.appctx.engine(check_head=False))
        self.http = HttpServer(app, s.http_host, s.http_port)
        self.http.start()
        self.scheduler.start()
        if self.embedded_directory and self.options.churn_interval_s > 0 and _has_module(CHURN_MODULE):
            self.scheduler.add_periodic("churn", self._churn, self.options.churn_interval_s)
        log.info("daemon_started", pid=os.getpid(), http_port=self.http.bound_port)

    def _last_full(self, target: Target) -> datetime | None:
        with Session(self.engine()) as session:
            return runs.last_full_finished_at(session, target.id)

    def _scheduler_running(self) -> bool:
        return self.scheduler is not None and self.scheduler.running and not self.stop.is_set()

    def _churn(self) -> None:
        """A few random changes to the embedded tenant, so a newcomer sees delta runs at work."""
        from syncd.directory.fake.churn import apply_churn
        from syncd.directory.fake.store import TenantStore

        store = TenantStore.open(self.settings.directory_store)
        try:
            summary = apply_churn(store, self.options.churn_changes, seed=random.randrange(2**31))
        finally:
            store.close()
        log.info("embedded_tenant_churned", changes=self.options.churn_changes, kinds=summary.get("counts"))

    @property
    def status_url(self) -> str:
        host = self.settings.http_host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        port = self.http.bound_port if self.http is not None else self.settings.http_port
        return f"http://{shown}:{port}/"

    # -- stopping ----------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(130)
        log.info("stopping", signal=signal.Signals(signum).name)
        self.stop.set()

    def shutdown(self) -> None:
        self.stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)  # the running runs end at their next batch boundary
        if self.http is not None:
            self.http.stop()
        log.info("daemon_stopped")

    def wait(self) -> None:
        while not self.stop.wait(1.0):
            pass

    def run(self, on_started: Callable[[Daemon], None] | None = None) -> int:
        """Start, serve until SIGTERM/SIGINT, stop gracefully; the exit code (0)."""
        if self.options.install_signal_handlers:
            self.install_signal_handlers()
        try:
            self.start()
            if on_started is not None:
                on_started(self)
            self.wait()
        finally:
            self.shutdown()
        return 0


def _admin_token_set(settings: Settings) -> bool:
    return settings.admin_token is not None and bool(settings.admin_token.get_secret_value())


def _quarantine_info(policy: QuarantinePolicy) -> str:
    if not policy.enabled:
        return "off"
    return f"after {policy.after_failures} failed runs in a row; backoff up to {policy.max_backoff_s:g} s"


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None
