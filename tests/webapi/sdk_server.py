"""The Web API over HTTPS in a thread (uvicorn, a local CA from `ensure_tls`), for the SDK tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from azure.core.credentials import AccessToken
from sqlalchemy import Engine

from syncd.directory.fake.tls import ensure_tls
from syncd.webapi import create_webapi_app


class FakeCredential:
    """A TokenCredential that hands out a fixed token (the simulated environment accepts any)."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("fake-token", int((datetime.now(UTC) + timedelta(hours=1)).timestamp()))


@contextlib.contextmanager
def serve_https(engine: Engine, tls_dir: Path) -> Iterator[tuple[str, Path]]:
    """(the origin `https://127.0.0.1:PORT`, the CA file to trust) while the server runs."""
    files = ensure_tls(tls_dir)
    config = uvicorn.Config(
        create_webapi_app(lambda: engine),
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=False,
        lifespan="off",
        ssl_certfile=str(files.cert_path),
        ssl_keyfile=str(files.key_path),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the Web API did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}", files.ca_path
    finally:
        server.should_exit = True
        thread.join(10)
