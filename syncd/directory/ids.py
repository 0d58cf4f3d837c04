"""One spelling per directory object id.

Graph treats object ids (GUIDs) case-insensitively and returns them in lower case; users type
them in any case, with or without braces. Every id that enters syncd (Graph responses, CLI
arguments, the admin API, CSV imports, settings) goes through :func:`normalize_object_id`, so
that one object never has two spellings in a table, a set or a comparison.
"""

from __future__ import annotations

import re
import uuid

_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def normalize_object_id(value: str) -> str:
    """The canonical form of a GUID: 36 characters, lower case, dashed (``8-4-4-4-12``).

    Accepts any case, surrounding whitespace, braces and the 32-digit form. Raises ``ValueError``
    naming the value when it is not a GUID. Source: Graph's ``id`` property of directory objects
    (a GUID string, compared case-insensitively).
    """
    if type(value) is str and _CANONICAL.fullmatch(value):
        return value  # the common case, Graph's own spelling
    try:
        return str(uuid.UUID(str(value).strip()))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{value!r} is not an object id (a GUID)") from None


def is_object_id(value: str) -> bool:
    """Whether ``value`` reads as a GUID in any of the spellings :func:`normalize_object_id` accepts."""
    try:
        normalize_object_id(value)
    except ValueError:
        return False
    return True
