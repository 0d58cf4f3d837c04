"""Sync runs against the fake Entra with authentication on, over TLS, with a real azure-identity credential.

- Tokens revoked in the middle of a read: one new token, one retry, and the run goes on.
- A claims challenge (Graph's continuous access evaluation): answered once, with the claims.
- A wrong client secret: the run fails with one line naming the cause, nobody is disabled and the
  checkpoint does not move; the next run with the right secret picks the change up.
- An application without a permission the run needs: the run fails naming that permission.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from entra_server import EntraServer, entra_server
from sqlalchemy import Engine, text
from sync_helpers import SNAPSHOT_COLUMNS, make_env, snapshot

from syncd.settings import Settings, load_settings
from syncd.sync.directory import open_directory
from syncd.sync.run import RunOptions, RunReport, sync_environment

CLIENT = "5b1c2d3e-4f50-4617-8a9b-0c1d2e3f4a5b"
SECRET = "right~secret.value-0123456789"
USERS = 600
PAGE = 50  # a full read of USERS users is a dozen pages: room to break in the middle


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraServer]:
    with entra_server(tmp_path_factory.mktemp("entra"), apps={CLIENT: SECRET}, users=USERS) as s:
        yield s


def _settings(server: EntraServer, db_url: str, *, client_id: str = CLIENT, secret: str = SECRET) -> Settings:
    return load_settings(
        database_url=db_url,
        directory_url=server.graph_url,
        directory_authority=server.authority,
        directory_tenant_id=server.tenant_id,
        directory_client_id=client_id,
        directory_client_secret=secret,
        directory_ca_bundle=str(server.ca_path),
        batch_size=64,
    )


def _sync(engine: Engine, settings: Settings, **options: Any) -> tuple[RunReport, Any]:
    with open_directory(settings, page_size=PAGE) as directory:
        report = sync_environment(engine, directory, "prod", settings, RunOptions(**options))
        return report, directory.stats


def _checkpoint(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT key, value FROM sync_state")).all())  # type: ignore[arg-type]


@pytest.fixture
def counters(server: EntraServer) -> Any:
    server.sim("POST", "auth/counters/reset")
    return lambda: server.sim("GET", "auth/counters")


def test_tokens_revoked_mid_run_get_one_new_token_and_the_run_goes_on(
    server: EntraServer, engine: Engine, db_url: str, clean_env: Path, counters: Any
) -> None:
    make_env(engine, "prod", type="production")
    server.sim("POST", "auth/revoke", {"after_requests": 10})  # in the middle of the users delta
    report, stats = _sync(engine, _settings(server, db_url), kind="full")
    assert report.outcome == "succeeded", report.error
    seen = counters()
    assert seen["graph_unauthorized"] == 1
    assert stats.token_refreshes == 1
    assert seen["tokens_issued_by_client"] == {CLIENT: 2}  # the first token, and one after the revocation
    assert report.counts["read"] == USERS and report.counts["created"] == len(snapshot(engine, "prod")) > 0


def test_a_claims_challenge_is_answered_once_with_its_claims(
    server: EntraServer, engine: Engine, db_url: str, clean_env: Path, counters: Any
) -> None:
    make_env(engine, "prod", type="production")
    server.sim("POST", "auth/challenge", {"count": 1, "after_requests": 3})
    report, stats = _sync(engine, _settings(server, db_url), kind="full")
    assert report.outcome == "succeeded", report.error
    seen = counters()
    assert (seen["challenges_sent"], seen["token_requests_with_claims"], stats.token_refreshes) == (1, 1, 1)


def _set_enabled(server: EntraServer, user_id: str, enabled: bool) -> None:
    r = httpx.patch(
        f"{server.graph_url}/users/{user_id}",
        json={"accountEnabled": enabled},
        headers={"Authorization": f"Bearer {server.token()}"},
        verify=server.ssl_context(),
    )
    assert r.status_code == 204, r.text


def _an_enabled_user(engine: Engine) -> str:
    disabled = SNAPSHOT_COLUMNS.index("isdisabled")
    return min(uid for uid, values in snapshot(engine, "prod").items() if not values[disabled])


def test_a_wrong_secret_fails_the_run_in_one_line_and_changes_nothing(
    server: EntraServer, engine: Engine, db_url: str, clean_env: Path, counters: Any
) -> None:
    make_env(engine, "prod", type="production")
    good = _settings(server, db_url)
    first, _ = _sync(engine, good, kind="full")
    assert first.outcome == "succeeded", first.error
    victim = _an_enabled_user(engine)
    _set_enabled(server, victim, False)
    try:
        rows, checkpoint = snapshot(engine, "prod"), _checkpoint(engine)
        bad = _settings(server, db_url, secret="wrong-secret")
        for kind in ("delta", "full"):
            report, _ = _sync(engine, bad, kind=kind)
            assert report.outcome == "failed"
            assert report.error is not None and "\n" not in report.error
            assert "the client secret is wrong" in report.error and "AADSTS7000215" in report.error
            assert "wrong-secret" not in report.error and "checkpoint did not move" in report.error
            assert snapshot(engine, "prod") == rows and _checkpoint(engine) == checkpoint
        assert counters()["token_failures_by_code"]
        # The right secret again: the change the failed runs did not see is picked up.
        after, _ = _sync(engine, good, kind="delta")
        assert after.outcome == "succeeded", after.error
        assert snapshot(engine, "prod")[victim] != rows[victim]
    finally:
        _set_enabled(server, victim, True)


def test_an_application_without_a_permission_fails_the_run_naming_it(
    server: EntraServer, engine: Engine, db_url: str, clean_env: Path
) -> None:
    client, secret = "6c2d3e4f-5061-4728-9bac-1d2e3f4a5b6c", "narrow-app-secret"
    server.sim(
        "POST",
        "apps",
        {"client_id": client, "secret": secret, "permissions": ["User.Read.All", "Organization.Read.All"]},
    )
    make_env(engine, "prod", type="production")
    report, _ = _sync(engine, _settings(server, db_url, client_id=client, secret=secret), kind="full")
    assert report.outcome == "failed" and report.error is not None
    assert "RoleManagement.Read.Directory (or Directory.Read.All)" in report.error
    assert "admin consent" in report.error and "\n" not in report.error
    assert snapshot(engine, "prod") == {}
