"""Shared pieces of the service tests: a fake sync function and rows of sync_run."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.dataverse.schema import SyncRun
from syncd.service.jobs import RunRequest
from syncd.service.locks import Lease
from syncd.service.scheduler import Target


@dataclass
class FakeReport:
    """A report with the fields of ``syncd.sync.run.RunReport`` (the API answers them all)."""

    run_id: int
    environment: str
    kind: str
    requested_kind: str
    outcome: str = "succeeded"
    counts: dict[str, int] = field(default_factory=lambda: {"read": 3, "created": 1, "disabled": 0})
    duration_s: float = 0.01
    error: str | None = None
    planned: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0


class FakeSync:
    """Stands in for the engine: records each call and, optionally, waits until released."""

    def __init__(self, engine: Engine | None = None, outcome: str = "succeeded") -> None:
        self.engine = engine
        self.outcome = outcome
        self.calls: list[tuple[str, RunRequest]] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.lock = threading.Lock()

    def __call__(
        self, target: Target, request: RunRequest, stop: threading.Event, lease: Lease | None = None
    ) -> FakeReport:
        with self.lock:
            self.calls.append((target.name, request))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        kind = "full" if request.kind in ("auto", "full") else "delta"
        run_id = 0
        if self.engine is not None:
            run_id = add_run(
                self.engine, target.id, kind=kind, outcome=self.outcome, requested_kind=request.kind
            )
        return FakeReport(run_id, target.name, kind, request.kind, self.outcome)


def add_env(engine: Engine, name: str, **kw: Any) -> int:
    with Session(engine) as session, session.begin():
        return create_environment(session, EnvironmentSpec(name=name, **kw)).id


def add_run(
    engine: Engine,
    env_id: int,
    *,
    kind: str = "delta",
    outcome: str = "succeeded",
    requested_kind: str | None = None,
    ago_s: float = 0.0,
    error: str | None = None,
    disabled: int = 0,
) -> int:
    end = datetime.now(UTC) - timedelta(seconds=ago_s)
    run = SyncRun(
        environment_id=env_id,
        kind=kind,
        requested_kind=requested_kind or kind,
        trigger="schedule",
        started_at=end - timedelta(seconds=1),
        finished_at=end,
        outcome=outcome,
        read=10,
        created=2,
        updated=1,
        enabled=0,
        disabled=disabled,
        unchanged=7,
        failed=0,
        blocked_disables=0,
        error=error,
    )
    with Session(engine) as session, session.begin():
        session.add(run)
        session.flush()
        return run.id
