"""The fake Entra ID: `syncd entra serve --tls-dir … --require-auth` as a real process, used by
azure-identity, MSAL and the official Graph SDK unchanged, and its Graph-side token check."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from entra_server import GRAPH_SCOPE, CertFiles, EntraServer, entra_server, make_certificate

SECRET_APP = ("11111111-2222-3333-4444-555555555555", "s3cret-value~")
CERT_APP = "66666666-7777-8888-9999-000000000000"
READER = "c2839405-b6c7-4d8e-a1f2-7d8e9fa0b1c2"
ORG_ONLY = "d394a516-c7d8-4e9f-b203-8e9fa0b1c2d3"
X_APP = "e4a5b627-d8e9-4fa0-8314-9fa0b1c2d3e4"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    root = tmp_path_factory.mktemp("certs")
    return {"good": make_certificate(root, "app"), "other": make_certificate(root, "stranger")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, certs: dict[str, CertFiles]) -> Iterator[EntraServer]:
    with entra_server(
        tmp_path_factory.mktemp("entra"),
        apps=dict([SECRET_APP]),
        cert_apps={CERT_APP: certs["good"].cert_pem},
        users=40,
    ) as s:
        yield s


def secret_credential(server: EntraServer, client_id: str, secret: str) -> ClientSecretCredential:
    return ClientSecretCredential(
        server.tenant_id,
        client_id,
        secret,
        authority=server.authority,
        disable_instance_discovery=True,
        connection_verify=str(server.ca_path),
    )


def cert_credential(server: EntraServer, path: Path, password: str | None = None) -> CertificateCredential:
    return CertificateCredential(
        server.tenant_id,
        CERT_APP,
        certificate_path=str(path),
        password=password,
        authority=server.authority,
        disable_instance_discovery=True,
        connection_verify=str(server.ca_path),
    )


def graph_get(server: EntraServer, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with server.client() as http:
        return http.get(f"/v1.0{path}", headers=headers)


def assert_unauthorized(r: httpx.Response, message: str | None = None) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert set(error["innerError"]) >= {"date", "request-id", "client-request-id"}
    if message is not None:
        assert error["message"] == message
    header = r.headers["www-authenticate"]
    assert header.startswith('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/')
    assert 'client_id="00000003-0000-0000-c000-000000000000"' in header
    return dict(error)


# -- the token side -------------------------------------------------------------------------------


def test_openid_configuration_by_tenant_id_and_domain(server: EntraServer) -> None:
    with server.client() as http:
        for tenant in (server.tenant_id, server.tenant_id.upper(), server.domain):
            config = http.get(f"/{tenant}/v2.0/.well-known/openid-configuration").json()
            assert config["token_endpoint"] == server.token_url
            assert config["issuer"] == f"{server.origin}/{server.tenant_id}/v2.0"
            assert config["authorization_endpoint"].startswith(server.origin)
            assert config["jwks_uri"].startswith(server.origin)
        r = http.get("/contoso.example/v2.0/.well-known/openid-configuration")
        assert r.status_code == 400
        body = r.json()
        assert body["error"] == "invalid_request" and body["error_codes"] == [90002]
        assert body["error_description"].startswith("AADSTS90002: Tenant 'contoso.example' not found.")
        assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_client_secret_credential_token_claims(server: EntraServer) -> None:
    client_id, secret = SECRET_APP
    before = server.sim("GET", "auth/counters")["tokens_issued_by_client"].get(client_id, 0)
    token = secret_credential(server, client_id, secret).get_token(GRAPH_SCOPE)
    assert token.expires_on > time.time() + 3000
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["iss"] == f"https://sts.windows.net/{server.tenant_id}/"
    assert claims["tid"] == server.tenant_id and claims["appid"] == client_id
    assert claims["idtyp"] == "app" and "Directory.Read.All" in claims["roles"]
    assert claims["iat"] <= claims["nbf"] < claims["exp"]
    assert graph_get(server, "/organization", token.token).status_code == 200
    after = server.sim("GET", "auth/counters")["tokens_issued_by_client"][client_id]
    assert after == before + 1


def test_wrong_secret_and_unknown_client(server: EntraServer) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        secret_credential(server, SECRET_APP[0], "wrong").get_token(GRAPH_SCOPE)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        secret_credential(server, "99999999-0000-0000-0000-000000000000", "x").get_token(GRAPH_SCOPE)
    r = server.token_response(SECRET_APP[0], "wrong")
    assert r.status_code == 401
    body = r.json()
    assert body["error"] == "invalid_client" and body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    r = server.token_response("nobody", "x")
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    assert (
        "Application with identifier 'nobody' was not found in the directory" in r.json()["error_description"]
    )
    r = server.token_response(*SECRET_APP, scope="https://graph.microsoft.com/User.Read.All")
    assert (
        r.status_code == 400 and r.json()["error"] == "invalid_scope" and r.json()["error_codes"] == [1002012]
    )
    r = server.token_response(*SECRET_APP, scope="https://vault.azure.net/.default")
    assert r.status_code == 400 and r.json()["error_codes"] == [70011]
    r = server.token_response(*SECRET_APP, grant_type="password")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    assert r.json()["error_codes"] == [70003]
    assert server.token_response(*SECRET_APP, scope=f"{server.origin}/.default").status_code == 200
    counters = server.sim("GET", "auth/counters")
    assert counters["token_failures_by_code"]["AADSTS7000215"] >= 2
    assert counters["token_failures_by_code"]["AADSTS700016"] >= 2


def test_certificate_credential_pem_and_pkcs12(server: EntraServer, certs: dict[str, CertFiles]) -> None:
    good = certs["good"]
    for credential in (cert_credential(server, good.pem), cert_credential(server, good.pfx, good.password)):
        token = credential.get_token(GRAPH_SCOPE)
        claims = jwt.decode(token.token, options={"verify_signature": False})
        assert claims["appid"] == CERT_APP and claims["appidacr"] == "2"
        assert graph_get(server, "/users?$top=1", token.token).status_code == 200
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        cert_credential(server, certs["other"].pem).get_token(GRAPH_SCOPE)


def test_msal_sha256_thumbprint_and_reused_assertion(
    server: EntraServer, certs: dict[str, CertFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MSAL without a thumbprint signs PS256 with x5t#S256, and reuses one assertion (same jti)."""
    text = certs["good"].pem.read_text()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))  # requests prefers it to session.verify
    session = requests.Session()
    app = msal.ConfidentialClientApplication(
        CERT_APP,
        client_credential={"private_key": text, "public_certificate": text},
        authority=f"{server.authority}/{server.domain}",
        instance_discovery=False,
        http_client=session,
    )
    for _ in range(2):  # the second request skips the cache with claims; the assertion is reused
        result = app.acquire_token_for_client([GRAPH_SCOPE], claims_challenge='{"access_token":{}}')
        assert "access_token" in result, result


def test_registered_apps_and_permissions(server: EntraServer) -> None:
    apps = server.sim("GET", "apps")["value"]
    assert {a["client_id"] for a in apps} >= {SECRET_APP[0], CERT_APP}
    assert all("secret" not in a for a in apps)
    assert server.sim(
        "POST", "apps", {"client_id": READER, "secret": "r", "permissions": ["Directory.Read.All"]}
    )
    assert server.sim(
        "POST", "apps", {"client_id": ORG_ONLY, "secret": "o", "permissions": ["Organization.Read.All"]}
    )
    reader, org_only = server.token(READER, "r"), server.token(ORG_ONLY, "o")
    assert graph_get(server, "/users", reader).status_code == 200
    r = graph_get(server, "/users", org_only)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "Authorization_RequestDenied"
    assert r.json()["error"]["message"] == "Insufficient privileges to complete the operation."
    assert graph_get(server, "/organization", org_only).status_code == 200
    assert server.sim("GET", "auth/counters")["graph_forbidden"] >= 1
    bad = server.sim_response(
        "POST", "apps", {"client_id": X_APP, "secret": "y", "permissions": ["Nope.All"]}
    )
    assert bad.status_code == 400 and "Nope.All" in bad.json()["error"]["message"]
    assert server.sim_response("POST", "apps", {"client_id": X_APP}).status_code == 400
    not_guid = server.sim_response("POST", "apps", {"client_id": "not-a-guid", "secret": "y"})
    assert not_guid.status_code == 400 and "not-a-guid" in not_guid.json()["error"]["message"]
    server.sim("DELETE", f"apps/{ORG_ONLY}")
    assert server.sim_response("DELETE", f"apps/{ORG_ONLY}").status_code == 404
    assert server.token_response(ORG_ONLY, "o").json()["error_codes"] == [700016]


# -- the Graph side -------------------------------------------------------------------------------


def test_batch_checks_each_sub_request_with_the_batch_token(server: EntraServer) -> None:
    # $batch needs no permission of its own; each request inside it is checked on its own, with the
    # batch's token.
    org_reader = "f5b6c738-e9fa-4b01-9425-a0b1c2d3e4f5"
    server.sim(
        "POST", "apps", {"client_id": org_reader, "secret": "b", "permissions": ["Organization.Read.All"]}
    )
    token = server.token(org_reader, "b")
    requests = [
        {"id": "org", "method": "GET", "url": "/organization"},
        {"id": "users", "method": "GET", "url": "/users?$select=id"},
    ]
    with server.client() as http:
        assert http.post("/v1.0/$batch", json={"requests": requests}).status_code == 401
        r = http.post(
            "/v1.0/$batch", json={"requests": requests}, headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 200, r.text
    got = {x["id"]: x for x in r.json()["responses"]}
    assert got["org"]["status"] == 200
    assert got["users"]["status"] == 403
    assert got["users"]["body"]["error"]["code"] == "Authorization_RequestDenied"
    server.sim("DELETE", f"apps/{org_reader}")


def test_graph_without_or_with_a_bad_token(server: EntraServer) -> None:
    assert_unauthorized(graph_get(server, "/users", None), "Access token is empty.")
    assert_unauthorized(graph_get(server, "/users", "not-a-jwt"))
    token = server.token()
    head, body, _ = token.split(".")
    assert_unauthorized(graph_get(server, "/users", f"{head}.{body}.c2lnbmF0dXJl"))
    assert graph_get(server, "/users", token).status_code == 200


def test_expired_token(tmp_path: Path, server: EntraServer) -> None:
    # Long enough that a busy machine still uses the token before it expires, short enough to wait.
    with entra_server(tmp_path, store=server.store, tls_dir=server.ca_path.parent, token_lifetime=4) as short:
        r = short.token_response(*short_app(short))
        assert r.json()["expires_in"] == 4
        token = r.json()["access_token"]
        assert graph_get(short, "/organization", token).status_code == 200
        time.sleep(4.2)
        assert_unauthorized(
            graph_get(short, "/organization", token), "Access token has expired or is not yet valid."
        )
        assert graph_get(short, "/organization", short.token()).status_code == 200


def short_app(server: EntraServer) -> tuple[str, str]:
    return next(iter(server.apps.items()))


def test_revoke_now_and_after_requests(server: EntraServer) -> None:
    old = server.token()
    server.sim("POST", "auth/revoke")
    assert_unauthorized(graph_get(server, "/organization", old), "Access token has been revoked.")
    token = server.token()
    assert graph_get(server, "/organization", token).status_code == 200
    server.sim("POST", "auth/revoke", {"after_requests": 2})
    assert graph_get(server, "/organization", token).status_code == 200
    assert graph_get(server, "/organization", token).status_code == 200
    assert_unauthorized(graph_get(server, "/organization", token))
    assert graph_get(server, "/organization", server.token()).status_code == 200


def test_claims_challenge(server: EntraServer) -> None:
    token = server.token()
    server.sim("POST", "auth/challenge", {"count": 2, "after_requests": 1})
    assert graph_get(server, "/organization", token).status_code == 200
    for _ in range(2):
        r = graph_get(server, "/organization", token)
        assert_unauthorized(r)
        header = r.headers["www-authenticate"]
        assert 'error="insufficient_claims"' in header
        encoded = header.split('claims="', 1)[1].split('"', 1)[0]
        claims = json.loads(base64.b64decode(encoded))
        nbf = claims["access_token"]["nbf"]
        assert nbf["essential"] is True and abs(int(nbf["value"]) - time.time()) < 60
    assert graph_get(server, "/organization", token).status_code == 200
    assert server.sim("GET", "auth/counters")["challenges_sent"] >= 2


def test_sim_errors(server: EntraServer) -> None:
    r = server.sim_response("POST", "auth/challenge", {"count": -1})
    assert r.status_code == 400 and r.json()["error"]["code"] == "Request_BadRequest"
    r = server.sim_response("POST", "auth/revoke", {"later": 1})
    assert r.status_code == 400
    reset = server.sim("POST", "auth/counters/reset")
    assert reset["tokens_issued"] == 0 and reset["graph_unauthorized"] == 0


# -- the official Graph SDK -----------------------------------------------------------------------


def test_graph_sdk_reads_through_tls_challenges_and_revocation(
    server: EntraServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient

    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
    credential = secret_credential(server, *SECRET_APP)
    provider = AzureIdentityAuthenticationProvider(
        credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"]
    )
    adapter = GraphRequestAdapter(provider)
    adapter.base_url = server.graph_url
    client = GraphServiceClient(request_adapter=adapter)

    async def read() -> tuple[int, str | None]:
        users, page = 0, await client.users.get()
        while page is not None:
            users += len(page.value or [])
            page = await client.users.with_url(page.odata_next_link).get() if page.odata_next_link else None
        org = await client.organization.get()
        assert org and org.value
        return users, org.value[0].id

    expected = server.sim("GET", "tenant")["users"]
    server.sim("POST", "auth/counters/reset")

    async def scenario() -> None:
        try:
            assert await read() == (expected, server.tenant_id)
            # A claims challenge mid-read, then a revocation of the SDK's (CAE-capable) token: the
            # SDK answers both with a fresh token asked for with the challenge's claims.
            server.sim("POST", "auth/challenge", {"count": 1, "after_requests": 1})
            assert await read() == (expected, server.tenant_id)
            server.sim("POST", "auth/revoke", {"after_requests": 1})
            assert await read() == (expected, server.tenant_id)
        finally:
            await adapter._http_client.aclose()

    asyncio.run(scenario())
    counters = server.sim("GET", "auth/counters")
    assert counters["challenges_sent"] == 2
    assert counters["token_requests_with_claims"] >= 3
    assert counters["tokens_issued_by_client"][SECRET_APP[0]] == 3


# -- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--app", "a:b"], "--require-auth"),
        (["--require-auth"], "--tls-dir"),
        (["--require-auth", "--tls-dir", "TLS", "--app", "nocolon"], "nocolon"),
        (["--require-auth", "--tls-dir", "TLS", "--app", "not-a-guid:secret"], "not-a-guid"),
        (["--require-auth", "--tls-dir", "TLS", "--app-cert", "a:/no/such.pem"], "/no/such.pem"),
        (["--require-auth", "--tls-dir", "TLS", "--token-lifetime", "0"], "--token-lifetime"),
        (["--require-auth", "--tls-dir", "TLS", "--token", "t"], "--token"),
    ],
)
def test_serve_rejects_bad_options(tmp_path: Path, args: list[str], named: str) -> None:
    from typer.testing import CliRunner

    from syncd.cli import app

    args = [str(tmp_path / "tls") if a == "TLS" else a for a in args]
    result = CliRunner().invoke(app, ["entra", "serve", "--store", str(tmp_path / "t.db"), *args])
    assert result.exit_code == 2
    assert named in result.output


def test_auth_controls_need_require_auth() -> None:
    from syncd.directory.fake.generator import generate_tenant
    from syncd.directory.fake.server import create_app
    from syncd.directory.fake.store import TenantStore

    store = TenantStore.open(None)

    async def run() -> None:
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
            for method, path in [
                ("GET", "/_sim/apps"),
                ("POST", "/_sim/auth/revoke"),
                ("GET", "/_sim/auth/counters"),
            ]:
                r = await http.request(method, path)
                assert r.status_code == 409 and "--require-auth" in r.json()["error"]["message"]
            tenant = (await http.get("/_sim/tenant")).json()
            assert tenant["tenant_id"] == store.meta("tenant_id") and tenant["users"] == 5
            assert (await http.get("/v1.0/organization")).status_code == 200  # no auth: no token needed

    try:
        generate_tenant(store, 5, 1)
        asyncio.run(run())
    finally:
        store.close()


def assertion(cert: CertFiles, client_id: str, aud: str, **overrides: Any) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(cert.pem.read_bytes(), None)
    now = time.time()
    claims = {"aud": aud, "iss": client_id, "sub": client_id, "iat": now, "nbf": now, "exp": now + 600.5}
    claims["jti"] = "the-same-jti-every-time"
    headers = {"x5t": base64.urlsafe_b64encode(bytes.fromhex(cert.sha1)).decode().rstrip("=")}
    alg = overrides.pop("alg", "RS256")
    if overrides.pop("sha256_only", False):
        headers = {"x5t#S256": base64.urlsafe_b64encode(bytes.fromhex(cert.sha256)).decode()}
    return jwt.encode(claims | overrides, key, algorithm=alg, headers=headers)  # type: ignore[arg-type]


def test_client_assertions(server: EntraServer, certs: dict[str, CertFiles]) -> None:
    good = certs["good"]

    def post(client_assertion: str, client_id: str = CERT_APP) -> httpx.Response:
        data = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "scope": GRAPH_SCOPE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion,
        }
        with server.client() as http:
            return http.post(server.token_url, data=data)

    same = assertion(good, CERT_APP, server.token_url)
    assert post(same).status_code == 200
    assert post(same).status_code == 200  # a reused jti is fine, as with Entra
    assert post(assertion(good, CERT_APP, server.token_url, alg="PS256", sha256_only=True)).status_code == 200
    for bad, code in [
        (assertion(good, CERT_APP, server.token_url + "x"), 700027),
        (assertion(good, "someone-else", server.token_url), 700027),
        (assertion(good, CERT_APP, server.token_url, exp=time.time() - 900), 700024),
        (assertion(certs["other"], CERT_APP, server.token_url), 700027),
        ("not.a.jwt", 700027),
    ]:
        r = post(bad)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        assert r.json()["error_codes"] == [code]
    # A secret-only app has no certificate to check an assertion with.
    assert post(assertion(good, SECRET_APP[0], server.token_url), SECRET_APP[0]).json()["error_codes"] == [
        700027
    ]
    # client_secret_basic
    with server.client() as http:
        r = http.post(
            server.token_url,
            data={"grant_type": "client_credentials", "scope": GRAPH_SCOPE},
            auth=SECRET_APP,
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == body["ext_expires_in"] == 3599


def test_tls_files_made_once(tmp_path: Path) -> None:
    from syncd.directory.fake.tls import ensure_tls

    first = ensure_tls(tmp_path / "tls")
    assert first.key_path.stat().st_mode & 0o777 == 0o600
    pems = [p.read_bytes() for p in (first.ca_path, first.cert_path, first.key_path)]
    again = ensure_tls(tmp_path / "tls")
    assert [p.read_bytes() for p in (again.ca_path, again.cert_path, again.key_path)] == pems
    assert pems[1].count(b"BEGIN CERTIFICATE") >= 1


def test_tls_host_gets_a_certificate_from_the_same_ca(tmp_path: Path) -> None:
    """A service name (--tls-host) missing from the certificate: a new one, issued by the CA clients trust."""
    import ssl

    from cryptography import x509

    from syncd.directory.fake.tls import ensure_tls

    first = ensure_tls(tmp_path / "tls")
    ca = first.ca_path.read_bytes()
    widened = ensure_tls(tmp_path / "tls", ("fake-entra",))
    assert widened.ca_path.read_bytes() == ca
    cert = x509.load_pem_x509_certificate(widened.cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"fake-entra", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    # The new certificate chains to the CA a client already trusts.
    context = ssl.create_default_context(cafile=str(widened.ca_path))
    context.load_cert_chain(str(widened.cert_path), str(widened.key_path))
    again = widened.cert_path.read_bytes()
    assert ensure_tls(tmp_path / "tls", ("fake-entra",)).cert_path.read_bytes() == again


def test_registrations_and_a_revocation_outlive_a_restart(tmp_path: Path) -> None:
    """Entra keeps an application's registration and a revocation; so does the tenant file."""
    with entra_server(tmp_path, apps={SECRET_APP[0]: SECRET_APP[1]}) as first:
        first.sim(
            "POST",
            "apps",
            {"client_id": READER.upper(), "secret": "r", "permissions": ["Directory.Read.All"]},
        )
        before = first.token(SECRET_APP[0], SECRET_APP[1])
        assert graph_get(first, "/users", before).status_code == 200
        first.sim("POST", "auth/revoke")
        assert graph_get(first, "/users", before).status_code == 401
    with entra_server(tmp_path, apps={SECRET_APP[0]: SECRET_APP[1]}, store=first.store) as again:
        assert graph_get(again, "/users", before).status_code == 401
        assert READER in {a["client_id"] for a in again.sim("GET", "apps")["value"]}
        assert graph_get(again, "/users", again.token(READER, "r")).status_code == 200
