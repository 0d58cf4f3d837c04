"""The provisioning log page's query: its filters read into an `EventFilter`, and every event of
a filter read back for the exports, a chunk at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.dataverse.environments import find_environment
from syncd.dataverse.provisioning_log import MAX_PAGE, RULE_PATTERN
from syncd.service.ui import data
from syncd.service.ui.data import EventFilter

#: The query parameters of the log page and its exports (each one the form field of that name).
LOG_FILTERS = ("environment", "run", "user", "action", "rule", "since", "until")
#: Events read at a time by an export.
EXPORT_CHUNK = MAX_PAGE


def log_filter(s: Session, params: dict[str, str]) -> tuple[EventFilter | None, list[str]]:
    """The filter the log's query (``params``: LOG_FILTERS, each stripped, "" when not given)
    names, or None and the list of what is wrong with it (one line each, for the page)."""
    errors: list[str] = []
    fields: dict[str, Any] = {}
    env_id = None
    if params.get("environment"):
        env = find_environment(s, params["environment"])
        if env is None:
            errors.append(f"no environment named {params['environment']!r}")
        else:
            env_id = env.id
            fields["environment_id"] = env.id
    if params.get("run"):
        run = parse_int(params["run"])
        if run is False or run is None:
            errors.append("Run must be a run id (a whole number)")
        else:
            fields["run_id"] = run
    if params.get("user"):
        user_fields, problem = data.user_event_filter(s, params["user"], env_id)
        if problem:
            errors.append(f"User {params['user']!r}: {problem}")
        fields.update(user_fields)
    if params.get("action"):
        action = params["action"].strip().lower()  # as the rule: any case
        if action not in data.ACTIONS:
            errors.append(f"Action must be one of {', '.join(data.ACTIONS)}")
        else:
            fields["action"] = action
    if params.get("rule"):
        rule = normal_rule(params["rule"])
        if rule is None:
            errors.append("Rule must be a rule id, e.g. R9 or R7c")
        else:
            fields["rule"] = rule
    for name in ("since", "until"):
        if params.get(name):
            ts = parse_time(params[name])
            if ts is None:
                errors.append(f"{name.title()} must be a date or a time, e.g. 2026-11-30 or 2026-11-30T14:00")
            else:
                fields[name] = ts
    if "since" in fields and "until" in fields and fields["since"] >= fields["until"]:
        errors.append("Since must be before Until")  # as GET /api/events says
    return (None, errors) if errors else (EventFilter(**fields), [])


def all_events(engine: Engine, f: EventFilter, chunk: int = EXPORT_CHUNK) -> Iterator[Any]:
    """Every event of the filter, newest first, read a chunk at a time, each in a session of
    its own (the response reads it from worker threads); memory stays flat. A chunk is at most
    the log's page (``MAX_PAGE``, 500): a shorter one is the end."""
    chunk = min(chunk, MAX_PAGE)
    before: int | None = None
    while True:
        with Session(engine) as s:
            page = data.read_events(s, f, limit=chunk, before=before)
        yield from page
        if len(page) < chunk:
            return
        before = page[-1].id


def normal_rule(value: str) -> str | None:
    """A rule id as events carry it (``RULE_PATTERN``: ``r9`` is R9, ``r7C`` is R7c), or None when
    ``value`` is not one."""
    text = value.strip()
    rule = "R" + text[1:].lower() if text[:1] in ("r", "R") else text
    return rule if re.fullmatch(RULE_PATTERN, rule) else None


def parse_int(value: str | None) -> int | None | bool:
    """A query's whole number: None when absent or empty, False when not one (or out of range)."""
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        return False
    return n if 0 <= n <= 2**63 - 1 else False


def parse_time(value: str) -> datetime | None:
    """A filter's date or time (ISO 8601; a naive one is UTC), or None when it is not one."""
    try:
        ts = datetime.fromisoformat(value.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
