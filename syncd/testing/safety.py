"""The guard every syncd.testing fixture passes first: a directory URL must be the fake's own, on
loopback, so a test can never write to a real tenant.

A URL passes when its host is a loopback address (127.0.0.0/8, ::1 or ``localhost``) and the server
there answers ``GET /_sim/tenant`` the way ``syncd entra serve`` does (a JSON object with the
tenant's ``tenant_id`` and change number). Microsoft Graph and any other server fail one or the
other test, and the fixture raises ``UnsafeDirectoryError`` before anything is read or written.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx


class UnsafeDirectoryError(RuntimeError):
    """A directory URL that is not the fake tenant's on loopback; the message names the URL and why."""


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sim_origin(graph_url: str) -> str:
    """``scheme://host:port`` of a Graph base URL such as ``http://127.0.0.1:PORT/v1.0``."""
    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}"


def ensure_fake_directory(graph_url: str, *, timeout_s: float = 5.0, verify: object = True) -> dict:
    """Check that `graph_url` is a fake tenant served on loopback; returns its ``/_sim/tenant`` answer.

    Raises ``UnsafeDirectoryError`` for any other URL: a host that is not loopback, a scheme other
    than http/https, a server that does not answer, or one that answers but is not syncd's fake.
    """
    parts = urlsplit(graph_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDirectoryError(f"refusing directory URL {graph_url!r}: not an http(s) URL")
    if not _is_loopback(parts.hostname):
        raise UnsafeDirectoryError(
            f"refusing directory URL {graph_url!r}: syncd.testing only talks to the fake tenant on "
            "loopback (127.0.0.1, ::1, localhost), never to a real tenant"
        )
    try:
        response = httpx.get(
            sim_origin(graph_url) + "/_sim/tenant",
            timeout=timeout_s,
            verify=verify,  # type: ignore[arg-type]
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        raise UnsafeDirectoryError(
            f"refusing directory URL {graph_url!r}: no fake tenant answers there ({type(exc).__name__})"
        ) from None
    try:
        body = response.json() if response.status_code == 200 else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or "tenant_id" not in body or "change" not in body:
        raise UnsafeDirectoryError(
            f"refusing directory URL {graph_url!r}: the server there is not syncd's fake tenant "
            f"(GET /_sim/tenant answered {response.status_code})"
        )
    return body
