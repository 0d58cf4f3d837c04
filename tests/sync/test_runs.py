"""Sync runs end to end against the fake tenant, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select, text
from sync_helpers import licensed_user, make_env, run, snapshot

from syncd.dataverse import db
from syncd.dataverse.schema import SyncEvent, SyncRun, SystemUser
from syncd.directory.client import GraphClient
from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.store import TenantStore
from syncd.settings import Settings
from syncd.sync.run import RunOptions, sync_environment


def _user(tenant: dict[str, Any], store: TenantStore) -> str:
    """A licensed, enabled member user that the initial sync created."""
    return licensed_user(store)


def test_initial_full_then_second_run_plans_nothing(engine: Engine, directory, tenant, settings) -> None:
    make_env(engine, "prod")
    first = run(engine, directory, "prod", settings)
    assert first.kind == "full" and first.counts["created"] > 0
    for kind in ("full", "delta"):
        again = run(engine, directory, "prod", settings, kind=kind, dry_run=True)
        assert again.planned == [], kind
        assert again.changes == 0


def test_idempotent_after_churn_for_delta_and_full(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant, settings: Settings
) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    apply_churn(store, changes=40, seed=3)
    delta = run(engine, directory, "prod", settings, kind="delta")
    assert delta.kind == "delta" and delta.changes > 0
    assert run(engine, directory, "prod", settings, kind="delta", dry_run=True).changes == 0
    assert run(engine, directory, "prod", settings, kind="full", dry_run=True).changes == 0


def test_r9_transitions_disable_then_enable_never_delete(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant, settings: Settings
) -> None:
    # R9: deleted, disabled, unlicensed -> row disabled, never deleted; entitled again -> enabled
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    uid = _user(tenant, store)
    before = len(snapshot(engine, "prod"))
    assert snapshot(engine, "prod")[uid][13] is False

    store.update_user(uid, {"accountEnabled": False})
    run(engine, directory, "prod", settings, kind="delta")
    assert snapshot(engine, "prod")[uid][13] is True
    store.update_user(uid, {"accountEnabled": True})
    run(engine, directory, "prod", settings, kind="delta")
    assert snapshot(engine, "prod")[uid][13] is False

    store.soft_delete_user(uid)
    run(engine, directory, "prod", settings, kind="delta")
    assert snapshot(engine, "prod")[uid][13] is True
    store.restore_user(uid)
    run(engine, directory, "prod", settings, kind="delta")
    assert snapshot(engine, "prod")[uid][13] is False

    skus = [lic["skuId"] for lic in _graph_user(store, uid)["assignedLicenses"]]
    store.assign_licenses(uid, {"addLicenses": [], "removeLicenses": skus})
    run(engine, directory, "prod", settings, kind="delta")
    assert snapshot(engine, "prod")[uid][13] is True

    store.soft_delete_user(uid)
    store.hard_delete_user(uid)
    run(engine, directory, "prod", settings, kind="delta")
    snap = snapshot(engine, "prod")
    assert snap[uid][13] is True
    assert len(snap) >= before  # R9: never deleted


def _graph_user(store: TenantStore, uid: str) -> dict[str, Any]:
    import orjson

    blob = store.user(uid)
    assert blob is not None
    return dict(orjson.loads(blob))


def test_r5_group_scoping_counts_direct_members_only(
    engine: Engine, directory: GraphClient, store: TenantStore, tenant, settings: Settings
) -> None:
    # R5, R24: only direct members (and exempt admins) get rows; removal from the group disables
    group = tenant["groups"]["main"]["id"]
    make_env(engine, "scoped", security_group_id=group)
    make_env(engine, "open")
    run(engine, directory, "scoped", settings)
    run(engine, directory, "open", settings)
    scoped, open_ = snapshot(engine, "scoped"), snapshot(engine, "open")
    assert 0 < len(scoped) < len(open_)
    nested = tenant["groups"]["nested"]["id"]
    nested_members = {m.id for page in directory.iter_group_members(nested, select=None) for m in page}
    direct = {m.id for page in directory.iter_group_members(group, select=None) for m in page}
    only_nested = nested_members - direct
    assert only_nested and not (only_nested & set(scoped)), "nested-only members must not be added"

    admins = {a for role in tenant["roles"].values() for a in role["licensed"] + role["unlicensed"]}
    member = next(uid for uid, row in sorted(scoped.items()) if row[13] is False and uid in direct - admins)
    store.remove_group_member(group, member)
    report = run(engine, directory, "scoped", settings, kind="delta")
    assert report.kind == "delta"
    assert snapshot(engine, "scoped")[member][13] is True
    store.add_group_member(group, member)
    run(engine, directory, "scoped", settings, kind="delta")
    assert snapshot(engine, "scoped")[member][13] is False
    # a full run agrees with the delta runs
    assert run(engine, directory, "scoped", settings, kind="full", dry_run=True).changes == 0


def test_unchanged_rows_are_not_rewritten(engine: Engine, directory, store, tenant, settings) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    with engine.connect() as c:
        before = dict(c.execute(text("SELECT systemuserid, modifiedon FROM systemuser")).all())
    uid = _user(tenant, store)
    store.update_user(uid, {"jobTitle": "Chief Tester"})
    run(engine, directory, "prod", settings, kind="full")
    with engine.connect() as c:
        after = dict(c.execute(text("SELECT systemuserid, modifiedon FROM systemuser")).all())
    changed = [k for k in before if before[k] != after[k]]
    assert len(changed) == 1


def test_r11_r12_fullname_once_and_customer_email_kept(
    engine: Engine, directory, store, tenant, settings
) -> None:
    # R11: fullname never updated after creation; R12: an edited email is never written again
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    uid = _user(tenant, store)
    with engine.begin() as c:
        c.execute(
            text(
                "UPDATE systemuser SET internalemailaddress = 'mine@customer.example' WHERE domainname = :d"
            ),
            {"d": _graph_user(store, uid)["userPrincipalName"]},
        )
    store.update_user(uid, {"displayName": "Renamed Person", "mail": "new@contoso.example", "city": "Oslo"})
    run(engine, directory, "prod", settings, kind="delta")
    row = snapshot(engine, "prod")[uid]
    assert row[1] != "Renamed Person"
    assert row[5] == "mine@customer.example"
    assert row[9] == "Oslo"


def test_events_and_run_rows_record_what_happened(engine: Engine, directory, store, tenant, settings) -> None:
    make_env(engine, "prod")
    report = run(engine, directory, "prod", settings)
    with db.session_factory(engine)() as s:
        r = s.get(SyncRun, report.run_id)
        assert r is not None and r.outcome == "succeeded" and r.created == report.counts["created"]
        assert r.finished_at is not None
        events = s.scalars(select(SyncEvent).where(SyncEvent.run_id == report.run_id)).all()
        assert len(events) == report.counts["created"]
        assert {e.action for e in events} == {"create"} and all(e.rule for e in events)


def test_expired_delta_token_turns_into_full_run(engine: Engine, directory, store, tenant, settings) -> None:
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    store.expire_delta_tokens()
    uid = _user(tenant, store)
    store.update_user(uid, {"accountEnabled": False})
    report = run(engine, directory, "prod", settings, kind="delta")
    assert (report.kind, report.requested_kind) == ("full", "delta")
    assert snapshot(engine, "prod")[uid][13] is True
    with db.session_factory(engine)() as s:
        assert s.get(SyncRun, report.run_id).kind == "full"  # type: ignore[union-attr]
    assert run(engine, directory, "prod", settings, kind="delta").kind == "delta"


def test_r1_environment_without_database_gets_no_rows(engine: Engine, directory, tenant, settings) -> None:
    make_env(engine, "nodb", has_database=False)
    report = run(engine, directory, "nodb", settings)
    assert report.changes == 0 and snapshot(engine, "nodb") == {}


def test_r19_builtin_users_untouched(engine: Engine, directory, tenant, settings) -> None:
    make_env(engine, "prod")
    with engine.connect() as c:
        before = c.execute(text("SELECT * FROM systemuser ORDER BY domainname")).all()
    run(engine, directory, "prod", settings)
    with engine.connect() as c:
        after = c.execute(
            text("SELECT * FROM systemuser WHERE syncd_kind <> 'regular' ORDER BY domainname")
        ).all()
    assert before == after


def test_dry_run_writes_nothing(engine: Engine, directory, tenant, settings) -> None:
    make_env(engine, "prod")
    report = sync_environment(engine, directory, "prod", settings, RunOptions(dry_run=True))
    assert report.outcome == "dry_run" and report.counts["created"] > 0
    assert len(report.planned) == report.counts["created"]
    with db.session_factory(engine)() as s:
        assert s.scalars(select(SystemUser).where(SystemUser.kind == "regular")).first() is None
        assert s.scalars(select(SyncRun)).first() is None
