"""The Graph clients of the daemon's HTTP requests: the admin API's and the status pages'."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from syncd.settings import Settings

if TYPE_CHECKING:
    from syncd.directory.auth import TokenProvider
    from syncd.directory.client import GraphClient

#: Opens the Graph client of one request (a context manager).
DirectoryFactory = Callable[[], AbstractContextManager["GraphClient"]]


class RequestDirectories:
    """Opens a Graph client per request on the settings' directory, all of them on one token
    provider (its credential caches the token; none for the embedded tenant), or through
    ``factory`` when one is given (tests, an in-process tenant)."""

    def __init__(self, settings: Settings, factory: DirectoryFactory | None = None) -> None:
        self.settings = settings
        self.factory = factory
        self._tokens: TokenProvider | None = None

    def open(self, *, quick: bool = False) -> AbstractContextManager[GraphClient]:
        """A client for one request. ``quick``: one retry and a 10 s timeout, for a read that must
        not wait out a sync run's retries (a check, a page's diagnosis); otherwise the client's
        defaults."""
        if self.factory is not None:
            return self.factory()
        from syncd.sync.directory import open_directory, token_provider

        if self._tokens is None and not self.settings.is_embedded_directory:
            self._tokens = token_provider(self.settings)
        if quick:
            return open_directory(self.settings, tokens=self._tokens, max_retries=1, timeout=10.0)
        return open_directory(self.settings, tokens=self._tokens)
