"""R24, R9: after a scope change (tenant-wide to a security group), a full run keeps azurestate for the
rows it no longer reads by looking their users up 300 to a round trip (JSON batches of `id in`
filters), not one request per row; on SQLite and PostgreSQL, with and without throttled sub-requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sync_helpers import make_env, run, snapshot

from syncd.dataverse import db
from syncd.dataverse.schema import Environment
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.faults import FaultSettings
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.transport import InProcessTransport
from syncd.settings import Settings
from syncd.sync import source

ISDISABLED, AZURESTATE = 13, -1
USERS = 1400


@pytest.fixture
def big() -> Iterator[tuple[TenantStore, dict[str, Any]]]:
    store = TenantStore.open(None)
    summary = generate_tenant(store, users=USERS, seed=11, group_size=40)
    yield store, summary
    store.close()


def test_r24_scope_change_looks_unseen_rows_up_in_batches(
    engine: Engine, big: tuple[TenantStore, dict[str, Any]], settings: Settings
) -> None:
    store, tenant = big
    app = create_app(store)
    faults = app.state.faults
    directory = GraphClient(
        "http://fake-entra.local/v1.0",
        token_provider=StaticToken("t"),
        transport=InProcessTransport(app),
        page_size=200,
    )
    with directory:
        make_env(engine, "prod")
        run(engine, directory, "prod", settings, kind="full")
        rows = snapshot(engine, "prod")
        group = tenant["groups"]["main"]["id"]
        members = {m.id for page in directory.iter_group_members(group, select=None) for m in page}
        owners = source.group_owner_ids(directory, group)
        admins = {a for role in tenant["roles"].values() for a in role["licensed"] + role["unlicensed"]}
        outside = sorted(set(rows) - members - owners - admins)
        assert len(outside) > 450
        # Out of the group's scope: most still exist (0); a few are soft-deleted (1), a few are gone (2),
        # one of them gone before this run already (its row is at 2 and is not looked up again).
        soft, hard, gone_before = outside[:5], outside[5:10], outside[10]
        store.soft_delete_user(gone_before)
        store.hard_delete_user(gone_before)
        run(engine, directory, "prod", settings, kind="full")
        assert snapshot(engine, "prod")[gone_before][AZURESTATE] == 2
        for uid in soft + hard:
            store.soft_delete_user(uid)
        for uid in hard:
            store.hard_delete_user(uid)

        with db.session_factory(engine)() as s, s.begin():  # the scope change
            s.execute(update(Environment).where(Environment.name == "prod").values(security_group_id=group))
        # Sub-requests (and any other request) throttled now and then, with Retry-After: 0.
        faults.set(FaultSettings(throttle_ratio=0.2, retry_after=0, seed=5))
        faults.reset_counters()
        stats_before = (directory.stats.requests, directory.stats.subrequests)
        run(engine, directory, "prod", settings, kind="full")
        faults.clear()

        after = snapshot(engine, "prod")
        expected = (
            {uid: 0 for uid in outside} | {uid: 1 for uid in soft} | {uid: 2 for uid in [*hard, gone_before]}
        )
        assert {uid: after[uid][AZURESTATE] for uid in outside} == expected
        assert all(after[uid][ISDISABLED] is True for uid in outside)
        assert all(after[uid][AZURESTATE] == 0 for uid in members & set(after))

        looked_up = len(outside) - len(soft) - 1  # soft-deleted ones come from the deleted items
        counters = faults.counters()["by_endpoint"]
        batches = counters["POST /v1.0/$batch"]
        sent = batches["requests"] - batches.get("throttled", 0) - batches.get("unavailable", 0)
        throttled_subs = counters["GET /v1.0/users"].get("throttled", 0)
        # 300 ids a round trip, and one more round trip for each round of throttled sub-requests.
        assert sent <= math.ceil(looked_up / 300) + throttled_subs
        filters = counters["GET /v1.0/users"]["requests"] - throttled_subs
        # 15 ids a filter (the owners and admins the group read did not bring are looked up so too).
        assert math.ceil(looked_up / 15) <= filters <= math.ceil(looked_up / 15) + math.ceil(len(owners) / 15)
        assert "GET /v1.0/users/{key}" not in counters  # no request per user
        requests = directory.stats.requests - stats_before[0]
        subrequests = directory.stats.subrequests - stats_before[1]
        assert subrequests >= math.ceil(looked_up / 15)
        # The whole run, every read included, makes fewer requests than one per looked-up row would.
        assert requests < looked_up / 5, (requests, looked_up)
        print(
            f"\nscope change: {looked_up} rows looked up in {sent} batches; the run made {requests} requests"
        )

        # A second scoped full run changes nothing.
        assert run(engine, directory, "prod", settings, kind="full", dry_run=True).changes == 0
