"""Open the directory a run reads: the Graph URL of the settings, or the embedded fake tenant."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import SecretStr

from syncd.directory.auth import StaticToken, TokenProvider
from syncd.directory.client import GraphClient
from syncd.directory.clouds import graph_scope
from syncd.directory.credentials import CredentialConfig, CredentialTokens
from syncd.errors import ConfigError
from syncd.settings import Settings

EMBEDDED_BASE_URL = "http://fake-entra.local/v1.0"
EMBEDDED_USERS = 3000
EMBEDDED_SEED = 1


def open_directory(
    settings: Settings, *, tokens: TokenProvider | None = None, **client_options: object
) -> GraphClient:
    """A Graph client for the settings' directory.

    A tenant of the settings' URL is read with their credential (``token_provider``) and trusts
    their CA bundle; ``tokens`` is a provider to share between clients (a daemon keeps one, so its
    credential's cached token outlives a run). With the embedded default, the fake tenant in `settings.directory_store` is served in-process
    (no socket); it is generated on first use (a few thousand users).
    """
    if not settings.is_embedded_directory:
        if settings.directory_ca_bundle:
            client_options.setdefault(
                "verify", ssl.create_default_context(cafile=settings.directory_ca_bundle)
            )
        return GraphClient(
            settings.directory_url,
            token_provider=tokens or token_provider(settings),
            **client_options,  # type: ignore[arg-type]
        )
    token = StaticToken(settings.directory_token.get_secret_value())
    from syncd.directory.fake.server import create_app
    from syncd.directory.transport import InProcessTransport

    store = open_embedded_store(settings)
    return GraphClient(
        EMBEDDED_BASE_URL,
        token_provider=token,
        transport=InProcessTransport(create_app(store)),
        **client_options,  # type: ignore[arg-type]
    )


def credential_config(settings: Settings) -> CredentialConfig | None:
    """The settings' credential for Graph, or None when they give a fixed token (see
    ``Settings.credential_kind``)."""
    kind = settings.credential_kind
    if kind is None:
        return None

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return CredentialConfig(
        kind=kind,  # type: ignore[arg-type]
        authority=settings.authority_url,
        scope=graph_scope(settings.directory_url),
        tenant_id=settings.directory_tenant_id,
        client_id=settings.directory_client_id,
        client_secret=secret(settings.directory_client_secret),
        certificate_path=settings.directory_certificate_path,
        certificate_password=secret(settings.directory_certificate_password),
        ca_bundle=settings.directory_ca_bundle,
    )


def token_provider(settings: Settings) -> TokenProvider:
    """Graph tokens for the settings: from their azure-identity credential, or the fixed token.

    Raises ConfigError when the credential cannot be built (a certificate azure-identity refuses).
    """
    config = credential_config(settings)
    if config is None:
        return StaticToken(settings.directory_token.get_secret_value())
    try:
        return CredentialTokens(config)
    except ValueError as exc:
        raise ConfigError(f"cannot use the {config.kind} credential: {exc}") from None


def open_embedded_store(settings: Settings):  # type: ignore[no-untyped-def]
    """The embedded fake tenant's store, generated on first use."""
    from syncd.directory.fake.generator import generate_tenant
    from syncd.directory.fake.store import TenantStore

    path = Path(settings.directory_store)
    fresh = not path.exists()
    store = TenantStore.open(str(path))
    if fresh or store.counts().get("users", 0) == 0:
        generate_tenant(store, users=EMBEDDED_USERS, seed=EMBEDDED_SEED)
    return store
