"""Small builders for rules-engine tests: a directory user, facts, rows and environments."""

from __future__ import annotations

from syncd.directory.catalogue import P_CDS_O365_P2, P_D365_SALES, SKUS_BY_PART
from syncd.directory.models import AssignedLicense, Deletion, DirectoryUser
from syncd.rules import (
    DYNAMICS_365_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    POWER_PLATFORM_ADMINISTRATOR,
    EnvironmentFacts,
    EnvType,
    Membership,
    RowFacts,
    UserFacts,
    UserKind,
    wanted_columns,
)

OID = "0b5e1a52-7c1d-4d9e-9a61-1f2e3d4c5b6a"
CREATOR = "c0ffee00-0000-4000-8000-000000000001"
GROUP = "1234abcd-5678-4ef0-9abc-def012345678"

SALES = AssignedLicense(SKUS_BY_PART["DYN365_ENTERPRISE_SALES"].sku_id)
SALES_PLAN_DISABLED = AssignedLicense(
    SKUS_BY_PART["DYN365_ENTERPRISE_SALES"].sku_id, frozenset({P_D365_SALES.service_plan_id})
)
POWERAPPS = AssignedLicense(SKUS_BY_PART["POWERAPPS_PER_USER"].sku_id)
O365_E3 = AssignedLicense(SKUS_BY_PART["ENTERPRISEPACK"].sku_id)
O365_E3_CDS_DISABLED = AssignedLicense(
    SKUS_BY_PART["ENTERPRISEPACK"].sku_id, frozenset({P_CDS_O365_P2.service_plan_id})
)
EXCHANGE = AssignedLicense(SKUS_BY_PART["EXCHANGESTANDARD"].sku_id)
APPS_FOR_BUSINESS = AssignedLicense(SKUS_BY_PART["O365_BUSINESS"].sku_id)
UNKNOWN_SKU = AssignedLicense("99999999-9999-4999-8999-999999999999")

GA = frozenset({GLOBAL_ADMINISTRATOR})
PPA = frozenset({POWER_PLATFORM_ADMINISTRATOR})
D365A = frozenset({DYNAMICS_365_ADMINISTRATOR})


def duser(
    *licences: AssignedLicense,
    oid: str = OID,
    enabled: bool = True,
    guest: bool = False,
    given: str | None = "Ada",
    **kw: object,
) -> DirectoryUser:
    fields: dict[str, object] = {
        "display_name": "Ada Lovelace",
        "given_name": given,
        "surname": "Lovelace",
        "job_title": "Engineer",
        "mail": "ada@contoso.example",
        "business_phones": ("+44 20 7946 0000", "+44 20 7946 0001"),
        "mobile_phone": "+44 7700 900000",
        "street_address": "1 Analytical Row",
        "city": "London",
        "state": "Greater London",
        "postal_code": "N1 9GU",
        "country": "UK",
    }
    fields.update(kw)
    return DirectoryUser(
        id=oid,
        user_principal_name="ada@contoso.example",
        account_enabled=enabled,
        user_type="Guest" if guest else "Member",
        assigned_licenses=tuple(licences),
        **fields,  # type: ignore[arg-type]
    )


def facts(
    user: DirectoryUser | None,
    *,
    roles: frozenset[str] = frozenset(),
    membership: Membership = Membership.DIRECT,
    deletion: Deletion = Deletion.NONE,
    oid: str | None = None,
) -> UserFacts:
    object_id = oid or (user.id if user is not None else OID)
    return UserFacts(user, object_id, deletion, roles, membership)


def env(
    type: EnvType = EnvType.PRODUCTION,
    *,
    group: str | None = GROUP,
    has_database: bool = True,
    **kw: object,
) -> EnvironmentFacts:
    return EnvironmentFacts("contoso-" + type.value, type, has_database, group, **kw)  # type: ignore[arg-type]


def row_for(
    user: DirectoryUser | None = None,
    *,
    kind: UserKind = UserKind.REGULAR,
    disabled: bool = False,
    accessmode: int = 0,
    licensed: bool = True,
    email_edited: bool = False,
    **overrides: str | None,
) -> RowFacts:
    cols: dict[str, str | None] = wanted_columns(user) if user is not None else {}
    cols.update(overrides)
    return RowFacts(kind, disabled, accessmode, licensed, cols, email_edited)
