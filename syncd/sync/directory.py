"""Open the directory a run reads: the Graph URL of the settings, or the embedded fake tenant."""

from __future__ import annotations

from pathlib import Path

from syncd.directory.auth import StaticToken
from syncd.directory.client import GraphClient
from syncd.settings import Settings

EMBEDDED_BASE_URL = "http://fake-entra.local/v1.0"
EMBEDDED_USERS = 3000
EMBEDDED_SEED = 1


def open_directory(settings: Settings, **client_options: object) -> GraphClient:
    """A Graph client for the settings' directory.

    With the embedded default, the fake tenant in `settings.directory_store` is served in-process
    (no socket); it is generated on first use (a few thousand users).
    """
    token = StaticToken(settings.directory_token.get_secret_value())
    if not settings.is_embedded_directory:
        return GraphClient(settings.directory_url, token_provider=token, **client_options)  # type: ignore[arg-type]
    from syncd.directory.fake.server import create_app
    from syncd.directory.transport import InProcessTransport

    store = open_embedded_store(settings)
    return GraphClient(
        EMBEDDED_BASE_URL,
        token_provider=token,
        transport=InProcessTransport(create_app(store)),
        **client_options,  # type: ignore[arg-type]
    )


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
