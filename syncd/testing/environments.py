"""A Dataverse environment in a test database, synced from a fake tenant in the test's own process.

``SyncdEnvironment`` is what the ``syncd_environment`` fixture's factory and
``syncd.testing.environment()`` return: ``sync()`` runs one sync exactly as ``syncd sync`` does
(under the environment's run lock, through the same engine), and ``rows``, ``row``, ``events``,
``diagnose`` and ``assert_in_step`` read the result back. Settings come from the arguments and
syncd's defaults alone: no ``SYNCD_*`` variable and no ``syncd.toml`` of the machine running the
tests reaches them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy import Engine, select

from syncd.dataverse import db
from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.dataverse.schema import Environment, SyncEvent, SystemUser
from syncd.dataverse.textfold import casefold, fold_text
from syncd.directory.ids import normalize_object_id
from syncd.settings import Settings
from syncd.sync.run import RunOptions, RunReport
from syncd.testing.safety import ensure_fake_directory

TEST_TOKEN = "syncd-testing"  # the fake accepts any bearer token


class TestSettings(Settings):
    """syncd's settings from explicit values and defaults only (no environment, no syncd.toml)."""

    __test__ = False  # not a test class, whatever pytest's collection pattern says

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


# Settings that say where syncd reads and writes: the fixtures set them, a test cannot.
RESERVED_SETTINGS = frozenset(
    {
        "database_url",
        "directory_url",
        "directory_store",
        "directory_token",
        "directory_tenant_id",
        "directory_client_id",
        "directory_client_secret",
        "directory_certificate_path",
        "directory_certificate_password",
        "directory_credential",
        "directory_authority",
        "directory_ca_bundle",
    }
)


def test_settings(database_url: str, graph_url: str, extra: Mapping[str, Any] | None = None) -> Settings:
    """The settings of a test's syncd: ``extra`` (setting name -> value, e.g. ``batch_size``) over
    the defaults, with the database and the fake tenant's URL set here. Raises ``ValueError``
    naming a setting that says where syncd reads or writes (``directory_url``, ``database_url``,
    credentials: ``RESERVED_SETTINGS``), and ``syncd.errors.ConfigError`` for an unknown setting or
    a bad value."""
    from syncd.errors import ConfigError

    extra = dict(extra or {})
    names = [str(name).lower() for name in extra]  # setting names are case-insensitive, as SYNCD_*
    if len(set(names)) != len(names):
        raise ValueError(f"a setting is given twice, in two spellings: {sorted(map(str, extra))}")
    extra = {name: value for name, value in zip(names, extra.values(), strict=True)}
    reserved = sorted(set(extra) & RESERVED_SETTINGS)
    if reserved:
        raise ValueError(
            f"setting {reserved[0]!r} cannot be given to syncd.testing: the fixtures point syncd at the "
            "test's database and fake tenant themselves"
        )
    values: dict[str, Any] = {"batch_size": 500, **extra}
    values.update(database_url=database_url, directory_url=graph_url, directory_token=TEST_TOKEN)
    try:
        return TestSettings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        raise ConfigError(f"invalid setting {field}={err.get('input')!r}: {err['msg']}") from None


test_settings.__test__ = False  # type: ignore[attr-defined]


class EnvironmentNotInStep(AssertionError):
    """``assert_in_step``: a full run would still change rows; the message lists the operations."""


class SyncdEnvironment:
    """One environment (``name``) of the database at ``database_url``, synced from ``graph_url``.

    Raises ``UnsafeDirectoryError`` (at creation) when ``graph_url`` is not a fake tenant on
    loopback, and ``syncd.errors.SyncdError`` for a bad environment spec (R1-R2: type, security
    group, ...) or a name that exists already.
    """

    def __init__(
        self,
        database_url: str,
        graph_url: str,
        name: str,
        *,
        type: str = "production",
        security_group: str | None = None,
        settings: dict[str, Any] | None = None,
        **spec: Any,
    ) -> None:
        from syncd.admin.env_settings import check_security_group
        from syncd.sync.directory import open_directory

        ensure_fake_directory(graph_url)
        self.name, self.database_url, self.graph_url = name, database_url, graph_url
        self.settings: Settings = test_settings(database_url, graph_url, settings)
        self.engine: Engine = db.make_engine(self.settings.database_url)
        # The fake tenant is on loopback: a proxy of the machine running the tests never sees it.
        self._directory = open_directory(self.settings, trust_env=False)
        try:
            db.ensure_at_head(self.engine)  # a project's own syncd_database may not be migrated
            spec_ = EnvironmentSpec(
                name=name, type=type, security_group_id=security_group, **spec
            ).normalized()
            if spec_.security_group_id is not None:  # as `syncd env create` checks it (R5)
                check_security_group(lambda: contextlib.nullcontext(self._directory), spec_.security_group_id)
            with db.session_factory(self.engine)() as s, s.begin():
                self.environment_id: int = create_environment(s, spec_).id
        except BaseException:
            self.close()
            raise

    # -- runs ------------------------------------------------------------------------------------
    def sync(
        self, kind: str = "auto", *, dry_run: bool = False, allow_mass_disable: bool | None = None
    ) -> RunReport:
        """One run: ``kind`` "auto" (delta when there is a checkpoint), "full" or "delta".

        Returns the run's report (``outcome``, ``counts``, ``error``, ``planned`` for a dry run);
        a failed run is a report, not an exception. Raises ``ValueError`` for an unknown kind and
        ``syncd.errors.Conflict`` when another process (a ``syncd_daemon``) is syncing it.
        """
        from syncd.errors import Conflict
        from syncd.service.locks import locks_for
        from syncd.sync.run import sync_environment

        if kind not in ("auto", "full", "delta"):
            raise ValueError(f"unknown run kind {kind!r}: expected auto, full or delta")
        if not isinstance(dry_run, bool) or not isinstance(allow_mass_disable, bool | None):
            raise TypeError(
                f"dry_run and allow_mass_disable are true or false, not {dry_run!r}, {allow_mass_disable!r}"
            )

        options = RunOptions(
            kind=kind, dry_run=dry_run, allow_mass_disable=allow_mass_disable, trigger="cli", holds_lock=True
        )
        with locks_for(self.engine).hold(self.environment_id) as held:
            if not held:
                raise Conflict(f"environment {self.name!r} is being synced by another process")
            return sync_environment(
                self.engine, self._directory, self.name, self.settings, options, connection=held.connection
            )

    def assert_in_step(self) -> None:
        """Raise ``EnvironmentNotInStep`` listing every operation a full run would make (as
        ``syncd sync --check`` exits 1), or naming the error when that run fails."""
        report = self.sync("full", dry_run=True)
        if report.outcome != "dry_run":
            raise EnvironmentNotInStep(
                f"the full run to check {self.name!r} {report.outcome}: {report.error}"
            )
        if report.planned:
            lines = [
                _describe(op, self.row(op["object_id"]) if i < 50 else None)
                for i, op in enumerate(report.planned)
            ]
            raise EnvironmentNotInStep(
                f"environment {self.name!r} is not in step: a full run would make {len(lines)} change(s):\n"
                + "\n".join(lines[:50])
                + (f"\n  ... and {len(lines) - 50} more" if len(lines) > 50 else "")
            )

    # -- reads -----------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """Every SystemUser row of the environment, as ``{column logical name: value}`` (ids as
        lower-case strings), ordered by ``domainname`` (then ``systemuserid``): the same order for
        the same tenant, whatever ids the rows got."""
        table = SystemUser.__table__
        query = (
            select(table)
            .where(table.c.environment_id == self.environment_id)
            .order_by(table.c.domainname, table.c.systemuserid)
        )
        return self._dicts(query)

    def row(self, user: str | dict[str, Any]) -> dict[str, Any] | None:
        """The row of one user, by Entra object id (any case, with or without braces or dashes),
        userPrincipalName (``domainname``, without case) or Graph user object; None when the
        environment has no row for them. Raises ``ValueError`` for an empty key."""
        key = str(user["id"]) if isinstance(user, dict) else str(user)
        if not key.strip():
            raise ValueError("a user is an object id, a userPrincipalName or a Graph user object, not ''")
        table = SystemUser.__table__
        try:
            cond = table.c.azureactivedirectoryobjectid == uuid.UUID(normalize_object_id(key))
        except ValueError:
            cond = casefold(table.c.domainname) == fold_text(key)
        found = self._dicts(select(table).where(table.c.environment_id == self.environment_id, cond))
        return found[0] if found else None

    def events(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """The environment's provisioning events (one per row a run or an admin changed: action,
        rule, reason, changes), oldest first; only those of ``run_id`` when given."""
        table = SyncEvent.__table__
        query = select(table).where(table.c.environment_id == self.environment_id)
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        return self._dicts(query.order_by(table.c.id))

    def diagnose(self, user: str | dict[str, Any]) -> dict[str, Any]:
        """R22: why the user is or is not enabled, check by check with rule ids, as ``syncd admin
        diagnose --json`` prints it. Raises ``syncd.errors.NotFound`` for a user the directory and
        the environment do not know."""
        from syncd.admin.users import diagnose_user

        key = str(user["id"]) if isinstance(user, dict) else user
        return diagnose_user(self.engine, self._directory, self.name, key).as_dict()

    def environment(self) -> dict[str, Any]:
        """The environment's own row (type, security group, checkpoint state...)."""
        table = Environment.__table__
        return self._dicts(select(table).where(table.c.id == self.environment_id))[0]

    def close(self) -> None:
        """Close the Graph client and the engine (idempotent)."""
        self._directory.close()
        self.engine.dispose()

    def __enter__(self) -> SyncdEnvironment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SyncdEnvironment {self.name!r} at {self.engine.url.render_as_string(hide_password=True)}>"

    def _dicts(self, query: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [{k: _plain(v) for k, v in r._mapping.items()} for r in conn.execute(query)]


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _describe(op: dict[str, Any], row: dict[str, Any] | None) -> str:
    """One planned operation: action, user (UPN and object id), rule, reason, then each changed
    column as ``old -> new`` (old from the row as it is now)."""
    upn = op.get("domainname") or (row or {}).get("domainname")
    who = f"{upn} ({op['object_id']})" if upn else op["object_id"]
    line = f"  {op['action']} {who}, {op['rule']}: {op['reason']}"
    for column, new in (op.get("changes") or {}).items():
        old = row.get(column) if row is not None else None
        line += f"\n      {column}: {old!r} -> {new!r}"
    return line
