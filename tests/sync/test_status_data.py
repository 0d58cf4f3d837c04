"""What a run records for the status UI: the values its events replace (previous), one withheld event
per disable a blocked run held back, and the environment's enabled / disabled users at its end."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select
from sync_helpers import licensed_user, make_env, run, snapshot

from syncd.dataverse import db
from syncd.dataverse.schema import SyncEvent, SyncRun
from syncd.settings import load_settings
from syncd.sync.run import RunOptions, sync_environment


def _events(engine: Engine, run_id: int | None, action: str | None = None) -> list[SyncEvent]:
    with db.session_factory(engine)() as s:
        q = select(SyncEvent).where(SyncEvent.run_id == run_id).order_by(SyncEvent.id)
        if action is not None:
            q = q.where(SyncEvent.action == action)
        return list(s.scalars(q))


def _run_row(engine: Engine, run_id: int) -> SyncRun:
    with db.session_factory(engine)() as s:
        row = s.get(SyncRun, run_id)
        assert row is not None
        return row


def _enabled(engine: Engine) -> list[str]:
    return sorted(k for k, v in snapshot(engine, "prod").items() if v[13] is False)


def test_update_disable_and_enable_events_carry_the_values_they_replace(  # R9, R10
    engine: Engine, store: Any, directory: Any, tenant: Any, settings: Any
) -> None:
    make_env(engine, "prod")
    first = run(engine, directory, "prod", settings)
    creates = _events(engine, first.run_id, "create")
    assert creates and all(e.previous is None and e.changes is None for e in creates)  # no work for creates
    uid = licensed_user(store)
    old_title = snapshot(engine, "prod")[uid][4]  # jobtitle
    store.update_user(uid, {"jobTitle": "Chief Tester"})
    updated = run(engine, directory, "prod", settings, kind="delta")
    (update,) = [
        e for e in _events(engine, updated.run_id, "update") if str(e.azureactivedirectoryobjectid) == uid
    ]
    assert orjson.loads(update.changes or "") == {"jobtitle": "Chief Tester"}
    assert orjson.loads(update.previous or "") == {"jobtitle": old_title}
    store.update_user(uid, {"accountEnabled": False})
    disabled = run(engine, directory, "prod", settings, kind="delta")  # R3, R9
    (disable,) = _events(engine, disabled.run_id, "disable")
    assert orjson.loads(disable.changes or "") == {"isdisabled": True}
    assert orjson.loads(disable.previous or "") == {"isdisabled": False}
    store.update_user(uid, {"accountEnabled": True})
    enabled = run(engine, directory, "prod", settings, kind="delta")
    (enable,) = _events(engine, enabled.run_id, "enable")
    changes, previous = orjson.loads(enable.changes or ""), orjson.loads(enable.previous or "")
    assert changes["isdisabled"] is False and previous["isdisabled"] is True
    assert changes.keys() == previous.keys()


@pytest.mark.parametrize("in_memory", [10_000, 2], ids=["held-in-memory", "held-in-a-table"])
def test_a_blocked_run_writes_one_withheld_event_per_disable(
    engine: Engine,
    store: Any,
    directory: Any,
    tenant: Any,
    db_url: str,
    clean_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    in_memory: int,
) -> None:
    import syncd.sync.apply as apply

    monkeypatch.setattr(apply, "HELD_IN_MEMORY", in_memory)
    guarded = load_settings(database_url=db_url, mass_disable_count=3, mass_disable_ratio=1.0, batch_size=4)
    make_env(engine, "prod")
    run(engine, directory, "prod", guarded)
    leavers = _enabled(engine)[:6]
    for uid in leavers:
        store.update_user(uid, {"accountEnabled": False})
    dry = sync_environment(engine, directory, "prod", guarded, RunOptions(kind="delta", dry_run=True))
    assert dry.outcome == "dry_run" and dry.counts["blocked_disables"] == 6
    with db.session_factory(engine)() as s:
        assert not s.scalars(select(SyncEvent).where(SyncEvent.action == "withheld")).all()  # not in dry runs
    blocked = sync_environment(engine, directory, "prod", guarded, RunOptions(kind="delta"))
    assert blocked.outcome == "blocked"
    withheld = _events(engine, blocked.run_id, "withheld")
    assert sorted(str(e.azureactivedirectoryobjectid) for e in withheld) == leavers
    for e in withheld:
        assert e.reason.startswith("Withheld by the mass-disable guard: ") and len(e.reason) > 40
        assert orjson.loads(e.changes or "") == {"isdisabled": True}
        assert orjson.loads(e.previous or "") == {"isdisabled": False}
    assert _events(engine, blocked.run_id, "disable") == []
    assert _enabled(engine)[:6] == leavers  # nobody was disabled
    row = _run_row(engine, blocked.run_id or 0)
    assert (row.users_enabled, row.users_disabled) == (None, None)  # a delta run counts no users
    # approved, the same disables go through, each under the rule its withheld event named
    allowed = sync_environment(
        engine, directory, "prod", guarded, RunOptions(kind="delta", allow_mass_disable=True)
    )
    disables = {
        str(e.azureactivedirectoryobjectid): e.rule for e in _events(engine, allowed.run_id, "disable")
    }
    assert disables == {str(e.azureactivedirectoryobjectid): e.rule for e in withheld}


def test_a_finished_full_run_records_its_environments_enabled_and_disabled_users(
    engine: Engine, store: Any, directory: Any, tenant: Any, settings: Any
) -> None:
    make_env(engine, "prod")
    first = run(engine, directory, "prod", settings)
    enabled = len(snapshot(engine, "prod"))
    r1 = _run_row(engine, first.run_id or 0)
    assert enabled > 0 and (r1.users_enabled, r1.users_disabled) == (enabled, 0)
    uid = licensed_user(store)
    store.update_user(uid, {"accountEnabled": False})
    second = run(engine, directory, "prod", settings, kind="delta")
    r2 = _run_row(engine, second.run_id or 0)
    assert (r2.users_enabled, r2.users_disabled) == (None, None)  # its cost stays with its changes
    third = run(engine, directory, "prod", settings, kind="full")
    r3 = _run_row(engine, third.run_id or 0)
    assert (r3.users_enabled, r3.users_disabled) == (enabled - 1, 1)


def test_dry_and_failed_runs_record_no_user_counts(
    engine: Engine, store: Any, directory: Any, tenant: Any, settings: Any
) -> None:
    make_env(engine, "prod")
    dry = run(engine, directory, "prod", settings, dry_run=True)
    assert dry.run_id is None  # a dry run writes no run row at all
    with db.session_factory(engine)() as s:
        assert s.scalars(select(SyncRun)).all() == []
    from syncd.directory.auth import StaticToken
    from syncd.directory.client import GraphClient

    dead = GraphClient("http://127.0.0.1:9/v1.0", token_provider=StaticToken("t"), max_retries=0)
    with dead:
        failed = sync_environment(engine, dead, "prod", settings, RunOptions(kind="full"))
    assert failed.outcome == "failed"
    row = _run_row(engine, failed.run_id or 0)
    assert (row.users_enabled, row.users_disabled) == (None, None)
