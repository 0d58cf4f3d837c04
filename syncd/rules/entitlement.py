"""Entitlement (R2-R6): licences, admin roles and the security group, evaluated for one user.

Licence evaluation is cached per distinct tuple of assigned licences: a tenant has few distinct
licence combinations, so a million users cost a few dict look-ups each.

What counts as a licence (R4): a service plan that grants Dataverse, of a SKU the catalogue knows,
not listed in that licence's disabledPlans. Office-only SKUs never count. For a guest, the
``DirectoryUser`` carries only the licences assigned in this tenant (Graph's ``assignedLicenses`` of
the user object in this directory), so a licence from the guest's home tenant can never count: the
rules read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.directory.catalogue import SKU_GRANTS, SKUS_BY_ID, Grant, SkuKind
from syncd.directory.models import AssignedLicense, Deletion, DirectoryUser
from syncd.rules.facts import AccessMode, EnvironmentFacts, Membership, Mode, RowFacts, UserFacts

# R6: the admin roles, by directory role template id.
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
POWER_PLATFORM_ADMINISTRATOR = "11648597-926c-4cf3-9c36-bcebb0ba8dcd"
DYNAMICS_365_ADMINISTRATOR = "44367163-eba1-44c3-98af-f5787879f96a"

ADMIN_ROLE_NAMES: dict[str, str] = {
    GLOBAL_ADMINISTRATOR: "Global Administrator",
    POWER_PLATFORM_ADMINISTRATOR: "Power Platform Administrator",
    DYNAMICS_365_ADMINISTRATOR: "Dynamics 365 Administrator",
}
ADMIN_ROLE_IDS: frozenset[str] = frozenset(ADMIN_ROLE_NAMES)
# R5: these admins need not be in the environment's security group; Dynamics 365 administrators do.
GROUP_EXEMPT_ROLE_IDS: frozenset[str] = frozenset({GLOBAL_ADMINISTRATOR, POWER_PLATFORM_ADMINISTRATOR})


@dataclass(frozen=True, slots=True)
class LicenceFacts:
    """What a user's licences give in Dataverse (R4), with what is needed to explain it."""

    full: tuple[str, str] | None = None  # (SKU name, plan name) of a full Dataverse licence
    free: tuple[str, str] | None = None  # (SKU name, plan name) of a free Microsoft 365 Dataverse plan
    disabled: tuple[tuple[str, str], ...] = ()  # Dataverse plans present but in disabledPlans
    office_only: tuple[str, ...] = ()  # SKUs held that carry no Dataverse plan
    unknown: int = 0  # licences whose SKU the catalogue does not know

    @property
    def has_full(self) -> bool:
        return self.full is not None


NO_LICENCE = LicenceFacts()
_CACHE: dict[tuple[AssignedLicense, ...], LicenceFacts] = {}
_CACHE_LIMIT = 65536


def licence_facts(licences: tuple[AssignedLicense, ...]) -> LicenceFacts:
    """Evaluate a user's assigned licences (R4), cached per distinct licence tuple."""
    if not licences:
        return NO_LICENCE
    hit = _CACHE.get(licences)
    if hit is not None:
        return hit
    facts = _evaluate_licences(licences)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[licences] = facts
    return facts


def _evaluate_licences(licences: tuple[AssignedLicense, ...]) -> LicenceFacts:
    full: tuple[str, str] | None = None
    free: tuple[str, str] | None = None
    disabled: list[tuple[str, str]] = []
    office: list[str] = []
    unknown = 0
    for lic in licences:
        entry = SKUS_BY_ID.get(lic.sku_id)
        if entry is None:
            unknown += 1
            continue
        grants = SKU_GRANTS.get(lic.sku_id, ())
        if not grants:
            if entry.kind is not SkuKind.MARKETING_TENANT:
                office.append(entry.name)
            continue
        for plan_id, grant, plan_name in grants:
            if plan_id in lic.disabled_plans:
                disabled.append((entry.name, plan_name))
            elif grant is Grant.DATAVERSE:
                if full is None:
                    full = (entry.name, plan_name)
            elif free is None:
                free = (entry.name, plan_name)
    return LicenceFacts(full, free, tuple(disabled), tuple(office), unknown)


def admin_role(role_template_ids: frozenset[str]) -> str | None:
    """The name of the strongest admin role held (R6), or None."""
    for rid in (GLOBAL_ADMINISTRATOR, POWER_PLATFORM_ADMINISTRATOR, DYNAMICS_365_ADMINISTRATOR):
        if rid in role_template_ids:
            return ADMIN_ROLE_NAMES[rid]
    return None


def wanted_access_mode(is_full_licence: bool, is_admin: bool, row: RowFacts | None) -> int:
    """R16. Read (2) and Non-interactive (4) are set by an administrator and kept. Otherwise a full
    licence gives Read-Write (0), an admin without one Administrative (1), and anyone else (an
    on-demand ground such as app passes, the Marketing tenant licence or a free plan) Read-Write.

    "Licensed" here means a full Dataverse licence, whatever the mode, so that a background run and an
    on-demand add never disagree about the mode of the same user.
    """
    if row is not None and (row.accessmode == 2 or row.accessmode == 4):
        return row.accessmode
    if is_full_licence:
        return 0
    return 1 if is_admin else 0


@dataclass(frozen=True, slots=True)
class Entitlement:
    """R2 for one user, environment and mode, with each part, for diagnostics (R22)."""

    present: bool  # in the directory, not deleted
    enabled: bool  # R3
    licence: LicenceFacts
    admin_role: str | None  # R6
    group_exempt: bool  # R5 exemption (Global / Power Platform administrator)
    non_interactive: bool  # R4d
    licensed: bool  # R4 under the background reading
    licensed_on_demand: bool  # R4 under the on-demand reading (adds R4b, R4c, R4e)
    in_group: bool  # R5 under the background reading
    in_group_on_demand: bool  # R5 under the on-demand reading (adds the group's owner)

    @property
    def entitled(self) -> bool:
        """Entitled under the background reading (R2)."""
        return self.enabled and self.licensed and self.in_group

    @property
    def entitled_on_demand(self) -> bool:
        """Entitled under the on-demand reading of R4 and R5 (R8)."""
        return self.enabled and self.licensed_on_demand and self.in_group_on_demand

    def entitled_in(self, mode: Mode) -> bool:
        return self.entitled if mode is Mode.BACKGROUND else self.entitled_on_demand

    @property
    def on_demand_only(self) -> bool:
        """Entitled on demand but not in the background: the only grounds are on-demand ones (R7a)."""
        return self.entitled_on_demand and not self.entitled


def entitlement(user: UserFacts, env: EnvironmentFacts, row: RowFacts | None = None) -> Entitlement:
    """Evaluate R2-R6 for one user in one environment. Both readings (background, on demand) at once."""
    du: DirectoryUser | None = user.user
    present = du is not None and user.deletion is Deletion.NONE
    enabled = present and du is not None and du.account_enabled
    lic = licence_facts(du.assigned_licenses) if du is not None else NO_LICENCE
    roles = user.admin_role_template_ids
    role = admin_role(roles) if roles else None
    exempt = bool(roles) and not roles.isdisjoint(GROUP_EXEMPT_ROLE_IDS)
    nonint = row is not None and row.accessmode == AccessMode.NON_INTERACTIVE
    licensed = lic.full is not None or role is not None or nonint
    licensed_od = (
        licensed or lic.free is not None or env.app_pass_capacity_left > 0 or env.tenant_has_marketing_licence
    )
    if env.security_group_id is None or exempt:
        in_group = in_group_od = True
    else:
        in_group = user.membership is Membership.DIRECT
        in_group_od = in_group or user.membership is Membership.OWNER
    return Entitlement(
        present, enabled, lic, role, exempt, nonint, licensed, licensed_od, in_group, in_group_od
    )
