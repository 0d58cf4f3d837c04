"""The Graph client against the fake directory, over real HTTP (uvicorn on 127.0.0.1) and in-process.

Every test runs twice: `http` (a uvicorn server on a free loopback port, in a thread) and `inprocess`
(InProcessTransport, no socket). Faults are set through the simulator's /_sim/ controls. A faulty read
must give exactly the users a clean read gives, or a typed error, never a partial page.

These tests are skipped while `syncd.directory.fake.server` does not exist.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

server_mod = pytest.importorskip("syncd.directory.fake.server", reason="the fake Graph server has not landed")
store_mod = pytest.importorskip("syncd.directory.fake.store")
generator_mod = pytest.importorskip("syncd.directory.fake.generator")

from syncd.directory.auth import StaticToken  # noqa: E402
from syncd.directory.client import GraphClient  # noqa: E402
from syncd.directory.errors import (  # noqa: E402
    DirectoryUnavailable,
    FullResyncRequired,
    MalformedResponse,
)
from syncd.directory.models import DirectoryUser  # noqa: E402
from syncd.directory.transport import InProcessTransport  # noqa: E402

USERS = 1200
SEED = 7


@dataclass
class Fake:
    mode: str
    base_url: str
    store: Any
    transport_factory: Callable[[], httpx.BaseTransport | None]
    sim: httpx.Client  # talks to /_sim/ and Graph's write API

    def client(self, **kwargs: Any) -> GraphClient:
        kwargs.setdefault("token_provider", StaticToken("integration-token"))
        kwargs.setdefault("transport", self.transport_factory())
        kwargs.setdefault("page_size", 100)
        kwargs.setdefault("backoff_base", 0.001)
        kwargs.setdefault("backoff_max", 0.01)
        kwargs.setdefault("max_retries", 30)
        return GraphClient(self.base_url, **kwargs)

    def faults(self, **faults: Any) -> None:
        r = self.sim.post("/_sim/faults", json=faults)
        assert r.status_code < 300, r.text

    def clear_faults(self) -> None:
        r = self.sim.delete("/_sim/faults")
        assert r.status_code < 300, r.text


def _free_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def tenant() -> Iterator[Any]:
    store = store_mod.TenantStore.open(None)
    generator_mod.generate_tenant(store, users=USERS, seed=SEED)
    yield store
    store.close()


@pytest.fixture(scope="module")
def http_server(tenant: Any) -> Iterator[str]:
    import uvicorn

    app = server_mod.create_app(tenant)
    sock = _free_port()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="auto", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(params=["http", "inprocess"])
def fake(request: pytest.FixtureRequest, tenant: Any) -> Iterator[Fake]:
    if request.param == "http":
        root = request.getfixturevalue("http_server")
        sim = httpx.Client(base_url=root, timeout=30)
        made = Fake("http", f"{root}/v1.0", tenant, lambda: None, sim)
    else:
        app = server_mod.create_app(tenant)
        root = "http://fake-entra.local"
        sim = httpx.Client(base_url=root, transport=InProcessTransport(app), timeout=30)
        made = Fake("inprocess", f"{root}/v1.0", tenant, lambda: InProcessTransport(app), sim)
    made.clear_faults()
    yield made
    made.clear_faults()
    sim.close()


def _all_users(client: GraphClient) -> dict[str, DirectoryUser]:
    out: dict[str, DirectoryUser] = {}
    for page in client.iter_users():
        for u in page:
            assert u.id not in out, f"user {u.id} read twice"
            out[u.id] = u
    return out


def _delta_users(client: GraphClient) -> tuple[dict[str, DirectoryUser], str]:
    out: dict[str, DirectoryUser] = {}
    reader = client.users_delta()
    for page in reader:
        for u in page.users:
            out[u.id] = u
    assert reader.delta_link is not None
    return out, reader.delta_link


@pytest.fixture(scope="module")
def baseline(tenant: Any) -> dict[str, DirectoryUser]:
    """Every user as a clean in-process read sees them."""
    app = server_mod.create_app(tenant)
    with GraphClient(
        "http://fake-entra.local/v1.0", token_provider=StaticToken("x"), transport=InProcessTransport(app)
    ) as client:
        users = _all_users(client)
    assert len(users) == tenant.users_count()
    return users


def test_clean_read_is_complete_and_non_ascii_survives(
    fake: Fake, baseline: dict[str, DirectoryUser]
) -> None:
    with fake.client() as client:
        users = _all_users(client)
        assert users == baseline
        assert (
            client.stats.requests == -(-len(baseline) // 100) or client.stats.requests >= len(baseline) // 100
        )
        delta, _ = _delta_users(client)
    assert delta == baseline


def test_throttle_and_unavailable_storm_still_reads_everything(
    fake: Fake, baseline: dict[str, DirectoryUser]
) -> None:
    fake.faults(throttle_ratio=0.4, retry_after=0, unavailable_ratio=0.2, seed=11)
    statuses: list[int] = []
    with fake.client(on_request=statuses.append) as client:
        assert _all_users(client) == baseline
        delta, _ = _delta_users(client)
        assert delta == baseline
        assert client.stats.throttled > 0 and client.stats.unavailable > 0
        assert 429 in statuses and 503 in statuses


def test_retry_after_is_honoured_and_retries_run_out(fake: Fake) -> None:
    fake.faults(throttle_ratio=1.0, retry_after=2, seed=1)
    waits: list[float] = []
    with (
        fake.client(max_retries=3, sleep=waits.append) as client,
        pytest.raises(DirectoryUnavailable) as info,
    ):
        list(client.iter_users())
    assert info.value.status == 429 and info.value.attempts == 4
    assert waits == [2.0, 2.0, 2.0]


def test_latency_is_tolerated(fake: Fake) -> None:
    fake.faults(latency_ms=30, seed=2)
    with fake.client(page_size=999) as client:
        assert sum(len(p) for p in client.iter_users()) == USERS


def test_latency_beyond_the_timeout_is_unavailable(fake: Fake) -> None:
    if fake.mode != "http":
        pytest.skip("timeouts are a property of a socket; the in-process transport has none")
    fake.faults(latency_ms=500, seed=3)
    with fake.client(timeout=0.05, max_retries=1) as client, pytest.raises(DirectoryUnavailable) as info:
        list(client.iter_users())
    assert info.value.status is None


def test_expired_delta_tokens_require_a_full_resync(fake: Fake) -> None:
    with fake.client() as client:
        link = client.latest_users_delta_link()
        assert list(client.users_delta(link))  # a fresh token works
        r = fake.sim.post("/_sim/expire-delta-tokens")
        assert r.status_code < 300
        reader = client.users_delta(link)
        with pytest.raises(FullResyncRequired):
            list(reader)
        assert reader.delta_link is None
        _, fresh = _delta_users(client)  # a full delta works again and gives a new token
        assert list(client.users_delta(fresh)) is not None


@pytest.mark.parametrize("kind", ["invalid_json", "missing_id", "wrong_type", "foreign_next_link"])
def test_malformed_pages_are_a_typed_error_and_nothing_partial(fake: Fake, kind: str) -> None:
    fake.faults(malformed=kind, malformed_ratio=1.0, seed=4)
    with fake.client() as client:
        pages = client.iter_users()
        with pytest.raises(MalformedResponse) as info:
            next(pages)  # the very first page is bad: nothing at all is handed out
        assert info.value.url.startswith(fake.base_url)
        reader = client.users_delta()
        with pytest.raises(MalformedResponse):
            next(reader)
        assert reader.delta_link is None


def test_sometimes_malformed_pages_never_leak_a_bad_record(
    fake: Fake, baseline: dict[str, DirectoryUser]
) -> None:
    fake.faults(malformed="wrong_type", malformed_ratio=0.3, seed=5)
    seen: dict[str, DirectoryUser] = {}
    with fake.client() as client:
        try:
            for page in client.iter_users():
                for u in page:
                    seen[u.id] = u
        except MalformedResponse:
            pass
    for uid, u in seen.items():  # whatever came out before the error is exactly right
        assert baseline[uid] == u


def test_delta_after_changes_matches_the_directory(fake: Fake) -> None:
    churn = pytest.importorskip("syncd.directory.fake.churn")
    with fake.client() as client:
        link = client.latest_users_delta_link()
        churn.apply_churn(fake.store, changes=50, seed=9)
        reader = client.users_delta(link)
        changed: dict[str, DirectoryUser] = {}
        removed: set[str] = set()
        for page in reader:
            for u in page.users:
                changed[u.id] = u
                removed.discard(u.id)
            for gone in page.removed:
                removed.add(gone.id)
                changed.pop(gone.id, None)
        assert changed or removed
        for uid, u in changed.items():
            assert client.get_user(uid) == u
        for uid in removed:
            assert client.get_user(uid) is None
        assert reader.delta_link is not None and list(client.users_delta(reader.delta_link))


def test_groups_roles_skus_and_organization_decode(fake: Fake) -> None:
    with fake.client() as client:
        org = client.organization()
        assert isinstance(org["id"], str)
        skus = client.subscribed_skus()
        assert skus and all(s.sku_id for s in skus)
        roles = client.directory_roles()
        assert roles
        for role in roles:
            for page in client.iter_role_members(role.id):
                assert all(m.id for m in page)
        reader = client.groups_delta()
        groups = [g for page in reader for g in page]
        assert reader.delta_link is not None
        for gid in {g.id for g in groups if not g.removed_group}:
            members = [m for page in client.iter_group_members(gid) for m in page]
            owners = [m for page in client.iter_group_owners(gid) for m in page]
            assert all(isinstance(m, DirectoryUser) or m.kind.value != "user" for m in members)
            assert all(o.id for o in owners)
        assert isinstance(client.service_principals(), list)


def test_untidy_pages_read_like_clean_ones(fake: Fake) -> None:
    """Empty pages and repeats across delta pages (Graph's untidy paging) change nothing a read gives."""
    with fake.client(page_size=50) as client:
        users = _all_users(client)
        delta, _ = _delta_users(client)
        groups = [g for page in client.groups_delta() for g in page]
        fake.faults(empty_page_ratio=0.3, delta_repeat_ratio=0.5, seed=12)
        assert _all_users(client) == users
        untidy, link = _delta_users(client)
        assert untidy == delta
        assert [g for page in client.groups_delta() for g in page] == groups
        assert list(client.users_delta(link)) is not None
    counters = fake.sim.get("/_sim/counters").json()
    assert counters["empty_pages"] > 0 and counters["repeated"] > 0


def test_gone_in_the_middle_of_a_read_requires_a_full_resync(fake: Fake) -> None:
    fake.faults(gone_mid_read_ratio=1.0, seed=3)
    with fake.client(page_size=100) as client:
        for reader in (client.users_delta(), client.groups_delta()):
            with pytest.raises(FullResyncRequired):
                list(reader)
            assert reader.delta_link is None


def test_full_groups_delta_adds_up_to_the_direct_members(fake: Fake) -> None:
    """Soft-deleted members are suspended: neither `/members` nor a full groups delta lists them."""
    churn = pytest.importorskip("syncd.directory.fake.churn")
    churn.apply_churn(fake.store, changes=60, seed=13)
    with fake.client(page_size=50) as client:
        main = max((g for page in client.groups_delta() for g in page), key=lambda g: len(g.added))
        member = next(m.id for m in main.added if m.kind.value == "user")
        fake.store.soft_delete_user(member)
        added: dict[str, set[str]] = {}
        for page in client.groups_delta():
            for g in page:
                ids = added.setdefault(g.id, set())
                ids |= {m.id for m in g.added}
                ids -= {m.id for m in g.removed}
        assert added and member not in added[main.id]
        for gid, ids in added.items():
            members = {m.id for page in client.iter_group_members(gid, select=None) for m in page}
            assert ids == members, gid


def test_users_by_ids_in_batches_through_a_throttle_storm(
    fake: Fake, baseline: dict[str, DirectoryUser]
) -> None:
    # 300 ids a round trip (15 to an `id in`, 20 of those to a $batch); sub-requests throttled or
    # unavailable one by one are sent again, and the answer is the clean one.
    ids = sorted(baseline)[:700]
    asked = [i.upper() for i in ids] + ["00000000-0000-4000-8000-0000000000ff"]
    with fake.client() as client:
        # The users as they are now (other tests of this module may have changed some since the baseline).
        now = {u.id: u for page in client.iter_users() for u in page if u.id in set(ids)}
    with fake.client() as client:
        assert client.users_by_ids(asked) == now
        assert client.stats.requests == 3 and client.stats.subrequests == 47
    fake.faults(throttle_ratio=0.25, unavailable_ratio=0.15, retry_after=0, seed=3)
    try:
        with fake.client() as client:
            assert client.users_by_ids(asked) == now
            assert client.stats.throttled + client.stats.unavailable > 0
            assert client.stats.subrequests > 47
    finally:
        fake.clear_faults()
