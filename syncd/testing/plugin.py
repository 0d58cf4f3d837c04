"""The pytest plugin of syncd (entry point ``pytest11``: loaded wherever syncd is installed).

Fixtures, each replaceable by a fixture of the same name in a project's own ``conftest.py``:

==========================  ========  ==========================================================
fixture                     scope     what it gives
==========================  ========  ==========================================================
``syncd_tenant``            function  a ``FakeTenant``: a fresh copy of a generated tenant, served
                                      over HTTP on 127.0.0.1 (``graph_url``); its size comes from
                                      ``@pytest.mark.syncd_tenant(users=300, seed=1, group_size=None)``
``syncd_database``          function  the URL of a fresh database at head: SQLite, or PostgreSQL with
                                      ``--syncd-pg-url URL`` / ``SYNCD_TEST_PG_URL``
``syncd_environment``       function  a factory: ``syncd_environment("prod", type=..., security_group=...,
                                      settings={...})`` returns a ``SyncdEnvironment``
``syncd_daemon``            function  ``syncd run`` as a real process on the tenant and database
                                      (settings from ``@pytest.mark.syncd_daemon(**settings)``)
``syncd_graph_server``      session   the HTTP server the tenants are mounted on (one per process,
                                      so one per pytest-xdist worker)
``syncd_tenant_templates``  session   the generated tenants, one per (users, seed, group_size), made
                                      once for all workers
``syncd_database_templates`` session  the migrated template each test's database is cloned from
==========================  ========  ==========================================================

Teardown removes what each fixture made: the tenant's file, the database (PostgreSQL: dropped),
the daemon's process; the session's templates go at its end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from syncd.testing.daemon import SyncdDaemon
    from syncd.testing.databases import DatabaseTemplates
    from syncd.testing.environments import SyncdEnvironment
    from syncd.testing.server import GraphServer
    from syncd.testing.tenants import FakeTenant, TenantTemplates

PG_URL_VARIABLE = "SYNCD_TEST_PG_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("syncd", "syncd.testing fixtures")
    group.addoption(
        "--syncd-pg-url",
        default=None,
        metavar="URL",
        help="PostgreSQL server for syncd_database (a URL of a role that may create databases, e.g. "
        f"postgresql://postgres@127.0.0.1:5432/postgres); default ${PG_URL_VARIABLE}, else SQLite",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "syncd_tenant(users=300, seed=1, group_size=None): the fake tenant the syncd_tenant fixture generates",
    )
    config.addinivalue_line(
        "markers",
        "syncd_daemon(**settings): syncd settings of the syncd_daemon process (delta_interval_seconds=5)",
    )


_CALL_REPORT = "_syncd_call_report"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each test's call report on its item, so a fixture's teardown knows whether it failed."""
    report: pytest.TestReport = yield
    if report.when == "call":
        setattr(item, _CALL_REPORT, report)
    return report


def _is_xdist_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (xdist's own test: its ``workerinput``; an
    environment variable would also be inherited by a pytest started from inside a test)."""
    return hasattr(config, "workerinput")


def _shared_root(factory: pytest.TempPathFactory, config: pytest.Config) -> Path:
    """A folder all pytest-xdist workers of this session share (the session's base temp otherwise)."""
    base = factory.getbasetemp()
    return base.parent if _is_xdist_worker(config) else base


@pytest.fixture(scope="session")
def syncd_tenant_templates(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[TenantTemplates]:
    from syncd.testing.tenants import TenantTemplates

    root = _shared_root(tmp_path_factory, pytestconfig) / "syncd-tenant-templates"
    yield TenantTemplates(root)
    if not _is_xdist_worker(pytestconfig):  # shared by xdist's workers: see pytest_sessionfinish
        shutil.rmtree(root, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In pytest-xdist's controlling process: remove the tenant templates its workers shared (in its
    base temp folder, the parent of theirs), once they have all finished."""
    if _is_xdist_worker(session.config):
        return
    factory = getattr(session.config, "_tmp_path_factory", None)  # as pytest-xdist finds it too
    # The folder made this session, or the one given with --basetemp; None: no temp folder yet.
    base = getattr(factory, "_basetemp", None) or getattr(factory, "_given_basetemp", None)
    if base is not None:
        shutil.rmtree(Path(base) / "syncd-tenant-templates", ignore_errors=True)


@pytest.fixture(scope="session")
def syncd_graph_server() -> Iterator[GraphServer]:
    from syncd.testing.server import GraphServer

    with GraphServer() as server:
        yield server


@pytest.fixture
def syncd_tenant(
    request: pytest.FixtureRequest,
    syncd_tenant_templates: TenantTemplates,
    syncd_graph_server: GraphServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FakeTenant]:
    from syncd.testing.tenants import DEFAULT_SEED, DEFAULT_USERS, FakeTenant, check_tenant_options

    marker = request.node.get_closest_marker("syncd_tenant")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    unknown = set(options) - {"users", "seed", "group_size"}
    if unknown or (marker and marker.args):
        raise pytest.UsageError(
            f"@pytest.mark.syncd_tenant takes users=, seed= and group_size= only, not {sorted(unknown) or marker.args}"
        )
    try:
        users, seed, group_size = check_tenant_options(
            options.get("users", DEFAULT_USERS), options.get("seed", DEFAULT_SEED), options.get("group_size")
        )
    except ValueError as exc:
        raise pytest.UsageError(f"@pytest.mark.syncd_tenant: {exc}") from None
    template = syncd_tenant_templates.path(users, seed, group_size)
    folder = tmp_path_factory.mktemp("syncd-tenant", numbered=True)
    tenant = FakeTenant.copy_of(template, folder, syncd_graph_server, users=users, seed=seed)
    try:
        yield tenant
    finally:
        tenant.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def syncd_database_templates(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseTemplates]:
    from syncd.testing.databases import DatabaseTemplates

    pg_url = request.config.getoption("--syncd-pg-url") or os.environ.get(PG_URL_VARIABLE) or None
    folder = tmp_path_factory.mktemp("syncd-database-templates")
    templates = DatabaseTemplates(folder, pg_url)
    try:
        yield templates
    finally:
        templates.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def syncd_database(
    syncd_database_templates: DatabaseTemplates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("syncd-database", numbered=True)
    url = syncd_database_templates.fresh(folder)
    try:
        yield url
    finally:
        syncd_database_templates.drop(url)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def syncd_environment(
    syncd_database: str, syncd_tenant: FakeTenant
) -> Iterator[Callable[..., SyncdEnvironment]]:
    from syncd.testing import resolve_group
    from syncd.testing.environments import SyncdEnvironment
    from syncd.testing.safety import ensure_fake_directory

    # Refused here, before the test runs, when a project's own syncd_tenant is not the fake.
    ensure_fake_directory(syncd_tenant.graph_url)
    made: list[SyncdEnvironment] = []

    def factory(name: str = "prod", **options: Any) -> SyncdEnvironment:
        env = SyncdEnvironment(
            syncd_database, syncd_tenant.graph_url, name, **resolve_group(syncd_tenant, options)
        )
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()


@pytest.fixture
def syncd_daemon(
    request: pytest.FixtureRequest,
    syncd_database: str,
    syncd_tenant: FakeTenant,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SyncdDaemon]:
    from syncd.errors import SyncdError
    from syncd.testing.daemon import SyncdDaemon

    marker = request.node.get_closest_marker("syncd_daemon")
    if marker and marker.args:
        raise pytest.UsageError(f"@pytest.mark.syncd_daemon takes settings by name only, not {marker.args!r}")
    folder = tmp_path_factory.mktemp("syncd-daemon", numbered=True)
    try:
        daemon = SyncdDaemon(
            syncd_database, syncd_tenant.graph_url, folder, settings=marker.kwargs if marker else None
        )
    except (ValueError, SyncdError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise pytest.UsageError(f"@pytest.mark.syncd_daemon: {exc}") from None
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        report = getattr(request.node, _CALL_REPORT, None)
        if report is None or report.failed:
            # The daemon's log goes into the test's report, and its file stays for a look.
            request.node.add_report_section("teardown", "syncd run log (tail)", daemon.log_tail())
        else:
            shutil.rmtree(folder, ignore_errors=True)
