"""Service tests: each starts from structlog's defaults.

Tests that call the CLI's `main()` configure logging onto pytest's capture stream, which is
closed after the test; loggers used later (the scheduler's, from background threads) must not
write there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
