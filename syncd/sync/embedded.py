"""The embedded default: on first use, the built-in fake tenant and an environment named `default`."""

from __future__ import annotations

import structlog
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
    store = open_embedded_store(appctx.settings)
    store.close()
    with appctx.session() as session:
        if session.scalar(select(Environment.id).where(Environment.name == DEFAULT_ENVIRONMENT)) is not None:
            return False
        create_environment(session, EnvironmentSpec(name=DEFAULT_ENVIRONMENT, type="default"))
    log.info("embedded.default_environment_created", environment=DEFAULT_ENVIRONMENT)
    return True
