"""App-only tokens for Microsoft Graph from an azure-identity credential.

:class:`CredentialTokens` is the token provider of a daemon pointed at a real tenant: it asks
its credential for a token on every request (the credential caches it and renews it before it
expires), gets a new one when Graph refuses the current one (:meth:`CredentialTokens.refresh`),
and turns the credential's failures into one-line :class:`DirectoryAuthError` reasons that name
the likely cause (an expired or wrong secret, an unknown application or tenant, missing consent).

Source: azure-identity's ``ClientSecretCredential``, ``CertificateCredential``,
``ManagedIdentityCredential``, ``WorkloadIdentityCredential``, ``AzureCliCredential`` and
``DefaultAzureCredential``; the Microsoft identity platform's client credentials flow; the
AADSTS error code reference. azure-identity is imported only when a credential is configured.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from syncd.directory.clouds import CLOUDS
from syncd.directory.errors import DirectoryAuthError

CredentialKind = Literal[
    "client-secret", "certificate", "managed-identity", "workload-identity", "azure-cli", "default"
]
CREDENTIAL_KINDS: tuple[str, ...] = (
    "client-secret",
    "certificate",
    "managed-identity",
    "workload-identity",
    "azure-cli",
    "default",
)

#: The AADSTS codes a misconfigured daemon meets, and what each most likely means.
_AADSTS_CAUSES: dict[str, str] = {
    "7000215": "the client secret is wrong (give the secret's value, not its id)",
    "7000222": "the client secret has expired: add a new one to the app registration",
    "700016": "the application (client id) is not registered in this tenant: check "
    "SYNCD_DIRECTORY_CLIENT_ID and SYNCD_DIRECTORY_TENANT_ID",
    "90002": "the tenant was not found: check SYNCD_DIRECTORY_TENANT_ID",
    "900023": "the tenant id is not a valid tenant: check SYNCD_DIRECTORY_TENANT_ID",
    "700027": "the certificate is not registered on the application, or its assertion was refused: "
    "upload the certificate's public part to the app registration",
    "700024": "the client assertion is outside its valid time range: check this machine's clock",
    "7000112": "the application is disabled in this tenant",
    "65001": "admin consent was not granted: grant admin consent for the application's permissions",
    "70011": "the scope is not valid for this cloud: check SYNCD_DIRECTORY_AUTHORITY and SYNCD_DIRECTORY_URL",
    "1002012": "the scope is not valid for this cloud: check SYNCD_DIRECTORY_AUTHORITY and SYNCD_DIRECTORY_URL",
    "500011": "the Graph resource was not found in this tenant's cloud: check SYNCD_DIRECTORY_AUTHORITY "
    "and SYNCD_DIRECTORY_URL",
}
_AADSTS = re.compile(r"AADSTS(\d+)")
#: What azure-core's transport says when the authority cannot be reached at all.
_UNREACHABLE = (
    "Failed to establish a new connection",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Connection refused",
    "Read timed out",
    "Connection aborted",
    "RemoteDisconnected",
)


@dataclass(frozen=True, slots=True)
class CredentialConfig:
    """What the daemon authenticates with (from the settings' ``directory_*`` values).

    ``authority``: the sign-in URL (``https://login.microsoftonline.com`` or a custom one, such as
    the fake's ``https://127.0.0.1:PORT``); ``scope``: the Graph scope (``…/.default``);
    ``ca_bundle``: a PEM file of extra trusted certificate authorities, or None. Secrets are plain
    strings here and never leave this object except towards the credential.
    """

    kind: CredentialKind
    authority: str
    scope: str
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_password: str | None = None
    ca_bundle: str | None = None

    def __repr__(self) -> str:
        return f"CredentialConfig(kind={self.kind!r}, authority={self.authority!r}, client_id={self.client_id!r})"

    @property
    def custom_authority(self) -> bool:
        """True for an authority that is not one of Entra's clouds (instance discovery is then off)."""
        return self.authority.rstrip("/") not in {c.authority for c in CLOUDS.values()}


def make_credential(config: CredentialConfig) -> Any:
    """A new azure-identity credential for `config` (its own, empty token cache).

    Raises ValueError (from azure-identity) for a certificate it cannot load.
    """
    from azure import identity

    common: dict[str, Any] = {"authority": config.authority}
    if config.custom_authority:
        common["disable_instance_discovery"] = True
    if config.ca_bundle:
        common["connection_verify"] = config.ca_bundle
    if config.kind in ("client-secret", "certificate"):
        tenant_id, client_id = _need(config.tenant_id, "tenant id"), _need(config.client_id, "client id")
    if config.kind == "client-secret":
        secret = _need(config.client_secret, "client secret")
        return identity.ClientSecretCredential(tenant_id, client_id, secret, **common)
    if config.kind == "certificate":
        password = config.certificate_password.encode() if config.certificate_password else None
        return identity.CertificateCredential(
            tenant_id,
            client_id,
            certificate_path=config.certificate_path,
            password=password,
            **common,
        )
    if config.kind == "managed-identity":
        return identity.ManagedIdentityCredential(client_id=config.client_id)
    if config.kind == "workload-identity":
        return identity.WorkloadIdentityCredential(
            tenant_id=config.tenant_id, client_id=config.client_id, **common
        )
    if config.kind == "azure-cli":
        return identity.AzureCliCredential(tenant_id=config.tenant_id or "")
    return identity.DefaultAzureCredential(managed_identity_client_id=config.client_id, **common)


def _need(value: str | None, what: str) -> str:
    if not value:
        raise ValueError(f"a {what} is required")
    return value


def explain_token_failure(exc: BaseException, config: CredentialConfig) -> str:
    """One line for a credential that could not get a token: the likely cause, then Entra's code.

    ``exc``: azure-identity's ``ClientAuthenticationError`` (or ``CredentialUnavailableError``).
    """
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    code = _AADSTS.search(text)
    who = f"{config.kind} credential" + (f" of client {config.client_id}" if config.client_id else "")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"could not get a Graph token with the {who}: the TLS certificate of {config.authority} is not "
            "trusted; give its certificate authority in SYNCD_DIRECTORY_CA_BUNDLE (for the fake tenant, the "
            "ca.pem in its --tls-dir)"
        )
    if "Unable to get authority configuration" in text:
        return (
            f"could not get a Graph token with the {who}: the authority {config.authority} does not know the "
            f"tenant {config.tenant_id!r}; check SYNCD_DIRECTORY_TENANT_ID (and SYNCD_DIRECTORY_AUTHORITY)"
        )
    if any(sign in text for sign in _UNREACHABLE):
        return (
            f"could not get a Graph token with the {who}: cannot reach the sign-in authority "
            f"{config.authority} ({_first_sentence(text)})"
        )
    if code and code.group(1) in _AADSTS_CAUSES:
        return f"could not get a Graph token with the {who}: {_AADSTS_CAUSES[code.group(1)]} (AADSTS{code.group(1)})"
    if type(exc).__name__ == "CredentialUnavailableError":
        return f"the {who} is not available here: {_first_sentence(text)}"
    if code:
        return f"could not get a Graph token with the {who}: {_first_sentence(text)}"
    return f"could not get a Graph token with the {who}: {_first_sentence(text) or type(exc).__name__}"


def is_unreachable(exc: BaseException) -> bool:
    """Whether a credential failed because the sign-in authority could not be reached at all
    (refused, unresolvable, timed out): a transient failure, unlike a refusal."""
    text = str(getattr(exc, "message", None) or exc)
    return "CERTIFICATE_VERIFY_FAILED" not in text and any(sign in text for sign in _UNREACHABLE)


def _first_sentence(text: str, limit: int = 240) -> str:
    """The first sentence of a library's message, without its trace ids; cut at a word, never inside one."""
    text = text.removeprefix("Authentication failed: ")
    for stop in (" Trace ID:", " Correlation ID:", " Timestamp:"):
        text = text.split(stop, 1)[0]
    end = text.find(". ")
    if 0 < end < limit:
        return text[: end + 1]
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


class CredentialTokens:
    """The token provider over an azure-identity credential (see the module doc).

    ``token()`` asks the credential every time (it caches and renews); ``refresh()`` replaces the
    credential, so the next token is newly issued; ``refresh(claims)`` asks for a token that
    satisfies a claims challenge. Both raise :class:`DirectoryAuthError` with a one-line reason
    when no token can be had. Thread-safe.
    """

    def __init__(
        self, config: CredentialConfig, factory: Callable[[CredentialConfig], Any] = make_credential
    ):
        self.config = config
        self._factory = factory
        self._lock = threading.Lock()
        self._credential = factory(config)
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"CredentialTokens({self.config!r})"

    __str__ = __repr__

    def token(self) -> str:
        return self._get()

    def refresh(self, claims: str | None = None) -> bool:
        """Get a new token before the next request: one that answers ``claims`` when given,
        otherwise one from a fresh credential (Graph refused the cached one)."""
        with self._lock:
            self.refreshes += 1
            if claims is None:
                old, self._credential = self._credential, self._factory(self.config)
                _close(old)
        if claims is not None:
            self._get(claims)
        return True

    def _get(self, claims: str | None = None) -> str:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            if claims is not None:
                return str(self._credential.get_token(self.config.scope, claims=claims).token)
            return str(self._credential.get_token(self.config.scope).token)
        except ClientAuthenticationError as exc:
            raise DirectoryAuthError(
                explain_token_failure(exc, self.config), transient=is_unreachable(exc)
            ) from None

    def close(self) -> None:
        _close(self._credential)


def _close(credential: Any) -> None:
    close = getattr(credential, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):  # closing is best effort
            close()


def check_certificate(path: str, password: str | None) -> None:
    """Check that `path` holds what ``CertificateCredential`` needs: a PEM file with a private key
    and a certificate, or a PKCS#12 file; opened with `password` when the key is encrypted.

    Raises ValueError with a one-line reason (unreadable, no key, no certificate, wrong password).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    secret = password.encode() if password else None
    if b"-----BEGIN" in data:
        if b"PRIVATE KEY-----" not in data:
            raise ValueError("the PEM file has no private key (it needs the key and the certificate)")
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ValueError("the PEM file has no certificate (it needs the key and the certificate)")
        try:
            key = load_pem_private_key(data, secret)
            cert = x509.load_pem_x509_certificate(data)
        except TypeError:
            raise ValueError(
                "the private key is encrypted: give its password (directory_certificate_password)"
                if secret is None
                else "the private key is not encrypted: give no password"
            ) from None
        except ValueError as exc:
            raise ValueError(f"not a usable PEM key and certificate ({_first_sentence(str(exc))})") from None
    else:
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(data, secret)  # type: ignore[assignment]
        except ValueError:
            raise ValueError("neither a PEM file nor a PKCS#12 file this password opens") from None
        if key is None or cert is None:
            raise ValueError("the PKCS#12 file needs both a private key and a certificate")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ValueError("the private key does not match the certificate (the first certificate in the file)")
