"""Bearer tokens, as Dataverse checks them (`syncd dataverse serve --require-token`).

Only access tokens issued by the fake Entra ID's token endpoint (`syncd entra serve`) are accepted:
HS256 JWTs signed with the key derived from the tenant file's secret
(`syncd.directory.fake.entra.access_token_key`), of that tenant (`tid`), valid now (`nbf`, `exp`),
and for this organization: `aud` is the organization URL the client called (Dataverse's scope is
`<organization URL>/.default`), so a Graph token, or one for another environment, is refused.
The two URLs are compared after RFC 3986's normalisation (`_norm`): the scheme, the host and the
hex digits of a percent-encoding in any case (an environment `a/b` is `a%2Fb` or `a%2fb`), the
environment's name itself exactly.

A refused request is 401 with Dataverse's error body and
`WWW-Authenticate: Bearer authorization_uri=https://login.microsoftonline.com/<tenant>/oauth2/authorize,
resource_id=<organization URL>` (where a client learns whom to ask for a token), plus RFC 6750's
`error="invalid_token"` and why.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from syncd.webapi.errors import ODataError

#: Dataverse's AccessTokenExpired / authentication error ("Web service error codes").
NOT_AUTHENTICATED = "0x8005F101"
MESSAGE = "The requested resource requires authentication."


class Unauthorized(ODataError):
    """401, with the challenge to send in `WWW-Authenticate`."""

    def __init__(self, challenge: str) -> None:
        super().__init__(401, NOT_AUTHENTICATED, MESSAGE)
        self.challenge = challenge


@dataclass
class TokenCheck:
    key: bytes
    tenant_id: str
    clock: Callable[[], float] = field(default=time.time)
    leeway: int = 0

    @classmethod
    def from_store(cls, path: str | Path) -> TokenCheck:
        """The check of the tokens the fake Entra ID issues for the tenant in file `path`."""
        from syncd.directory.fake.entra import access_token_key
        from syncd.directory.fake.store import TenantStore

        if not Path(path).is_file():
            raise ValueError(f"{path}: no tenant file (the fake Entra ID's --store)")
        store = TenantStore.open(str(path))
        try:
            secret = store.meta("secret") or ""
            tenant = (store.meta("tenant_id") or "").lower()
        finally:
            store.close()
        if not secret or not tenant:
            raise ValueError(f"{path}: the tenant file has no secret or tenant id to check tokens with")
        return cls(access_token_key(secret), tenant)

    def challenge(self, organization_url: str, error: str | None = None) -> str:
        value = (
            f"Bearer authorization_uri=https://login.microsoftonline.com/{self.tenant_id}/oauth2/authorize, "
            f"resource_id={organization_url}"
        )
        if error:
            value += f', error="invalid_token", error_description="{error}"'
        return value

    def check(self, authorization: str | None, organization_url: str) -> dict[str, Any]:
        """The token's claims; raises Unauthorized when it is missing or not valid here."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(self.challenge(organization_url))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=["HS256"],
                options={
                    "verify_aud": False,
                    "verify_exp": False,  # checked below, on `clock`
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "nbf", "aud", "tid"],
                },
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(
                self.challenge(organization_url, f"The access token is not valid: {exc}.")
            ) from None
        if str(claims.get("tid", "")).lower() != self.tenant_id:
            raise Unauthorized(self.challenge(organization_url, "The access token is from another tenant."))
        now = self.clock()
        if not isinstance(claims["nbf"], int | float) or not isinstance(claims["exp"], int | float):
            raise Unauthorized(self.challenge(organization_url, "The access token is not valid."))
        if not claims["nbf"] - self.leeway <= now < claims["exp"] + self.leeway:
            raise Unauthorized(self.challenge(organization_url, "The access token has expired."))
        if _norm(str(claims.get("aud", ""))) != _norm(organization_url):
            raise Unauthorized(
                self.challenge(organization_url, "The access token's audience is not this organization.")
            )
        return claims


_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _norm(url: str) -> str:
    """An organization URL for comparison, normalised as RFC 3986 section 6.2.2 says: scheme and
    host case-insensitive (and a default port left out), percent-encodings in upper case and those
    of unreserved characters decoded; the path otherwise as it is (`a%2Fb` is not `a/b`, and
    `Prod` is not `prod`)."""
    parts = urlsplit(url.strip().rstrip("/"))
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is not None:
        netloc = netloc.removesuffix(default_port)
    return f"{scheme}://{netloc}{_PERCENT.sub(_percent, parts.path)}"
