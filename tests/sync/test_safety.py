"""Safety: failed, partial or empty reads disable nobody; the mass-disable guard (its pure rules too); bad
records fail alone."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select, text
from sync_helpers import make_env, run, snapshot

from syncd.dataverse import db
from syncd.dataverse.schema import SyncEvent, SyncRun
from syncd.directory import catalogue
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.settings import Settings, load_settings
from syncd.sync.guard import GuardVerdict, check_disables
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
    import syncd.sync.apply as apply

    monkeypatch.setattr(apply, "HELD_IN_MEMORY", in_memory)
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


@pytest.mark.parametrize("kind", ["full", "delta"])
def test_ratio_threshold(
    engine: Engine, store, directory, tenant, db_url: str, clean_env: Any, kind: str
) -> None:
    guarded = load_settings(database_url=db_url, mass_disable_count=1000, mass_disable_ratio=0.05)
    make_env(engine, "prod")
    run(engine, directory, "prod", guarded)
    enabled = sorted(_enabled_ids(snapshot(engine, "prod")))
    n = len(enabled) // 10 + 1  # over 5 %
    for uid in enabled[:n]:
        store.update_user(uid, {"accountEnabled": False})
    # the ratio applies from its floor on (here the run's own disables)
    guarded = load_settings(
        database_url=db_url, mass_disable_count=1000, mass_disable_ratio=0.05, mass_disable_ratio_min_count=n
    )
    report = sync_environment(engine, directory, "prod", guarded, RunOptions(kind=kind))
    assert report.outcome == "blocked" and report.counts["blocked_disables"] == n
    assert f"of {len(enabled)} enabled users" in (report.error or "")


# -- the ratio's floor and the guard's sentences ----------------------------------------------


def _verdict(disables: int, enabled: int, **kw: Any) -> GuardVerdict:
    limits: dict[str, Any] = {"max_count": 500, "max_ratio": 0.10, "ratio_min_count": 10, "allow": False}
    return check_disables(disables, enabled, **(limits | kw))


def test_guard_ratio_does_not_apply_under_its_floor() -> None:
    # 1 of 4 is 25 %, over 10 %, but one leaver is not a mass disable
    assert _verdict(1, 4).allowed
    assert _verdict(9, 20).allowed  # 45 %, one under the floor
    assert not _verdict(10, 20).allowed  # at the floor the ratio applies
    assert _verdict(10, 100).allowed  # at the floor, not over 10 %
    assert not _verdict(1, 4, ratio_min_count=1).allowed  # a floor of 1: any run, as before


def test_guard_count_applies_under_the_ratios_floor() -> None:
    blocked = _verdict(6, 10_000, max_count=5)
    assert not blocked.allowed and "--allow-mass-disable" in (blocked.reason or "")
    assert _verdict(6, 10_000, max_count=5, allow=True).allowed


@pytest.mark.parametrize(
    ("disables", "enabled", "limits", "needles"),
    [
        (
            1,
            1,
            {"max_count": 0, "ratio_min_count": 1},
            ["disable 1 user (100% ", "threshold of 0 users, ", "10% of 1 enabled user ", "at least 1 user;"],
        ),
        (
            2,
            4,
            {"max_count": 1, "ratio_min_count": 2},
            [
                "disable 2 users (50% ",
                "threshold of 1 user, ",
                "10% of 4 enabled users ",
                "at least 2 users;",
            ],
        ),
    ],
    ids=["one", "several"],
)
def test_guard_messages_use_grammatical_number(
    disables: int, enabled: int, limits: dict[str, Any], needles: list[str]
) -> None:
    reason = _verdict(disables, enabled, **limits).reason or ""
    for needle in needles:
        assert needle in reason, reason


def test_guard_empty_read_message_counts_one_disable_as_one() -> None:
    one = _verdict(1, 4, directory_read_empty=True, allow=True)
    assert not one.allowed and "; 1 disable withheld" in (one.reason or "")
    two = _verdict(2, 4, directory_read_empty=True)
    assert "; 2 disables withheld" in (two.reason or "")


def _licensed_users(store: TenantStore, n: int) -> list[str]:
    """An otherwise empty tenant with `n` enabled users, each licensed for Dataverse (R4)."""
    generate_tenant(store, users=0, seed=3)
    sku = next(s for s in catalogue.SKUS if s.kind is catalogue.SkuKind.DATAVERSE).sku_id
    ids = []
    for i in range(n):
        body = {
            "accountEnabled": True,
            "displayName": f"Small {i}",
            "mailNickname": f"small{i}",
            "userPrincipalName": f"small{i}@contoso3.onmicrosoft.com",
            "usageLocation": "GB",
        }
        uid = str(orjson.loads(store.create_user(body))["id"])
        store.assign_licenses(uid, {"addLicenses": [{"skuId": sku}], "removeLicenses": []})
        ids.append(uid)
    return ids


@pytest.mark.parametrize("kind", ["delta", "full"])
def test_one_leaver_of_a_four_user_environment_is_disabled_not_blocked(
    engine: Engine, store: TenantStore, directory, db_url: str, clean_env: Any, kind: str
) -> None:
    defaults = load_settings(database_url=db_url)  # the guard's defaults, no override
    assert not defaults.allow_mass_disable
    ids = _licensed_users(store, 4)
    make_env(engine, "prod")
    run(engine, directory, "prod", defaults)
    assert _enabled_ids(snapshot(engine, "prod")) == set(ids)
    _hard_delete(store, ids[:1])  # 25 % of the environment's enabled users
    report = sync_environment(engine, directory, "prod", defaults, RunOptions(kind=kind))
    assert report.outcome == "succeeded", report.error
    assert report.counts["disabled"] == 1 and report.counts["blocked_disables"] == 0
    assert _enabled_ids(snapshot(engine, "prod")) == set(ids[1:])


def _poison_rows(engine: Engine, db_backend: str) -> None:
    """A database that refuses to write any row whose jobtitle is 'poison' (a bad record)."""
    with engine.begin() as c:
        if db_backend == "sqlite":
            for when in ("INSERT", "UPDATE"):
                c.execute(
                    text(
                        f"CREATE TRIGGER poison_{when.lower()} BEFORE {when} ON systemuser "
                        "WHEN NEW.jobtitle = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
                    )
                )
        else:
            c.execute(
                text(
                    "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.jobtitle = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$"
                )
            )
            c.execute(
                text(
                    "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON systemuser "
                    "FOR EACH ROW EXECUTE FUNCTION poison()"
                )
            )


def test_bad_record_fails_alone_and_the_run_is_partial(
    engine: Engine, store, directory, tenant, settings: Settings, db_backend: str
) -> None:
    # R10, Keycloak's lesson: a bad record fails alone, with an event; the run says it was partial.
    make_env(engine, "prod")
    run(engine, directory, "prod", settings)
    _poison_rows(engine, db_backend)
    enabled = sorted(_enabled_ids(snapshot(engine, "prod")))
    bad, good = enabled[0], enabled[1:4]
    store.update_user(bad, {"jobTitle": "poison"})
    for uid in good:
        store.update_user(uid, {"jobTitle": "Reviewer"})
    report = sync_environment(engine, directory, "prod", settings, RunOptions(kind="delta"))
    snap = snapshot(engine, "prod")
    assert all(snap[uid][4] == "Reviewer" for uid in good)
    assert report.outcome == "partial" and "could not be written" in (report.error or "")
    assert report.counts["failed"] == 1 and report.counts["updated"] == 3
    assert snap[bad][4] != "poison"
    with db.session_factory(engine)() as s:
        ev = s.scalars(select(SyncEvent).where(SyncEvent.action == "failed")).one()
        assert str(ev.azureactivedirectoryobjectid) == bad and "poisoned row" in ev.reason
        assert s.scalar(select(SyncRun.outcome).where(SyncRun.id == report.run_id)) == "partial"


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
    import syncd.sync.apply as apply

    monkeypatch.setattr(apply, "HELD_IN_MEMORY", 4)
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
