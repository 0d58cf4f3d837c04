"""Stub users: import, default role, conflicts, bad files, reassignment (R20), on both backends."""

from __future__ import annotations

import pytest
from admin_helpers import Tenant, make_env
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from syncd.admin import stubs, users
from syncd.admin.errors import Refused
from syncd.dataverse.records import OwnedRecord
from syncd.dataverse.schema import Role, SystemUser, SystemUserRole
from syncd.directory.client import GraphClient
from syncd.settings import Settings
from syncd.sync.run import RunOptions, sync_environment

CSV = """domainname,fullname,firstname,records
old.one@legacy.example,Old One,Old,account:Contoso;contact:Jane Doe
old.two@legacy.example,Old Two,,
"""


def stub_rows(engine: Engine) -> list[SystemUser]:
    with Session(engine) as s:
        return list(
            s.scalars(select(SystemUser).where(SystemUser.kind == "stub").order_by(SystemUser.domainname))
        )


def roles_of(engine: Engine, row: SystemUser) -> list[str]:
    with Session(engine) as s:
        q = select(Role.name).join(SystemUserRole).where(SystemUserRole.systemuserid == row.systemuserid)
        return list(s.scalars(q))


def test_import_creates_disabled_stubs_with_the_default_role(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R20
    make_env(engine)
    make_env(engine, "sales", is_sales=True)
    r = stubs.import_stubs(engine, directory, "prod", CSV)
    assert [c["line"] for c in r.created] == [2, 3] and r.records == 2 and r.conflicts == []
    assert r.default_role == "Basic User"
    rows = stub_rows(engine)
    assert [(x.domainname, x.isdisabled, x.azureactivedirectoryobjectid) for x in rows] == [
        ("old.one@legacy.example", True, None),
        ("old.two@legacy.example", True, None),
    ]
    assert roles_of(engine, rows[0]) == ["Basic User"]
    r = stubs.import_stubs(engine, directory, "sales", "domainname,fullname\nseller@legacy.example,Seller\n")
    assert r.default_role == "Salesperson"
    # A stub can't be enabled (R20) and is never synchronised.
    with pytest.raises(Refused) as err:
        users.add_user(engine, directory, "prod", "old.one@legacy.example")
    assert err.value.checks[0].rule == "R20"
    sync_environment(engine, directory, "prod", Settings(), RunOptions(kind="full"))
    assert all(x.isdisabled for x in stub_rows(engine))


def test_directory_user_with_a_stubs_upn_is_a_conflict(
    engine: Engine, tenant: Tenant, directory: GraphClient
) -> None:
    # R20: reported, never merged
    make_env(engine)
    u = tenant.user("victor")
    upn = u["userPrincipalName"]
    r = stubs.import_stubs(engine, directory, "prod", f"domainname,fullname\n{upn.upper()},Victor Old\n")
    [conflict] = r.conflicts
    assert conflict["line"] == 2 and "R20" in conflict["message"] and u["id"] in conflict["message"]
    added = users.add_user(engine, directory, "prod", upn)
    assert added.action == "create" and added.conflicts and "not merged" in added.conflicts[0]
    d = users.diagnose_user(engine, directory, "prod", upn)
    assert any(c.rule == "R20" and not c.passed for c in d.checks)
    with Session(engine) as s:
        kinds = sorted(
            s.scalars(select(SystemUser.kind).where(func.lower(SystemUser.domainname) == upn.lower()))
        )
    assert kinds == ["regular", "stub"]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("fullname\nNo Upn\n", [1]),
        ("domainname,fullname,shoe_size\na@b.example,A,42\n", [1]),
        (
            "domainname,fullname\nok@legacy.example,Ok\nnot-an-upn,Bad\n,Empty\nok@legacy.example,Again\n",
            [3, 4, 5],
        ),
        ("domainname,fullname\na@legacy.example,A,extra\n", [2]),
        ("domainname,fullname,records\na@legacy.example,A,account\n", [2]),
        ("domainname,fullname\n", [2]),
    ],
)
def test_bad_csv_writes_nothing(
    engine: Engine, tenant: Tenant, directory: GraphClient, text: str, lines: list[int]
) -> None:
    # R20: every bad line with its number; nothing imported
    make_env(engine)
    with pytest.raises(stubs.BadCsv) as err:
        stubs.import_stubs(engine, directory, "prod", text)
    assert sorted({p.line for p in err.value.problems}) == lines
    assert err.value.exit_code == 2
    assert stub_rows(engine) == []


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        # The newcomer's file: SQLite stored it, PostgreSQL failed with a traceback.
        (
            b"domainname,fullname,lastname,jobtitle\nstubnul@x.com,Nul\x00Stub,\x00x,\x01\x02\n",
            [(2, "fullname", "U+0000"), (2, "lastname", "U+0000"), (2, "jobtitle", "U+0001")],
        ),
        (
            'domainname,fullname\nok@legacy.example,Ok\n"tab\t@legacy.example",Tab\nx@legacy.example,"Two\nLines"\n',
            [(3, "domainname", "U+0009"), (4, "fullname", "U+000A")],
        ),
        (
            "domainname,fullname,records\nd@legacy.example,Del\x7f,account:A\x1fB\n",
            [(2, "fullname", "U+007F"), (2, "records", "U+001F")],
        ),
        ("domainname,fullname\n\x00@legacy.example,Nul\n", [(2, "domainname", "U+0000")]),
    ],
)
def test_control_characters_are_bad_lines_on_both_backends(
    engine: Engine,
    tenant: Tenant,
    directory: GraphClient,
    text: str | bytes,
    problems: list[tuple[int, str, str]],
) -> None:
    # R20: a value with a C0 control character (U+0000-U+001F) or DEL is a bad line, naming its line
    # and column, and nothing is imported, on SQLite and PostgreSQL alike.
    make_env(engine)
    with pytest.raises(stubs.BadCsv) as err:
        stubs.import_stubs(engine, directory, "prod", text)
    found = err.value.problems
    assert len(found) == len(problems), found
    for p, (line, column, char) in zip(found, problems, strict=True):
        assert p.line == line and f"column {column} " in p.message and char in p.message, p
    assert "nothing imported" in str(err.value) and "\x00" not in str(err.value)
    assert stub_rows(engine) == []


def test_existing_stub_is_a_bad_line(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    make_env(engine)
    stubs.import_stubs(engine, directory, "prod", CSV)
    with pytest.raises(stubs.BadCsv) as err:
        stubs.import_stubs(
            engine,
            directory,
            "prod",
            "domainname,fullname\nnew@legacy.example,New\nOLD.TWO@legacy.example,X\n",
        )
    assert [p.line for p in err.value.problems] == [3]
    assert len(stub_rows(engine)) == 2


def test_reassign_moves_the_stubs_records(engine: Engine, tenant: Tenant, directory: GraphClient) -> None:
    # R20
    make_env(engine)
    stubs.import_stubs(engine, directory, "prod", CSV)
    u, off = tenant.user("wendy"), tenant.user("xavier")
    users.add_user(engine, directory, "prod", u["id"])
    users.add_user(engine, directory, "prod", off["id"])
    tenant.disable(off["id"])
    users.refresh_user(engine, directory, "prod", off["id"])
    with pytest.raises(Refused):
        stubs.reassign_stub(engine, "prod", "old.one@legacy.example", off["userPrincipalName"])
    r = stubs.reassign_stub(
        engine, "prod", "old.one@legacy.example", u["userPrincipalName"], directory=directory
    )
    assert r.records == 2
    with Session(engine) as s:
        owners = set(s.scalars(select(OwnedRecord.ownerid)))
    assert owners == {uuid_of(engine, u["userPrincipalName"])}
    d = users.diagnose_user(engine, directory, "prod", u["id"])
    assert d.events[0]["action"] == "reassign"
    # The stub stays (never deleted); reassigning again moves nothing.
    assert stubs.reassign_stub(engine, "prod", "old.one@legacy.example", u["id"]).records == 0
    with pytest.raises(Exception, match="no stub user"):
        stubs.reassign_stub(engine, "prod", u["userPrincipalName"], u["id"])


def uuid_of(engine: Engine, upn: str) -> object:
    with Session(engine) as s:
        return s.scalar(
            select(SystemUser.systemuserid).where(SystemUser.domainname == upn, SystemUser.kind == "regular")
        )
