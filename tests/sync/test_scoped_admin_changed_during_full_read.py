"""R5, R6, R24: an exempt admin outside the security group, changed while a scoped full run starts.

A scoped full run reads the admins with their user objects and takes its users delta link. Taken
in that order, a change to an admin between the two was decided from the older copy and, the
checkpoint being after it, never again until the next full run: a phone edit lost, or a disabled
admin left with an enabled row. The link now comes first, so the catch-up round sees the change."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine
from sync_helpers import licensed_user, make_env, run, snapshot

from syncd.directory.client import GraphClient
from syncd.directory.fake.store import TenantStore
from syncd.rules import GLOBAL_ADMINISTRATOR
from syncd.settings import Settings
from syncd.sync import source

PHONE = 6  # address1_telephone1 in SNAPSHOT_COLUMNS


def _outside_admin(store: TenantStore, group: str) -> str:
    members = {store.member_at(group, i) for i in range(store.member_count(group))}
    for skip in range(50):
        uid = licensed_user(store, skip=skip)
        if uid not in members:
            store.add_role_member(GLOBAL_ADMINISTRATOR, uid)
            return uid
    raise AssertionError("no licensed user outside the group")


@pytest.mark.parametrize("edit", ["phone", "disable"])
def test_an_admin_outside_the_group_changed_as_a_scoped_full_run_starts_is_not_lost(
    engine: Engine,
    store: TenantStore,
    directory: GraphClient,
    tenant: dict[str, Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    edit: str,
) -> None:
    group = tenant["groups"]["main"]["id"]
    make_env(engine, "scoped", security_group_id=group)
    uid = _outside_admin(store, group)
    run(engine, directory, "scoped", settings, kind="full")
    assert snapshot(engine, "scoped")[uid][13] is False  # in scope by R5's admin exemption

    read_admins = source.read_admins
    pending = [uid]

    def change_after_admins(*args: Any, **kwargs: Any) -> Any:
        admins = read_admins(*args, **kwargs)
        if pending:  # as a churn would, while the run is between its admins and its delta link
            u = pending.pop()
            body = {"businessPhones": ["+44 20 3894336"]} if edit == "phone" else {"accountEnabled": False}
            store.update_user(u, body)
        return admins

    monkeypatch.setattr(source, "read_admins", change_after_admins)
    run(engine, directory, "scoped", settings, kind="full")
    monkeypatch.undo()
    for _ in range(2):  # the daemon's delta runs afterwards
        run(engine, directory, "scoped", settings, kind="delta")
    row = snapshot(engine, "scoped")[uid]
    graph = orjson.loads(store.user(uid))
    if edit == "phone":
        assert row[PHONE] == "+44 20 3894336", (
            f"lost update: row has {row[PHONE]!r}, directory {graph['businessPhones']}"
        )
    else:
        assert row[13] is True, "lost disable: the row is still enabled though the account is disabled"
