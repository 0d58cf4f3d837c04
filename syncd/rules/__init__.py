"""The rules engine: pure policy, no I/O (RULES.md R1-R23).

``decide`` says what sync does with one directory user in one environment; ``diagnose`` and the
``check_*`` functions explain it to an administrator (R22) and guard the admin operations.
"""

from syncd.rules.checks import (
    NON_INTERACTIVE_LIMIT,
    check_app_access,
    check_noninteractive_limit,
    check_refresh_allowed,
    check_role_assignment,
    default_role_name,
    is_stub_conflict,
    stub_conflict,
)
from syncd.rules.columns import FIRSTNAME_PLACEHOLDER, SYNCED_COLUMNS, column_changes, wanted_columns
from syncd.rules.decide import azure_state, decide
from syncd.rules.diagnose import diagnose
from syncd.rules.entitlement import (
    ADMIN_ROLE_IDS,
    ADMIN_ROLE_NAMES,
    DYNAMICS_365_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    GROUP_EXEMPT_ROLE_IDS,
    POWER_PLATFORM_ADMINISTRATOR,
    Entitlement,
    LicenceFacts,
    admin_role,
    entitlement,
    licence_facts,
    wanted_access_mode,
)
from syncd.rules.facts import (
    NO_CHANGES,
    AccessMode,
    Action,
    AzureState,
    Check,
    Decision,
    EnvironmentFacts,
    EnvType,
    Membership,
    Mode,
    RowFacts,
    UserFacts,
    UserKind,
)

__all__ = [
    "ADMIN_ROLE_IDS",
    "ADMIN_ROLE_NAMES",
    "DYNAMICS_365_ADMINISTRATOR",
    "FIRSTNAME_PLACEHOLDER",
    "GLOBAL_ADMINISTRATOR",
    "GROUP_EXEMPT_ROLE_IDS",
    "NON_INTERACTIVE_LIMIT",
    "NO_CHANGES",
    "POWER_PLATFORM_ADMINISTRATOR",
    "SYNCED_COLUMNS",
    "AccessMode",
    "Action",
    "AzureState",
    "Check",
    "Decision",
    "Entitlement",
    "EnvType",
    "EnvironmentFacts",
    "LicenceFacts",
    "Membership",
    "Mode",
    "RowFacts",
    "UserFacts",
    "UserKind",
    "admin_role",
    "azure_state",
    "check_app_access",
    "check_noninteractive_limit",
    "check_refresh_allowed",
    "check_role_assignment",
    "column_changes",
    "decide",
    "default_role_name",
    "diagnose",
    "entitlement",
    "is_stub_conflict",
    "licence_facts",
    "stub_conflict",
    "wanted_access_mode",
    "wanted_columns",
]
