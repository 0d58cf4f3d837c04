"""Engines, sessions and the schema revision: create the engine, upgrade, check head."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from syncd.dataverse import textfold
from syncd.errors import ConfigError, DatabaseNotAtHead
from syncd.settings import normalise_database_url

# The migrations ship inside the package, so an installed syncd (not only a checkout) can migrate.
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings syncd relies on (psycopg 3; foreign keys and WAL on SQLite, and
    the `syncd_casefold` function that `textfold.casefold` compiles to there)."""
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # 64 MiB of page cache (the default is 2 MiB): a full run's row lookups stay in memory
            # at a hundred thousand rows, so its time grows with the rows, not faster.
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()
            textfold.register(dbapi_conn)

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the database at `url`, built in code (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; ConfigError naming it when the migrations know no such revision."""
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate down to ``revision``; ConfigError naming it when the migrations know no such revision."""
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Any, revision: str) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    relative = revision[:1] in ("+", "-") and revision[1:].isdigit()  # alembic's -1, +2
    if (
        revision not in ("head", "base")
        and not relative
        and not _is_known(ScriptDirectory.from_config(cfg), revision)
    ):
        raise ConfigError(
            f"unknown database revision {revision!r}: expected one of the migrations, head or base"
        )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        step(cfg, revision)


def is_empty(engine: Engine) -> bool:
    return not inspect(engine).get_table_names()


def ensure_at_head(engine: Engine, *, auto_upgrade: bool = False) -> None:
    """Refuse a database that is not at the migrations' head, naming the fix.

    With `auto_upgrade` (the embedded SQLite default), a fresh or older database is upgraded.
    A database at a revision this syncd does not know is always refused.
    """
    url = engine.url.render_as_string(hide_password=False)
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    current = current_revision(engine)
    if current == head:
        return
    known = current is None or _is_known(script, current)
    if not known:
        raise DatabaseNotAtHead(
            f"database {engine.url.render_as_string(hide_password=True)} is at unknown revision {current!r} "
            f"(this syncd knows up to {head!r}): it was migrated by a newer syncd"
        )
    if auto_upgrade:
        # Two processes started at once on a fresh embedded database (`syncd run` and `syncd sync`)
        # would both migrate it: the first takes a file lock beside it, the second waits, then finds
        # the database at head.
        with _setup_lock(engine):
            if current_revision(engine) != head:
                upgrade(engine)
        return
    where = "empty" if current is None else f"at revision {current!r}"
    raise DatabaseNotAtHead(
        f"database {engine.url.render_as_string(hide_password=True)} is {where}, not at head {head!r}: "
        "run `syncd db upgrade`"
    )


def sqlite_file(engine: Engine) -> Path | None:
    """A SQLite engine's database file, absolute and with symbolic links resolved (so that every
    process names one lock file for it); None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a URI filename (?uri=true)
        database = database.removeprefix("file:").split("?", 1)[0]
        if not database or database == ":memory:":
            return None
    return Path(database).resolve()


def _setup_lock(engine: Engine) -> AbstractContextManager[object]:
    """A file lock ``<database file>.setup.lock`` serialising first-use set-up of a SQLite file (no lock
    for an in-memory database, which belongs to one process). Waits up to two minutes."""
    path = sqlite_file(engine) if engine.dialect.name == "sqlite" else None
    if path is None:
        return nullcontext()
    return FileLock(path.with_name(f"{path.name}.setup.lock"), timeout=120)


def _is_known(script: ScriptDirectory, rev: str) -> bool:
    try:
        return script.get_revision(rev) is not None
    except Exception:
        return False


def ensure_known_or_empty(engine: Engine) -> None:
    """Refuse to migrate a database at a revision this syncd does not know."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    current = current_revision(engine)
    if current is not None and not _is_known(script, current):
        raise DatabaseNotAtHead(
            f"database {engine.url.render_as_string(hide_password=True)} is at unknown revision {current!r}: "
            "it was migrated by a newer syncd; upgrade syncd instead"
        )
