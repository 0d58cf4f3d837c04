"""The user resource of the fake Graph: its fields, their JSON, and the checks on write bodies.

A user is kept as one pre-serialised JSON object (`blob`) with the fields in a fixed order,
so the server can splice stored bytes straight into a page.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from syncd.directory.fake.errors import StoreError
from syncd.directory.models import GRAPH_USER_FIELDS

# Every user field Graph returns here, in the order they are serialised.
USER_FIELDS: tuple[str, ...] = GRAPH_USER_FIELDS

_STRING_FIELDS = frozenset(
    {
        "displayName",
        "givenName",
        "surname",
        "jobTitle",
        "mail",
        "mobilePhone",
        "streetAddress",
        "city",
        "state",
        "postalCode",
        "country",
    }
)
# Accepted on create/update, not stored (Graph requires some of them on create).
_IGNORED_FIELDS = frozenset({"mailNickname", "passwordProfile", "usageLocation", "passwordPolicies"})
_WRITABLE = _STRING_FIELDS | {"userPrincipalName", "accountEnabled", "userType", "businessPhones"}


def bad(message: str) -> StoreError:
    return StoreError("Request_BadRequest", message, 400)


# Graph's user resource: a userPrincipalName is alias@domain, and a cloud user's alias holds only
# A-Z, a-z, 0-9 and ' . - _ ! # ^ ~. The fake refuses the characters a URL path segment or a query
# could not carry as they are (and spaces and controls), and keeps others (accents: a user synced
# from an on-premises directory may bring them) for the engine's sake.
_UPN_REFUSED = re.compile(r"[/\\?%\s\x00-\x1f\x7f]")


def _check_upn(value: Any) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or value.startswith("@") or value.endswith("@"):
        raise bad("Property 'userPrincipalName' must be a string of the form alias@domain.")
    if len(value) > 113 or _UPN_REFUSED.search(value):
        raise bad("Property 'userPrincipalName' is invalid.")
    return value


def check_user_body(body: Any, *, create: bool) -> dict[str, Any]:
    """Validate a POST or PATCH body; returns the fields to store. Raises StoreError (400)."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    if create:
        for required in ("displayName", "userPrincipalName"):
            if required not in body:
                raise bad(f"Property '{required}' is required when creating the object.")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in _IGNORED_FIELDS:
            continue
        if key == "id" or key == "assignedLicenses":
            raise bad(f"Property '{key}' is read-only; use assignLicense for licences.")
        if key not in _WRITABLE:
            raise bad(f"Property '{key}' does not exist on type 'microsoft.graph.user'.")
        if key in _STRING_FIELDS:
            if value is not None and not isinstance(value, str):
                raise bad(f"Property '{key}' must be a string or null.")
            if key == "displayName" and not value:
                raise bad("Property 'displayName' must not be empty.")
        elif key == "userPrincipalName":
            value = _check_upn(value)
        elif key == "accountEnabled":
            if not isinstance(value, bool):
                raise bad("Property 'accountEnabled' must be a boolean.")
        elif key == "userType":
            if value not in ("Member", "Guest"):
                raise bad("Property 'userType' must be 'Member' or 'Guest'.")
        elif key == "businessPhones" and (
            not isinstance(value, list) or not all(isinstance(p, str) for p in value)
        ):
            raise bad("Property 'businessPhones' must be a list of strings.")
        out[key] = value
    return out


def new_user(user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A complete user object from checked create fields."""
    user: dict[str, Any] = dict.fromkeys(USER_FIELDS)
    user.update(id=user_id, businessPhones=[], accountEnabled=True, userType="Member", assignedLicenses=[])
    user.update(fields)
    if user["userType"] == "Member" and "#EXT#" in user["userPrincipalName"]:
        user["userType"] = "Guest"
    return user


def dump(user: dict[str, Any]) -> bytes:
    return orjson.dumps({k: user.get(k) for k in USER_FIELDS})


def load(blob: bytes) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(blob)
    return out


def parse_select(raw: str | None, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
    """`$select` as a tuple of fields (`id` always first), or None for all fields."""
    if raw is None or not raw.strip():
        return None
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    for name in wanted:
        if name not in allowed:
            raise bad(f"Could not find a property named '{name}' on type 'microsoft.graph.user'.")
    fields = ["id"] + [w for w in wanted if w != "id"]
    if set(fields) == set(allowed):
        return None
    return tuple(dict.fromkeys(fields))


def project(blob: bytes, fields: tuple[str, ...] | None) -> bytes:
    """The stored JSON, narrowed to `fields` (no re-encoding when all fields are wanted)."""
    if fields is None:
        return blob
    obj = orjson.loads(blob)
    return orjson.dumps({k: obj.get(k) for k in fields})
