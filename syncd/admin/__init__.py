"""Operations an administrator runs on one user or one environment, above the sync engine.

users.py: on-demand add, first access, refresh and diagnose (R8, R7c, R23, R22); modes.py: access
modes (R16, R17); app_users.py: application users (R18); stubs.py: stub import and reassignment
(R20); roles.py: security roles (R21); teams.py: group teams and their roles (R25);
memberships.py: just-in-time membership of group teams at access, add and refresh (R25). Each
returns a result with ``as_dict()``; bad input raises ``SyncdError`` (or ``NotFound``), a refusal
by the rules raises ``Refused`` with its failed checks.
"""
