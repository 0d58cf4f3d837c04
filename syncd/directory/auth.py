"""Where the client gets its bearer token.

The client asks its provider for a token on every request, so a provider that
refreshes tokens (client credentials, managed identity) only has to return the
current one. A provider that can get a new token when Graph refuses the current
one (a 401, or a claims challenge) is a :class:`RefreshableTokenProvider`; its
implementation over azure-identity is :class:`syncd.directory.credentials.CredentialTokens`.
Tokens are never logged and never appear in a repr.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TokenProvider(Protocol):
    def token(self) -> str:
        """The bearer token to send now (without the ``Bearer`` prefix)."""
        ...


@runtime_checkable
class RefreshableTokenProvider(TokenProvider, Protocol):
    def refresh(self, claims: str | None = None) -> bool:
        """Make the next :meth:`token` a newly issued one (satisfying ``claims``, the decoded JSON of a
        claims challenge, when given). False when this provider cannot renew its token."""
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

    def refresh(self, claims: str | None = None) -> bool:
        return False

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    __str__ = __repr__
