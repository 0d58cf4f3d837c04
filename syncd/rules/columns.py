"""Which SystemUser columns sync owns, and what it writes into them (R10-R14).

Directory values are fitted to their Dataverse column before anything compares or writes them: the
control characters a column can't hold (C0, U+0000-U+001F, and DEL, U+007F) are removed, then a value
longer than its column is cut to the column's length (``syncd.dataverse.lengths``). Lengths count
characters (code points), as PostgreSQL's ``varchar(n)`` does. A fitted value never costs the user
their row; the decision carries one note per fitted column, for the run's event.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from syncd.dataverse.lengths import SYSTEMUSER_LENGTHS
from syncd.directory.models import DirectoryUser

# R10: the synced columns, in the order of the source page's table. Every other column (custom columns,
# roles, business unit, manager, access mode set by an administrator) is never written by sync (R14).
SYNCED_COLUMNS: tuple[str, ...] = (
    "domainname",
    "fullname",
    "firstname",
    "lastname",
    "jobtitle",
    "internalemailaddress",
    "address1_telephone1",
    "mobilephone",
    "address1_line1",
    "address1_city",
    "address1_stateorprovince",
    "address1_postalcode",
    "address1_country",
    "azureactivedirectoryobjectid",
)

FIRSTNAME_PLACEHOLDER = "#"  # R13

# Columns that flow on every sync of an existing row. fullname is written once, at creation (R11);
# internalemailaddress flows only until a customer edits it (R12).
_FLOWING: tuple[str, ...] = tuple(c for c in SYNCED_COLUMNS if c != "fullname")
_FLOWING_EMAIL_EDITED: tuple[str, ...] = tuple(c for c in _FLOWING if c != "internalemailaddress")

# The synced text columns and their lengths; the object id (last) is a GUID, never fitted.
_TEXT_COLUMNS: tuple[str, ...] = SYNCED_COLUMNS[:-1]
_TEXT_LENGTHS: tuple[int, ...] = tuple(SYSTEMUSER_LENGTHS[c] for c in _TEXT_COLUMNS)
# str.translate table that deletes C0 control characters and DEL.
_CONTROL = dict.fromkeys([*range(0x20), 0x7F])

NO_NOTES: Mapping[str, str] = MappingProxyType({})


def fit_value(column: str, value: str, limit: int | None = None) -> tuple[str, str | None]:
    """``value`` as ``column`` can hold it, and a short note when it had to change (else None).

    Control characters (U+0000-U+001F, U+007F) are removed first, then the value is cut to the
    column's length. Everything else (emoji, right-to-left text, combining marks, empty strings)
    passes through as it is.
    """
    if limit is None:
        limit = SYSTEMUSER_LENGTHS[column]
    if len(value) <= limit and value.isprintable():  # the common case: a clean, short value
        return value, None
    cleaned = value.translate(_CONTROL)
    removed = len(value) - len(cleaned)
    cut = len(cleaned) > limit
    if cut:
        cleaned = cleaned[:limit]
    if removed and cut:
        return cleaned, f"{column}: {_controls(removed)} removed, cut to {limit} characters"
    if removed:
        return cleaned, f"{column}: {_controls(removed)} removed"
    if cut:
        return cleaned, f"{column} cut to {limit} characters"
    return value, None  # not printable, but nothing a column can't hold (e.g. U+200F, U+00A0)


def _controls(n: int) -> str:
    return f"{n} control character" + ("" if n == 1 else "s")


def wanted_columns(user: DirectoryUser, *, application: bool = False) -> dict[str, str | None]:
    """The synced columns of a row for this directory user (R10), fitted to their columns."""
    return wanted_columns_with_notes(user, application=application)[0]


def wanted_columns_with_notes(
    user: DirectoryUser, *, application: bool = False
) -> tuple[dict[str, str | None], Mapping[str, str]]:
    """The synced columns of a row for this directory user (R10), and a note per fitted column.

    A blank givenName (None, empty, only spaces, or nothing left once control characters are
    removed) gives firstname "#"; an application user always gets "#" (R13). businessPhones maps
    its first entry to address1_telephone1. Each value is fitted to its column (``fit_value``);
    the notes map each column whose value had to change to a short sentence saying how.
    """
    given = user.given_name
    if application or not given or given.isspace():
        given = FIRSTNAME_PLACEHOLDER
    phones = user.business_phones
    upn, display, surname, job = user.user_principal_name, user.display_name, user.surname, user.job_title
    mail, phone, mobile = user.mail, phones[0] if phones else None, user.mobile_phone
    street, city, state, postal, country = (
        user.street_address,
        user.city,
        user.state,
        user.postal_code,
        user.country,
    )
    values = (upn, display, given, surname, job, mail, phone, mobile, street, city, state, postal, country)
    # This runs for every user of every run: the common case (every value clean and short) stays cheap.
    for v, limit in zip(values, _TEXT_LENGTHS, strict=True):
        if v is not None and (len(v) > limit or not v.isprintable()):
            return _fitted(values, user.id)
    wanted: dict[str, str | None] = {
        "domainname": upn,
        "fullname": display,
        "firstname": given,
        "lastname": surname,
        "jobtitle": job,
        "internalemailaddress": mail,
        "address1_telephone1": phone,
        "mobilephone": mobile,
        "address1_line1": street,
        "address1_city": city,
        "address1_stateorprovince": state,
        "address1_postalcode": postal,
        "address1_country": country,
        "azureactivedirectoryobjectid": user.id,
    }
    return wanted, NO_NOTES


def _fitted(
    values: tuple[str | None, ...], object_id: str
) -> tuple[dict[str, str | None], Mapping[str, str]]:
    """The slow path of ``wanted_columns_with_notes``: some value needs fitting."""
    wanted: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    for column, limit, v in zip(_TEXT_COLUMNS, _TEXT_LENGTHS, values, strict=True):
        if v is not None:
            v, note = fit_value(column, v, limit)
            if note is not None:
                notes[column] = note
        wanted[column] = v
    first = wanted["firstname"]
    if not first or first.isspace():  # only control characters: blank after all (R13)
        wanted["firstname"] = FIRSTNAME_PLACEHOLDER
        notes.pop("firstname", None)
    wanted["azureactivedirectoryobjectid"] = object_id
    return wanted, notes


def column_notes(notes: Mapping[str, str], changes: Mapping[str, object]) -> tuple[str, ...]:
    """The notes of the fitted columns among ``changes`` (the columns a decision writes)."""
    if not notes:
        return ()
    return tuple(note for column, note in notes.items() if column in changes)


def column_changes(
    wanted: Mapping[str, str | None], current: Mapping[str, str | None], *, email_edited: bool = False
) -> dict[str, str | None]:
    """The synced columns of an existing row whose value must change.

    Never fullname (R11), and never internalemailaddress once a customer has edited it (R12).
    ``wanted`` holds fitted values (``wanted_columns``), and so does a row sync wrote: an over-long
    or unclean directory value compares equal to what was stored, and changes nothing.
    """
    if current == wanted:  # the steady state: one C-level comparison
        return {}
    get = current.get
    return {c: v for c in (_FLOWING_EMAIL_EDITED if email_edited else _FLOWING) if (v := wanted[c]) != get(c)}
