"""Helpers for sync tests: environments, runs and snapshots of rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from syncd.dataverse import db
from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.dataverse.schema import SystemUser
from syncd.directory.client import GraphClient
from syncd.rules import SYNCED_COLUMNS
from syncd.settings import Settings
from syncd.sync.run import RunOptions, RunReport, sync_environment


def make_env(engine: Engine, name: str, **spec: Any) -> None:
    with db.session_factory(engine)() as s, s.begin():
        create_environment(s, EnvironmentSpec(name=name, **spec))


def run(engine: Engine, directory: GraphClient, env: str, settings: Settings, **options: Any) -> RunReport:
    report = sync_environment(engine, directory, env, settings, RunOptions(**options))
    assert report.outcome in ("succeeded", "blocked", "dry_run"), report.error
    return report


# The values sync owns, object id aside: the synced columns (R10) and the row's state, with the
# user's state in the directory (R9's azurestate) last.
SNAPSHOT_COLUMNS = (
    *(c for c in SYNCED_COLUMNS if c != "azureactivedirectoryobjectid"),
    "isdisabled",
    "accessmode",
    "islicensed",
    "azurestate",
)


def snapshot(engine: Engine, env_name: str) -> dict[str, tuple[Any, ...]]:
    """The regular rows of an environment: object id -> the values sync owns."""
    from syncd.dataverse.schema import Environment

    with db.session_factory(engine)() as s:
        env_id = s.scalar(select(Environment.id).where(Environment.name == env_name))
        rows = s.scalars(
            select(SystemUser).where(SystemUser.environment_id == env_id, SystemUser.kind == "regular")
        ).all()
        return {
            str(r.azureactivedirectoryobjectid): tuple(getattr(r, c) for c in SNAPSHOT_COLUMNS) for r in rows
        }


def licensed_user(store: Any, *, skip: int = 0) -> str:
    """The id of a licensed, enabled member user of the fake tenant (the ``skip``-th such, by creation)."""
    from syncd.directory.fake.userfields import load

    found = 0
    for seq in range(1, store.max_user_seq() + 1):
        row = store.user_by_seq(seq)
        if row is None or row[1] != 0:
            continue
        u = load(row[2])
        if u.get("accountEnabled") and u.get("assignedLicenses") and u.get("userType") == "Member":
            if found == skip:
                return str(row[0])
            found += 1
    raise AssertionError("no licensed user")
