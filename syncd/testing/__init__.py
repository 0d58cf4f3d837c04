"""syncd for other people's integration tests: the fake tenant, Dataverse environments and the daemon.

With syncd installed, pytest loads the plugin ``syncd.testing.plugin`` by itself (entry point
``pytest11``): the fixtures ``syncd_tenant``, ``syncd_database``, ``syncd_environment`` and
``syncd_daemon``, the marker ``syncd_tenant(users=, seed=, group_size=)`` and the option
``--syncd-pg-url``. Without pytest (unittest, scripts), the same objects come from two context
managers::

    with syncd.testing.fake_tenant(users=500, seed=3) as tenant:
        with syncd.testing.environment(tenant, "prod") as env:
            env.sync()
            tenant.disable(tenant.users(licensed=True)[0])
            env.sync()

Everything here talks only to the fake tenant on loopback (``UnsafeDirectoryError`` otherwise).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.testing.environments import SyncdEnvironment
    from syncd.testing.tenants import FakeTenant

__all__ = ["environment", "fake_tenant"]


@contextlib.contextmanager
def fake_tenant(users: int = 300, seed: int = 1, *, group_size: int | None = None) -> Iterator[FakeTenant]:
    """A generated fake tenant served on its own HTTP server on 127.0.0.1 (a free port), removed
    at exit. ``users``: how many; ``seed``: same seed, same tenant; ``group_size``: members of the
    'Dataverse Users' group (default: the generator's). Raises ``ValueError`` for a bad option."""
    from syncd.testing.server import GraphServer
    from syncd.testing.tenants import FakeTenant, TenantTemplates, check_tenant_options

    users, seed, group_size = check_tenant_options(users, seed, group_size)
    with tempfile.TemporaryDirectory(prefix="syncd-tenant-") as folder, GraphServer() as server:
        template = TenantTemplates(Path(folder) / "templates").path(users, seed, group_size)
        tenant = FakeTenant(template, server, users=users, seed=seed)
        try:
            yield tenant
        finally:
            tenant.close()


@contextlib.contextmanager
def environment(
    tenant: FakeTenant | str, name: str = "prod", *, database_url: str | None = None, **options: Any
) -> Iterator[SyncdEnvironment]:
    """An environment ``name`` synced from ``tenant`` (a ``FakeTenant`` or the Graph URL of a fake
    tenant on loopback). ``database_url``: a database to use, migrated to head here when it is
    empty or older (default: a new SQLite file, removed at exit). ``options``: ``type``,
    ``security_group`` (object id, or displayName when ``tenant`` is a ``FakeTenant``),
    ``settings`` (a dict of syncd settings) and the rest of the environment's spec.
    Raises ``UnsafeDirectoryError`` for a directory that is not a fake tenant on loopback."""
    from syncd.dataverse import db
    from syncd.testing.environments import SyncdEnvironment
    from syncd.testing.safety import ensure_fake_directory

    graph_url = tenant if isinstance(tenant, str) else tenant.graph_url
    ensure_fake_directory(graph_url)
    options = resolve_group(tenant, options)
    with tempfile.TemporaryDirectory(prefix="syncd-db-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'syncd.db'}"
        engine = db.make_engine(url)
        try:
            db.ensure_at_head(engine, auto_upgrade=True)
        finally:
            engine.dispose()
        env = SyncdEnvironment(url, graph_url, name, **options)
        try:
            yield env
        finally:
            env.close()


def resolve_group(tenant: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with a ``security_group`` given by displayName replaced by the group's object id
    (looked up in ``tenant``, which needs a ``group`` method for that)."""
    group = options.get("security_group")
    if group is None or not hasattr(tenant, "group"):
        return options
    from syncd.directory.ids import is_object_id

    if isinstance(group, dict) or not is_object_id(group):
        options = {**options, "security_group": str(tenant.group(group)["id"])}
    return options
