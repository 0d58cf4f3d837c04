"""Which SystemUser columns sync owns, and what it writes into them (R10-R14)."""

from __future__ import annotations

from collections.abc import Mapping

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


def wanted_columns(user: DirectoryUser, *, application: bool = False) -> dict[str, str | None]:
    """The synced columns of a row for this directory user (R10), with the first-name placeholder (R13).

    A blank givenName (None, empty or only spaces) gives firstname "#"; an application user always
    gets "#". businessPhones maps its first entry to address1_telephone1.
    """
    given = user.given_name
    if application or not given or given.isspace():
        given = FIRSTNAME_PLACEHOLDER
    phones = user.business_phones
    return {
        "domainname": user.user_principal_name,
        "fullname": user.display_name,
        "firstname": given,
        "lastname": user.surname,
        "jobtitle": user.job_title,
        "internalemailaddress": user.mail,
        "address1_telephone1": phones[0] if phones else None,
        "mobilephone": user.mobile_phone,
        "address1_line1": user.street_address,
        "address1_city": user.city,
        "address1_stateorprovince": user.state,
        "address1_postalcode": user.postal_code,
        "address1_country": user.country,
        "azureactivedirectoryobjectid": user.id,
    }


def column_changes(
    wanted: Mapping[str, str | None], current: Mapping[str, str | None], *, email_edited: bool = False
) -> dict[str, str | None]:
    """The synced columns of an existing row whose value must change.

    Never fullname (R11), and never internalemailaddress once a customer has edited it (R12).
    """
    if current == wanted:  # the steady state: one C-level comparison
        return {}
    get = current.get
    return {c: v for c in (_FLOWING_EMAIL_EDITED if email_edited else _FLOWING) if (v := wanted[c]) != get(c)}
