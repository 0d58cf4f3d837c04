"""R9 azurestate, R26 business units and versionnumber, through sync runs, on SQLite and PostgreSQL.

azurestate is 0 while the user exists in the directory, 1 while soft-deleted (restorable), 2 once
hard-deleted or not found. Delta runs learn it from the users delta (``@removed`` reason
``changed`` / ``deleted``); full runs from the read and the directory's deleted items. Both end
with the same rows.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select, text, update
from sync_helpers import licensed_user, make_env, run, snapshot

from syncd.dataverse import db
from syncd.dataverse.environments import root_business_unit
from syncd.dataverse.schema import BusinessUnit, Environment, Role, SystemUser
from syncd.directory.client import GraphClient
from syncd.directory.fake.store import TenantStore
from syncd.settings import Settings

AZURESTATE = -1  # the last value of a snapshot
ISDISABLED = 13


def _state(engine: Engine, env: str, uid: str) -> tuple[bool, int]:
    row = snapshot(engine, env)[uid]
    return row[ISDISABLED], row[AZURESTATE]


def _sync_both(engine: Engine, directory: GraphClient, settings: Settings) -> None:
    run(engine, directory, "by-delta", settings, kind="delta")
    run(engine, directory, "by-full", settings, kind="full")
    assert snapshot(engine, "by-delta") == snapshot(engine, "by-full")


def test_r9_azurestate_follows_soft_delete_restore_and_hard_delete(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant: Any, settings: Settings
) -> None:
    # R9: soft-deleted -> 1, restored -> 0, hard-deleted -> 2; a delta run and a full run agree.
    make_env(engine, "by-delta")
    make_env(engine, "by-full")
    _sync_both(engine, directory, settings)
    uid = licensed_user(store)
    assert _state(engine, "by-full", uid) == (False, 0)

    store.soft_delete_user(uid)
    _sync_both(engine, directory, settings)
    assert _state(engine, "by-full", uid) == (True, 1)

    store.restore_user(uid)
    _sync_both(engine, directory, settings)
    assert _state(engine, "by-full", uid) == (False, 0)

    store.soft_delete_user(uid)
    _sync_both(engine, directory, settings)
    store.hard_delete_user(uid)
    _sync_both(engine, directory, settings)
    assert _state(engine, "by-full", uid) == (True, 2)


def test_r9_azurestate_moves_on_a_row_that_is_already_disabled(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant: Any, settings: Settings
) -> None:
    # R9: a disabled row whose user is then soft-deleted changes nothing but azurestate.
    make_env(engine, "by-delta")
    make_env(engine, "by-full")
    _sync_both(engine, directory, settings)
    uid = licensed_user(store)
    store.update_user(uid, {"accountEnabled": False})
    _sync_both(engine, directory, settings)
    assert _state(engine, "by-delta", uid) == (True, 0)

    store.soft_delete_user(uid)
    report = run(engine, directory, "by-delta", settings, kind="delta")
    assert report.counts["updated"] == 1 and report.counts["disabled"] == 0
    run(engine, directory, "by-full", settings, kind="full")
    assert snapshot(engine, "by-delta") == snapshot(engine, "by-full")
    assert _state(engine, "by-delta", uid) == (True, 1)
    with engine.connect() as c:
        event = c.execute(
            text("SELECT rule, changes FROM sync_event WHERE action = 'update' ORDER BY id DESC")
        ).first()
    assert event is not None and event[0] == "R9" and '"azurestate":1' in event[1].replace(" ", "")
    # Nothing left to do.
    for env in ("by-delta", "by-full"):
        for kind in ("delta", "full"):
            assert run(engine, directory, env, settings, kind=kind, dry_run=True).changes == 0


def test_r9_azurestate_with_a_security_group(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant: dict[str, Any], settings: Settings
) -> None:
    # R9, R24: a user who leaves the group still exists (0); outside it, deleted later: 1, then 2.
    group = tenant["groups"]["main"]["id"]
    make_env(engine, "by-delta", security_group_id=group)
    make_env(engine, "by-full", security_group_id=group)
    _sync_both(engine, directory, settings)
    admins = {a for role in tenant["roles"].values() for a in role["licensed"] + role["unlicensed"]}
    member = next(
        uid
        for uid, row in sorted(snapshot(engine, "by-full").items())
        if row[ISDISABLED] is False and uid not in admins
    )
    store.remove_group_member(group, member)
    store.update_user(member, {"jobTitle": "Left the group"})
    _sync_both(engine, directory, settings)
    assert _state(engine, "by-full", member) == (True, 0)

    store.soft_delete_user(member)
    _sync_both(engine, directory, settings)
    assert _state(engine, "by-full", member) == (True, 1)
    store.hard_delete_user(member)
    _sync_both(engine, directory, settings)
    assert _state(engine, "by-full", member) == (True, 2)


def _versions(engine: Engine, env: str) -> dict[str, int]:
    with db.session_factory(engine)() as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == env))
        rows = s.execute(
            select(SystemUser.domainname, SystemUser.versionnumber).where(SystemUser.environment_id == env_id)
        ).all()
    return {d: v for d, v in rows}


def test_versionnumber_moves_on_every_write_and_only_then(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant: Any, settings: Settings
) -> None:
    # Dataverse's row version: one counter per database, stamped by every writer (the bulk creates of
    # a first run, set-based updates, an administrator's raw SQL); rows nobody wrote keep theirs.
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    first = _versions(engine, "prod")
    assert all(v > 0 for v in first.values()) and len(set(first.values())) == len(first)
    assert run(engine, directory, "prod", settings, kind="full").changes == 0
    assert _versions(engine, "prod") == first

    uid = licensed_user(store)
    store.update_user(uid, {"jobTitle": "Versioned"})
    run(engine, directory, "prod", settings, kind="delta")
    second = _versions(engine, "prod")
    changed = {d for d in first if first[d] != second[d]}
    assert len(changed) == 1
    (upn,) = changed
    assert second[upn] > max(first.values())

    with engine.begin() as c:
        c.execute(text("UPDATE systemuser SET new_costcentre = 'CC-1' WHERE domainname = :d"), {"d": upn})
    assert _versions(engine, "prod")[upn] > second[upn]


def test_r26_users_and_roles_live_in_the_root_business_unit_and_sync_never_moves_them(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant: Any, settings: Settings
) -> None:
    # R26: the root business unit is named after the environment; sync creates users in it, and a
    # user an administrator moved to another business unit stays there through later syncs.
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    with db.session_factory(engine)() as s, s.begin():
        env = s.scalar(select(Environment).where(Environment.name == "prod"))
        assert env is not None
        root = root_business_unit(s, env.id)
        assert (root.name, root.parentbusinessunitid) == ("prod", None)
        units = set(s.scalars(select(SystemUser.businessunitid).where(SystemUser.environment_id == env.id)))
        assert units == {root.businessunitid}
        assert set(s.scalars(select(Role.businessunitid).where(Role.environment_id == env.id))) == {
            root.businessunitid
        }
        assert s.scalar(select(SystemUser.issyncwithdirectory).where(SystemUser.kind == "regular").limit(1))
        sales = BusinessUnit(environment_id=env.id, name="Sales", parentbusinessunitid=root.businessunitid)
        s.add(sales)
        s.flush()
        uid = licensed_user(store)
        s.execute(
            update(SystemUser)
            .where(SystemUser.azureactivedirectoryobjectid == uuid.UUID(uid))
            .values(businessunitid=sales.businessunitid)
        )
        sales_id = sales.businessunitid
    store.update_user(uid, {"jobTitle": "Moved"})
    store.update_user(uid, {"accountEnabled": False})
    for kind in ("delta", "full"):
        run(engine, directory, "prod", settings, kind=kind)
    with db.session_factory(engine)() as s:
        row = s.scalar(select(SystemUser).where(SystemUser.azureactivedirectoryobjectid == uuid.UUID(uid)))
        assert row is not None and row.jobtitle == "Moved" and row.isdisabled
        assert row.businessunitid == sales_id
