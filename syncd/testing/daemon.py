"""``syncd run`` as a real process for a test: against a fake tenant and a test database.

The process gets its settings from ``SYNCD_*`` variables built here alone (the caller's own
``SYNCD_*`` variables and any ``syncd.toml`` are kept away from it), serves HTTP on a free
loopback port, and logs JSON to ``log_path``. ``start`` waits for ``/healthz``; ``stop`` sends
SIGTERM and waits (SIGKILL after the timeout), so no process outlives the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from syncd.testing.safety import ensure_fake_directory

# Set by the fixture for the daemon itself (where it listens, how it logs), besides the settings
# every test's syncd gets from ``test_settings`` (its database and fake tenant).
OWN_SETTINGS = frozenset({"http_host", "http_port", "admin_token", "log_format"})
RESERVED_FOR_CHILD = ("database_url", "directory_url", "directory_token")
PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


def _env_value(value: Any) -> str:
    """A setting's value as a SYNCD_* variable: secrets revealed, booleans in lower case."""
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _die_with_parent() -> Any:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the process that started it dies
    (a test run killed by a CI timeout leaves no daemon behind); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child only calls into it
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


class DaemonError(RuntimeError):
    """The daemon did not start (the message ends with the tail of its log) or did not stop."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SyncdDaemon:
    """A ``syncd run`` process: ``url`` is its HTTP base (``http://127.0.0.1:PORT``), ``admin_token``
    the bearer token of its admin API; ``client()`` an httpx client bound to ``url``.

    ``settings`` are extra ``SYNCD_*`` values by setting name (``{"delta_interval_seconds": 5}``).
    Raises ``UnsafeDirectoryError`` when ``graph_url`` is not a fake tenant on loopback.
    """

    def __init__(
        self,
        database_url: str,
        graph_url: str,
        workdir: Path,
        *,
        admin_token: str = "syncd-testing-admin",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        from syncd.testing.environments import test_settings

        ensure_fake_directory(graph_url)
        given = dict(settings or {})
        taken = sorted({str(name).lower() for name in given} & OWN_SETTINGS)
        if taken:
            raise ValueError(
                f"setting {taken[0]!r} cannot be given to the syncd_daemon: it listens on a free loopback "
                "port and logs JSON to its log file (give admin_token as the admin_token argument)"
            )
        self.database_url, self.graph_url, self.workdir = database_url, graph_url, workdir
        self.admin_token = admin_token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "syncd-run.log"
        own = {
            "http_host": "127.0.0.1",
            "http_port": self.port,
            "admin_token": admin_token,
            "log_format": "json",
        }
        # Refuses reserved, unknown or bad settings, and one given twice in two spellings.
        checked = test_settings(database_url, graph_url, {**given, **own})
        names = {str(name).lower() for name in given} | set(own) | set(RESERVED_FOR_CHILD)
        values = {name: getattr(checked, name) for name in sorted(names)}
        # Neither the caller's SYNCD_* variables nor its proxy: the daemon talks to loopback only.
        self._env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SYNCD_") and k.lower() not in PROXY_VARIABLES
        }
        self._env.update({f"SYNCD_{k.upper()}": _env_value(v) for k, v in values.items()})
        self._popen: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()

    def _watch_parent(self) -> None:
        """Stop the daemon when this process loses its parent: a pytest-xdist worker whose pytest
        was killed lives on until its test ends, and the kernel's signal (``_die_with_parent``)
        only follows the worker; this follows pytest itself."""
        parent = os.getppid()
        while not self._stopped.wait(0.5):
            if os.getppid() != parent:
                popen = self._popen
                if popen is not None and popen.poll() is None:
                    popen.send_signal(signal.SIGTERM)
                return

    def start(self, timeout_s: float = 30.0) -> SyncdDaemon:
        """Start ``python -m syncd run`` and wait until it answers ``/healthz``; raises
        ``DaemonError`` (with its log's tail) when it exits or does not answer in time."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                [sys.executable, "-m", "syncd", "run"],
                env=self._env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only prctl runs between fork and exec
            )
        threading.Thread(target=self._watch_parent, name="syncd-daemon-watch", daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while True:
            if self._popen.poll() is not None:
                raise DaemonError(f"syncd run exited with {self._popen.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise DaemonError(
                    f"syncd run did not answer /healthz within {timeout_s}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def client(self, **options: Any) -> httpx.Client:
        """An httpx client bound to the daemon's URL, sending the admin token (the caller closes it)."""
        options.setdefault("timeout", 30.0)
        options.setdefault("headers", {"Authorization": f"Bearer {self.admin_token}"})
        return httpx.Client(base_url=self.url, trust_env=False, **options)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then wait; SIGKILL after ``timeout_s``. Returns the exit status (None if never
        started). Raises ``DaemonError`` when it had to be killed."""
        self._stopped.set()
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(10)
                raise DaemonError(f"syncd run did not stop on SIGTERM within {timeout_s}s") from None
        return self._popen.returncode

    def __enter__(self) -> SyncdDaemon:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
