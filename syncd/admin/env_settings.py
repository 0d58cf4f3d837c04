"""An environment's settings after its creation (`syncd env set`, `PATCH /api/environments/{name}`),
and the check of a security group id against the directory (also at `syncd env create`).

A security group id is checked against the configured directory when it can be read: a group the
directory does not have is bad input (nothing is written); a directory that can't be read is a
warning, and the id is accepted as given (the next run will say whether it holds). A change of the
background sync's scope (a new security group or type, a developer environment's creator, app
passes or the Marketing licence coming or going: see ``envs.background_scope``) makes the
environment's next run a full run (see ``update_environment``); the run holds the environment's
lock, and so does the change, so a run that read the old scope never stores its checkpoint after
the change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from syncd.dataverse import environments as envs
from syncd.directory.client import GraphClient
from syncd.directory.errors import DirectoryError, GraphError
from syncd.errors import Conflict, SyncdError

log = structlog.get_logger(__name__)

DirectoryFactory = Callable[[], AbstractContextManager[GraphClient]]
#: Takes an environment's run lock: a context manager yielding something true when held (a lease), else None.
LockHolder = Callable[[int], AbstractContextManager[object]]


def check_security_group(directory: DirectoryFactory, group_id: str) -> str | None:
    """None when the directory has the group; a warning when the directory can't be read.

    Raises SyncdError when the directory answers that there is no such group. The group is read
    as its owners' first page (``GET /groups/{id}/owners``: 404 for an unknown group, a page of a
    few objects otherwise).
    """
    try:
        with directory() as client:
            next(iter(client.iter_group_owners(group_id)), None)
    except GraphError as exc:
        if exc.status == 404:
            raise SyncdError(
                f"unknown security group {group_id!r}: the directory has no group with this id"
            ) from None
        return _unchecked(group_id, exc)
    except (DirectoryError, OSError, ValueError) as exc:
        return _unchecked(group_id, exc)
    return None


def _unchecked(group_id: str, exc: Exception) -> str:
    log.info("env.security_group_unchecked", group=group_id, error=str(exc)[:300])
    return f"security group {group_id} not checked: the directory could not be read ({exc})"


@dataclass
class EnvironmentSettingsResult:
    environment: dict[str, Any]
    changed: dict[str, dict[str, Any]]
    full_run_next: bool
    warnings: list[str] = field(default_factory=list)
    # The changed settings that make the next run a full run (empty when it need not be one).
    scope_changed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "changed": self.changed,
            "full_run_next": self.full_run_next,
            "scope_changed": self.scope_changed,
            "warnings": self.warnings,
        }


def set_environment(
    engine: Engine,
    name: str,
    values: Mapping[str, Any],
    *,
    directory: DirectoryFactory,
    hold: LockHolder,
) -> EnvironmentSettingsResult:
    """Change some of an environment's settings (``envs.SETTINGS``); see the module's docstring.

    Bad values, an unknown environment and an unknown security group raise SyncdError or NotFound
    with nothing written; an environment being synced raises Conflict.
    """
    checked = envs.check_settings(values)
    if not checked:
        raise SyncdError(f"nothing to change: give at least one of {', '.join(envs.SETTINGS)}")
    with Session(engine) as session:
        env = envs.get_environment(session, name)
        env_id, current_group = env.id, env.security_group_id
        scope = envs.scope_changes(env, checked)
    warnings: list[str] = []
    group = checked.get("security_group_id")
    new_group = "security_group_id" in checked and group != current_group
    if new_group and group is not None:
        warning = check_security_group(directory, group)
        if warning is not None:
            warnings.append(warning)
    with hold(env_id) as held:
        if not held and scope:
            raise Conflict(
                f"environment {name!r} is being synced; its {', '.join(envs.SCOPE_LABELS[k] for k in scope)} "
                "can be changed when "
                "that run ends"
            )
        with Session(engine) as session, session.begin():
            change = envs.update_environment(session, name, checked)
            result = EnvironmentSettingsResult(
                environment=envs.describe(change.environment) | {"users": envs.user_counts(session, env_id)},
                changed={k: {"old": old, "new": new} for k, (old, new) in change.changed.items()},
                full_run_next=change.checkpoint_reset,
                warnings=warnings,
                scope_changed=list(change.scope_changed),
            )
    log.info(
        "env.settings_changed",
        environment=name,
        changed=sorted(result.changed),
        full_run_next=result.full_run_next,
    )
    return result
