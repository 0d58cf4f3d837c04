"""The fake tenant's Entra ID side: app-only (client credentials) tokens, and their check on Graph.

`EntraAuth` holds, in memory, the registered applications (a client secret and/or certificates,
and the application permissions granted to each), issues access tokens at
`POST /{tenant}/oauth2/v2.0/token` the way Entra ID's v2.0 endpoint does (so azure-identity, MSAL
and the Graph SDK work against it unchanged, given `authority=https://127.0.0.1:PORT` and
`disable_instance_discovery=True`), serves the tenant's OpenID configuration, and checks the
bearer token of every Graph request (`check`): Graph's 401 `InvalidAuthenticationToken` for a
missing, malformed, foreign, expired or revoked token, 403 `Authorization_RequestDenied` when the
token's `roles` do not grant the endpoint (`syncd.directory.permissions.ENDPOINT_NEEDS`).

Test controls: `revoke` (every token issued so far stops working, now or at the Graph request after
the next N), `challenge` (answer N Graph requests, after the next M, with a continuous access
evaluation claims challenge) and counters. N and M count Graph requests whose token is otherwise
good (a request refused for a missing or expired token does not move them). A revoked token that
was issued with the CAE client capability (`xms_cc` CP1, asked for in the token request's
`claims`) gets a claims challenge, as Graph does, so a CAE client recovers by itself; any other
revoked token gets a plain 401.

Access tokens are HS256 JWTs signed with a key derived from the tenant store's secret, so they
survive a restart of the server over the same store (and die with a newly generated tenant).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

import jwt
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.directory.fake.store import TenantStore
from syncd.directory.ids import normalize_object_id
from syncd.directory.permissions import ALL_PERMISSIONS, ENDPOINT_NEEDS

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUTHORIZATION_URI = "https://login.microsoftonline.com/common/oauth2/authorize"
WWW_AUTHENTICATE = f'Bearer realm="", authorization_uri="{AUTHORIZATION_URI}", client_id="{GRAPH_APP_ID}"'
DEFAULT_LIFETIME = 3599
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ASSERTION_ALGORITHMS = ("RS256", "PS256")
ASSERTION_SKEW = 300  # seconds of clock skew allowed on a client assertion, as Entra does

#: Every permission name the fake knows (a registration naming another is refused).
KNOWN_PERMISSIONS: frozenset[str] = frozenset(
    {name for need in ENDPOINT_NEEDS.values() for name in need.granted_by} | ALL_PERMISSIONS
)

#: Where the tenant file keeps the registered applications and the last revocation time.
APPS_KEY = "entra_apps"
REVOKED_KEY = "entra_revoked_at"

_CERT_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def access_token_key(secret: str) -> bytes:
    """The HS256 key of the access tokens of the tenant whose secret is `secret` (the tenant file's
    `secret`): what `syncd dataverse serve --require-token` verifies tokens with."""
    return hmac.new(secret.encode(), b"syncd fake Entra access tokens", hashlib.sha256).digest()


def is_dataverse_resource(resource: str) -> bool:
    """Whether `resource` names a Dataverse organization: `https://<org>.crm*.dynamics.com`, or the
    organization URL `syncd dataverse serve` gives an environment (`http(s)://host[:port]/<env>`)."""
    parts = urlsplit(resource.rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        return False
    if parts.hostname.lower().endswith(".dynamics.com") and not parts.path:
        return True
    segments = parts.path.split("/")
    return len(segments) == 2 and segments[0] == "" and segments[1] != ""


class AuthConfigError(ValueError):
    """A registration the fake refuses (unknown permission, unreadable certificate, ...)."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """A registered certificate: its public key and the thumbprints a client assertion names it by."""

    public_key: Any
    sha1: str  # hex, upper case, as the portal shows it
    sha256: str
    x5t: str  # base64url (no padding) of the SHA-1 thumbprint, as in a JWT header
    x5t_s256: str
    pem: str  # the certificate itself, kept with the registration

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Certificate:
        data = pem.encode() if isinstance(pem, str) else pem
        found = _CERT_PEM.search(data)
        if found is None:
            raise AuthConfigError("no PEM certificate (-----BEGIN CERTIFICATE-----) found")
        try:
            cert = x509.load_pem_x509_certificate(found.group(0))
        except ValueError as exc:
            raise AuthConfigError(f"unreadable certificate: {exc}") from None
        return cls.from_x509(cert)

    @classmethod
    def from_x509(cls, cert: x509.Certificate) -> Certificate:
        der = cert.public_bytes(serialization.Encoding.DER)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        sha1 = hashlib.sha1(der).digest()  # noqa: S324 - x5t is SHA-1 by definition (RFC 7515)
        sha256 = hashlib.sha256(der).digest()
        return cls(
            public_key=cert.public_key(),
            sha1=sha1.hex().upper(),
            sha256=sha256.hex().upper(),
            x5t=_b64url(sha1),
            x5t_s256=_b64url(sha256),
            pem=pem,
        )

    def as_dict(self) -> dict[str, str]:
        return {"sha1_thumbprint": self.sha1, "sha256_thumbprint": self.sha256}


@dataclass(slots=True)
class App:
    client_id: str
    secret: str | None
    certificates: tuple[Certificate, ...]
    permissions: frozenset[str]

    def as_dict(self) -> dict[str, Any]:
        """The registration without its secret."""
        return {
            "client_id": self.client_id,
            "has_secret": self.secret is not None,
            "certificates": [c.as_dict() for c in self.certificates],
            "permissions": sorted(self.permissions),
        }


class TokenError(Exception):
    """An answer of the token endpoint other than a token: Entra's error shape."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status, self.error, self.code, self.message = status, error, code, message


@dataclass
class _Countdown:
    """`after` more authenticated Graph requests pass untouched, then `count` are hit."""

    after: int
    count: int = 1


@dataclass
class _State:
    revoked_at: float | None = None
    revoke_pending: _Countdown | None = None
    challenge_pending: _Countdown | None = None
    counters: Counter[str] = field(default_factory=Counter)
    issued: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unpadded(value: Any) -> str | None:
    """A base64url thumbprint as compared: MSAL pads it with '=', RFC 7515 does not."""
    return value.rstrip("=") if isinstance(value, str) else None


def _now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _origin(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class EntraAuth:
    """The registered apps, the token endpoint, the Graph-side token check and the test controls."""

    def __init__(
        self,
        store: TenantStore,
        *,
        token_lifetime: int = DEFAULT_LIFETIME,
        clock: Any = time.time,
    ) -> None:
        if not isinstance(token_lifetime, int) or token_lifetime < 1:
            raise AuthConfigError("token_lifetime must be an integer >= 1")
        self.store = store
        self.token_lifetime = token_lifetime
        self._clock = clock
        self._lock = threading.RLock()
        self._apps: dict[str, App] = {}
        self._state = _State()
        self._issued_at: dict[str, float] = {}  # uti -> exact issue time (for revocation)
        self._key_for: tuple[str, bytes] | None = None
        self._process_key = secrets.token_bytes(32)
        self._load()

    # -- the tenant ------------------------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        return (self.store.meta("tenant_id") or "").lower()

    @property
    def domain(self) -> str:
        return (self.store.meta("domain") or "").lower()

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in {self.tenant_id, self.domain} - {""}

    def _key(self) -> bytes:
        secret = self.store.meta("secret") or ""
        if not secret:
            return self._process_key
        cached = self._key_for
        if cached is None or cached[0] != secret:
            cached = self._key_for = (secret, access_token_key(secret))
        return cached[1]

    # -- registrations ---------------------------------------------------------------------------

    def register(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        certificates: Iterable[Certificate | str | bytes] = (),
        permissions: Iterable[str] | None = None,
    ) -> App:
        """Register (or replace) an application; permissions default to ALL_PERMISSIONS.

        ``client_id`` is a GUID in any spelling (Entra's application ids are), kept in lower case.
        The registration is kept in the tenant file, as Entra keeps it across a restart.
        """
        try:
            client_id = normalize_object_id(client_id)
        except ValueError:
            raise AuthConfigError(f"client_id {client_id!r} is not an application id (a GUID)") from None
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise AuthConfigError("secret must be a non-empty string")
        certs = tuple(c if isinstance(c, Certificate) else Certificate.from_pem(c) for c in certificates)
        if secret is None and not certs:
            raise AuthConfigError(f"app {client_id!r} needs a secret or a certificate")
        if permissions is None:
            granted = ALL_PERMISSIONS
        else:
            names = list(permissions)
            if not all(isinstance(p, str) for p in names):
                raise AuthConfigError("permissions must be a list of permission names")
            unknown = sorted(set(names) - KNOWN_PERMISSIONS)
            if unknown:
                raise AuthConfigError(f"unknown permission {unknown[0]!r}")
            granted = frozenset(names)
        app = App(client_id, secret, certs, granted)
        with self._lock:
            self._apps[client_id] = app
            self._save_apps()
        return app

    def remove(self, client_id: str) -> bool:
        with self._lock:
            gone = self._apps.pop(client_id.lower(), None) is not None
            self._save_apps()
            return gone

    def _save_apps(self) -> None:
        apps = [
            {
                "client_id": a.client_id,
                "secret": a.secret,
                "certificates": [c.pem for c in a.certificates],
                "permissions": sorted(a.permissions),
            }
            for a in self._apps.values()
        ]
        self.store.set_meta(APPS_KEY, orjson.dumps(apps).decode())

    def _load(self) -> None:
        """The registrations and the revocation time the tenant file keeps."""
        raw = self.store.meta(APPS_KEY)
        for entry in orjson.loads(raw) if raw else []:
            app = App(
                entry["client_id"],
                entry.get("secret"),
                tuple(Certificate.from_pem(pem) for pem in entry.get("certificates", [])),
                frozenset(entry.get("permissions", ALL_PERMISSIONS)),
            )
            self._apps[app.client_id] = app
        revoked = self.store.meta(REVOKED_KEY)
        self._state.revoked_at = float(revoked) if revoked else None

    def _revoke_now(self, when: float) -> None:
        self._state.revoked_at, self._state.revoke_pending = when, None
        self.store.set_meta(REVOKED_KEY, repr(when))

    def app(self, client_id: str) -> App | None:
        with self._lock:
            return self._apps.get(client_id.lower())

    def apps(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.as_dict() for a in sorted(self._apps.values(), key=lambda a: a.client_id)]

    # -- controls --------------------------------------------------------------------------------

    def revoke(self, after_requests: int = 0) -> dict[str, Any]:
        """Every token issued before now (or before the Graph request after the next
        `after_requests` ones) stops working."""
        with self._lock:
            if after_requests <= 0:
                self._revoke_now(self._clock())
            else:
                self._state.revoke_pending = _Countdown(after_requests)
            return self._control_state()

    def challenge(self, count: int, after_requests: int = 0) -> dict[str, Any]:
        """Answer `count` Graph requests, after the next `after_requests`, with a claims challenge."""
        with self._lock:
            self._state.challenge_pending = _Countdown(after_requests, count) if count > 0 else None
            return self._control_state()

    def _control_state(self) -> dict[str, Any]:
        s = self._state
        return {
            "revoked_at": s.revoked_at,
            "revoke_after_requests": s.revoke_pending.after if s.revoke_pending else None,
            "challenges_pending": s.challenge_pending.count if s.challenge_pending else 0,
            "challenge_after_requests": s.challenge_pending.after if s.challenge_pending else 0,
        }

    def counters(self) -> dict[str, Any]:
        with self._lock:
            s = self._state
            return {
                "tokens_issued": sum(s.issued.values()),
                "tokens_issued_by_client": dict(sorted(s.issued.items())),
                "token_requests_with_claims": s.counters["token_requests_with_claims"],
                "token_failures": sum(s.failures.values()),
                "token_failures_by_code": dict(sorted(s.failures.items())),
                "graph_unauthorized": s.counters["graph_unauthorized"],
                "graph_forbidden": s.counters["graph_forbidden"],
                "challenges_sent": s.counters["challenges_sent"],
                **self._control_state(),
            }

    def reset_counters(self) -> dict[str, Any]:
        with self._lock:
            self._state.counters.clear()
            self._state.issued.clear()
            self._state.failures.clear()
        return self.counters()

    # -- the token side --------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._openid, methods=["GET"]),
            Route("/{tenant}/discovery/v2.0/keys", self._keys, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
        ]

    def _tenant_error(self, tenant: str) -> TokenError:
        return TokenError(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may "
            "happen if there are no active subscriptions for the tenant.",
        )

    def _error_response(self, request: Request, exc: TokenError) -> Response:
        trace_id = str(uuid.uuid4())
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = _now_stamp()
        body = {
            "error": exc.error,
            "error_description": f"AADSTS{exc.code}: {exc.message} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {stamp}",
            "error_codes": [exc.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{_origin(request)}/error?code={exc.code}",
        }
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        return Response(orjson.dumps(body), exc.status, headers=headers, media_type="application/json")

    async def _openid(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not self._known_tenant(tenant):
            return self._error_response(request, self._tenant_error(tenant))
        base = f"{_origin(request)}/{self.tenant_id}"
        config = {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{GRAPH_RESOURCE}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "tid"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
        return Response(orjson.dumps(config), media_type="application/json")

    async def _keys(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not self._known_tenant(tenant):
            return self._error_response(request, self._tenant_error(tenant))
        # The fake signs its tokens with a symmetric key: there is no public key to publish.
        return Response(orjson.dumps({"keys": []}), media_type="application/json")

    async def _token(self, request: Request) -> Response:
        try:
            body = await self._issue_for(request)
        except TokenError as exc:
            with self._lock:
                self._state.failures[f"AADSTS{exc.code}"] += 1
            return self._error_response(request, exc)
        headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
        return Response(orjson.dumps(body), headers=headers, media_type="application/json")

    async def _issue_for(self, request: Request) -> dict[str, Any]:
        tenant = request.path_params["tenant"]
        if not self._known_tenant(tenant):
            raise self._tenant_error(tenant)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = (await request.body()).decode("utf-8", "replace")
        form: dict[str, str] = {}
        if ctype == "application/x-www-form-urlencoded":
            for key, value in parse_qsl(raw, keep_blank_values=True):
                form.setdefault(key, value)
        basic = request.headers.get("authorization", "")
        if basic[:6].lower() == "basic " and "client_id" not in form:  # client_secret_basic
            try:
                user, _, password = base64.b64decode(basic[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
            if user:
                form["client_id"] = unquote_plus(user)
                form.setdefault("client_secret", unquote_plus(password))
        for name in ("grant_type", "client_id"):
            if not form.get(name):
                raise TokenError(
                    400,
                    "invalid_request",
                    900144,
                    f"The request body must contain the following parameter: '{name}'.",
                )
        grant = form["grant_type"]
        if grant != "client_credentials":
            raise TokenError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id = form["client_id"]
        resource = self._resource(request, form.get("scope"))
        app = self.app(client_id)
        if app is None:
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.store.meta('domain') or self.tenant_id}'. This can happen if the application "
                "has not been installed by the administrator of the tenant or consented to by any "
                "user in the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        if form.get("client_assertion") or form.get("client_assertion_type"):
            self._check_assertion(request, app, form)
            method = "2"
        elif form.get("client_secret"):
            if app.secret is None or not hmac.compare_digest(
                form["client_secret"].encode(), app.secret.encode()
            ):
                raise TokenError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                )
            method = "1"
        else:
            raise TokenError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        claims = form.get("claims")
        cae = False
        if claims:
            with self._lock:
                self._state.counters["token_requests_with_claims"] += 1
            cae = self._asks_cp1(claims)
        return self.issue(app, resource, auth_method=method, cae=cae)

    @staticmethod
    def _asks_cp1(claims: str) -> bool:
        """Whether a `claims` request parameter declares the CP1 (CAE) client capability."""
        try:
            parsed = orjson.loads(claims)
            values = parsed["access_token"]["xms_cc"]["values"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False
        return isinstance(values, list) and "CP1" in values

    def _resource(self, request: Request, scope: str | None) -> str:
        if not scope or not scope.strip():
            raise TokenError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        scopes = [s for s in scope.split() if s not in ("openid", "profile", "offline_access")]
        if len(scopes) != 1:
            raise TokenError(
                400,
                "invalid_scope",
                70011,
                f"The provided request must include a 'scope' input parameter. The provided value for "
                f"the input parameter 'scope' is not valid. The scope {scope} is not valid.",
            )
        only = scopes[0]
        if not only.endswith("/.default"):
            raise TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {only} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        resource = only[: -len("/.default")].rstrip("/")
        if not self._is_graph(request, resource) and not is_dataverse_resource(resource):
            raise TokenError(
                400,
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {only} is "
                "not valid. The resource is not Microsoft Graph (https://graph.microsoft.com), this server, "
                "or a Dataverse organization URL.",
            )
        return resource

    @staticmethod
    def _is_graph(request: Request, resource: str) -> bool:
        """Whether `resource` (a token audience or a scope's resource) names Graph or this server."""
        lowered = resource.lower().rstrip("/")
        if lowered in (GRAPH_RESOURCE, GRAPH_APP_ID):
            return True
        parts = urlsplit(lowered)
        if parts.scheme not in ("http", "https") or parts.path or not parts.hostname:
            return False
        return parts.hostname in LOOPBACK or parts.hostname == (request.url.hostname or "").lower()

    def _check_assertion(self, request: Request, app: App, form: dict[str, str]) -> None:
        def bad(message: str, code: int = 700027) -> TokenError:
            return TokenError(401, "invalid_client", code, message)

        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError(
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: 'client_assertion_type' "
                f"with the value '{ASSERTION_TYPE}'.",
            )
        assertion = form.get("client_assertion") or ""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise bad("Client assertion failed signature validation. The assertion is not a JWT.") from None
        alg = header.get("alg")
        if alg not in ASSERTION_ALGORITHMS:
            raise bad(f"Client assertion is signed with {alg!r}; use RS256 or PS256.")
        cert = next(
            (
                c
                for c in app.certificates
                if _unpadded(header.get("x5t")) == c.x5t or _unpadded(header.get("x5t#S256")) == c.x5t_s256
            ),
            None,
        )
        if cert is None:
            used = header.get("x5t#S256") or header.get("x5t") or "(none)"
            raise bad(
                "The certificate with identifier used to sign the client assertion is not registered "
                f"on application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{used}', Configured keys: {len(app.certificates)} for app Id '{app.client_id}'.]"
            )
        token_url = f"{_origin(request)}/{self.tenant_id}/oauth2/v2.0/token"
        audiences = list(dict.fromkeys([token_url, str(request.url.replace(query="", fragment=""))]))
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key,
                algorithms=[alg],
                audience=audiences,
                leeway=ASSERTION_SKEW,
                options={"require": ["aud", "iss", "sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise bad("Client assertion is not within its valid time range.", 700024) from None
        except jwt.ImmatureSignatureError:
            raise bad("Client assertion is not within its valid time range.", 700024) from None
        except jwt.InvalidAudienceError:
            raise bad(
                f"Client assertion audience claim does not match Realm issuer. The 'aud' claim must be "
                f"the token endpoint '{token_url}'."
            ) from None
        except jwt.InvalidSignatureError:
            raise bad("Client assertion failed signature validation.") from None
        except jwt.PyJWTError as exc:
            raise bad(f"Client assertion is not valid: {exc}.") from None
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise bad(
                "Client assertion contains an invalid issuer or subject: both must be the client id "
                f"'{app.client_id}'."
            )

    def issue(self, app: App, resource: str, *, auth_method: str = "1", cae: bool = False) -> dict[str, Any]:
        """A token response for `app` (counted), its access token a signed Entra-like JWT."""
        now = self._clock()
        iat = int(now)
        tid = self.tenant_id
        uti = _b64url(secrets.token_bytes(16))
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"syncd-fake-entra:{tid}:{app.client_id.lower()}"))
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.token_lifetime,
            "app_displayname": app.client_id,
            "appid": app.client_id,
            "appidacr": auth_method,
            "idp": f"https://sts.windows.net/{tid}/",
            "idtyp": "app",
            "oid": oid,
            "roles": sorted(app.permissions),
            "sub": oid,
            "tid": tid,
            "uti": uti,
            "ver": "1.0",
        }
        if cae:
            claims["xms_cc"] = ["CP1"]
        token = jwt.encode(claims, self._key(), algorithm="HS256", headers={"typ": "JWT"})
        with self._lock:
            self._issued_at[uti] = now
            if len(self._issued_at) > 100_000:  # forget the oldest; they are long expired in tests
                for old in list(self._issued_at)[:50_000]:
                    del self._issued_at[old]
            self._state.issued[app.client_id] += 1
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": token,
        }

    # -- the Graph side --------------------------------------------------------------------------

    def _graph_error(
        self, request: Request, status: int, code: str, message: str, www_authenticate: str | None = None
    ) -> Response:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request_id
        body = {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = {"request-id": request_id, "client-request-id": client_request_id}
        if www_authenticate:
            headers["WWW-Authenticate"] = www_authenticate
        with self._lock:
            self._state.counters["graph_unauthorized" if status == 401 else "graph_forbidden"] += 1
        return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")

    def _unauthorized(self, request: Request, message: str) -> Response:
        return self._graph_error(request, 401, "InvalidAuthenticationToken", message, WWW_AUTHENTICATE)

    def _challenge(self, request: Request, not_before: float, message: str) -> Response:
        claims = {"access_token": {"nbf": {"essential": True, "value": str(int(not_before))}}}
        encoded = base64.b64encode(orjson.dumps(claims)).decode()
        header = f'{WWW_AUTHENTICATE}, error="insufficient_claims", claims="{encoded}"'
        with self._lock:
            self._state.counters["challenges_sent"] += 1
        return self._graph_error(request, 401, "InvalidAuthenticationToken", message, header)

    def _validate(self, request: Request) -> dict[str, Any] | str:
        """The token's claims, or why it is refused (Graph's message)."""
        value = request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if not value.strip() or scheme.lower() != "bearer" or not token:
            return "Access token is empty."
        if token.count(".") != 2:
            return "IDX14100: JWT is not well formed, there are no dots (.). CompactToken parsing failed."
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(),
                algorithms=["HS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            return "Access token validation failure. Invalid signature."
        except jwt.PyJWTError:
            return "CompactToken parsing failed with error code: 80049217"
        if str(claims.get("tid", "")).lower() != self.tenant_id:
            return "Access token validation failure. Invalid issuer or tenant."
        if not self._is_graph(request, str(claims.get("aud", ""))):
            return "Access token validation failure. Invalid audience."
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float) or not nbf <= now < exp:
            return "Access token has expired or is not yet valid."
        return claims

    def check(self, request: Request, method: str, route_path: str) -> Response | None:
        """None when the request's token may call (method, route_path under /v1.0); else Graph's
        401 or 403 answer."""
        claims = self._validate(request)
        if isinstance(claims, str):
            return self._unauthorized(request, claims)
        now = self._clock()
        with self._lock:
            s = self._state
            if s.revoke_pending is not None:
                if s.revoke_pending.after <= 0:
                    self._revoke_now(now)
                else:
                    s.revoke_pending.after -= 1
            revoked_at = s.revoked_at
            issued = self._issued_at.get(str(claims.get("uti")), float(claims.get("iat") or 0))
            challenged = False
            if revoked_at is None or issued >= revoked_at:
                pending = s.challenge_pending
                if pending is not None:
                    if pending.after > 0:
                        pending.after -= 1
                    else:
                        challenged = True
                        pending.count -= 1
                        if pending.count <= 0:
                            s.challenge_pending = None
        if revoked_at is not None and issued < revoked_at:
            if "CP1" in (claims.get("xms_cc") or []):
                return self._challenge(
                    request,
                    revoked_at,
                    "Continuous access evaluation resulted in challenge with result: InteractionRequired "
                    "and code: TokenIssuedBeforeRevocationTimestamp",
                )
            return self._unauthorized(request, "Access token has been revoked.")
        if challenged:
            return self._challenge(
                request,
                now,
                "Continuous access evaluation resulted in challenge with result: InteractionRequired "
                "and code: TokenCreatedWithOutdatedPolicies",
            )
        need = ENDPOINT_NEEDS.get((method, route_path))
        roles = claims.get("roles") or []
        if need is not None and not need.met_by(frozenset(r for r in roles if isinstance(r, str))):
            return self._graph_error(
                request,
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        return None
