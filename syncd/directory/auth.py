"""Where the client gets its bearer token.

The client asks its provider for a token on every request, so a provider that
refreshes tokens (client credentials, managed identity) only has to return the
current one. Tokens are never logged and never appear in a repr.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TokenProvider(Protocol):
    def token(self) -> str:
        """The bearer token to send now (without the ``Bearer`` prefix)."""
        ...


class StaticToken:
    """A token that never changes: the fake directory, tests, a token from the environment."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a token must be a non-empty string")
        self._value = value

    def token(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    __str__ = __repr__
