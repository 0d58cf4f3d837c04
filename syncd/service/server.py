"""uvicorn in a thread of the daemon, so the scheduler and the HTTP endpoint share one process."""

from __future__ import annotations

import contextlib
import threading
import time

import structlog
import uvicorn
from starlette.types import ASGIApp

from syncd.errors import SyncdError

log = structlog.get_logger(__name__)


class HttpServer:
    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.host = host
        self.port = port
        # proxy_headers off: uvicorn would otherwise take the client's address from
        # X-Forwarded-For on a connection from 127.0.0.1, and any local process could then pose as
        # any address (the sign-in limit counts wrong tokens per address).
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="syncd-http", daemon=True)

    def _serve(self) -> None:
        # uvicorn exits when it cannot bind; start() reports it
        with contextlib.suppress(SystemExit):
            self.server.run()

    def start(self, timeout_s: float = 15.0) -> None:
        """Start serving; raises SyncdError when the address cannot be bound."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise SyncdError(
                    f"cannot serve HTTP on {self.host}:{self.port} (address in use or not available)"
                )
            time.sleep(0.02)
        log.info("http_listening", host=self.host, port=self.bound_port)

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from `port` when that was 0)."""
        for server in getattr(self.server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.port

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout_s)
