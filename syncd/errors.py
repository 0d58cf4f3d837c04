"""Errors a user can act on. Each carries the offending value in its message."""

from __future__ import annotations

from typing import Final

BAD_REQUEST: Final = "bad request"  # the JSON ``error`` of every bad-input (400) answer of the API


class SyncdError(Exception):
    """A failure the user can fix; the CLI prints its message on one line and exits with `exit_code`."""

    exit_code = 2


class ConfigError(SyncdError):
    pass


class DatabaseNotAtHead(SyncdError):
    pass


class NotFound(SyncdError):
    exit_code = 2


class Conflict(SyncdError):
    exit_code = 2
