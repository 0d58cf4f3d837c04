"""What every command shares: the settings, and the database engine opened on first use."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from syncd.settings import DEFAULT_DATABASE_URL, Settings, normalise_database_url

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

# syncd.dataverse.db (the engine, the migrations) is imported when the database is first used: a
# command's help and `syncd config show` do not open it; rich when something is first printed with
# it (`--json` prints without it).


@dataclass
class AppContext:
    settings: Settings
    _engine: Engine | None = None
    _console: Console | None = field(default=None, repr=False)

    @property
    def console(self) -> Console:
        """The console a command prints its tables and messages on, made on first use."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False)
        return self._console

    @property
    def uses_embedded_database(self) -> bool:
        return self.settings.database_url == normalise_database_url(DEFAULT_DATABASE_URL)

    def engine(self, *, check_head: bool = True) -> Engine:
        """The engine; unless told otherwise, refuses a database that is not at head.

        The embedded SQLite default upgrades itself on first use.
        """
        if self._engine is None:
            from syncd.dataverse.db import ensure_at_head, make_engine

            self._engine = make_engine(self.settings.database_url)
            if check_head:
                ensure_at_head(self._engine, auto_upgrade=self.uses_embedded_database)
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        from syncd.dataverse.db import session_factory

        with session_factory(self.engine())() as session, session.begin():
            yield session

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
