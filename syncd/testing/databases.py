"""Fresh databases at head for tests: cloned from one migrated template per session.

SQLite: the template is a migrated file, and each database a copy of it (a file copy, a few
milliseconds). PostgreSQL: the template is a migrated database, and each test's database is
``CREATE DATABASE ... TEMPLATE`` of it (about 0.3 s on a small machine). Each database carries a
comment naming the host and process that made it; the first use of a new ``DatabaseTemplates``
drops the ones whose process on this host is gone (a test run killed before its teardown). A background thread makes
the next test's database while the current test runs, and drops used ones, so a test waits for
neither; ``close`` waits for that thread, then drops what is left. Every name the class creates
starts with ``prefix`` (``syncd_test_`` and a token of the instance), so a crashed session's
leftovers are easy to find.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from syncd.dataverse import db
from syncd.settings import normalise_database_url

AHEAD = 2  # PostgreSQL databases made ahead of the tests that will take them


class DatabaseTemplates:
    """Databases at head on one backend: SQLite files under ``folder``, or PostgreSQL databases on
    the server of ``pg_admin_url`` (any database URL of a role that may create databases, e.g.
    ``postgresql://postgres@127.0.0.1:5432/postgres``).

    ``fresh(folder)`` returns the URL of a new database at head; ``drop(url)`` removes one;
    ``close()`` removes the template. Raises ``syncd.errors.ConfigError`` for a malformed or
    non-PostgreSQL ``pg_admin_url``, and SQLAlchemy's ``OperationalError`` when the server refuses.
    """

    def __init__(self, folder: Path, pg_admin_url: str | None = None) -> None:
        self.folder = folder
        self.backend = "postgresql" if pg_admin_url else "sqlite"
        self._admin_url = normalise_database_url(pg_admin_url) if pg_admin_url else None
        if self._admin_url and make_url(self._admin_url).get_backend_name() != "postgresql":
            from syncd.errors import ConfigError

            raise ConfigError(f"--syncd-pg-url must be a PostgreSQL URL, not {pg_admin_url!r}")
        self._template: str | None = None
        self.prefix = f"syncd_test_{uuid.uuid4().hex[:8]}"  # of every database this instance makes
        self._jobs: queue.Queue[tuple[str, str]] = queue.Queue()
        self._ready: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None

    # -- the template ----------------------------------------------------------------------------
    def _ensure_template(self) -> str:
        if self._template is not None:
            return self._template
        if self._admin_url is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / "template.db"
            engine = db.make_engine(sqlite_url(path))
            db.upgrade(engine)
            engine.dispose()
            self._template = str(path)
        else:
            self.sweep()
            name = f"{self.prefix}_template"
            self._admin_execute(f'CREATE DATABASE "{name}"', self._owner_comment(name))
            engine = db.make_engine(self._url_of(name))
            try:
                db.upgrade(engine)
            finally:
                engine.dispose()
            self._template = name
        return self._template

    # -- databases -------------------------------------------------------------------------------
    def fresh(self, folder: Path) -> str:
        """The URL of a new database at head (a SQLite file in ``folder``, or a PostgreSQL database)."""
        template = self._ensure_template()
        if self._admin_url is None:
            path = folder / f"syncd-{uuid.uuid4().hex[:8]}.db"
            url = sqlite_url(path)
            shutil.copyfile(template, path)
            return url
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="syncd-test-databases", daemon=True)
            self._worker.start()
            for _ in range(AHEAD):
                self._jobs.put(("create", template))
        made = self._ready.get()
        if isinstance(made, BaseException):
            raise made
        self._jobs.put(("create", template))  # the next test's, made while this one runs
        return self._url_of(made)

    def _work(self) -> None:
        """The background thread: create and drop PostgreSQL databases in the order asked."""
        while True:
            what, name = self._jobs.get()
            if what == "stop":
                return
            try:
                if what == "create":
                    made = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
                    self._admin_execute(
                        f'CREATE DATABASE "{made}" TEMPLATE "{name}"', self._owner_comment(made)
                    )
                    self._ready.put(made)
                else:
                    self._admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # handed to the test that waits for the database
                if what == "create":
                    self._ready.put(exc)

    def drop(self, url: str) -> None:
        """Remove a database ``fresh`` made (its file and the WAL beside it, or the PostgreSQL database,
        closing any connection still open on it)."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database:
                for suffix in ("", "-wal", "-shm", ".lock", ".setup.lock"):
                    Path(parsed.database + suffix).unlink(missing_ok=True)
            return
        if self._worker is not None and self._worker.is_alive():
            self._jobs.put(("drop", str(parsed.database)))  # in the background, after the test
        else:
            self._admin_execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')

    def close(self) -> None:
        """Wait for the background work, then drop the databases made ahead and the template
        (nothing of this session is left on the server)."""
        if self._worker is not None:
            self._jobs.put(("stop", ""))
            self._worker.join()
            self._worker = None
            while not self._ready.empty():
                made = self._ready.get()
                if isinstance(made, str):
                    self._admin_execute(f'DROP DATABASE IF EXISTS "{made}" WITH (FORCE)')
        if self._template is not None and self._admin_url is not None:
            self._admin_execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._template = None

    def _url_of(self, name: str) -> str:
        assert self._admin_url is not None
        return make_url(self._admin_url).set(database=name).render_as_string(hide_password=False)

    def sweep(self) -> list[str]:
        """Drop the databases of syncd.testing whose process on this host has ended without its
        teardown; returns their names. Databases of live processes and of other hosts stay."""
        rows = self._admin_execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE starts_with(datname, 'syncd_test_')"
        )
        dropped = []
        for name, comment in rows:
            owner = _parse_owner(comment or "")
            if owner is not None and owner[0] == socket.gethostname() and not _alive(owner[1]):
                self._admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
        return dropped

    @staticmethod
    def _owner_comment(name: str) -> str:
        return (
            f"COMMENT ON DATABASE \"{name}\" IS '{OWNER_TAG} host={socket.gethostname()} pid={os.getpid()}'"
        )

    def _admin_execute(self, *statements: str) -> list[Any]:
        """Run ``statements`` on the server's admin connection (autocommit); the last one's rows."""
        assert self._admin_url is not None
        engine = create_engine(self._admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        rows: list[Any] = []
        try:
            with engine.connect() as conn:
                for sql in statements:
                    result = conn.execute(text(sql))
                    rows = list(result.all()) if result.returns_rows else []
        finally:
            engine.dispose()
        return rows


OWNER_TAG = "syncd.testing"


def _parse_owner(comment: str) -> tuple[str, int] | None:
    """(host, pid) from a database's comment written by ``_owner_comment``; None for any other."""
    words = dict(w.split("=", 1) for w in comment.split()[1:] if "=" in w)
    if not comment.startswith(OWNER_TAG + " ") or not words.get("pid", "").isdigit():
        return None
    return words.get("host", ""), int(words["pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path``. Raises ``ValueError`` for a path such a
    URL cannot name (one holding ``?``, which starts the URL's query), before anything is made."""
    url = URL.create("sqlite", database=str(path)).render_as_string()
    if make_url(url).database != str(path):
        raise ValueError(
            f"cannot name the SQLite file {str(path)!r} in a database URL ('?' starts a URL's query): "
            "use a --basetemp or TMPDIR without '?'"
        )
    return url
