"""Licences, admin roles and the catalogue (R2, R4, R6)."""

from __future__ import annotations

from rules_builders import (
    APPS_FOR_BUSINESS,
    EXCHANGE,
    GA,
    O365_E3,
    O365_E3_CDS_DISABLED,
    POWERAPPS,
    SALES,
    SALES_PLAN_DISABLED,
    UNKNOWN_SKU,
    duser,
    env,
    facts,
    row_for,
)

from syncd.directory import catalogue
from syncd.directory.models import AssignedLicense
from syncd.rules import (
    ADMIN_ROLE_IDS,
    GROUP_EXEMPT_ROLE_IDS,
    Membership,
    Mode,
    admin_role,
    entitlement,
    licence_facts,
)


def test_r4_full_licences_count() -> None:  # R4
    assert licence_facts((SALES,)).full == (
        "Dynamics 365 Sales Enterprise Edition",
        "DYN365_ENTERPRISE_SALES",
    )
    assert licence_facts((POWERAPPS,)).has_full


def test_r4_office_only_never_counts() -> None:  # R4
    lic = licence_facts((EXCHANGE, APPS_FOR_BUSINESS))
    assert not lic.has_full and lic.free is None and len(lic.office_only) == 2


def test_r4_disabled_plan_doesnt_count() -> None:  # R4
    lic = licence_facts((SALES_PLAN_DISABLED,))
    assert not lic.has_full and lic.disabled
    assert licence_facts((O365_E3_CDS_DISABLED,)).free is None


def test_r4e_free_plan_is_not_a_full_licence() -> None:  # R4e
    lic = licence_facts((O365_E3,))
    assert lic.free == ("Office 365 E3", "DYN365_CDS_O365_P2") and not lic.has_full


def test_r4_unknown_sku_grants_nothing() -> None:  # R4
    lic = licence_facts((UNKNOWN_SKU,))
    assert lic.unknown == 1 and not lic.has_full


def test_r4_cache_returns_equal_results() -> None:  # R4
    a = licence_facts((SALES, O365_E3))
    b = licence_facts((AssignedLicense(SALES.sku_id), AssignedLicense(O365_E3.sku_id)))
    assert a == b and a.has_full and a.free is not None


def test_r4_guest_counts_only_this_tenants_licences() -> None:  # R4
    # The DirectoryUser carries only this tenant's assignedLicenses: a guest's home licence is absent.
    assert not entitlement(facts(duser(guest=True)), env()).licensed
    assert entitlement(facts(duser(SALES, guest=True)), env()).licensed


def test_r2_entitlement_is_r3_and_r4_and_r5() -> None:  # R2 R3 R4 R5
    assert entitlement(facts(duser(SALES)), env()).entitled
    assert not entitlement(facts(duser(SALES, enabled=False)), env()).entitled
    assert not entitlement(facts(duser()), env()).entitled
    assert not entitlement(facts(duser(SALES), membership=Membership.NONE), env()).entitled


def test_r2_on_demand_reading() -> None:  # R2 R8
    e = entitlement(facts(duser(O365_E3), membership=Membership.OWNER), env())
    assert not e.entitled and e.entitled_on_demand and e.on_demand_only
    assert e.entitled_in(Mode.ON_DEMAND) and not e.entitled_in(Mode.BACKGROUND)


def test_r4d_non_interactive_row_is_licensed() -> None:  # R4d
    assert entitlement(facts(duser()), env(), row_for(duser(), accessmode=4)).licensed


def test_r6_admin_role_ids() -> None:  # R6
    assert {
        "62e90394-69f5-4237-9190-012177145e10",
        "11648597-926c-4cf3-9c36-bcebb0ba8dcd",
        "44367163-eba1-44c3-98af-f5787879f96a",
    } == ADMIN_ROLE_IDS
    assert {
        "62e90394-69f5-4237-9190-012177145e10",
        "11648597-926c-4cf3-9c36-bcebb0ba8dcd",
    } == GROUP_EXEMPT_ROLE_IDS
    assert admin_role(GA) == "Global Administrator"
    assert admin_role(frozenset({"not-an-admin-role"})) is None


def test_r4c_catalogue_marketing_tenant_sku() -> None:  # R4c
    # Microsoft's published SKU ids for the tenant-level Marketing licences.
    assert catalogue.is_marketing_tenant(["00b861da-8087-4e30-beb8-8db3c6d9581e"])
    assert catalogue.is_marketing_tenant(["85430fb9-02e8-48be-9d7e-328beb41fa29"])
    assert not catalogue.is_marketing_tenant([SALES.sku_id])
    assert catalogue.P_MARKETING.service_plan_id == "a3a4fa10-5092-401a-af30-0462a95a7ac8"


def test_r4_catalogue_ids_are_unique_and_consistent() -> None:  # R4
    assert len(catalogue.SKUS_BY_ID) == len(catalogue.SKUS)
    assert len(catalogue.SKUS_BY_PART) == len(catalogue.SKUS)
    for s in catalogue.SKUS:
        assert catalogue.sku(s.sku_id) is s
        grants = catalogue.licence_grants([AssignedLicense(s.sku_id)])
        if s.kind is catalogue.SkuKind.DATAVERSE:
            assert any(g is catalogue.Grant.DATAVERSE for g, _, _ in grants)
        elif s.kind is catalogue.SkuKind.M365_FREE_PLAN:
            assert grants and all(g is catalogue.Grant.FREE_M365 for g, _, _ in grants)
        else:
            assert grants == []
    assert catalogue.P_CDS_O365_P3.service_plan_name == "DYN365_CDS_O365_P3"
