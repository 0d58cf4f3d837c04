"""The engine is right when Graph is untidy: repeats, changes during a read, 410 mid-read, id case,
nested groups in delta. Each test is a class of fault, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from meddler import Meddler, meddled_client
from sqlalchemy import Engine, select
from sync_helpers import licensed_user, make_env, run, snapshot

from syncd.dataverse import db
from syncd.dataverse.schema import SyncEvent, SyncGroupMember, SyncRun
from syncd.directory.client import GraphClient
from syncd.directory.fake.store import TenantStore
from syncd.rules import GLOBAL_ADMINISTRATOR
from syncd.settings import Settings, load_settings
from syncd.sync import source
from syncd.sync.run import RunOptions, sync_environment

ISDISABLED, JOBTITLE = 13, 4


@pytest.fixture
def meddled(store: TenantStore, tenant: dict[str, Any]) -> Iterator[tuple[GraphClient, Meddler]]:
    client, meddler = meddled_client(store)
    yield client, meddler
    client.close()


def _graph_user(store: TenantStore, uid: str) -> dict[str, Any]:
    blob = store.user(uid)
    assert blob is not None
    return dict(orjson.loads(blob))


def _newlicensed_user(store: TenantStore, name: str) -> str:
    licensed = _graph_user(store, licensed_user(store))
    body = {
        "accountEnabled": True,
        "displayName": name,
        "mailNickname": name,
        "userPrincipalName": f"{name}@{licensed['userPrincipalName'].split('@')[1]}",
        "passwordProfile": {"password": "x-Pa55word!"},
    }
    uid = str(orjson.loads(store.create_user(body))["id"])
    store.assign_licenses(uid, {"addLicenses": licensed["assignedLicenses"], "removeLicenses": []})
    return uid


def _events(engine: Engine, uid: str) -> list[str]:
    with db.session_factory(engine)() as s:
        rows = s.scalars(select(SyncEvent).order_by(SyncEvent.id)).all()
        return [e.action for e in rows if str(e.azureactivedirectoryobjectid) == uid]


def _inject_on_first_page(meddler: Meddler, items: list[dict[str, Any]]) -> None:
    """Put these items (older copies) on the first page of the next full read, once."""
    pending = list(items)

    def hook(page: int, body: dict[str, Any]) -> dict[str, Any]:
        if page == 0 and pending:
            body["value"] = pending + body["value"]
            pending.clear()
        return body

    meddler.full_read_page = hook


def _settings(db_url: str, batch_size: int) -> Settings:
    return load_settings(database_url=db_url, batch_size=batch_size, allow_mass_disable=True)


@pytest.mark.parametrize("batch_size", [1, 5000], ids=["earlier-copy-written", "earlier-copy-queued"])
@pytest.mark.parametrize("environment", ["empty", "synced"])
def test_r2_new_user_enabled_then_disabled_in_one_read_gets_no_row(
    engine: Engine,
    store: TenantStore,
    meddled,
    db_url: str,
    clean_env: Any,
    batch_size: int,
    environment: str,
) -> None:
    # R2, R3: the latest copy wins across the whole read; an earlier copy's create does not survive it.
    client, meddler = meddled
    settings = _settings(db_url, batch_size)
    make_env(engine, "prod")
    if environment == "synced":
        run(engine, client, "prod", settings)
    uid = _newlicensed_user(store, "late.changer")
    older = _graph_user(store, uid)
    store.update_user(uid, {"accountEnabled": False})
    _inject_on_first_page(meddler, [older])
    report = run(engine, client, "prod", settings, kind="full")
    assert uid not in snapshot(engine, "prod")
    assert _events(engine, uid) == []  # the environment ends as if only the latest copy was read
    rows = snapshot(engine, "prod")
    assert report.counts["created"] == (len(rows) if environment == "empty" else 0)


@pytest.mark.parametrize("batch_size", [1, 5000], ids=["earlier-copy-written", "earlier-copy-queued"])
def test_r9_disabled_then_re_enabled_with_a_new_title_ends_enabled_with_it(
    engine: Engine, store: TenantStore, meddled, db_url: str, clean_env: Any, batch_size: int
) -> None:
    # R9, R10: a held-back disable from an older copy never outlives the latest copy, nor brings back
    # the values that copy carried.
    client, meddler = meddled
    settings = _settings(db_url, batch_size)
    make_env(engine, "prod")
    run(engine, client, "prod", settings)
    uid = licensed_user(store)
    older = _graph_user(store, uid) | {"accountEnabled": False}
    store.update_user(uid, {"jobTitle": "Chief Latest Officer"})
    _inject_on_first_page(meddler, [older])
    run(engine, client, "prod", settings, kind="full")
    row = snapshot(engine, "prod")[uid]
    assert (row[ISDISABLED], row[JOBTITLE]) == (False, "Chief Latest Officer")
    assert "disable" not in _events(engine, uid)


@pytest.mark.parametrize("batch_size", [1, 5000], ids=["earlier-copy-written", "earlier-copy-queued"])
def test_r9_tombstone_then_live_copy_keeps_the_user_enabled(
    engine: Engine, store: TenantStore, meddled, db_url: str, clean_env: Any, batch_size: int
) -> None:
    # R9: an @removed entry on an early page, the live user later: the user is not disabled.
    client, meddler = meddled
    settings = _settings(db_url, batch_size)
    make_env(engine, "prod")
    run(engine, client, "prod", settings)
    uid = licensed_user(store, skip=1)
    store.update_user(uid, {"city": "Tromsø"})  # the live copy now comes late in the read
    _inject_on_first_page(meddler, [{"id": uid, "@removed": {"reason": "changed"}}])
    run(engine, client, "prod", settings, kind="full")
    row = snapshot(engine, "prod")[uid]
    assert row[ISDISABLED] is False and row[9] == "Tromsø"
    assert "disable" not in _events(engine, uid)


def test_r9_user_changed_during_a_full_read_is_never_disabled(
    engine: Engine, store: TenantStore, meddled, db_url: str, clean_env: Any
) -> None:
    # R9: a user edited while the read pages may drop out of this read (Graph leaves it to the next
    # round); the run confirms unseen rows before disabling, so nobody entitled is disabled, even once.
    client, meddler = meddled
    settings = _settings(db_url, 16)
    make_env(engine, "prod")
    run(engine, client, "prod", settings)
    uid = licensed_user(store, skip=3)

    def edit_after_first_page(page: int, body: dict[str, Any]) -> dict[str, Any]:
        if page == 0:
            store.update_user(uid, {"jobTitle": "Edited Mid-Read"})
        return body

    meddler.full_read_page = edit_after_first_page
    run(engine, client, "prod", settings, kind="full")
    row = snapshot(engine, "prod")[uid]
    assert row[ISDISABLED] is False and row[JOBTITLE] == "Edited Mid-Read"
    assert "disable" not in _events(engine, uid)
    meddler.full_read_page = None
    assert run(engine, client, "prod", settings, kind="delta", dry_run=True).changes == 0


@pytest.mark.parametrize("scoped", [False, True], ids=["open", "scoped"])
def test_410_during_a_full_read_starts_it_again_once(
    engine: Engine, store: TenantStore, tenant, meddled, db_url: str, clean_env: Any, scoped: bool
) -> None:
    # A 410 syncStateNotFound on a nextLink of a full read: the read starts again, recorded on the run.
    client, meddler = meddled
    settings = _settings(db_url, 16)
    group = tenant["groups"]["main"]["id"] if scoped else None
    make_env(engine, "prod", security_group_id=group)
    run(engine, client, "prod", settings)
    expected = snapshot(engine, "prod")
    meddler.gone_on_page = 2
    report = sync_environment(engine, client, "prod", settings, RunOptions(kind="full"))
    if scoped:  # a scoped full run reads the group's members, not the users delta: nothing to restart
        assert report.outcome == "succeeded" and report.restarts == 0
        return
    assert report.outcome == "succeeded", report.error
    assert report.restarts == 1 and report.counts["disabled"] == 0
    assert snapshot(engine, "prod") == expected
    with db.session_factory(engine)() as s:
        assert s.scalar(select(SyncRun.restarts).where(SyncRun.id == report.run_id)) == 1


def test_410_during_an_initial_full_read_leaves_the_same_table(
    engine: Engine, store: TenantStore, meddled, directory: GraphClient, db_url: str, clean_env: Any
) -> None:
    client, meddler = meddled
    settings = _settings(db_url, 16)
    make_env(engine, "restarted")
    make_env(engine, "plain")
    meddler.gone_on_page = 3
    report = run(engine, client, "restarted", settings, kind="full")
    assert report.restarts == 1
    plain = run(engine, directory, "plain", settings, kind="full")
    assert snapshot(engine, "restarted") == snapshot(engine, "plain")
    # The report counts the read that completed, and the rows written once; no spurious events.
    assert report.counts == plain.counts
    with db.session_factory(engine)() as s:
        actions = s.scalars(select(SyncEvent.action).where(SyncEvent.run_id == report.run_id)).all()
    assert set(actions) == {"create"} and len(actions) == plain.counts["created"]


def test_ids_in_any_case_from_graph_are_one_id(
    engine: Engine, store: TenantStore, meddled, directory: GraphClient, db_url: str, clean_env: Any
) -> None:
    # R10: Graph's ids compare case-insensitively; a row is keyed by one spelling, whatever case comes.
    client, meddler = meddled
    settings = _settings(db_url, 16)
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    rows = snapshot(engine, "prod")
    meddler.upper_case_ids = True
    uid = licensed_user(store)
    store.update_user(uid, {"jobTitle": "Case Insensitive"})
    for kind in ("delta", "full"):
        report = run(engine, client, "prod", settings, kind=kind)
        assert report.counts["created"] == 0 and report.counts["disabled"] == 0, kind
    after = snapshot(engine, "prod")
    assert set(after) == set(rows) and after[uid][JOBTITLE] == "Case Insensitive"


def test_r5_nested_group_added_between_delta_runs_is_not_a_member(
    engine: Engine, store: TenantStore, tenant, meddled, db_url: str, clean_env: Any
) -> None:
    # R5: only users are members, in delta runs as in full runs; a nested group costs no request.
    client, meddler = meddled
    settings = _settings(db_url, 16)
    group, nested = tenant["groups"]["main"]["id"], tenant["groups"]["nested"]["id"]
    make_env(engine, "scoped", security_group_id=group)
    run(engine, client, "scoped", settings)
    if _is_member(store, group, nested):
        store.remove_group_member(group, nested)
    run(engine, client, "scoped", settings, kind="delta")
    store.add_group_member(group, nested)
    meddler.requests.clear()
    report = run(engine, client, "scoped", settings, kind="delta")
    assert report.kind == "delta"
    with db.session_factory(engine)() as s:
        mirrored = s.scalars(select(SyncGroupMember.member_id)).all()
    assert nested not in mirrored
    assert not [r for r in meddler.requests if nested in r]
    assert run(engine, client, "scoped", settings, kind="full", dry_run=True).changes == 0


def _is_member(store: TenantStore, group: str, member: str) -> bool:
    return any(store.member_at(group, i) == member for i in range(store.member_count(group)))


def test_r6_admin_role_given_during_a_full_read_is_not_a_disable(
    engine: Engine, store: TenantStore, meddled, db_url: str, clean_env: Any
) -> None:
    # R4a, R6, R9: a user made Global Administrator and unlicensed while the read pages stays enabled
    # (Administrative, R16): the full run reads the admins again before it judges anyone.
    client, meddler = meddled
    settings = _settings(db_url, 16)
    make_env(engine, "prod")
    run(engine, client, "prod", settings)
    uid = licensed_user(store, skip=2)
    skus = [lic["skuId"] for lic in _graph_user(store, uid)["assignedLicenses"]]

    def promote_after_first_page(page: int, body: dict[str, Any]) -> dict[str, Any]:
        if page == 0:
            store.add_role_member(GLOBAL_ADMINISTRATOR, uid)
            store.assign_licenses(uid, {"addLicenses": [], "removeLicenses": skus})
        return body

    meddler.full_read_page = promote_after_first_page
    run(engine, client, "prod", settings, kind="full")
    row = snapshot(engine, "prod")[uid]
    assert row[ISDISABLED] is False and row[14] == 1  # enabled, Administrative
    assert "disable" not in _events(engine, uid)
    meddler.full_read_page = None
    assert run(engine, client, "prod", settings, kind="full", dry_run=True).changes == 0


def _admin_without_licence(store: TenantStore, skip: int) -> str:
    """A user who holds Global Administrator and no licence: Administrative (1) in every environment."""
    uid = licensed_user(store, skip=skip)
    skus = [lic["skuId"] for lic in _graph_user(store, uid)["assignedLicenses"]]
    store.assign_licenses(uid, {"addLicenses": [], "removeLicenses": skus})
    store.add_role_member(GLOBAL_ADMINISTRATOR, uid)
    return uid


def _lose_role_and_soft_delete(store: TenantStore, uid: str) -> None:
    store.soft_delete_user(uid)  # Graph lists a deleted user in no role; its roles need not change


def _lose_role_and_get_licence(store: TenantStore, uid: str) -> None:
    licensed = _graph_user(store, licensed_user(store))
    store.assign_licenses(uid, {"addLicenses": licensed["assignedLicenses"], "removeLicenses": []})
    store.remove_role_member(GLOBAL_ADMINISTRATOR, uid)


def _lose_role_and_change_title(store: TenantStore, uid: str) -> None:
    store.update_user(uid, {"jobTitle": "Former Administrator"})
    store.remove_role_member(GLOBAL_ADMINISTRATOR, uid)


@pytest.mark.parametrize(
    ("change", "expected", "actions", "reason"),
    [
        # A deleted user's row is disabled and nothing else is written (R9): the mode stays.
        (_lose_role_and_soft_delete, (True, 1, False, None), ["disable"], "deleted from the directory"),
        # Licensed now, and no longer an admin: entitled all along, so never disabled (R9); Read-Write (R16).
        (_lose_role_and_get_licence, (False, 0, True, None), ["update"], None),
        # No longer entitled: disabled (R9), with the title the directory holds now (R10).
        (_lose_role_and_change_title, (True, 0, False, "Former Administrator"), ["disable"], None),
    ],
    ids=["soft-deleted", "licensed", "edited"],
)
@pytest.mark.parametrize("when", ["after-first-page", "before-the-read"])
def test_r6_admin_changed_during_a_full_read_is_judged_from_the_latest_copy(
    engine: Engine,
    store: TenantStore,
    meddled,
    db_url: str,
    clean_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    change: Any,
    expected: tuple[Any, ...],
    actions: list[str],
    reason: str | None,
    when: str,
) -> None:
    # R6, R9, R16: a full run reads the admins again after its read and decides again each user whose
    # roles changed, from a copy at least as new as the one its read gave, never from the copy read with
    # the admins at the start of the run. The full run ends where a delta run ends. The change comes
    # after the admins were first read: later in the read itself (so not in its catch-up round), or
    # before the read began (a soft delete is then in neither).
    client, meddler = meddled
    settings = _settings(db_url, 16)
    make_env(engine, "by-full")
    make_env(engine, "by-delta")
    uid = _admin_without_licence(store, skip=4)
    run(engine, client, "by-full", settings, kind="full")
    run(engine, client, "by-delta", settings, kind="full")
    assert snapshot(engine, "by-full")[uid][13:16] == (False, 1, False)
    already = len(_events(engine, uid))

    pending = [uid]

    def change_after_first_page(page: int, body: dict[str, Any]) -> dict[str, Any]:
        if page == 0 and pending:
            change(store, pending.pop())
        return body

    def change_after_admins(*args: Any, **kwargs: Any) -> Any:
        admins = read_admins(*args, **kwargs)
        if pending:
            change(store, pending.pop())
        return admins

    read_admins = source.read_admins
    if when == "after-first-page":
        meddler.full_read_page = change_after_first_page
    else:
        monkeypatch.setattr(source, "read_admins", change_after_admins)
    report = run(engine, client, "by-full", settings, kind="full")
    meddler.full_read_page = None
    monkeypatch.undo()
    assert not pending
    run(engine, client, "by-delta", settings, kind="delta")

    full, delta = snapshot(engine, "by-full")[uid], snapshot(engine, "by-delta")[uid]
    assert full[13:16] == expected[:3]
    if expected[3] is not None:
        assert full[JOBTITLE] == expected[3]
    assert full == delta
    with db.session_factory(engine)() as s:
        events = s.scalars(
            select(SyncEvent).where(SyncEvent.run_id == report.run_id).order_by(SyncEvent.id)
        ).all()
    mine = [e for e in events if str(e.azureactivedirectoryobjectid) == uid]
    assert [e.action for e in mine] == actions
    if reason is not None:
        assert reason in mine[0].reason
    assert len(_events(engine, uid)) == already + 2 * len(actions)  # one run each, nothing more
    assert run(engine, client, "by-full", settings, kind="full", dry_run=True).changes == 0
