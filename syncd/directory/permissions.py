"""Which Microsoft Graph application permission each endpoint needs.

One table for both sides: the fake Graph server answers 403 ``Authorization_RequestDenied``
when a token's ``roles`` claim holds none of an endpoint's permissions, and
``syncd directory check`` names the permission to grant when the real Graph does the same.

Source: the "Permissions" section of each Graph v1.0 API page (least privileged application
permission first, then the higher privileged ones that also grant the call). ``Directory.Read.All``
(and ``Directory.ReadWrite.All``) grant every read syncd makes.

``POST /$batch`` (JSON batching) is deliberately absent: it needs no permission of its own (any valid
token may send a batch), and each request inside it is checked against this table on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIRECTORY_READ_ALL = "Directory.Read.All"
DIRECTORY_READWRITE_ALL = "Directory.ReadWrite.All"


@dataclass(frozen=True, slots=True)
class Need:
    """An endpoint's permission: ``least`` (the one to grant), and every permission that grants it."""

    least: str
    granted_by: frozenset[str]

    def met_by(self, roles: frozenset[str] | set[str]) -> bool:
        return not self.granted_by.isdisjoint(roles)


def _read(least: str, *higher: str) -> Need:
    return Need(least, frozenset({least, *higher, DIRECTORY_READ_ALL, DIRECTORY_READWRITE_ALL}))


def _write(least: str, *higher: str) -> Need:
    return Need(least, frozenset({least, *higher, DIRECTORY_READWRITE_ALL}))


USERS_READ = _read("User.Read.All", "User.ReadWrite.All")
MEMBERS_READ = _read(
    "GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All"
)
ROLES_READ = _read("RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory")
ORGANIZATION_READ = _read("Organization.Read.All", "Organization.ReadWrite.All")
SKUS_READ = _read("Organization.Read.All", "LicenseAssignment.Read.All", "Organization.ReadWrite.All")
APPLICATIONS_READ = _read("Application.Read.All", "Application.ReadWrite.All")
USERS_WRITE = _write("User.ReadWrite.All")
LICENCES_WRITE = _write("LicenseAssignment.ReadWrite.All", "User.ReadWrite.All")
GROUPS_WRITE = _write("Group.ReadWrite.All")
MEMBERS_WRITE = _write("GroupMember.ReadWrite.All", "Group.ReadWrite.All")
ROLES_WRITE = _write("RoleManagement.ReadWrite.Directory")

#: (method, path under /v1.0 as the fake routes it) -> the permission it needs.
ENDPOINT_NEEDS: dict[tuple[str, str], Need] = {
    ("GET", "/users"): USERS_READ,
    ("POST", "/users"): USERS_WRITE,
    ("GET", "/users/delta"): USERS_READ,
    ("GET", "/users/delta()"): USERS_READ,
    ("GET", "/users/{key}"): USERS_READ,
    ("PATCH", "/users/{key}"): USERS_WRITE,
    ("DELETE", "/users/{key}"): USERS_WRITE,
    ("POST", "/users/{key}/assignLicense"): LICENCES_WRITE,
    ("GET", "/users/{key}/memberOf"): MEMBERS_READ,
    ("GET", "/directory/deletedItems/microsoft.graph.user"): USERS_READ,
    ("GET", "/directory/deletedItems/{id}"): USERS_READ,
    ("POST", "/directory/deletedItems/{id}/restore"): USERS_WRITE,
    ("DELETE", "/directory/deletedItems/{id}"): USERS_WRITE,
    ("GET", "/groups"): MEMBERS_READ,
    ("POST", "/groups"): GROUPS_WRITE,
    ("GET", "/groups/delta"): MEMBERS_READ,
    ("GET", "/groups/delta()"): MEMBERS_READ,
    ("GET", "/groups/{gid}"): MEMBERS_READ,
    ("GET", "/groups/{gid}/members"): MEMBERS_READ,
    ("GET", "/groups/{gid}/owners"): MEMBERS_READ,
    ("POST", "/groups/{gid}/members/$ref"): MEMBERS_WRITE,
    ("POST", "/groups/{gid}/owners/$ref"): MEMBERS_WRITE,
    ("DELETE", "/groups/{gid}/members/{mid}/$ref"): MEMBERS_WRITE,
    ("DELETE", "/groups/{gid}/owners/{mid}/$ref"): MEMBERS_WRITE,
    ("GET", "/directoryRoles"): ROLES_READ,
    ("GET", "/directoryRoles/{rid}"): ROLES_READ,
    ("GET", "/directoryRoles/{rid}/members"): ROLES_READ,
    ("POST", "/directoryRoles/{rid}/members/$ref"): ROLES_WRITE,
    ("DELETE", "/directoryRoles/{rid}/members/{mid}/$ref"): ROLES_WRITE,
    ("GET", "/subscribedSkus"): SKUS_READ,
    ("GET", "/servicePrincipals"): APPLICATIONS_READ,
    ("GET", "/organization"): ORGANIZATION_READ,
}

#: What an application registered without a list of permissions is granted: everything the
#: fake serves (reads and the writes tests and ``syncd entra`` use).
ALL_PERMISSIONS: frozenset[str] = frozenset(
    {need.least for need in ENDPOINT_NEEDS.values()} | {DIRECTORY_READ_ALL, DIRECTORY_READWRITE_ALL}
)

#: The permissions a read-only syncd needs, least privileged first (README, ``directory check``).
SYNCD_READS: tuple[str, ...] = (
    USERS_READ.least,
    MEMBERS_READ.least,
    ROLES_READ.least,
    ORGANIZATION_READ.least,
    APPLICATIONS_READ.least,
)


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


_PATTERNS: list[tuple[str, re.Pattern[str], Need]] = [
    (method, _pattern(path), need) for (method, path), need in ENDPOINT_NEEDS.items()
]


def need_for(method: str, path: str) -> Need | None:
    """The permission a Graph v1.0 request needs, from its method and path (with or without the
    ``/v1.0`` prefix, without the query); None for a path syncd does not know."""
    path = path.split("?", 1)[0]
    if path.startswith("/v1.0/"):
        path = path[len("/v1.0") :]
    literal = ENDPOINT_NEEDS.get((method, path))
    if literal is not None:
        return literal
    for m, pattern, need in _PATTERNS:
        if m == method and pattern.match(path):
            return need
    return None
