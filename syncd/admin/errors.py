"""The errors of the admin operations, on top of ``syncd.errors``.

The CLI exits 2 for bad input, an unknown environment or user (``SyncdError``, ``NotFound``),
and 1 for a refusal by the rules (``Refused``) or a directory that could not be read
(``DirectoryFailed``). The HTTP API answers 400, 404, 409 and 502 for the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from syncd.errors import SyncdError
from syncd.rules import Check


class Refused(SyncdError):
    """The rules refuse the operation; nothing was changed. ``checks`` are the checks that failed."""

    exit_code = 1

    def __init__(self, message: str, checks: Iterable[Check] = ()) -> None:
        super().__init__(message)
        self.checks: tuple[Check, ...] = tuple(checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": "refused",
            "detail": str(self),
            "checks": [check_dict(c) for c in self.checks],
        }


class DirectoryFailed(SyncdError):
    """The directory could not be read (unavailable, or an answer that made no sense)."""

    exit_code = 1


def check_dict(check: Check) -> dict[str, Any]:
    return {"rule": check.rule, "passed": check.passed, "message": check.message}
