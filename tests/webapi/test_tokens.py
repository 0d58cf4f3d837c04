"""`syncd dataverse serve --require-token`: only the fake Entra ID's tokens for the organization.

Real processes: `syncd entra serve --tls-dir … --require-auth` issues the tokens (azure-identity's
ClientSecretCredential asks for `<organization URL>/.default`, as Microsoft's SDK does), and
`syncd dataverse serve --require-token` checks them with the tenant file's key.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import Engine, select

from syncd.dataverse.schema import Environment, SyncEvent, SystemUser
from syncd.directory.fake.entra import access_token_key
from syncd.directory.fake.store import TenantStore
from syncd.webapi.auth import TokenCheck, Unauthorized
from syncd.webapi.urls import organization_url, web_api_url
from tests.entra_server import EntraServer, entra_server
from tests.service.procs import Proc, Stack, free_port, wait_for
from tests.webapi.conftest import add_users, env_id

dataverse = pytest.importorskip("PowerPlatform.Dataverse.client")
pytest.importorskip("azure.identity")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _token(store: Path, **claims: object) -> str:
    s = TenantStore.open(str(store))
    try:
        key, tid = access_token_key(s.meta("secret") or ""), s.meta("tenant_id")
    finally:
        s.close()
    now = int(time.time())
    body = {"aud": "x", "tid": tid, "iat": now, "nbf": now, "exp": now + 600, "appid": "hand-made"} | claims
    return jwt.encode(body, key, algorithm="HS256")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[EntraServer, Stack, str, Proc]]:
    tls = tmp_path / "tls"  # one CA for both servers
    with entra_server(tmp_path / "entra", users=10, tls_dir=tls) as entra:
        stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
        try:
            stack.upgrade()
            stack.create_env("prod")
            stack.create_env("test")
            # The app's application user in both environments, as an administrator adds it: without
            # one, Dataverse refuses the app's every request (403 "not a member of the organization").
            client_id = uuid.UUID(next(iter(entra.apps)))
            engine = stack.engine()
            for n, name in enumerate(("prod", "test")):
                add_users(engine, env_id(engine, name), [_app_user(client_id, n)])
            port = free_port()
            args = ["dataverse", "serve", "--port", str(port), "--tls-dir", str(tls), "--require-token"]
            args += ["--directory-store", str(entra.store)]
            proc = stack._spawn("webapi", args, stack.env())
            origin = f"https://127.0.0.1:{port}"
            ctx = ssl.create_default_context(cafile=str(tls / "ca.pem"))
            wait_for(
                lambda: httpx.get(web_api_url(origin, "prod"), verify=ctx, timeout=2).status_code == 401,
                30,
                f"the Web API:\n{proc.tail()}",
            )
            yield entra, stack, origin, proc
            assert proc.stop() == 0
        finally:
            stack.close()


def test_the_sdk_with_entra_tokens_reads_and_writes_and_other_tokens_are_refused(
    servers: tuple[EntraServer, Stack, str, Proc], monkeypatch: pytest.MonkeyPatch
) -> None:
    entra, stack, origin, proc = servers
    assert f"tokens required: those of tenant {entra.tenant_id}" in proc.tail()
    org = organization_url(origin, "prod")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(entra.ca_path))
    client = dataverse.DataverseClient(org, entra.secret_credential())
    got = {
        r["systemuserid"]: r["domainname"]
        for page in client.records.list_pages("systemuser", select=["domainname"], page_size=5)
        for r in page
    }
    with stack.engine().connect() as conn:
        rows = conn.execute(
            select(SystemUser.systemuserid, SystemUser.domainname)
            .join(Environment, Environment.id == SystemUser.environment_id)
            .where(Environment.name == "prod")
        )
        expected = {str(r.systemuserid): r.domainname for r in rows}
    assert got == expected and got
    # R14: a write of a column sync never writes, with the same token
    some = next(iter(got))
    client.records.update("systemuser", some, {"new_costcentre": "CC-9"})
    with stack.engine().connect() as conn:
        assert (
            conn.execute(
                select(SystemUser.new_costcentre).where(SystemUser.systemuserid == uuid.UUID(some))
            ).scalar_one()
            == "CC-9"
        )
    # R12: the customer's email, through the SDK; the event names the app that wrote it
    client.records.update("systemuser", some, {"internalemailaddress": "edited@contoso.example"})
    client_id = next(iter(entra.apps))
    with stack.engine().connect() as conn:
        email, synced = conn.execute(
            select(SystemUser.internalemailaddress, SystemUser.syncd_syncedemail).where(
                SystemUser.systemuserid == uuid.UUID(some)
            )
        ).one()
        reasons = list(
            conn.execute(
                select(SyncEvent.rule, SyncEvent.reason).where(SyncEvent.systemuserid == uuid.UUID(some))
            )
        )
    assert email == "edited@contoso.example" != synced
    assert [r.rule for r in reasons] == ["R14", "R12"]
    assert all(f"app {client_id} through the Dataverse Web API" in r.reason for r in reasons)
    client.close()

    api = web_api_url(origin, "prod")
    ctx = entra.ssl_context()

    def get(token: str | None, url: str = api + "systemusers") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.get(url, headers=headers, verify=ctx, timeout=10)

    def refused(r: httpx.Response, why: str | None) -> None:
        assert r.status_code == 401, r.text
        assert r.json() == {
            "error": {"code": "0x8005F101", "message": "The requested resource requires authentication."}
        }
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith(
            f"Bearer authorization_uri=https://login.microsoftonline.com/{entra.tenant_id}/oauth2/authorize"
        )
        assert f"resource_id={origin}/" in challenge
        if why is not None:
            assert why in challenge, challenge

    refused(get(None), None)
    refused(get("not-a-jwt"), "not valid")
    # A Graph token (aud https://graph.microsoft.com) is no Dataverse token.
    refused(get(entra.token()), "audience")
    # A token for another organization (environment) is refused here.
    r = entra.token_response(
        *next(iter(entra.apps.items())), scope=f"{organization_url(origin, 'test')}/.default"
    )
    assert r.status_code == 200, r.text
    other = r.json()["access_token"]
    refused(get(other), "audience")
    assert get(other, web_api_url(origin, "test") + "systemusers").status_code == 200
    # Expired, and signed with another key.
    refused(get(_token(entra.store, aud=org, nbf=0, iat=0, exp=int(time.time()) - 5)), "expired")
    refused(
        get(jwt.encode({"aud": org, "tid": entra.tenant_id, "nbf": 0, "exp": 2**31}, "k" * 32)), "not valid"
    )
    client_id = next(iter(entra.apps))
    assert get(_token(entra.store, aud=org, appid=client_id)).status_code == 200
    # A valid token of an app that is no user of the environment: Dataverse's 403, for every request.
    for url in (api + "systemusers", api + "WhoAmI"):
        stranger = get(_token(entra.store, aud=org, appid=str(uuid.uuid4())), url)
        assert stranger.status_code == 403, stranger.text
        assert stranger.json()["error"] == {
            "code": "0x80072560",
            "message": "The user is not a member of the organization.",
        }
    me = get(_token(entra.store, aud=org, appid=client_id), api + "WhoAmI").json()
    with stack.engine().connect() as conn:
        app_row = conn.execute(
            select(SystemUser.systemuserid)
            .join(Environment, Environment.id == SystemUser.environment_id)
            .where(Environment.name == "prod", SystemUser.applicationid == uuid.UUID(client_id))
        ).scalar_one()
    assert me["UserId"] == str(app_row)
    # Graph, in turn, refuses the Dataverse token.
    dv = entra.token_response(*next(iter(entra.apps.items())), scope=f"{org}/.default").json()["access_token"]
    assert (
        httpx.get(
            f"{entra.graph_url}/users", headers={"Authorization": f"Bearer {dv}"}, verify=ctx
        ).status_code
        == 401
    )


def _app_user(app_id: uuid.UUID, n: int = 0) -> dict[str, object]:
    """An application user's row (among the last by systemuserid, so that no test picks it first;
    `n` tells the rows of one app in several environments apart)."""
    return {
        "systemuserid": uuid.UUID(int=2**128 - 1 - n),
        "applicationid": app_id,
        "domainname": str(app_id),
        "fullname": "app",
        "syncd_kind": "application",
        "accessmode": 4,
        "isdisabled": False,
        "createdon": datetime.now(UTC),
    }


def test_with_a_token_check_every_request_needs_an_enabled_user_of_the_environment(filled: Engine) -> None:
    """Dataverse serves only members of the organization: a valid token whose caller has no row in
    the environment is 403 0x80072560 for any request, a disabled caller's 403 0x80040225."""
    from syncd.directory.transport import InProcessTransport
    from syncd.webapi import create_webapi_app
    from tests.webapi.conftest import OBJ_ALICE, ROWS

    check = TokenCheck(b"k" * 32, "tid-1", clock=lambda: 1000.0)
    app = create_webapi_app(lambda: filled, auth=check)

    def headers(**claims: object) -> dict[str, str]:
        body = {"aud": "http://testserver/prod", "tid": "tid-1", "nbf": 900, "exp": 1100} | claims
        return {"Authorization": "Bearer " + jwt.encode(body, b"k" * 32, algorithm="HS256")}

    batch = "--b\r\nContent-Type: application/http\r\n\r\nGET systemusers?$top=1 HTTP/1.1\r\n\r\n--b--\r\n"
    with httpx.Client(transport=InProcessTransport(app), base_url="http://testserver") as c:
        alice = headers(oid=str(OBJ_ALICE))
        assert c.get("/prod/api/data/v9.2/systemusers", headers=alice).status_code == 200
        assert c.get("/prod/api/data/v9.2/WhoAmI", headers=alice).json()["UserId"] == str(
            ROWS[0]["systemuserid"]
        )
        for who, code in (
            (headers(oid=str(uuid.uuid4())), "0x80072560"),
            (headers(appid=str(uuid.uuid4())), "0x80072560"),
            (headers(oid=str(ROWS[1]["azureactivedirectoryobjectid"])), "0x80040225"),  # Bob, disabled
        ):
            for method, path, body in (
                ("GET", "systemusers", None),
                ("GET", "WhoAmI", None),
                ("GET", "EntityDefinitions", None),
                ("POST", "$batch", batch),
            ):
                extra = {"Content-Type": "multipart/mixed; boundary=b"} if body else {}
                r = c.request(method, "/prod/api/data/v9.2/" + path, headers=who | extra, content=body)
                assert r.status_code == 403, (path, r.text)
                assert r.json()["error"]["code"] == code


def test_token_check_in_process(tmp_path: Path) -> None:
    check = TokenCheck(b"k" * 32, "tid-1", clock=lambda: 1000.0)
    org = "https://127.0.0.1:8443/prod"
    good = {"aud": org, "tid": "tid-1", "nbf": 900, "exp": 1100}
    assert check.check("Bearer " + jwt.encode(good, b"k" * 32, algorithm="HS256"), org)["tid"] == "tid-1"
    # The host is case-insensitive, the environment's segment is not.
    assert check.check(
        "bearer " + jwt.encode(good, b"k" * 32, algorithm="HS256"), "HTTPS://127.0.0.1:8443/prod"
    )
    for claims, url in (
        (good | {"exp": 1000}, org),
        (good | {"nbf": 1001}, org),
        (good | {"tid": "other"}, org),
        (good, "https://127.0.0.1:8443/Prod"),
        ({k: v for k, v in good.items() if k != "aud"}, org),
    ):
        with pytest.raises(Unauthorized):
            check.check("Bearer " + jwt.encode(claims, b"k" * 32, algorithm="HS256"), url)
    with pytest.raises(ValueError, match="no tenant file"):
        TokenCheck.from_store(tmp_path / "missing.db")


def test_the_audience_matches_whatever_the_case_of_its_percent_encoding_scheme_and_host() -> None:
    """An environment named 'a/b' is the segment a%2Fb; a client may spell it a%2fb (RFC 3986:
    the hex digits are case-insensitive), and the scheme and host in any case."""
    check = TokenCheck(b"k" * 32, "tid-1", clock=lambda: 1000.0)

    def accepted(aud: str, url: str) -> bool:
        claims = {"aud": aud, "tid": "tid-1", "nbf": 900, "exp": 1100}
        try:
            check.check("Bearer " + jwt.encode(claims, b"k" * 32, algorithm="HS256"), url)
        except Unauthorized:
            return False
        return True

    org = organization_url("https://127.0.0.1:8443", "a/b")
    assert org == "https://127.0.0.1:8443/a%2Fb"
    for aud in (
        org,
        "https://127.0.0.1:8443/a%2fb",
        "HTTPS://127.0.0.1:8443/a%2fb/",
        "https://127.0.0.1:8443/%61%2Fb",  # an unreserved letter, encoded
    ):
        assert accepted(aud, org), aud
        assert accepted(org, aud), aud
    assert accepted("https://Example.COM:443/a%2fb", "https://example.com/a%2Fb")
    for aud in (
        "https://127.0.0.1:8443/a/b",  # '/' is not '%2F'
        "https://127.0.0.1:8443/A%2Fb",  # the name itself is exact
        "https://127.0.0.1:8443/a%2Fb%2F",
        "http://127.0.0.1:8443/a%2Fb",
        "https://127.0.0.1:8444/a%2Fb",
    ):
        assert not accepted(aud, org), aud


def test_an_app_with_a_token_check_serves_an_environment_named_with_a_slash(filled: Engine) -> None:
    """End to end: the request's raw segment a%2fb against a token for .../a%2Fb."""
    from syncd.directory.transport import InProcessTransport
    from syncd.webapi import create_webapi_app
    from tests.webapi.conftest import add_env

    app_id = uuid.uuid4()
    add_users(filled, add_env(filled, "a/b"), [_app_user(app_id)])
    check = TokenCheck(b"k" * 32, "tid-1", clock=lambda: 1000.0)
    app = create_webapi_app(lambda: filled, auth=check)
    claims = {"aud": "http://testserver/a%2Fb", "tid": "tid-1", "nbf": 900, "exp": 1100, "appid": str(app_id)}
    token = jwt.encode(claims, b"k" * 32, algorithm="HS256")
    with httpx.Client(transport=InProcessTransport(app), base_url="http://testserver") as c:
        for segment in ("a%2Fb", "a%2fb"):
            r = c.get(f"/{segment}/api/data/v9.2/systemusers", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, (segment, r.text)
        r = c.get("/a%2FB/api/data/v9.2/systemusers", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
