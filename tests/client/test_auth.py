"""A refused token: one renewal and one retry, a claims challenge answered once, then a one-line reason.

Graph's shapes: 401 ``InvalidAuthenticationToken`` with ``WWW-Authenticate: Bearer ...``, and under
continuous access evaluation ``error="insufficient_claims", claims="<base64 JSON>"``; 403
``Authorization_RequestDenied`` for a missing application permission.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from client_helpers import ScriptedGraph, error, page, user

from syncd.directory.auth import RefreshableTokenProvider, StaticToken
from syncd.directory.client import GraphClient
from syncd.directory.credentials import CredentialConfig, CredentialTokens, explain_token_failure
from syncd.directory.errors import DirectoryAuthError

MakeClient = Callable[..., GraphClient]
BEARER = 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'
CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'


class Tokens:
    """A provider that counts: token n until refreshed, then n + 1."""

    def __init__(self) -> None:
        self.n = 1
        self.refreshes: list[str | None] = []

    def token(self) -> str:
        return f"t{self.n}"

    def refresh(self, claims: str | None = None) -> bool:
        self.refreshes.append(claims)
        self.n += 1
        return True


def refused(message: str = "Access token has expired or is not yet valid.", **extra: str) -> Any:
    header = BEARER + "".join(f', {k}="{v}"' for k, v in extra.items())
    return error(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": header})


def test_a_refused_token_is_renewed_once_and_the_read_goes_on(
    graph: ScriptedGraph, make_client: MakeClient
) -> None:
    tokens = Tokens()
    assert isinstance(tokens, RefreshableTokenProvider)
    graph.on("/users", refused(), page([user("a")]))
    client = make_client(token_provider=tokens)
    users = [u.id for p in client.iter_users() for u in p]
    assert users == ["a"]
    assert [r.headers["Authorization"] for r in graph.requests] == ["Bearer t1", "Bearer t2"]
    assert tokens.refreshes == [None]
    assert client.stats.token_refreshes == 1
    assert client.stats.retries == 0  # a renewal is not a retry of an unavailable Graph


def test_a_claims_challenge_is_handed_to_the_provider_decoded(
    graph: ScriptedGraph, make_client: MakeClient
) -> None:
    tokens = Tokens()
    encoded = base64.b64encode(CLAIMS.encode()).decode()
    graph.on(
        "/users",
        refused("Continuous access evaluation", error="insufficient_claims", claims=encoded),
        page([]),
    )
    list(make_client(token_provider=tokens).iter_users())
    assert tokens.refreshes == [CLAIMS]


def test_a_second_refusal_fails_with_one_line_naming_the_cause(
    graph: ScriptedGraph, make_client: MakeClient
) -> None:
    tokens = Tokens()
    graph.on("/users", refused())
    with pytest.raises(DirectoryAuthError) as caught:
        list(make_client(token_provider=tokens).iter_users())
    assert len(graph.requests) == 2 and tokens.refreshes == [None]
    reason = str(caught.value)
    assert "\n" not in reason and caught.value.status == 401
    assert "newly issued token" in reason and "SYNCD_DIRECTORY_TENANT_ID" in reason


def test_a_fixed_token_is_not_retried(graph: ScriptedGraph, make_client: MakeClient) -> None:
    graph.on("/users", refused())
    with pytest.raises(DirectoryAuthError, match="cannot be renewed"):
        list(make_client(token_provider=StaticToken("x")).iter_users())
    assert len(graph.requests) == 1


def test_each_request_gets_its_own_renewal(graph: ScriptedGraph, make_client: MakeClient) -> None:
    """A token revoked again later in a read is renewed again: the limit is one per request."""
    tokens = Tokens()
    nxt = "https://graph.test/v1.0/users?$skiptoken=2"
    graph.on("/users", refused(), page([user("a")], next_link=nxt), refused(), page([user("b")]))
    users = [u.id for p in make_client(token_provider=tokens).iter_users() for u in p]
    assert users == ["a", "b"] and tokens.refreshes == [None, None]


def test_a_missing_permission_names_it(graph: ScriptedGraph, make_client: MakeClient) -> None:
    graph.on(
        "/groups/g1/members",
        error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
    )
    with pytest.raises(DirectoryAuthError) as caught:
        list(make_client(token_provider=Tokens()).iter_group_members("g1"))
    reason = str(caught.value)
    assert caught.value.status == 403 and "\n" not in reason
    assert "GroupMember.Read.All (or Directory.Read.All)" in reason and "GET /groups/g1/members" in reason
    assert "admin consent" in reason


# -- the provider over azure-identity -----------------------------------------------------------


class FakeCredential:
    """Stands in for an azure-identity credential: counts calls, fails when told to."""

    made = 0

    def __init__(self, fail: str | None = None) -> None:
        FakeCredential.made += 1
        self.serial = FakeCredential.made
        self.fail = fail
        self.calls: list[tuple[str, str | None]] = []
        self.closed = False

    def get_token(self, scope: str, claims: str | None = None) -> Any:
        self.calls.append((scope, claims))
        if self.fail:
            raise ClientAuthenticationError(message=self.fail)
        return type("Token", (), {"token": f"cred{self.serial}-{len(self.calls)}"})()

    def close(self) -> None:
        self.closed = True


CONFIG = CredentialConfig(
    kind="client-secret",
    authority="https://login.microsoftonline.com",
    scope="https://graph.microsoft.com/.default",
    tenant_id="contoso.onmicrosoft.com",
    client_id="11111111-2222-3333-4444-555555555555",
    client_secret="not-to-be-seen",
)


def test_the_provider_asks_its_credential_each_time_and_renews_with_a_new_credential() -> None:
    made: list[FakeCredential] = []

    def factory(config: CredentialConfig) -> FakeCredential:
        made.append(FakeCredential())
        return made[-1]

    tokens = CredentialTokens(CONFIG, factory)
    tokens.token(), tokens.token()
    assert made[0].calls == [(CONFIG.scope, None)] * 2
    assert tokens.refresh() is True
    assert len(made) == 2 and made[0].closed  # the old cache is gone with its credential
    tokens.token()
    assert made[1].calls == [(CONFIG.scope, None)]
    tokens.refresh(CLAIMS)
    assert made[1].calls[-1] == (CONFIG.scope, CLAIMS) and len(made) == 2
    assert "not-to-be-seen" not in repr(tokens) and "not-to-be-seen" not in repr(CONFIG)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Authentication failed: AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
            "in the request is the client secret value. Trace ID: 1 Correlation ID: 2 Timestamp: 3",
            "the client secret is wrong",
        ),
        ("AADSTS7000222: The provided client secret keys for app '…' are expired.", "has expired"),
        (
            "AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.",
            "not registered",
        ),
        ("AADSTS90002: Tenant 'x' not found.", "tenant was not found"),
        ("AADSTS65001: The user or administrator has not consented", "admin consent"),
        ("AADSTS50000: something else happened. Trace ID: 9", "something else happened"),
    ],
)
def test_token_failures_read_as_one_line_with_the_likely_cause(message: str, expected: str) -> None:
    tokens = CredentialTokens(CONFIG, lambda c: FakeCredential(fail=message))
    with pytest.raises(DirectoryAuthError) as caught:
        tokens.token()
    reason = str(caught.value)
    assert expected in reason and "\n" not in reason and "Trace ID" not in reason
    assert CONFIG.client_id in reason and "not-to-be-seen" not in reason


def test_an_unavailable_credential_says_so() -> None:
    from azure.identity import CredentialUnavailableError

    reason = explain_token_failure(
        CredentialUnavailableError(
            "ManagedIdentityCredential authentication unavailable, no response from IMDS"
        ),
        CredentialConfig(kind="managed-identity", authority="https://login.microsoftonline.com", scope="s"),
    )
    assert reason.startswith("the managed-identity credential is not available here")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Authentication failed: HTTPSConnection(host='127.0.0.1', port=9): Failed to establish a new "
            "connection: [Errno 111] Connection refused",
            "cannot reach the sign-in authority https://login.microsoftonline.com",
        ),
        (
            "Authentication failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
            "local issuer certificate (_ssl.c:1006)",
            "give its certificate authority in SYNCD_DIRECTORY_CA_BUNDLE",
        ),
    ],
)
def test_an_unreachable_or_untrusted_authority_is_named(message: str, expected: str) -> None:
    reason = explain_token_failure(ClientAuthenticationError(message=message), CONFIG)
    assert expected in reason and "\n" not in reason


def test_an_unreachable_sign_in_authority_is_retried_like_an_unavailable_graph(
    graph: ScriptedGraph, make_client: MakeClient, sleeps: Any
) -> None:
    class Flaky(Tokens):
        def __init__(self, failures: int) -> None:
            super().__init__()
            self.failures = failures

        def token(self) -> str:
            if self.failures:
                self.failures -= 1
                raise DirectoryAuthError("cannot reach the sign-in authority", transient=True)
            return super().token()

    graph.on("/users", page([user("a")]))
    client = make_client(token_provider=Flaky(2))
    assert [u.id for p in client.iter_users() for u in p] == ["a"]
    assert len(sleeps.delays) == 2 and client.stats.unavailable == 2
    with pytest.raises(DirectoryAuthError, match="cannot reach"):
        list(make_client(token_provider=Flaky(99), max_retries=1).iter_users())


def test_a_refused_token_is_not_retried_as_unreachable(graph: ScriptedGraph, make_client: MakeClient) -> None:
    class Refused(Tokens):
        def token(self) -> str:
            raise DirectoryAuthError("the client secret is wrong")

    graph.on("/users", page([]))
    with pytest.raises(DirectoryAuthError, match="secret is wrong"):
        list(make_client(token_provider=Refused()).iter_users())
    assert graph.requests == []


def test_a_second_claims_challenge_points_at_policies_not_the_tenant(
    graph: ScriptedGraph, make_client: MakeClient
) -> None:
    encoded = base64.b64encode(CLAIMS.encode()).decode()
    graph.on(
        "/users", refused("TokenCreatedWithOutdatedPolicies", error="insufficient_claims", claims=encoded)
    )
    with pytest.raises(DirectoryAuthError) as caught:
        list(make_client(token_provider=Tokens()).iter_users())
    assert "Conditional Access" in str(caught.value) and "TENANT_ID" not in str(caught.value)


def test_an_unknown_tenant_at_a_custom_authority_names_the_tenant() -> None:
    message = (
        "Authentication failed: Unable to get authority configuration for https://127.0.0.1:8443/"
        "00000000-0000-0000-0000-000000000001. Authority would typically be in a format of "
        "https://login.microsoftonline.com/your_tenant Also please double check your tenant name or GUID is correct."
    )
    reason = explain_token_failure(ClientAuthenticationError(message=message), CONFIG)
    assert (
        "does not know the tenant 'contoso.onmicrosoft.com'" in reason
        and "SYNCD_DIRECTORY_TENANT_ID" in reason
    )
