"""The embedded default: on first use, the built-in fake tenant and an environment named `default`."""

from __future__ import annotations

from pathlib import Path

import structlog
from filelock import FileLock
from sqlalchemy import select

from syncd.context import AppContext
from syncd.dataverse.environments import EnvironmentSpec, create_environment
from syncd.dataverse.schema import Environment
from syncd.sync.directory import open_embedded_store

log = structlog.get_logger(__name__)

DEFAULT_ENVIRONMENT = "default"


def ensure_embedded_default(appctx: AppContext) -> bool:
    """With the embedded directory, make sure its tenant and the `default` environment exist.

    Returns whether anything was created. Does nothing when a real directory is configured.
    """
    if not appctx.settings.is_embedded_directory:
        return False
    # `syncd run` and `syncd sync` started at once on a fresh folder would both generate the tenant
    # and create the environment: a file lock beside the tenant's file lets one do it.
    tenant = Path(appctx.settings.directory_store).resolve()
    with FileLock(tenant.with_name(f"{tenant.name}.setup.lock"), timeout=300):
        store = open_embedded_store(appctx.settings)
        store.close()
        with appctx.session() as session:
            if (
                session.scalar(select(Environment.id).where(Environment.name == DEFAULT_ENVIRONMENT))
                is not None
            ):
                return False
            create_environment(session, EnvironmentSpec(name=DEFAULT_ENVIRONMENT, type="default"))
    log.info("embedded.default_environment_created", environment=DEFAULT_ENVIRONMENT)
    return True
