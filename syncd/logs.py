"""structlog set-up, called once from the CLI's entry point (never at import time).

Console rendering on a terminal, JSON lines otherwise; ISO timestamps; fields, not
formatted strings. Values of keys that look like secrets are masked.

structlog is imported here, when the CLI first configures it: for JSON lines without rich, which
``import structlog`` would load for its console renderer's tracebacks (syncd.optional_imports).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any

import orjson

from syncd.optional_imports import hidden

_SECRET_KEYS = ("token", "password", "secret", "authorization")


def _mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event:
        if any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "********"
    return event


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    structlog = _structlog(console=fmt == "console")
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    # azure-identity and MSAL log through the standard library; syncd reports their failures itself,
    # in one line, so their own records (plain text, request details) stay out of syncd's log.
    for name in ("azure", "msal", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _structlog(*, console: bool) -> ModuleType:
    """structlog, imported now if it is not yet: without rich unless the console renderer is used.

    When it is, and structlog was imported while rich was hidden, ``structlog.dev`` is loaded again
    so that the renderer draws tracebacks with rich as it does by default (rich being installed)."""
    if console:
        import structlog

        if structlog.dev.rich is None and importlib.util.find_spec("rich") is not None:
            importlib.reload(structlog.dev)
        return structlog
    with hidden("rich"):
        import structlog
    return structlog
