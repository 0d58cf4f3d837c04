"""How the fake tenant reads an object key from a request: ids in any case, with or without braces.

Graph compares object ids (GUIDs) case-insensitively and answers with them in lower case. Every id
that comes in (a path segment, the id inside `@odata.id`, a `$filter` value) goes through
`object_key` before it meets the store, which keeps ids in their canonical lower-case spelling.
"""

from __future__ import annotations

from syncd.directory.ids import normalize_object_id


def object_key(value: str) -> str:
    """The canonical spelling of an object id; anything that is not a GUID (a userPrincipalName, a
    typo) unchanged, so that it simply finds nothing."""
    try:
        return normalize_object_id(value)
    except ValueError:
        return value
