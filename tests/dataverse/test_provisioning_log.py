"""The provisioning log (syncd.dataverse.provisioning_log): each filter, time ranges, keyset pages,
old and new values, and the CSV / JSON lines exports; the same answer on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import orjson
import pytest
from dataverse_helpers import T0, add_event, add_run, add_user, environment
from sqlalchemy import Engine

from syncd.dataverse import db
from syncd.dataverse.provisioning_log import (
    ACTIONS,
    CSV_COLUMNS,
    EventFilter,
    UnknownEvent,
    csv_rows,
    iter_events,
    jsonl_rows,
    read_events,
)


@pytest.fixture
def log(engine: Engine) -> dict[str, Any]:
    """Two environments; prod has 30 events a minute apart (ids in time order) of two users, and an
    app user's event without an object id."""
    with db.session_factory(engine)() as s, s.begin():
        prod, other = environment(s), environment(s, "other")
        ann = add_user(s, prod, "ann@contoso.com", "Ann")
        ben = add_user(s, prod, "ben@contoso.com", "Ben")
        app = add_user(s, prod, "app-id", "An app", kind="application")
        far = add_user(s, other, "far@contoso.com", "Far")
        run1, run2 = add_run(s, prod), add_run(s, prod)
        ids = []
        for i in range(30):
            row = ann if i % 2 else ben
            rule = "R12" if i == 7 else "R10"  # one rare rule
            action = "disable" if i in (3, 20) else "update"
            e = add_event(s, prod, row=row, run=run1 if i < 15 else run2, rule=rule, action=action, minutes=i)
            ids.append(e.id)
        add_event(s, prod, row=app, action="update", rule="R16", minutes=40)
        add_event(s, other, row=far, action="create", rule="R7", minutes=35)
        return {
            "prod": prod.id,
            "other": other.id,
            "ann": ann,
            "ben": ben,
            "app": app,
            "run1": run1.id,
            "run2": run2.id,
            "ids": ids,
        }


def _read(engine: Engine, f: EventFilter, **kw: Any) -> list[Any]:
    with db.session_factory(engine)() as s:
        return read_events(s, f, **kw)


def test_environment_filter_newest_first_and_keyset_pages(engine: Engine, log: dict[str, Any]) -> None:
    f = EventFilter(environment_id=log["prod"])
    first = _read(engine, f, limit=10)
    assert [e.reason for e in first] and first[0].rule == "R16"  # the newest (40 min) comes first
    assert [e.id for e in first[1:]] == log["ids"][::-1][:9]
    second = _read(engine, f, limit=10, before=first[-1].id)
    assert [e.id for e in second] == log["ids"][::-1][9:19]
    everything: list[int] = []
    before = None
    while page := _read(engine, f, limit=7, before=before):
        everything += [e.id for e in page]
        before = page[-1].id
    assert len(everything) == 31 and len(set(everything)) == 31
    assert all(e.environment == "prod" for e in first)


def test_each_filter(engine: Engine, log: dict[str, Any]) -> None:
    prod = log["prod"]
    by_run = _read(engine, EventFilter(run_id=log["run2"]))
    assert [e.id for e in by_run] == log["ids"][15:][::-1]
    rare = _read(engine, EventFilter(environment_id=prod, rule="R12"))
    assert [e.id for e in rare] == [log["ids"][7]]
    disables = _read(engine, EventFilter(environment_id=prod, action="disable"))
    assert [e.id for e in disables] == [log["ids"][20], log["ids"][3]]
    ann = str(log["ann"].azureactivedirectoryobjectid)
    for spelling in (ann, ann.upper(), ann.replace("-", ""), "{" + ann + "}"):
        mine = _read(engine, EventFilter(object_id=spelling))
        assert len(mine) == 15 and {e.domainname for e in mine} == {"ann@contoso.com"}
    by_sid = _read(engine, EventFilter(systemuserid=str(log["ben"].systemuserid)))
    assert len(by_sid) == 15 and {e.domainname for e in by_sid} == {"ben@contoso.com"}
    app = _read(engine, EventFilter(systemuserid=str(log["app"].systemuserid)))  # no object id
    assert [e.rule for e in app] == ["R16"] and app[0].azureactivedirectoryobjectid is None
    both = _read(engine, EventFilter(environment_id=prod, run_id=log["run1"], action="disable"))
    assert [e.id for e in both] == [log["ids"][3]]
    with pytest.raises(ValueError, match="not a GUID"):
        _read(engine, EventFilter(object_id="nope"))


def test_time_range_is_exact_and_pages(engine: Engine, log: dict[str, Any]) -> None:
    f = EventFilter(
        environment_id=log["prod"], since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=9)
    )
    assert [e.id for e in _read(engine, f)] == log["ids"][5:9][::-1]  # since inclusive, until exclusive
    page = _read(engine, f, limit=3)
    rest = _read(engine, f, limit=3, before=page[-1].id)
    assert [e.id for e in page + rest] == log["ids"][5:9][::-1]
    naive = EventFilter(environment_id=log["prod"], since=(T0 + timedelta(minutes=29)).replace(tzinfo=None))
    assert len(_read(engine, naive)) == 2  # 29 and the app user's 40; a naive time is UTC


def test_order_follows_time_not_id(engine: Engine, log: dict[str, Any]) -> None:
    # An event stamped earlier but written later (another writer's slower commit) sorts by its time.
    with db.session_factory(engine)() as s, s.begin():
        from syncd.dataverse.schema import Environment

        env = s.get(Environment, log["prod"])
        assert env is not None
        late = add_event(s, env, row=log["ann"], minutes=0, rule="R3", at=T0 - timedelta(seconds=1))
    everything = _read(engine, EventFilter(environment_id=log["prod"]), limit=500)
    assert everything[-1].id == late.id


def test_without_an_environment_every_environment_is_merged(engine: Engine, log: dict[str, Any]) -> None:
    newest = _read(engine, EventFilter(), limit=3)
    assert [e.environment for e in newest] == ["prod", "other", "prod"]  # 40, 35, 29 minutes
    creates = _read(engine, EventFilter(action="create"))
    assert [e.environment for e in creates] == ["other"]
    with db.session_factory(engine)() as s:
        streamed = list(iter_events(s, EventFilter(), chunk=4))
    assert len(streamed) == 32 and streamed[0].id == newest[0].id
    assert [e.created_at for e in streamed] == sorted((e.created_at for e in streamed), reverse=True)


def test_unknown_before_and_bad_limit(engine: Engine, log: dict[str, Any]) -> None:
    with pytest.raises(UnknownEvent):
        _read(engine, EventFilter(), before=999_999)
    with pytest.raises(ValueError, match="limit"):
        _read(engine, EventFilter(), limit=0)


def test_changes_pair_old_and_new_values(engine: Engine) -> None:
    with db.session_factory(engine)() as s, s.begin():
        env = environment(s)
        row = add_user(s, env, "x@contoso.com")
        add_event(
            s,
            env,
            row=row,
            changes=orjson.dumps({"jobtitle": "Boss", "isdisabled": False}).decode(),
            previous=orjson.dumps({"jobtitle": "Clerk", "isdisabled": True}).decode(),
        )
        add_event(s, env, row=row, action="update", changes='{"accessmode": 2}', minutes=1)  # before 0007
    newer, older = _read(engine, EventFilter(environment_id=env.id))
    assert older.changes == {"jobtitle": ("Clerk", "Boss"), "isdisabled": (True, False)}
    assert newer.changes == {"accessmode": (None, 2)}
    d = older.as_dict()
    assert d["changes"]["jobtitle"] == {"old": "Clerk", "new": "Boss"}
    assert d["created_at"] == "2026-11-01T12:00:00+00:00"
    assert orjson.loads(orjson.dumps(d)) == d


def test_csv_quotes_commas_quotes_and_line_breaks(engine: Engine) -> None:
    with db.session_factory(engine)() as s, s.begin():
        env = environment(s)
        row = add_user(s, env, "=cmd@contoso.com")
        add_event(s, env, row=row, reason='Says "hi", then\nleaves', changes='{"fullname": "A, B"}')
    with db.session_factory(engine)() as s:
        lines = list(csv_rows(iter_events(s, EventFilter(environment_id=env.id))))
    assert lines[0] == ",".join(CSV_COLUMNS) + "\r\n"
    assert len(lines) == 2 and lines[1].endswith("\r\n")
    (parsed,) = list(csv.DictReader(io.StringIO("".join(lines))))
    assert parsed["reason"] == 'Says "hi", then\nleaves'
    assert orjson.loads(parsed["changes"]) == {"fullname": {"old": None, "new": "A, B"}}
    assert parsed["domainname"] == "'=cmd@contoso.com"  # a spreadsheet formula is defused


def test_jsonl_is_one_object_per_line(engine: Engine, log: dict[str, Any]) -> None:
    with db.session_factory(engine)() as s:
        out = b"".join(jsonl_rows(iter_events(s, EventFilter(environment_id=log["prod"]), chunk=8)))
    lines = out.splitlines()
    assert len(lines) == 31 and out.endswith(b"\n")
    assert [orjson.loads(line)["id"] for line in lines[1:]] == log["ids"][::-1]


def test_actions_name_every_action_the_code_writes() -> None:
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "syncd"
    written: set[str] = set()
    for path in [*root.glob("admin/*.py"), *root.glob("webapi/*.py")]:
        written |= set(re.findall(r'record_event\(\s*session,\s*\w+,\s*"([a-z_]+)"', path.read_text()))
    assert written and written <= set(ACTIONS)
    assert {"create", "update", "enable", "disable", "failed", "withheld"} <= set(ACTIONS)
