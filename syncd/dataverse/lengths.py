"""How many characters each length-limited SystemUser column holds.

The lengths are Dataverse's: each is the ``MaxLength`` of the column in Microsoft's "User (SystemUser)
table/entity reference" (learn.microsoft.com, power-apps/developer/data-platform/reference/entities/
systemuser), checked column by column. A length counts characters (Unicode code points, as Python's
``len`` and PostgreSQL's ``varchar(n)`` do), not bytes.

Pure data, no SQLAlchemy: the schema declares its ``String(n)`` columns from this mapping, and the
rules fit directory values to it (R10).
"""

from __future__ import annotations

from typing import Final

# The synced columns (R10), with their MaxLength in the SystemUser reference.
_DATAVERSE: Final[dict[str, int]] = {
    "domainname": 1024,  # DomainName, "User Name"
    "fullname": 200,  # FullName
    "firstname": 256,  # FirstName
    "lastname": 256,  # LastName
    "jobtitle": 100,  # JobTitle
    "internalemailaddress": 100,  # InternalEMailAddress, "Primary Email"
    "address1_telephone1": 64,  # Address1_Telephone1, "Main Phone"
    "mobilephone": 64,  # MobilePhone
    "address1_line1": 1024,  # Address1_Line1, "Street 1"
    "address1_city": 128,  # Address1_City
    "address1_stateorprovince": 128,  # Address1_StateOrProvince
    "address1_postalcode": 40,  # Address1_PostalCode
    "address1_country": 128,  # Address1_Country
}

# Columns sync does not write (R14), with their MaxLength in the SystemUser reference.
_NOT_SYNCED: Final[dict[str, int]] = {
    "windowsliveid": 1024,  # WindowsLiveID, "Windows Live ID"
}

#: Column name -> the most characters it holds. ``syncd_syncedemail`` is syncd's own column (the
#: email sync last wrote, R12; ``syncd_`` is syncd's publisher prefix), so it holds what
#: ``internalemailaddress`` holds.
SYSTEMUSER_LENGTHS: Final[dict[str, int]] = (
    _DATAVERSE | _NOT_SYNCED | {"syncd_syncedemail": _DATAVERSE["internalemailaddress"]}
)

#: Name (the primary name column) of a business unit, a team and a security role: their MaxLength
#: in the BusinessUnit, Team and Role references.
BUSINESSUNIT_NAME_LENGTH: Final[int] = 160
TEAM_NAME_LENGTH: Final[int] = 160
ROLE_NAME_LENGTH: Final[int] = 100
