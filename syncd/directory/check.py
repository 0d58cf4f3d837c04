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
from syncd.directory.errors import DirectoryAuthError, DirectoryError, DirectoryUnavailable, GraphError
from syncd.directory.permissions import (
    APPLICATIONS_READ,
    MEMBERS_READ,
    ORGANIZATION_READ,
    ROLES_READ,
    SKUS_READ,
    USERS_READ,
    Need,
)

OK, MISSING, NO_TOKEN, REFUSED, UNREACHABLE, FAILED, SKIPPED = (
    "ok",
    "missing permission",
    "no token",
    "refused",
    "unreachable",
    "error",
    "skipped",
)


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """One endpoint's result. ``status``: ok | missing permission | no token (the credential got none) |
    refused (Graph answered 401 to a new token) | unreachable | error | skipped;
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
    return f"grant {need.least} (application permission), then admin consent"


def check_directory(client: GraphClient, *, group_id: str | None = None) -> list[EndpointCheck]:
    """One :class:`EndpointCheck` per endpoint syncd reads. ``group_id``: the group whose members are
    read (default: the first group Graph lists). Never raises for what Graph answers."""
    ids: dict[str, str | None] = {"group": group_id, "role": None}
    why_no_id = {"group": "no group to read", "role": "no directory role to read"}
    results: list[EndpointCheck] = []
    stopped: str | None = None
    for probe in _PROBES:

        def result(status: str, http: int | None, remedy: str, p: _Probe = probe) -> None:
            need = p.need
            results.append(
                EndpointCheck(p.endpoint, status, http, need.least, sorted(need.granted_by), remedy)
            )

        if stopped is not None:
            result(SKIPPED, None, stopped)
            continue
        path = probe.path
        if probe.needs_id is not None:
            found = ids[probe.needs_id]
            if found is None:
                result(SKIPPED, None, why_no_id[probe.needs_id])
                continue
            path = path.replace("{id}", found)
        try:
            items = client.read_page(path, probe.params)
        except DirectoryAuthError as exc:
            if exc.status == 403:
                result(MISSING, 403, _grant(probe.need))
                _no_id_after(probe, why_no_id, "was refused")
            elif exc.transient:
                result(UNREACHABLE, None, exc.reason)
                stopped = "not tried: the sign-in authority is unreachable"
            elif exc.status is None:
                result(NO_TOKEN, None, exc.reason)
                stopped = "not tried: no token"
            else:
                result(REFUSED, exc.status, exc.reason)
                stopped = "not tried: Graph refused the token"
            continue
        except DirectoryUnavailable as exc:
            result(UNREACHABLE, exc.status, str(exc))
            stopped = "not tried: Graph is unavailable"
            continue
        except GraphError as exc:
            result(FAILED, exc.status, f"{exc.code}: {exc.message}")
            _no_id_after(probe, why_no_id, "failed")
            continue
        except DirectoryError as exc:
            result(FAILED, None, str(exc))
            _no_id_after(probe, why_no_id, "failed")
            continue
        if probe.path == "/groups" and ids["group"] is None and items:
            ids["group"] = str(items[0].get("id"))
        if probe.path == "/directoryRoles" and items:
            ids["role"] = str(items[0].get("id"))
        result(OK, 200, "")
    return results


def _no_id_after(probe: _Probe, why_no_id: dict[str, str], what: str) -> None:
    """Say why a member read is skipped when the read that lists its group or role did not work."""
    if probe.path == "/groups":
        why_no_id["group"] = f"no group to read: GET /groups {what}"
    elif probe.path == "/directoryRoles":
        why_no_id["role"] = f"no directory role to read: GET /directoryRoles {what}"
