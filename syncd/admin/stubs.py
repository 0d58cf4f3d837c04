"""Stub users (R20): placeholders created by data import, and the reassignment of their records.

The import file is CSV with a header line. ``domainname`` and ``fullname`` are required; the
optional columns are ``firstname``, ``lastname``, ``internalemailaddress``, ``jobtitle`` and
``records`` (the records the stub owns, as ``entity:name`` pairs separated by ``;``, e.g.
``account:Contoso;contact:Jane Doe``). The whole file is checked before anything is written: any
bad line (with its line number) and nothing is imported. A value holding a control character
(U+0000-U+001F or DEL, a tab or a line break inside a quoted value included) is a bad line, on
every backend alike (PostgreSQL can't store a NUL).

Each stub is disabled, can't be enabled, is never synchronised, and gets the default role (Basic
User; Salesperson in a Sales environment). A directory user (or a regular row) with the same UPN
is reported as a conflict; the stub is still created, separately, never merged: ``reassign``
moves its records to the real user.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from syncd.admin import lookup
from syncd.admin.audit import record_event
from syncd.admin.errors import Refused, check_dict
from syncd.dataverse.environments import get_environment, root_business_unit
from syncd.dataverse.lengths import SYSTEMUSER_LENGTHS
from syncd.dataverse.records import OwnedRecord
from syncd.dataverse.schema import Role, SystemUser, SystemUserRole, utcnow
from syncd.dataverse.textfold import casefold, fold_text
from syncd.directory.client import GraphClient
from syncd.directory.ids import is_object_id
from syncd.errors import BAD_REQUEST, NotFound, SyncdError
from syncd.rules import Check, default_role_name, stub_conflict
from syncd.sync.run import environment_facts

log = structlog.get_logger(__name__)

REQUIRED = ("domainname", "fullname")
OPTIONAL = ("firstname", "lastname", "internalemailaddress", "jobtitle", "records")
#: The import file's format in one paragraph (the admin API's OpenAPI document shows it).
CSV_FORMAT = (
    "R20: stub users as CSV (UTF-8) with a header line. Required columns: "
    + ", ".join(REQUIRED)
    + "; optional: "
    + ", ".join(OPTIONAL)
    + " (the records a stub owns, as entity:name pairs separated by ';', e.g. "
    "account:Contoso;contact:Jane Doe). No control characters; any bad line and nothing is imported."
)
# A stub's columns hold what the SystemUser columns hold (Dataverse's lengths).
_LIMITS = {c: SYSTEMUSER_LENGTHS[c] for c in (*REQUIRED, *OPTIONAL) if c != "records"}
_ENTITY = re.compile(r"^[a-z_][a-z0-9_]{0,99}$")
# C0 control characters (U+0000-U+001F) and DEL: no column of a stub holds one (PostgreSQL can't
# store a NUL at all), so a value with one is a bad line on every backend alike.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LINES = 100_000


@dataclass(frozen=True)
class BadLine:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class BadCsv(SyncdError):
    """The import file has bad lines; nothing was written."""

    def __init__(self, source: str, problems: list[BadLine]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{source}: {len(problems)} bad line(s), nothing imported: {shown}{more}")
        self.problems = problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": BAD_REQUEST,
            "detail": str(self),
            "lines": [{"line": p.line, "message": p.message} for p in self.problems],
        }


@dataclass
class StubLine:
    line: int
    domainname: str
    fullname: str
    firstname: str | None = None
    lastname: str | None = None
    internalemailaddress: str | None = None
    jobtitle: str | None = None
    records: list[tuple[str, str]] = field(default_factory=list)


def parse_stub_csv(text: str | bytes, source: str = "CSV") -> list[StubLine]:
    """The stubs of an import file; BadCsv lists every bad line when there is one."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadCsv(source, [BadLine(1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise BadCsv(source, [BadLine(1, f"unreadable header: {exc}")]) from None
    if not header or not any(h.strip() for h in header):
        raise BadCsv(source, [BadLine(1, "no header line (at least domainname,fullname)")])
    names = [h.strip().lower() for h in header]
    problems: list[BadLine] = []
    missing = [c for c in REQUIRED if c not in names]
    unknown = [h for h in names if h not in REQUIRED + OPTIONAL]
    dupes = sorted({h for h in names if names.count(h) > 1})
    if missing:
        problems.append(BadLine(1, f"missing column(s) {', '.join(missing)}"))
    if unknown:
        problems.append(
            BadLine(
                1,
                f"unknown column(s) {', '.join(repr(h) if _CONTROL.search(h) else h for h in unknown)} "
                f"(known: {', '.join(REQUIRED + OPTIONAL)})",
            )
        )
    if dupes:
        problems.append(BadLine(1, f"repeated column(s) {', '.join(dupes)}"))
    if problems:
        raise BadCsv(source, problems)
    stubs: list[StubLine] = []
    seen: dict[str, int] = {}
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(BadLine(start, f"unreadable: {exc}"))
            break
        if not values or all(not v.strip() for v in values):
            continue
        if len(stubs) + len(problems) >= MAX_LINES:
            problems.append(BadLine(start, f"too many lines: at most {MAX_LINES} stubs per file"))
            break
        if len(values) != len(names):
            problems.append(BadLine(start, f"{len(values)} fields, the header has {len(names)}"))
            continue
        control = _control_characters(names, values)
        if control:  # the other checks would only trip over the same values
            problems.extend(BadLine(start, m) for m in control)
            continue
        rec = {n: v.strip() for n, v in zip(names, values, strict=True)}
        line_problems = _check_line(rec)
        upn = rec["domainname"].lower()
        if not line_problems and upn in seen:
            line_problems.append(f"domainname {rec['domainname']!r} repeats line {seen[upn]}")
        records: list[tuple[str, str]] = []
        if rec.get("records"):
            records, bad = _parse_records(rec["records"])
            line_problems += bad
        if line_problems:
            problems.extend(BadLine(start, m) for m in line_problems)
            continue
        seen[upn] = start
        stubs.append(
            StubLine(
                start,
                rec["domainname"],
                rec["fullname"],
                rec.get("firstname") or None,
                rec.get("lastname") or None,
                rec.get("internalemailaddress") or None,
                rec.get("jobtitle") or None,
                records,
            )
        )
    if problems:
        raise BadCsv(source, problems)
    if not stubs:
        raise BadCsv(source, [BadLine(2, "no stub users in the file")])
    return stubs


def _control_characters(names: list[str], values: list[str]) -> list[str]:
    """One problem per column whose value (as written, before spaces are trimmed) holds a control
    character."""
    out: list[str] = []
    for col, value in zip(names, values, strict=True):
        bad = _CONTROL.search(value)
        if bad is not None:
            out.append(
                f"column {col} holds a control character (U+{ord(bad.group()):04X}, character "
                f"{bad.start() + 1} of the value); no value may hold one (U+0000-U+001F, U+007F)"
            )
    return out


def _check_line(rec: dict[str, str]) -> list[str]:
    out: list[str] = []
    upn = rec["domainname"]
    if not upn:
        out.append("domainname is empty")
    elif is_object_id(upn):
        out.append(
            f"domainname {upn!r} is an object id, not a userPrincipalName: a stub stands for a user "
            "who is not in the directory"
        )
    elif upn.count("@") != 1 or upn.startswith("@") or upn.endswith("@") or any(c.isspace() for c in upn):
        out.append(f"domainname {upn!r} is not a userPrincipalName (alias@domain)")
    if not rec["fullname"]:
        out.append("fullname is empty")
    for col, limit in _LIMITS.items():
        if len(rec.get(col) or "") > limit:
            out.append(f"{col} is longer than {limit} characters")
    email = rec.get("internalemailaddress")
    if email and "@" not in email:
        out.append(f"internalemailaddress {email!r} is not an email address")
    return out


def _parse_records(value: str) -> tuple[list[tuple[str, str]], list[str]]:
    records: list[tuple[str, str]] = []
    bad: list[str] = []
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        entity, sep, name = part.partition(":")
        entity, name = entity.strip().lower(), name.strip()
        if not sep or not _ENTITY.match(entity) or not name or len(name) > 400:
            bad.append(f"record {part!r} is not entity:name (e.g. account:Contoso)")
            continue
        records.append((entity, name))
    return records, bad


@dataclass
class StubImportResult:
    environment: str
    created: list[dict[str, Any]]
    default_role: str
    records: int
    conflicts: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "created": self.created,
            "default_role": self.default_role,
            "records": self.records,
            "conflicts": self.conflicts,
        }


def import_stubs(
    engine: Engine,
    directory: GraphClient | None,
    env_name: str,
    text: str | bytes,
    *,
    source: str = "CSV",
) -> StubImportResult:
    """R20: create the stubs of an import file, each with the default role and its records."""
    stubs = parse_stub_csv(text, source)
    env = lookup.load_environment(engine, env_name)
    if not env.has_database:
        check = Check("R1", False, f"R1 database: environment {env.name} has no Dataverse database")
        raise Refused(f"no stub can be imported into {env.name}: {check.message}", [check])
    role_name = default_role_name(environment_facts(env))
    # Conflicts with the directory are read before the write transaction opens.
    in_directory: dict[int, Any] = {}
    if directory is not None:
        for stub in stubs:
            du = lookup.read_user(directory, stub.domainname)
            if du is not None and du.user_principal_name.lower() == stub.domainname.lower():
                in_directory[stub.line] = du
    now = utcnow()
    with Session(engine) as session, session.begin():
        env = get_environment(session, env_name)
        upns = [fold_text(s.domainname) for s in stubs]
        existing: dict[str, list[SystemUser]] = {}
        for i in range(0, len(upns), 500):
            q = select(SystemUser).where(
                SystemUser.environment_id == env.id, casefold(SystemUser.domainname).in_(upns[i : i + 500])
            )
            for row in session.scalars(q):
                existing.setdefault(fold_text(row.domainname), []).append(row)
        taken = [
            BadLine(s.line, f"a stub user {s.domainname!r} already exists in environment {env.name!r}")
            for s in stubs
            if any(r.kind == "stub" for r in existing.get(fold_text(s.domainname), []))
        ]
        if taken:
            raise BadCsv(source, taken)
        role = session.scalar(select(Role).where(Role.environment_id == env.id, Role.name == role_name))
        if role is None:
            raise NotFound(f"environment {env.name!r} has no role {role_name!r} to give its stub users")
        rows: list[tuple[StubLine, SystemUser]] = []
        unit = root_business_unit(session, env.id).businessunitid
        for stub in stubs:
            row = SystemUser(
                environment_id=env.id,
                businessunitid=unit,  # R26: the root business unit
                kind="stub",
                azureactivedirectoryobjectid=None,
                domainname=stub.domainname,
                fullname=stub.fullname,
                firstname=stub.firstname,
                lastname=stub.lastname,
                internalemailaddress=stub.internalemailaddress,
                jobtitle=stub.jobtitle,
                isdisabled=True,
                accessmode=0,
                islicensed=False,
                createdon=now,
                modifiedon=now,
            )
            session.add(row)
            rows.append((stub, row))
        session.flush()
        n_records = 0
        conflicts: list[dict[str, Any]] = []
        created: list[dict[str, Any]] = []
        for stub, row in rows:
            session.add(SystemUserRole(systemuserid=row.systemuserid, roleid=role.roleid))
            for entity, name in stub.records:
                session.add(
                    OwnedRecord(
                        environment_id=env.id,
                        entity=entity,
                        name=name,
                        ownerid=row.systemuserid,
                        createdon=now,
                        modifiedon=now,
                    )
                )
            n_records += len(stub.records)
            record_event(
                session,
                row,
                "create",
                "R20",
                f"Stub user created by data import, disabled, with the default role {role_name}.",
                {"records": len(stub.records)} if stub.records else None,
            )
            created.append(
                {"line": stub.line, "domainname": stub.domainname, "systemuserid": str(row.systemuserid)}
            )
            for message in _conflicts(stub, row, in_directory.get(stub.line), existing):
                conflicts.append({"line": stub.line, "domainname": stub.domainname, "message": message})
    log.info(
        "admin.stubs_imported",
        environment=env_name,
        created=len(created),
        records=n_records,
        conflicts=len(conflicts),
    )
    return StubImportResult(env_name, created, role_name, n_records, conflicts)


def _conflicts(stub: StubLine, row: SystemUser, du: Any, existing: dict[str, list[SystemUser]]) -> list[str]:
    out: list[str] = []
    if du is not None:
        check = stub_conflict(du, lookup.row_facts(row))
        if not check.passed:
            out.append(check.message)
    for other in existing.get(fold_text(stub.domainname), []):
        if other.kind != "stub" and (du is None or str(other.azureactivedirectoryobjectid) != du.id):
            out.append(
                f"R20 stub conflict: the environment's {other.kind} user {other.domainname} has the same UPN as "
                "the stub; they are not merged"
            )
    return out


@dataclass
class ReassignResult:
    environment: str
    stub: str
    target: str
    target_systemuserid: str
    records: int
    checks: tuple[Check, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "stub": self.stub,
            "target": self.target,
            "target_systemuserid": self.target_systemuserid,
            "records": self.records,
            "checks": [check_dict(c) for c in self.checks],
        }


def reassign_stub(
    engine: Engine,
    env_name: str,
    stub_key: str,
    target_key: str,
    *,
    directory: GraphClient | None = None,
) -> ReassignResult:
    """R20: move every record a stub owns to another (enabled, non-stub) user of the environment."""
    stub_key = lookup.check_key(stub_key, "stub user")
    target_key = lookup.check_key(target_key, "target user")
    with Session(engine) as session, session.begin():
        env = get_environment(session, env_name)
        stub = lookup.find_row(session, env, stub_key, kinds=("stub",))
        target = lookup.find_row(
            session,
            env,
            target_key,
            kinds=("regular", "application", "support", "delegated_admin"),
            directory=directory,
        )
        if target.isdisabled:
            check = Check(
                "R20", False, f"R20 reassign: {target.domainname} is disabled; records go to an enabled user"
            )
            raise Refused(
                f"the records of stub {stub.domainname} can't go to {target.domainname}: {check.message}",
                [check],
            )
        now = utcnow()
        moved_result: Any = session.execute(
            update(OwnedRecord)
            .where(OwnedRecord.environment_id == env.id, OwnedRecord.ownerid == stub.systemuserid)
            .values(ownerid=target.systemuserid, modifiedon=now)
        )
        moved = int(moved_result.rowcount or 0)
        reason = f"{moved} record(s) of stub {stub.domainname} reassigned to {target.domainname} by an administrator."
        record_event(
            session, stub, "reassign", "R20", reason, {"to": str(target.systemuserid), "records": moved}
        )
        record_event(
            session, target, "reassign", "R20", reason, {"from": str(stub.systemuserid), "records": moved}
        )
        result = ReassignResult(
            env.name,
            stub.domainname,
            target.domainname,
            str(target.systemuserid),
            int(moved or 0),
            (Check("R20", True, f"R20 reassign: {moved} record(s) moved to {target.domainname}"),),
        )
    log.info(
        "admin.stub_reassigned",
        environment=env_name,
        stub=stub_key,
        target=target_key,
        records=result.records,
    )
    return result
