"""Who calls: the caller's systemuser row in the environment, as Dataverse maps a token to a user.

Dataverse maps an access token to the organization's user by the token's claims: a user's token
by its object id (`oid`, the row's `azureactivedirectoryobjectid`), an application's token by its
application id (`appid`, or `azp` in a v2 token; the application user's `applicationid`). It
serves only members of the organization:

- a caller with no row in the environment is refused with 403 `0x80072560` "The user is not a
  member of the organization." (what Dataverse answers an app registration that has no
  application user, or a user never added to the environment);
- a caller whose row is disabled is refused with 403 `0x80040225`, "... is disabled. Disabled
  users cannot access the system. ..." (a user who lost a licence or left the security group).

With `--require-token` (`auth`) the token is checked first, and then every request is held to
this: the caller must be an enabled user of the environment the URL names.

Without `--require-token` (the daemon's read-only endpoint, or `syncd dataverse serve` without
the flag) no token is checked and reads are served to anyone. The caller is then who an
unchecked bearer token's claims say: WhoAmI answers for that user, and refuses a named caller
that is not an enabled member, as above. A request without a token, or with one that names no
one (no `oid`, `appid` or `azp`), has no caller: WhoAmI answers it 401, as Dataverse answers a
request without a token, rather than make up a user that is not in the table.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, select

from syncd.webapi.entities import EntityType
from syncd.webapi.errors import ODataError

NOT_A_MEMBER = "0x80072560"
USER_DISABLED = "0x80040225"
NOT_AUTHENTICATED = "0x8005F101"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def unchecked_claims(authorization: str | None) -> dict[str, Any]:
    """The claims of a bearer JWT, read without checking it (empty when there is none)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return {}
    parts = authorization[7:].strip().split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _ids(claims: dict[str, Any]) -> list[tuple[str, uuid.UUID]]:
    """(column, id) pairs a token names its caller by, the object id first."""
    out = []
    for column, value in (
        ("azureactivedirectoryobjectid", claims.get("oid")),
        ("applicationid", claims.get("appid") or claims.get("azp")),
    ):
        if isinstance(value, str) and _GUID.match(value):
            out.append((column, uuid.UUID(value)))
    return out


def names_a_caller(claims: dict[str, Any]) -> bool:
    """Whether the claims name a caller at all (an object id or an application id)."""
    return any(isinstance(claims.get(c), str) and claims.get(c) for c in ("oid", "appid", "azp"))


def find_caller(
    conn: Connection, entities: dict[str, EntityType], env_id: int, env_name: str, claims: dict[str, Any]
) -> uuid.UUID:
    """The systemuserid of the caller the claims name, in environment `env_id` (named `env_name`);
    ODataError 403 when the caller is not a member of it or is disabled, 401 when the claims name
    no one."""
    if not names_a_caller(claims):
        raise ODataError(401, NOT_AUTHENTICATED, "The requested resource requires authentication.")
    users = entities.get("systemuser")
    if users is None:
        raise not_a_member()
    t = users.table
    disabled = t.c.isdisabled if "isdisabled" in t.c else None
    for column, value in _ids(claims):
        if column not in t.c:
            continue
        cols = [users.pk] + ([disabled] if disabled is not None else [])
        row = conn.execute(
            select(*cols).where(t.c.environment_id == env_id, t.c[column] == value).limit(1)
        ).first()
        if row is None:
            continue
        if disabled is not None and row[1]:
            raise ODataError(
                403,
                USER_DISABLED,
                f"The user with SystemUserId={row[0]} in OrganizationContext={organization_id(env_id, env_name)} is "
                "disabled. Disabled users cannot access the system. Consider enabling this user. Also, "
                "users are disabled if they don't have a license assigned to them.",
            )
        return uuid.UUID(str(row[0]))
    raise not_a_member()


def not_a_member() -> ODataError:
    """Dataverse's refusal of a caller who is not a user of the organization."""
    return ODataError(403, NOT_A_MEMBER, "The user is not a member of the organization.")


def organization_id(env_id: int, env_name: str) -> uuid.UUID:
    """The OrganizationId of an environment, stable for its id and name."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"syncd:organization:{env_id}:{env_name}")
