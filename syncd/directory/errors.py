"""What can go wrong when the daemon reads the directory.

Every error the Graph client raises derives from :class:`DirectoryError`, so a
sync run can stop on any of them with one ``except``. None of them carries a
token: only URLs, status codes and Graph's own error code and message.
"""

from __future__ import annotations


class DirectoryError(Exception):
    """The directory could not be read as asked."""


class DirectoryUnavailable(DirectoryError):
    """Graph kept answering 429/503/504 (or not answering) until the retries ran out.

    ``status`` is the last HTTP status, or ``None`` when the last attempt got no
    response at all (connection refused, timeout).
    """

    def __init__(self, url: str, status: int | None, attempts: int) -> None:
        self.url = url
        self.status = status
        self.attempts = attempts
        what = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"directory unavailable after {attempts} attempts ({what}): {url}")


class FullResyncRequired(DirectoryError):
    """Graph no longer knows the delta token (410 ``syncStateNotFound``).

    The caller must drop its checkpoint and start over with a full read.
    ``location`` is the fresh full-delta URL Graph suggests, when it gave one.
    """

    def __init__(self, url: str, location: str | None = None) -> None:
        self.url = url
        self.location = location
        super().__init__(f"delta token expired, a full resync is required: {url}")


class DeadlineReached(DirectoryError):
    """Waiting to retry a request would pass the deadline its caller set (``GraphClient.deadline``).

    ``delay``: the wait in seconds Graph asked for (``Retry-After``) or the backoff chose;
    ``status``: the HTTP status that asked for the retry (None: no response).
    """

    def __init__(self, url: str, status: int | None, delay: float) -> None:
        self.url = url
        self.status = status
        self.delay = delay
        cause = f"HTTP {status}" if status is not None else "no response"
        if delay <= 0 and status is None:
            super().__init__("no time was left for another request to Graph before the deadline")
        else:
            super().__init__(f"waiting {delay:.0f} s to retry Graph ({cause}) would pass the deadline")


class GraphError(DirectoryError):
    """Graph answered with an error status that retrying will not fix."""

    def __init__(self, url: str, status: int, code: str, message: str) -> None:
        self.url = url
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"HTTP {status} {code}: {message} ({url})")


class DirectoryAuthError(DirectoryError):
    """The directory would not let syncd in: no token could be had, or Graph refused the one it got.

    ``reason`` is one line naming the likely cause and what to do (an expired or wrong secret, a
    missing permission or admin consent, a wrong tenant); ``status`` is Graph's HTTP status (401 or
    403), or None when the token endpoint refused; ``transient``: the sign-in authority could not be
    reached (worth retrying, as an unavailable Graph is). Never carries a secret or a token.
    """

    def __init__(
        self, reason: str, *, url: str | None = None, status: int | None = None, transient: bool = False
    ) -> None:
        self.reason = reason
        self.url = url
        self.status = status
        self.transient = transient
        super().__init__(reason)


class MalformedResponse(DirectoryError):
    """A page that does not match the Graph contract; nothing of it was used."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"malformed response from {url}: {reason}")
