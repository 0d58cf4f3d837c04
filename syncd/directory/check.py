"""Read each Graph endpoint syncd uses once, and say which application permission is missing.

``check_directory(client)`` is what ``syncd directory check`` prints: one row per endpoint, in the
order a sync reads them. A 403 ``Authorization_RequestDenied`` is a missing permission (the row
names the least privileged one, from :mod:`syncd.directory.permissions`); a 401 or a failure to get
a token stops the check, since every later read would fail the same way.

Source: the "Permissions" section of each Graph v1.0 API page; Graph's authorization errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from syncd.directory.client import GraphClient
from syncd.directory.errors import DirectoryAuthError, DirectoryError, GraphError
from syncd.directory.permissions import (
    APPLICATIONS_READ,
    DIRECTORY_READ_ALL,
    MEMBERS_READ,
    ORGANIZATION_READ,
    ROLES_READ,
    SKUS_READ,
    USERS_READ,
    Need,
)

OK, MISSING, UNAUTHORIZED, FAILED, SKIPPED = "ok", "missing permission", "unauthorized", "error", "skipped"


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """One endpoint's result. ``status``: ok | missing permission | unauthorized | error | skipped;
    ``http_status``: Graph's answer (None: no answer, or not asked); ``permission``: the least
    privileged application permission the endpoint needs (``granted_by``: every permission that
    grants it); ``remedy``: what to do, or ''."""

    endpoint: str
    status: str
    http_status: int | None
    permission: str
    granted_by: list[str]
    remedy: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Probe:
    endpoint: str
    path: str
    params: dict[str, str]
    need: Need
    needs_id: str | None = None  # "group" / "role": the path takes the first id read earlier


_PROBES: tuple[_Probe, ...] = (
    _Probe("GET /organization", "/organization", {"$select": "id"}, ORGANIZATION_READ),
    _Probe("GET /users", "/users", {"$top": "1", "$select": "id"}, USERS_READ),
    _Probe("GET /users/delta", "/users/delta", {"$select": "id", "$deltatoken": "latest"}, USERS_READ),
    _Probe(
        "GET /directory/deletedItems/microsoft.graph.user",
        "/directory/deletedItems/microsoft.graph.user",
        {"$top": "1", "$select": "id"},
        USERS_READ,
    ),
    _Probe("GET /groups", "/groups", {"$top": "1", "$select": "id"}, MEMBERS_READ),
    _Probe("GET /groups/{id}/members", "/groups/{id}/members", {"$top": "1"}, MEMBERS_READ, "group"),
    _Probe("GET /groups/delta", "/groups/delta", {"$select": "id", "$deltatoken": "latest"}, MEMBERS_READ),
    _Probe("GET /directoryRoles", "/directoryRoles", {}, ROLES_READ),
    _Probe("GET /directoryRoles/{id}/members", "/directoryRoles/{id}/members", {}, ROLES_READ, "role"),
    _Probe("GET /subscribedSkus", "/subscribedSkus", {}, SKUS_READ),
    _Probe("GET /servicePrincipals", "/servicePrincipals", {"$top": "1", "$select": "id"}, APPLICATIONS_READ),
)


def _grant(need: Need) -> str:
    return (
        f"grant the application permission {need.least} (or {DIRECTORY_READ_ALL}) to the app registration, "
        "then grant admin consent"
    )


def check_directory(client: GraphClient, *, group_id: str | None = None) -> list[EndpointCheck]:
    """One :class:`EndpointCheck` per endpoint syncd reads. ``group_id``: the group whose members are
    read (default: the first group Graph lists). Never raises for what Graph answers."""
    ids: dict[str, str | None] = {"group": group_id, "role": None}
    results: list[EndpointCheck] = []
    stopped: str | None = None
    for probe in _PROBES:
        permission, granted_by = probe.need.least, sorted(probe.need.granted_by)
        if stopped is not None:
            results.append(EndpointCheck(probe.endpoint, SKIPPED, None, permission, granted_by, stopped))
            continue
        path = probe.path
        if probe.needs_id is not None:
            found = ids[probe.needs_id]
            if found is None:
                results.append(
                    EndpointCheck(
                        probe.endpoint, SKIPPED, None, permission, granted_by, f"no {probe.needs_id} to read"
                    )
                )
                continue
            path = path.replace("{id}", found)
        try:
            items = client.read_page(path, probe.params)
        except DirectoryAuthError as exc:
            if exc.status == 403:
                results.append(
                    EndpointCheck(probe.endpoint, MISSING, 403, permission, granted_by, _grant(probe.need))
                )
                continue
            results.append(
                EndpointCheck(probe.endpoint, UNAUTHORIZED, exc.status, permission, granted_by, exc.reason)
            )
            stopped = "not tried: no token was accepted"
            continue
        except GraphError as exc:
            results.append(
                EndpointCheck(
                    probe.endpoint, FAILED, exc.status, permission, granted_by, f"{exc.code}: {exc.message}"
                )
            )
            continue
        except DirectoryError as exc:
            results.append(EndpointCheck(probe.endpoint, FAILED, None, permission, granted_by, str(exc)))
            continue
        if probe.path == "/groups" and ids["group"] is None and items:
            ids["group"] = str(items[0].get("id"))
        if probe.path == "/directoryRoles" and items:
            ids["role"] = str(items[0].get("id"))
        results.append(EndpointCheck(probe.endpoint, OK, 200, permission, granted_by, ""))
    return results
