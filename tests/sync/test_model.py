"""Model-based test: delta runs and full runs agree with each other and with the rules, after any churn.

Random directory changes (edits, disables, soft and hard deletes, restores, licence and group and
role membership changes) are interleaved with runs. One environment of each pair only ever runs
delta syncs (falling back to full when a token expires), the other only full syncs. After every
step both hold the same rows, and those rows are the rules' fixpoint for the directory's current
state: the rules (R2-R16) find nothing left to create, enable, disable or update. With a security
group, users outside it are out of scope (R24): their rows are disabled and otherwise not read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import Engine
from sync_helpers import make_env, run, snapshot

from syncd.dataverse import db
from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.fake.churn import apply_churn
from syncd.directory.fake.generator import generate_tenant
from syncd.directory.fake.server import create_app
from syncd.directory.fake.store import TenantStore
from syncd.directory.models import Deletion, MemberKind
from syncd.directory.transport import InProcessTransport
from syncd.rules import GROUP_EXEMPT_ROLE_IDS, Action, Membership, UserFacts, decide
from syncd.settings import Settings
from syncd.sync import source
from syncd.sync.run import environment_facts
from syncd.sync.storage import open_storage

PAIRS = (("open", None), ("scoped", "main"))


def oracle_pending(engine: Engine, directory: GraphClient, env_name: str) -> list[tuple[str, str]]:
    """What the rules would still do in `env_name` given the directory now: empty at a fixpoint."""
    from sqlalchemy import select

    from syncd.dataverse.schema import Environment

    with db.session_factory(engine)() as s:
        env = s.scalar(select(Environment).where(Environment.name == env_name))
        assert env is not None
        s.expunge(env)
    envf = environment_facts(env)
    admins = source.read_admins(directory)
    members: set[str] = set()
    owners: set[str] = set()
    if env.security_group_id:
        for page in directory.iter_group_members(env.security_group_id, select=None):
            members |= {m.id for m in page if getattr(m, "kind", None) is MemberKind.USER}
        owners = source.group_owner_ids(directory, env.security_group_id)
    users = {u.id: u for page in directory.iter_users() for u in page}
    raw = engine.raw_connection()
    try:
        reader = open_storage(raw.driver_connection, env.id, datetime.now(UTC))
        rows = reader.load_rows(set(users) | set(snapshot(engine, env_name)))
    finally:
        raw.close()
    pending = []
    for oid in set(users) | set(rows):
        du = users.get(oid)
        membership = (
            Membership.DIRECT if oid in members else Membership.OWNER if oid in owners else Membership.NONE
        )
        roles = admins.get(oid, frozenset())
        if (
            env.security_group_id
            and membership is Membership.NONE
            and roles.isdisjoint(GROUP_EXEMPT_ROLE_IDS)
        ):
            du = None  # R24: outside the group the directory is not read; a row is only ever disabled
        facts = UserFacts(du, oid, Deletion.NONE if du else Deletion.HARD, roles, membership)
        cur = rows.get(oid)
        d = decide(facts, envf, cur.facts if cur else None)
        if d.action not in (Action.KEEP, Action.LEAVE_ALONE):
            pending.append((oid, f"{d.action.value} {d.rule}: {d.reason}"))
    return pending


class SyncModel(RuleBasedStateMachine):
    engine: Engine
    settings: Settings

    def __init__(self) -> None:
        super().__init__()
        self.store = TenantStore.open(None)
        self.directory = GraphClient(
            "http://fake-entra.local/v1.0",
            token_provider=StaticToken("t"),
            transport=InProcessTransport(create_app(self.store)),
            page_size=30,
        )

    @initialize(seed=st.integers(0, 10_000))
    def start(self, seed: int) -> None:
        with self.engine.begin() as c:
            from sqlalchemy import text

            for t in ("sync_event", "sync_run", "sync_state", "sync_group_member", "systemuserroles", "role"):
                c.execute(text(f"DELETE FROM {t}"))
            c.execute(text("DELETE FROM systemuser"))
            c.execute(text("DELETE FROM environment"))
        summary = generate_tenant(self.store, users=70, seed=seed, group_size=30)
        for name, group in PAIRS:
            gid = summary["groups"][group]["id"] if group else None
            make_env(self.engine, f"{name}-delta", security_group_id=gid)
            make_env(self.engine, f"{name}-full", security_group_id=gid)
        self._sync()

    def _sync(self) -> None:
        for name, _ in PAIRS:
            run(self.engine, self.directory, f"{name}-delta", self.settings, kind="delta")
            run(self.engine, self.directory, f"{name}-full", self.settings, kind="full")

    @rule(changes=st.integers(1, 12), seed=st.integers(0, 10_000))
    def churn_then_sync(self, changes: int, seed: int) -> None:
        apply_churn(self.store, changes=changes, seed=seed)
        self._sync()

    @rule(changes=st.integers(1, 6), seed=st.integers(0, 10_000))
    def churn_twice_then_sync(self, changes: int, seed: int) -> None:
        apply_churn(self.store, changes=changes, seed=seed)
        apply_churn(self.store, changes=changes, seed=seed + 1)
        self._sync()

    @rule()
    def tokens_expire_then_sync(self) -> None:
        self.store.expire_delta_tokens()
        apply_churn(self.store, changes=3, seed=1)
        self._sync()

    @invariant()
    def delta_equals_full_equals_oracle(self) -> None:
        if not hasattr(self, "directory") or not self._started():
            return
        for name, _ in PAIRS:
            d, f = snapshot(self.engine, f"{name}-delta"), snapshot(self.engine, f"{name}-full")
            assert d == f, _diff(d, f)
            assert oracle_pending(self.engine, self.directory, f"{name}-full") == []

    def _started(self) -> bool:
        from sqlalchemy import text

        with self.engine.connect() as c:
            return bool(c.execute(text("SELECT count(*) FROM environment")).scalar())

    def teardown(self) -> None:
        self.directory.close()
        self.store.close()


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return "\n".join(f"{k}: delta={a.get(k)} full={b.get(k)}" for k in keys[:10])


@pytest.mark.slow
def test_delta_and_full_runs_agree_with_the_rules(engine: Engine, db_url: str, clean_env: Any) -> None:
    from syncd.settings import load_settings

    SyncModel.engine = engine
    SyncModel.settings = load_settings(database_url=db_url, batch_size=8, allow_mass_disable=True)
    machine = SyncModel.TestCase
    machine.settings = settings(
        max_examples=20,
        stateful_step_count=8,
        deadline=None,
        # No shrinking: a failing sequence is printed as found, which keeps a red run short.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    machine().runTest()
