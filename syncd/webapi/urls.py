"""Environment names in URLs, and the Web API root of an environment.

An environment's name is one URL path segment. `syncd env create` accepts names a segment cannot
carry as they are ('/', quotes, spaces, '%', non-ASCII): those are percent-encoded (RFC 3986), every
character but the unreserved ones (`A-Z a-z 0-9 - . _ ~`). The server decodes the raw segment, so
both `my%20env` and any other valid encoding of the same name reach the same environment.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

API_PATH = "api/data/v9.2"


def env_segment(name: str) -> str:
    """The URL path segment that carries environment `name`. `.` and `..` (which `env create`
    refuses, RFC 3986 dot-segments that clients remove from a path) are percent-encoded, so the
    URL of an environment created under older rules at least does not point elsewhere."""
    if name in (".", ".."):
        return "%2E" * len(name)
    return quote(name, safe="-._~")


def env_from_segment(segment: str) -> str:
    return unquote(segment, errors="strict")


def organization_url(base_url: str, env_name: str) -> str:
    """The organization URL of an environment: what `DataverseClient(base_url=...)` takes."""
    return f"{base_url.rstrip('/')}/{env_segment(env_name)}"


def web_api_url(base_url: str, env_name: str) -> str:
    """The Web API root of an environment, ending in '/'."""
    return f"{organization_url(base_url, env_name)}/{API_PATH}/"
