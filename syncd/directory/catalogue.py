"""The licence catalogue: which SKUs and service plans matter to Dataverse (R4).

One source of truth, read by the rules engine (is this user licensed?) and by the
fake tenant (which SKUs exist). Identifiers are Microsoft's published ones from
the product-names and service-plan-identifiers licensing reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from syncd.directory.models import AssignedLicense, ServicePlan, SubscribedSku


class Grant(StrEnum):
    """What a service plan gives a user in Dataverse."""

    DATAVERSE = "dataverse"  # a full licence: Dynamics 365, Power Apps premium (R4)
    FREE_M365 = "free_m365"  # the free Dataverse plan of a Microsoft 365 licence: on demand only (R4e)


class SkuKind(StrEnum):
    DATAVERSE = "dataverse"  # carries a plan that grants Dataverse
    M365_FREE_PLAN = "m365_free_plan"  # Microsoft 365 / Office 365 with the free Dataverse plan
    OFFICE_ONLY = "office_only"  # no Dataverse plan at all: never counts
    MARKETING_TENANT = "marketing_tenant"  # tenant-level Marketing licence (R4c)


@dataclass(frozen=True, slots=True)
class CatalogueSku:
    sku_id: str
    part_number: str
    name: str
    kind: SkuKind
    plans: tuple[ServicePlan, ...]

    def as_subscribed(self) -> SubscribedSku:
        return SubscribedSku(self.sku_id, self.part_number, self.plans)


def _plan(plan_id: str, name: str) -> ServicePlan:
    return ServicePlan(plan_id, name, "User")


# Service plans (servicePlanId, servicePlanName), checked against Microsoft's reference. Beware the
# look-alikes: CDS_O365_P1/P2/P3 ("Common Data Service for Teams") are not the Dataverse plans
# DYN365_CDS_O365_P1/P2/P3 below, and grant nothing here.
P_D365_SALES = _plan("2da8e897-7791-486b-b08f-cc63c8129df7", "DYN365_ENTERPRISE_SALES")
P_D365_CUSTOMER_SERVICE = _plan("99340b49-fb81-4b1e-976b-8f2ae8e9394f", "DYN365_ENTERPRISE_CUSTOMER_SERVICE")
P_POWERAPPS_PER_USER = _plan("ea2cf03b-ac60-46ae-9c1d-eeaeb63cec86", "POWERAPPS_PER_USER")
P_CDS_P2 = _plan("6ea4c1ef-c259-46df-bce2-943342cd3cb2", "DYN365_CDS_P2")
P_POWERAPPS_DYN_APPS = _plan("874fc546-6efe-4d22-90b8-5c4e7aa59f4b", "POWERAPPS_DYN_APPS")
P_FLOW_DYN_APPS = _plan("7e6d7d78-73de-46ba-83b1-6d25117334ba", "FLOW_DYN_APPS")
P_CDS_O365_P1 = _plan("40b010bb-0b69-4654-ac5e-ba161433f4b4", "DYN365_CDS_O365_P1")
P_CDS_O365_P2 = _plan("4ff01e01-1ba7-4d71-8cf8-ce96c3bbcf14", "DYN365_CDS_O365_P2")
P_CDS_O365_P3 = _plan("28b0fa46-c39a-4188-89e2-58e979a6b014", "DYN365_CDS_O365_P3")
P_POWERAPPS_O365_P1 = _plan("92f7a6f3-b89b-4bbd-8c30-809e6da5ad1c", "POWERAPPS_O365_P1")
P_POWERAPPS_O365_P2 = _plan("c68f8d98-5534-41c8-bf36-22fa496fa792", "POWERAPPS_O365_P2")
P_POWERAPPS_O365_P3 = _plan("9c0dab89-a30c-4117-86e7-97bda240acd2", "POWERAPPS_O365_P3")
P_EXCHANGE_STANDARD = _plan("9aaf7827-d63c-4b61-89c3-182f06f82e5c", "EXCHANGE_S_STANDARD")
P_EXCHANGE_ENTERPRISE = _plan("efb87545-963c-4e0d-99df-69c6916d9eb0", "EXCHANGE_S_ENTERPRISE")
P_SHAREPOINT_STANDARD = _plan("c7699d2e-19aa-44de-8edf-1736da088ca1", "SHAREPOINTSTANDARD")
P_SHAREPOINT_ENTERPRISE = _plan("5dbe027f-2339-4123-9542-606e4d348a72", "SHAREPOINTENTERPRISE")
P_OFFICE_BUSINESS = _plan("094e7854-93fc-4d55-b2c0-3ab5369ebdc1", "OFFICE_BUSINESS")
P_MARKETING = _plan("a3a4fa10-5092-401a-af30-0462a95a7ac8", "DYN365_MARKETING_APP")

# Plans that grant Dataverse, and how.
PLAN_GRANTS: dict[str, Grant] = {
    P_D365_SALES.service_plan_id: Grant.DATAVERSE,
    P_D365_CUSTOMER_SERVICE.service_plan_id: Grant.DATAVERSE,
    P_POWERAPPS_PER_USER.service_plan_id: Grant.DATAVERSE,
    P_CDS_P2.service_plan_id: Grant.DATAVERSE,
    P_CDS_O365_P1.service_plan_id: Grant.FREE_M365,
    P_CDS_O365_P2.service_plan_id: Grant.FREE_M365,
    P_CDS_O365_P3.service_plan_id: Grant.FREE_M365,
}

SKUS: tuple[CatalogueSku, ...] = (
    CatalogueSku(
        "1e1a282c-9c54-43a2-9310-98ef728faace",
        "DYN365_ENTERPRISE_SALES",
        "Dynamics 365 Sales Enterprise Edition",
        SkuKind.DATAVERSE,
        (P_D365_SALES, P_POWERAPPS_DYN_APPS, P_FLOW_DYN_APPS),
    ),
    CatalogueSku(
        "749742bf-0d37-4158-a120-33567104deeb",
        "DYN365_ENTERPRISE_CUSTOMER_SERVICE",
        "Dynamics 365 Customer Service Enterprise Edition",
        SkuKind.DATAVERSE,
        (P_D365_CUSTOMER_SERVICE, P_POWERAPPS_DYN_APPS, P_FLOW_DYN_APPS),
    ),
    CatalogueSku(
        "b30411f5-fea1-4a59-9ad9-3db7c7ead579",
        "POWERAPPS_PER_USER",
        "Power Apps Premium",
        SkuKind.DATAVERSE,
        (P_POWERAPPS_PER_USER, P_CDS_P2),
    ),
    CatalogueSku(
        "18181a46-0d4e-45cd-891e-60aabd171b4e",
        "STANDARDPACK",
        "Office 365 E1",
        SkuKind.M365_FREE_PLAN,
        (P_EXCHANGE_STANDARD, P_SHAREPOINT_STANDARD, P_POWERAPPS_O365_P1, P_CDS_O365_P1),
    ),
    CatalogueSku(
        "6fd2c87f-b296-42f0-b197-1e91e994b900",
        "ENTERPRISEPACK",
        "Office 365 E3",
        SkuKind.M365_FREE_PLAN,
        (P_EXCHANGE_ENTERPRISE, P_SHAREPOINT_ENTERPRISE, P_POWERAPPS_O365_P2, P_CDS_O365_P2),
    ),
    CatalogueSku(
        "05e9a617-0261-4cee-bb44-138d3ef5d965",
        "SPE_E3",
        "Microsoft 365 E3",
        SkuKind.M365_FREE_PLAN,
        (P_EXCHANGE_ENTERPRISE, P_SHAREPOINT_ENTERPRISE, P_POWERAPPS_O365_P2, P_CDS_O365_P2),
    ),
    CatalogueSku(
        "c7df2760-2c81-4ef7-b578-5b5392b571df",
        "ENTERPRISEPREMIUM",
        "Office 365 E5",
        SkuKind.M365_FREE_PLAN,
        (P_EXCHANGE_ENTERPRISE, P_SHAREPOINT_ENTERPRISE, P_POWERAPPS_O365_P3, P_CDS_O365_P3),
    ),
    CatalogueSku(
        "4b9405b0-7788-4568-add1-99614e613b69",
        "EXCHANGESTANDARD",
        "Exchange Online (Plan 1)",
        SkuKind.OFFICE_ONLY,
        (P_EXCHANGE_STANDARD,),
    ),
    CatalogueSku(
        "cdd28e44-67e3-425e-be4c-737fab2899d3",
        "O365_BUSINESS",
        "Microsoft 365 Apps for business",
        SkuKind.OFFICE_ONLY,
        (P_OFFICE_BUSINESS,),
    ),
    # Tenant-level special licences: once the tenant has one, every user may be added on demand (R4c).
    CatalogueSku(
        "00b861da-8087-4e30-beb8-8db3c6d9581e",
        "DYN365_MARKETING_APP",
        "Dynamics 365 Marketing",
        SkuKind.MARKETING_TENANT,
        (P_MARKETING,),
    ),
    CatalogueSku(
        "85430fb9-02e8-48be-9d7e-328beb41fa29",
        "DYN365_MARKETING_APP_ATTACH",
        "Dynamics 365 Marketing Attach",
        SkuKind.MARKETING_TENANT,
        (P_MARKETING,),
    ),
)

SKUS_BY_ID: dict[str, CatalogueSku] = {s.sku_id: s for s in SKUS}
SKUS_BY_PART: dict[str, CatalogueSku] = {s.part_number: s for s in SKUS}


MARKETING_TENANT_SKU_IDS: frozenset[str] = frozenset(
    entry.sku_id for entry in SKUS if entry.kind is SkuKind.MARKETING_TENANT
)

# sku_id -> the Dataverse-granting plans of that SKU: (plan id, grant, plan name), precomputed for speed.
SKU_GRANTS: dict[str, tuple[tuple[str, Grant, str], ...]] = {
    entry.sku_id: tuple(
        (p.service_plan_id, PLAN_GRANTS[p.service_plan_id], p.service_plan_name)
        for p in entry.plans
        if p.service_plan_id in PLAN_GRANTS
    )
    for entry in SKUS
}


def sku(sku_id: str) -> CatalogueSku | None:
    return SKUS_BY_ID.get(sku_id)


def licence_grants(licences: Iterable[AssignedLicense]) -> list[tuple[Grant, str, str]]:
    """Every (grant, SKU part number, plan name) a user's licences give, disabled plans left out.

    A plan counts only when it grants Dataverse and is not in the licence's disabledPlans (R4).
    Licences whose SKU the catalogue does not know grant nothing.
    """
    out: list[tuple[Grant, str, str]] = []
    for lic in licences:
        grants = SKU_GRANTS.get(lic.sku_id)
        if not grants:
            continue
        part = SKUS_BY_ID[lic.sku_id].part_number
        for plan_id, grant, plan_name in grants:
            if plan_id not in lic.disabled_plans:
                out.append((grant, part, plan_name))
    return out


def is_marketing_tenant(subscribed_sku_ids: Iterable[str]) -> bool:
    """Whether a tenant's subscriptions include the tenant-level Marketing licence (R4c)."""
    return any(s in MARKETING_TENANT_SKU_IDS for s in subscribed_sku_ids)
