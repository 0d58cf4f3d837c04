"""Users whose facts are unchanged are not decided again (``systemuser.syncd_inputhash``).

A run records on each row what it decided the row from; a full run skips a user whose facts hash
the same as their row's, and the database forgets the hash on any other write. Skipping must never
change the outcome: the same directory gives the same table as deciding every user (R9, R10, R12).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update
from sync_helpers import make_env, run, snapshot

import syncd.sync.run as run_module
from syncd.dataverse import db
from syncd.dataverse.schema import Environment, SystemUser
from syncd.directory.client import GraphClient
from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.store import TenantStore
from syncd.rules import EnvironmentFacts, EnvType
from syncd.settings import Settings
from syncd.sync.inputs import code_digest, decision_salt
from syncd.sync.storage import open_storage


@pytest.fixture
def decided(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The object ids the rules are asked about, in order (a spy on the run's ``decide``)."""
    calls: list[str] = []
    real = run_module.decide

    def spy(user: Any, env: Any, row: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(user.object_id)
        return real(user, env, row, *args, **kwargs)

    monkeypatch.setattr(run_module, "decide", spy)
    return calls


def _hashes(engine: Engine, env: str) -> dict[str, int | None]:
    with db.session_factory(engine)() as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == env))
        rows = s.execute(
            select(SystemUser.azureactivedirectoryobjectid, SystemUser.syncd_inputhash).where(
                SystemUser.environment_id == env_id, SystemUser.kind == "regular"
            )
        ).all()
    return {str(oid): h for oid, h in rows}


def _versions(engine: Engine, env: str) -> dict[str, int]:
    with db.session_factory(engine)() as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == env))
        rows = s.execute(
            select(SystemUser.azureactivedirectoryobjectid, SystemUser.versionnumber).where(
                SystemUser.environment_id == env_id
            )
        ).all()
    return {str(oid): v for oid, v in rows}


def _forget_hashes(engine: Engine, env: str) -> None:
    with engine.begin() as conn:
        env_id = conn.scalar(select(Environment.id).where(Environment.name == env))
        conn.execute(
            update(SystemUser).where(SystemUser.environment_id == env_id).values(syncd_inputhash=None)
        )


def test_a_no_change_full_run_decides_no_user_who_has_a_row(
    engine: Engine, directory: GraphClient, tenant: Any, settings: Settings, decided: list[str]
) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    hashes = _hashes(engine, "prod")
    assert hashes and all(h is not None for h in hashes.values())
    versions = _versions(engine, "prod")
    decided.clear()

    report = run(engine, directory, "prod", settings, kind="full")

    assert report.changes == 0 and report.counts["unchanged"] == len(hashes)
    assert decided, "users without a row are still decided"
    assert not set(decided) & set(hashes)
    assert _hashes(engine, "prod") == hashes and _versions(engine, "prod") == versions


def test_a_row_another_writer_changed_is_decided_again_and_put_right(
    engine: Engine, directory: GraphClient, tenant: Any, settings: Settings, decided: list[str]
) -> None:
    # R10: sync owns the synced columns; whoever else wrote one, the next run writes it back.
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    before = snapshot(engine, "prod")
    oid = sorted(before)[0]
    with engine.begin() as conn:
        conn.execute(
            update(SystemUser)
            .where(SystemUser.azureactivedirectoryobjectid == uuid.UUID(oid))
            .values(firstname="Edited by hand")
        )
    assert _hashes(engine, "prod")[oid] is None, "the database forgets the hash on another writer's update"
    decided.clear()

    report = run(engine, directory, "prod", settings, kind="full")

    assert oid in decided and report.counts["updated"] == 1
    assert snapshot(engine, "prod") == before
    assert _hashes(engine, "prod")[oid] is not None


def test_a_row_edited_outside_the_synced_columns_gets_its_hash_back_without_a_change(
    engine: Engine, directory: GraphClient, tenant: Any, settings: Settings, decided: list[str]
) -> None:
    # R14: a customer's own column is not sync's; the row is decided again, left as it is, and its
    # hash recorded, so the run after that skips it again.
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    oid = sorted(_hashes(engine, "prod"))[0]
    with engine.begin() as conn:
        conn.execute(text("UPDATE systemuser SET new_costcentre = 'CC-1'"))
    assert all(h is None for h in _hashes(engine, "prod").values())
    decided.clear()
    report = run(engine, directory, "prod", settings, kind="full")
    assert report.changes == 0 and oid in decided
    assert all(h is not None for h in _hashes(engine, "prod").values())
    decided.clear()
    run(engine, directory, "prod", settings, kind="full")
    assert oid not in decided


def test_a_changed_environment_setting_decides_every_row_again(
    engine: Engine, directory: GraphClient, tenant: Any, settings: Settings, decided: list[str]
) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    rows = set(_hashes(engine, "prod"))
    with engine.begin() as conn:
        conn.execute(
            update(Environment)
            .where(Environment.name == "prod")
            .values(allow_role_assignment_on_disabled_users=True)
        )
    decided.clear()
    run(engine, directory, "prod", settings, kind="full")
    assert rows <= set(decided)


def test_the_salt_covers_the_environment_and_the_code() -> None:
    env = EnvironmentFacts(name="prod", type=EnvType.PRODUCTION)
    code = code_digest()
    assert decision_salt(env, code) == decision_salt(
        EnvironmentFacts(name="prod", type=EnvType.PRODUCTION), code
    )
    assert decision_salt(env, code) != decision_salt(
        EnvironmentFacts(name="prod", type=EnvType.SANDBOX), code
    )
    assert decision_salt(env, code) != decision_salt(env, code + b"edited rule")
    assert len(code) == 16


def test_a_hash_is_recorded_only_on_the_row_version_it_was_decided_from(
    engine: Engine, directory: GraphClient, tenant: Any, settings: Settings
) -> None:
    # A row written between the run's read and its write was not the row the decision was made
    # against: its hash is not recorded, so the next run decides it in full.
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    oid = sorted(_hashes(engine, "prod"))[0]
    _forget_hashes(engine, "prod")
    version = _versions(engine, "prod")[oid]
    with engine.begin() as conn:
        env_id = conn.scalar(select(Environment.id).where(Environment.name == "prod"))
    raw = engine.raw_connection()
    try:
        storage = open_storage(raw.driver_connection, env_id, datetime.now(UTC))
        storage.write([], hashes=[(oid, 42, version - 1)])
        assert _hashes(engine, "prod")[oid] is None
        storage.write([], hashes=[(oid, 42, version)])
        assert _hashes(engine, "prod")[oid] == 42
    finally:
        raw.close()


@pytest.mark.parametrize("scoped", [False, True], ids=["tenant", "security-group"])
def test_skipping_gives_the_table_that_deciding_every_user_gives(
    engine: Engine,
    directory: GraphClient,
    store: TenantStore,
    tenant: dict[str, Any],
    settings: Settings,
    scoped: bool,
) -> None:
    # Two environments over one tenant: one skips unchanged users, the other forgets every hash
    # before each run and so decides every user. Through rounds of churn (edits, licences, group
    # and role changes, deletes and restores) and full and delta runs, their tables stay the same.
    group = tenant["groups"]["main"]["id"] if scoped else None
    make_env(engine, "skips", security_group_id=group)
    make_env(engine, "decides", security_group_id=group)
    for round_ in range(6):
        if round_:
            apply_churn(store, 25, seed=round_)
        kind = "full" if round_ % 2 == 0 else "auto"
        _forget_hashes(engine, "decides")
        run(engine, directory, "decides", settings, kind=kind)
        run(engine, directory, "skips", settings, kind=kind)
        assert snapshot(engine, "skips") == snapshot(engine, "decides"), f"round {round_}"
