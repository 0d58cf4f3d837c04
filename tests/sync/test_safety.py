"""Safety: failed, partial or empty reads disable nobody; the mass-disable guard; bad records fail alone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text
from sync_helpers import make_env, run, snapshot

from syncd.dataverse import db
from syncd.dataverse.schema import SyncEvent, SyncRun
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.settings import Settings, load_settings
from syncd.sync.run import RunOptions, sync_environment


class FailAfter(httpx.BaseTransport):
    """Answers 503 to every request after the first `n`: a directory that dies mid-read."""

    def __init__(self, inner: httpx.BaseTransport, n: int) -> None:
        self.inner, self.n = inner, n

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.n -= 1
        if self.n < 0:
            return httpx.Response(503, json={"error": {"code": "serviceNotAvailable", "message": "down"}})
        return self.inner.handle_request(request)


def _enabled_ids(snap: dict[str, tuple[Any, ...]]) -> set[str]:
    return {k for k, v in snap.items() if v[13] is False}


def _hard_delete(store: TenantStore, ids: list[str]) -> None:
    for uid in ids:
        store.soft_delete_user(uid)
        store.hard_delete_user(uid)


def test_directory_failing_halfway_disables_nobody(
    engine: Engine, store, directory, tenant, settings
) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    enabled = sorted(_enabled_ids(snapshot(engine, "prod")))
    _hard_delete(store, enabled[:5])
    broken = GraphClient(
        "http://fake-entra.local/v1.0",
        token_provider=StaticToken("t"),
        transport=FailAfter(InProcessTransport(create_app(store)), 4),
        page_size=25,
        max_retries=1,
        backoff_base=0.001,
        backoff_max=0.001,
    )
    with broken:
        report = sync_environment(engine, broken, "prod", settings, RunOptions(kind="full"))
    assert report.outcome == "failed" and "DirectoryUnavailable" in (report.error or "")
    assert _enabled_ids(snapshot(engine, "prod")) == set(enabled)
    with db.session_factory(engine)() as s:
        r = s.get(SyncRun, report.run_id)
        assert r is not None and r.outcome == "failed" and r.error
    # once the directory answers again, the disables go through
    run(engine, directory, "prod", settings, kind="full")
    assert not set(enabled[:5]) & _enabled_ids(snapshot(engine, "prod"))


def test_empty_directory_read_disables_nobody_even_with_override(
    engine: Engine, store, directory, tenant, settings
) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    enabled = _enabled_ids(snapshot(engine, "prod"))
    generate_tenant(store, users=0, seed=1)  # the tenant answers with nobody
    report = sync_environment(
        engine, directory, "prod", settings, RunOptions(kind="full", allow_mass_disable=True)
    )
    assert report.outcome == "blocked" and "no users" in (report.error or "")
    assert report.counts["blocked_disables"] == len(enabled)
    assert _enabled_ids(snapshot(engine, "prod")) == enabled


@pytest.mark.parametrize("in_memory", [10_000, 2], ids=["held-in-memory", "held-in-a-table"])
def test_mass_disable_guard_blocks_and_override_lets_through(
    engine: Engine,
    store,
    directory,
    tenant,
    db_url: str,
    clean_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    in_memory: int,
) -> None:
    import syncd.sync.deferred as deferred

    monkeypatch.setattr(deferred, "IN_MEMORY", in_memory)
    guarded = load_settings(database_url=db_url, mass_disable_count=3, mass_disable_ratio=1.0)
    make_env(engine, "prod")
    run(engine, directory, "prod", guarded)
    enabled = sorted(_enabled_ids(snapshot(engine, "prod")))
    for uid in enabled[:6]:
        store.update_user(uid, {"accountEnabled": False})
    blocked = sync_environment(engine, directory, "prod", guarded, RunOptions(kind="delta"))
    assert blocked.outcome == "blocked" and blocked.counts["blocked_disables"] == 6
    assert "--allow-mass-disable" in (blocked.error or "")
    assert _enabled_ids(snapshot(engine, "prod")) == set(enabled)
    # the checkpoint did not move: the next delta run sees the same changes and is blocked again
    again = sync_environment(engine, directory, "prod", guarded, RunOptions(kind="delta"))
    assert again.outcome == "blocked" and again.counts["blocked_disables"] == 6
    allowed = sync_environment(
        engine, directory, "prod", guarded, RunOptions(kind="delta", allow_mass_disable=True)
    )
    assert allowed.outcome == "succeeded" and allowed.counts["disabled"] == 6
    assert not set(enabled[:6]) & _enabled_ids(snapshot(engine, "prod"))


def test_ratio_threshold(engine: Engine, store, directory, tenant, db_url: str, clean_env: Any) -> None:
    guarded = load_settings(database_url=db_url, mass_disable_count=1000, mass_disable_ratio=0.05)
    make_env(engine, "prod")
    run(engine, directory, "prod", guarded)
    enabled = sorted(_enabled_ids(snapshot(engine, "prod")))
    n = len(enabled) // 10 + 1  # over 5 %
    for uid in enabled[:n]:
        store.update_user(uid, {"accountEnabled": False})
    report = sync_environment(engine, directory, "prod", guarded, RunOptions(kind="full"))
    assert report.outcome == "blocked" and report.counts["blocked_disables"] == n


def _refuse_job_title(engine: Engine, title: str) -> None:
    """Make the database refuse one value of systemuser.jobtitle, alike on both backends: a bad record.

    (An over-long directory value no longer is one: sync cuts it to the column's length, R10.)
    """
    with engine.begin() as c:
        if engine.dialect.name == "sqlite":
            c.execute(
                text(
                    "CREATE TRIGGER refuse_title BEFORE UPDATE ON systemuser "
                    f"WHEN NEW.jobtitle = '{title}' BEGIN SELECT RAISE(ABORT, 'bad record refused'); END"
                )
            )
            return
        c.execute(
            text(
                "CREATE FUNCTION refuse_title() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.jobtitle = '{title}' THEN RAISE EXCEPTION 'bad record refused'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        c.execute(
            text(
                "CREATE TRIGGER refuse_title BEFORE UPDATE ON systemuser FOR EACH ROW EXECUTE FUNCTION refuse_title()"
            )
        )


def test_bad_record_fails_alone_and_its_batch_goes_through(
    engine: Engine, store, directory, tenant, settings: Settings
) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    _refuse_job_title(engine, "Refused")
    enabled = sorted(_enabled_ids(snapshot(engine, "prod")))
    bad, good = enabled[0], enabled[1:4]
    store.update_user(bad, {"jobTitle": "Refused"})
    for uid in good:
        store.update_user(uid, {"jobTitle": "Reviewer"})
    report = run(engine, directory, "prod", settings, kind="delta")
    snap = snapshot(engine, "prod")
    assert all(snap[uid][4] == "Reviewer" for uid in good)
    assert report.counts["failed"] == 1 and report.counts["updated"] == 3
    assert snap[bad][4] != "Refused"
    with db.session_factory(engine)() as s:
        ev = s.scalars(select(SyncEvent).where(SyncEvent.action == "failed")).one()
        assert str(ev.azureactivedirectoryobjectid) == bad and "bad record refused" in ev.reason


def test_check_and_dry_run_share_the_plan(engine: Engine, store, directory, tenant, settings) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    uid = sorted(_enabled_ids(snapshot(engine, "prod")))[0]
    store.update_user(uid, {"city": "Bergen"})
    plan = sync_environment(engine, directory, "prod", settings, RunOptions(kind="delta", dry_run=True))
    assert [(p["action"], p["object_id"]) for p in plan.planned] == [("update", uid)]
    assert plan.planned[0]["changes"] == {"address1_city": "Bergen"}
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM sync_run")).scalar() == 1
    done = run(engine, directory, "prod", settings, kind="delta")
    assert done.counts["updated"] == 1


def test_many_held_disables_wait_in_a_temporary_table_and_all_go_through(
    engine: Engine, store, directory, tenant, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # R9 at scale: past a few in memory, held disables wait in the database, not in the process
    import syncd.sync.deferred as deferred

    monkeypatch.setattr(deferred, "IN_MEMORY", 4)
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    enabled = sorted(_enabled_ids(snapshot(engine, "prod")))
    gone = enabled[:11]
    for uid in gone:
        store.update_user(uid, {"accountEnabled": False, "city": "Tromsø"})
    plan = sync_environment(engine, directory, "prod", settings, RunOptions(kind="delta", dry_run=True))
    assert plan.counts["disabled"] == 11 and len(plan.planned) == 11
    report = run(engine, directory, "prod", settings, kind="delta")
    assert report.counts["disabled"] == 11
    snap = snapshot(engine, "prod")
    assert all(snap[uid][13] is True and snap[uid][9] == "Tromsø" for uid in gone)
    assert set(enabled[11:]) <= _enabled_ids(snap)
    with db.session_factory(engine)() as s:
        events = s.scalars(select(SyncEvent).where(SyncEvent.run_id == report.run_id)).all()
        assert sorted(str(e.azureactivedirectoryobjectid) for e in events if e.action == "disable") == gone
