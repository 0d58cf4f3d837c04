"""Fake tenants for tests: generated once per (users, seed), copied per test, served over HTTP.

``TenantTemplates`` keeps one generated tenant file per (users, seed, group size) in a folder
(shared by the pytest-xdist workers of a session, under a file lock); ``FakeTenant`` is one test's
copy of such a file, mounted on a ``GraphServer``. Its write helpers (``disable``,
``remove_licences``, ``add_to_group``, ``soft_delete``...) call the fake's Graph v1.0 write API
with the same requests a real client sends to Microsoft Graph, handled by the same endpoints, but
in-process and free of the faults the test switched on (so a helper never fails on an injected
503, nor moves the fault counters or their seeded random stream); ``churn``, ``faults``,
``expire_delta_tokens`` and ``counters`` call its ``/_sim/`` controls over HTTP.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from syncd.directory.fake.server import create_app
from syncd.directory.ids import is_object_id, normalize_object_id
from syncd.directory.transport import InProcessTransport
from syncd.testing.server import GraphServer

DEFAULT_USERS = 300
DEFAULT_SEED = 1
MAX_USERS = 10_000_000  # what `syncd entra generate` is benchmarked up to

User = str | dict[str, Any]  # an object id, a userPrincipalName, or a Graph user object
Group = str | dict[str, Any]  # an object id, a displayName, or a Graph group object


class GraphRequestError(RuntimeError):
    """A Graph request of a tenant helper was refused: ``status`` and Graph's error ``code``."""

    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {code}: {message}")
        self.status, self.code = status, code


def check_tenant_options(users: Any, seed: Any, group_size: Any = None) -> tuple[int, int, int | None]:
    """``(users, seed, group_size)`` checked: whole numbers (not booleans), ``users`` and
    ``group_size`` not negative, ``users`` at most ``MAX_USERS`` and ``group_size`` at most
    ``users``. Raises ``ValueError`` naming the first bad one."""

    def whole(name: str, value: Any, low: int | None, high: int | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"a fake tenant's {name} is a whole number, not {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(
                f"a fake tenant's {name} is {low} to {high if high is not None else 'any'}, not {value!r}"
            )
        return value

    users = whole("users", users, 0, MAX_USERS)
    return (
        users,
        whole("seed", seed, None),
        None if group_size is None else whole("group_size", group_size, 0, users),
    )


class TenantTemplates:
    """Generated tenant files in ``root``, one per (users, seed, group_size), each made once.

    ``path(users, seed, group_size=None)`` returns the template's path, generating it first under
    a file lock when no process has (so parallel workers generate it once). Raises ``ValueError``
    for options ``check_tenant_options`` refuses.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, users: int, seed: int, group_size: int | None = None) -> Path:
        from filelock import FileLock

        users, seed, group_size = check_tenant_options(users, seed, group_size)
        name = f"tenant-u{users}-s{seed}" + (f"-g{group_size}" if group_size is not None else "")
        target = self.root / f"{name}.db"
        with FileLock(str(self.root / f"{name}.lock")):
            if not target.exists():
                self._generate(target, users, seed, group_size)
        return target

    @staticmethod
    def _generate(target: Path, users: int, seed: int, group_size: int | None) -> None:
        from syncd.directory.fake.generator import generate_tenant
        from syncd.directory.fake.store import TenantStore

        partial = target.with_suffix(".partial")
        for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
            leftover.unlink(missing_ok=True)
        store = TenantStore.open(str(partial))
        try:
            generate_tenant(store, users, seed, group_size=group_size)
        finally:
            store.close()  # the last connection checkpoints the WAL into the file
        partial.rename(target)


class FakeTenant:
    """One test's fake tenant: a copy of a template, served at ``graph_url`` (``http://127.0.0.1:PORT/v1.0``).

    ``users`` and ``seed`` say how it was generated; ``tenant_id`` and ``domain`` are the tenant's.
    Helpers raise ``GraphRequestError`` when the fake refuses a request (an unknown user, say).
    """

    def __init__(self, path: Path, server: GraphServer, *, users: int, seed: int) -> None:
        from syncd.directory.fake.store import TenantStore

        self.path, self.users_count, self.seed = path, users, seed
        self._server = server
        self._store = TenantStore.open(str(path))
        self._faults = server.mount(self._store)
        self._http = httpx.Client(base_url=server.origin, timeout=30.0, trust_env=False)
        self._quiet = httpx.Client(
            transport=InProcessTransport(create_app(self._store)), base_url=server.origin, timeout=30.0
        )
        about = self._sim("GET", "tenant")
        self.tenant_id: str = about["tenant_id"]
        self.domain: str = about["domain"]

    @classmethod
    def copy_of(
        cls, template: Path, folder: Path, server: GraphServer, *, users: int, seed: int
    ) -> FakeTenant:
        """A tenant from a copy of the ``template`` file, written into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "tenant.db"
        shutil.copyfile(template, path)
        return cls(path, server, users=users, seed=seed)

    # -- where it is -----------------------------------------------------------------------------
    @property
    def graph_url(self) -> str:
        return self._server.graph_url

    @property
    def origin(self) -> str:
        return self._server.origin

    def client(self, **options: Any) -> httpx.Client:
        """A new httpx client bound to ``graph_url`` (the caller closes it); any bearer token is accepted."""
        options.setdefault("timeout", 30.0)
        options.setdefault("headers", {"Authorization": "Bearer syncd-testing"})
        return httpx.Client(base_url=self.graph_url + "/", trust_env=False, **options)

    # -- the /_sim/ controls ---------------------------------------------------------------------
    def churn(self, changes: int, seed: int = 0) -> dict[str, Any]:
        """Apply ``changes`` random directory changes (renames, licence and group changes, disables,
        deletes, restores, new users), the same for the same seed; returns their summary. Waits as
        long as that takes (about 10 µs a change)."""
        return self._sim("POST", "churn", {"changes": changes, "seed": seed}, timeout=None)

    def faults(self, **settings: Any) -> dict[str, Any]:
        """Switch faults on (replacing the previous settings); returns them. Settings (see ``syncd
        entra faults --help``): ``throttle_ratio``, ``retry_after``, ``unavailable_ratio``,
        ``latency_ms``, ``malformed``, ``malformed_ratio``, ``seed``, and the untidy paging of
        Graph: ``delta_repeat_ratio``, ``empty_page_ratio``, ``gone_mid_read_ratio``,
        ``defer_mid_read_changes``. Raises ``GraphRequestError`` naming an unknown setting."""
        return self._sim("POST", "faults", settings)

    def clear_faults(self) -> dict[str, Any]:
        return self._sim("DELETE", "faults")

    def expire_delta_tokens(self) -> None:
        """Every delta token and skip token issued so far now gets 410 ``syncStateNotFound``."""
        self._sim("POST", "expire-delta-tokens")

    def counters(self) -> dict[str, Any]:
        """Requests served per endpoint and the faults played so far."""
        return self._sim("GET", "counters")

    def reset_counters(self) -> dict[str, Any]:
        return self._sim("POST", "counters/reset")

    # -- reads -----------------------------------------------------------------------------------
    def user(self, user: User) -> dict[str, Any]:
        """The Graph user object (by object id in any case, or userPrincipalName)."""
        return self._graph("GET", f"/users/{_key(user)}")

    def users(
        self, *, enabled: bool | None = None, licensed: bool | None = None, user_type: str | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's users (Graph user objects, in creation order), optionally only those
        ``enabled`` (accountEnabled), ``licensed`` (any assigned licence) or of ``user_type``
        (``"Member"`` or ``"Guest"``)."""
        out = []
        for u in self._pages("/users?$top=999"):
            if enabled is not None and bool(u.get("accountEnabled")) != enabled:
                continue
            if licensed is not None and bool(u.get("assignedLicenses")) != licensed:
                continue
            if user_type is not None and u.get("userType") != user_type:
                continue
            out.append(u)
        return out

    def groups(self) -> list[dict[str, Any]]:
        return list(self._pages("/groups?$top=999"))

    def group(self, group: Group) -> dict[str, Any]:
        """The Graph group object, by object id or displayName; raises ``LookupError`` for none
        or several of that name."""
        if isinstance(group, dict):
            return group
        if not isinstance(group, str) or not group.strip():
            raise ValueError(f"a group is an object id, a displayName or a Graph group object, not {group!r}")
        if is_object_id(group):
            return self._graph("GET", f"/groups/{normalize_object_id(group)}")
        found = [g for g in self.groups() if g.get("displayName") == group]
        if len(found) != 1:
            raise LookupError(f"{len(found)} groups are named {group!r} in the fake tenant")
        return found[0]

    def admins(self) -> dict[str, set[str]]:
        """The members of each activated directory role: ``{role displayName: {object id, ...}}``."""
        return {
            role["displayName"]: {m["id"] for m in self._pages(f"/directoryRoles/{role['id']}/members")}
            for role in self._pages("/directoryRoles")
        }

    def members(self, group: Group) -> list[str]:
        """The object ids of a group's direct members."""
        gid = self.group(group)["id"]
        return [m["id"] for m in self._pages(f"/groups/{gid}/members?$top=999")]

    # -- Graph writes ----------------------------------------------------------------------------
    def update(self, user: User, **properties: Any) -> None:
        """``PATCH /users/{id}`` with Graph property names (``displayName="..."``, ``jobTitle=...``)."""
        self._graph("PATCH", f"/users/{_key(user)}", properties)

    def disable(self, user: User) -> None:
        self.update(user, accountEnabled=False)

    def enable(self, user: User) -> None:
        self.update(user, accountEnabled=True)

    def assign_licence(self, user: User, sku: str) -> None:
        """Assign a licence by skuId or skuPartNumber (``POST /users/{id}/assignLicense``)."""
        self._graph(
            "POST",
            f"/users/{_key(user)}/assignLicense",
            {"addLicenses": [{"skuId": self._sku_id(sku), "disabledPlans": []}], "removeLicenses": []},
        )

    def remove_licences(self, user: User) -> None:
        """Remove every licence the user has (``POST /users/{id}/assignLicense``)."""
        skus = [lic["skuId"] for lic in self.user(user).get("assignedLicenses") or []]
        self._graph("POST", f"/users/{_key(user)}/assignLicense", {"addLicenses": [], "removeLicenses": skus})

    def add_to_group(self, group: Group, user: User) -> None:
        """``POST /groups/{id}/members/$ref``."""
        gid, uid = self.group(group)["id"], self._user_id(user)
        self._graph(
            "POST", f"/groups/{gid}/members/$ref", {"@odata.id": f"{self.graph_url}/directoryObjects/{uid}"}
        )

    def remove_from_group(self, group: Group, user: User) -> None:
        """``DELETE /groups/{id}/members/{id}/$ref``."""
        gid, uid = self.group(group)["id"], self._user_id(user)
        self._graph("DELETE", f"/groups/{gid}/members/{uid}/$ref")

    def soft_delete(self, user: User) -> str:
        """``DELETE /users/{id}``: the user goes to deleted items (restorable); returns the object id."""
        uid = self._user_id(user)
        self._graph("DELETE", f"/users/{uid}")
        return uid

    def restore(self, user: User) -> None:
        """``POST /directory/deletedItems/{id}/restore``: a soft-deleted user, by object id, the
        userPrincipalName it had, or a Graph user object. Raises ``LookupError`` for a
        userPrincipalName no deleted user has."""
        _key(user)  # refuses an empty or non-text key
        raw = str(user["id"]) if isinstance(user, dict) else str(user)
        if is_object_id(raw):
            key = normalize_object_id(raw)
        else:
            wanted = raw.lower()
            deleted = self._graph("GET", "/directory/deletedItems/microsoft.graph.user")["value"]
            found = [d for d in deleted if str(d.get("userPrincipalName", "")).lower().endswith(wanted)]
            if len(found) != 1:
                raise LookupError(f"{len(found)} soft-deleted users have the userPrincipalName {user!r}")
            key = str(found[0]["id"])
        self._graph("POST", f"/directory/deletedItems/{key}/restore")

    def create_user(self, **properties: Any) -> dict[str, Any]:
        """``POST /users``; returns the new Graph user object. ``userPrincipalName`` and
        ``displayName`` are required, as in Graph; ``accountEnabled`` defaults to true."""
        properties.setdefault("accountEnabled", True)
        return self._graph("POST", "/users", properties)

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Unmount the tenant from the server and close its file (idempotent)."""
        if self._store is None:
            return
        self._http.close()
        self._quiet.close()
        self._server.unmount()
        self._store.close()
        self._store = None  # type: ignore[assignment]

    def __enter__(self) -> FakeTenant:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _user_id(self, user: User) -> str:
        if isinstance(user, dict):
            return str(user["id"])
        return str(self.user(user)["id"])  # the fake answers for any spelling of an id, or a UPN

    def _sku_id(self, sku: str) -> str:
        if is_object_id(sku):
            return normalize_object_id(sku)
        for s in self._graph("GET", "/subscribedSkus")["value"]:
            if s.get("skuPartNumber", "").lower() == sku.lower():
                return str(s["skuId"])
        raise LookupError(f"no subscribed SKU {sku!r} in the fake tenant")

    def _pages(self, path: str) -> Iterator[dict[str, Any]]:
        page = self._graph("GET", path)
        while True:
            yield from page.get("value", [])
            link = page.get("@odata.nextLink")
            if not link:
                return
            page = self._request(self._quiet, "GET", link)

    def _graph(self, method: str, path: str, body: Any = None) -> Any:
        return self._request(self._quiet, method, self.graph_url + path, body)

    def _sim(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        return self._request(self._http, method, f"{self.origin}/_sim/{path}", body, **options)

    def _request(self, http: httpx.Client, method: str, url: str, body: Any = None, **options: Any) -> Any:
        headers = {"Authorization": "Bearer syncd-testing"}
        response = http.request(method, url, json=body, headers=headers, **options)
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
            except ValueError:
                error = {}
            raise GraphRequestError(
                method,
                url.removeprefix(self.origin),
                response.status_code,
                str(error.get("code", "")),
                str(error.get("message", response.text[:200])),
            )
        return response.json() if response.content else None


def _key(user: User) -> str:
    """A user as one URL path segment: its object id or userPrincipalName, percent-encoded (a UPN
    may hold ``#``, ``?`` or ``/``). Raises ``ValueError`` for an empty or non-text key."""
    value = user.get("id") if isinstance(user, dict) else user
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a user is an object id, a userPrincipalName or a Graph user object, not {user!r}")
    return quote(value, safe="@")
