"""Engines, sessions and the schema revision: create the engine, upgrade, check head."""

from __future__ import annotations

import ast
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text

from syncd.dataverse import textfold
from syncd.errors import ConfigError, DatabaseNotAtHead
from syncd.settings import normalise_database_url

if TYPE_CHECKING:
    # alembic is imported where it is used: a command that only reads a database at head (the
    # check at start compares the revision with head_revision_id()) never loads its runtime. So is
    # the ORM, where a session is made: the sync run and `syncd runs` read and write through Core
    # and DB-API connections, and never load the mapper configuration.
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.orm import Session, sessionmaker

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
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the database at `url`, built in code (no alembic.ini needed)."""
    from alembic.config import Config

    # alembic's own default stdout is sys.stdout as it was when alembic.config was first imported
    # (a default argument), which may be a stream closed since; its messages go to today's.
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision(url: str) -> str:
    """The migrations' head revision, as alembic finds it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision (None for an empty database), as alembic reads it."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; ConfigError naming it when the migrations know no such revision."""
    from alembic import command

    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate down to ``revision``; ConfigError naming it when the migrations know no such revision."""
    from alembic import command

    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Any, revision: str) -> None:
    from alembic.script import ScriptDirectory

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
    A database at a revision this syncd does not know is always refused. Without ``auto_upgrade``,
    a SQLite file that does not exist is refused before anything connects (connecting would create
    an empty file).
    """
    if not auto_upgrade and engine.dialect.name == "sqlite":
        path = sqlite_file(engine)
        if path is not None and not path.exists():
            raise DatabaseNotAtHead(f"database {path} does not exist: run `syncd db upgrade` to create it")
    head_id = head_revision_id()
    if head_id is not None and _single_revision(engine) == head_id:
        return  # at head: the common case, decided without alembic
    from alembic.script import ScriptDirectory

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
    from filelock import FileLock

    return FileLock(path.with_name(f"{path.name}.setup.lock"), timeout=120)


def _is_known(script: ScriptDirectory, rev: str) -> bool:
    try:
        return script.get_revision(rev) is not None
    except Exception:
        return False


def ensure_known_or_empty(engine: Engine) -> None:
    """Refuse to migrate a database at a revision this syncd does not know."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    current = current_revision(engine)
    if current is not None and not _is_known(script, current):
        raise DatabaseNotAtHead(
            f"database {engine.url.render_as_string(hide_password=True)} is at unknown revision {current!r}: "
            "it was migrated by a newer syncd; upgrade syncd instead"
        )


_UNREAD = object()
_head_id: object = _UNREAD


def head_revision_id() -> str | None:
    """The head revision of the migrations, read from their source text without alembic; None when
    they are not a plain chain that can be read so (alembic is then asked, see ensure_at_head).

    Alembic reads every ``*.py`` of ``migrations/versions`` but ``__init__.py`` and editor lock files
    (``.#*``); each declares ``revision`` and ``down_revision`` (a string, None, or a tuple of strings
    for a merge). The head is the one revision no other revision names as its ``down_revision``. Any
    file whose module-level assignments are not plain literals, or branch labels, dependencies, or a
    graph with other than one head, gives None.
    """
    global _head_id
    if _head_id is _UNREAD:
        _head_id = _read_head_id(MIGRATIONS / "versions")
    return _head_id  # type: ignore[return-value]


_REVISION_NAMES = frozenset({"revision", "down_revision", "branch_labels", "depends_on"})


def _read_head_id(versions: Path) -> str | None:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        if path.name == "__init__.py" or path.name.startswith(".#"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            return None
        values: dict[str, Any] = {}
        top_level: set[int] = set()
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name) and target.id in _REVISION_NAMES:
                    top_level.add(id(target))
                    try:
                        values[target.id] = ast.literal_eval(value)
                    except (ValueError, TypeError, SyntaxError):
                        return None
        if _bound_elsewhere(tree, top_level):
            return None
        revision, down = values.get("revision"), values.get("down_revision", _UNREAD)
        if not isinstance(revision, str) or revision in revisions or down is _UNREAD:
            return None
        if values.get("branch_labels") is not None or values.get("depends_on") is not None:
            return None
        downs = (down,) if isinstance(down, str) else down if isinstance(down, tuple) else ()
        if down is not None and (not downs or not all(isinstance(d, str) for d in downs)):
            return None
        revisions.add(revision)
        parents.update(downs)
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return None
    return heads.pop()


def _bound_elsewhere(tree: ast.Module, top_level: set[int]) -> bool:
    """Whether the module binds one of the revision names other than by a plain top-level assignment
    (in a block, a loop, an import...): then only running it tells what alembic would read."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names = {node.id} if id(node) not in top_level else set()
        elif isinstance(node, ast.alias):
            names = {(node.asname or node.name).split(".")[0]}
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names = set(node.names)
        else:
            continue
        if names & _REVISION_NAMES:
            return True
    return False


def _single_revision(engine: Engine) -> str | None:
    """The one revision in the database's ``alembic_version`` table; None when there is no such table
    or it holds other than one row (alembic then reads the database itself)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except Exception:
        return None
    return rows[0][0] if len(rows) == 1 else None
