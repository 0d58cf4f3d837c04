"""schemathesis against ``GET /api/openapi.json`` of ``syncd run`` as a real process.

On each backend (SQLite file, PostgreSQL), with a small generated tenant served by ``syncd entra
serve`` and an environment ``prod`` synced once: schemathesis generates requests for every
operation of the document, with the admin token and without it, and every answer must be no 5xx
(``not_a_server_error``), of a status the operation declares (``status_code_conformance``) and
match its schema (``response_schema_conformance``). Bounded: a few examples per operation, a
deadline per request, so that a backend's run stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from procs import Stack
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "fuzz-token"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 120  # over the whole document (about 25 operations)


@pytest.fixture
def daemon(db_url: str, tmp_path: Path) -> Iterator[str]:
    """The base URL of ``syncd run`` on ``db_url``, with ``prod`` synced once."""
    stack = Stack(tmp_path, db_url, delta_interval=3600)
    try:
        stack.start_directory(users=20)
        stack.create_env("prod")
        _, port = stack.start_daemon(SYNCD_ADMIN_TOKEN=TOKEN)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.close()


def _fuzz(base: str, headers: dict[str, str], path_parameters: dict[str, Any] | None) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json", timeout=30)
    strategy = schema.as_strategy(path_parameters=path_parameters)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=20)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("token", [True, False], ids=["token", "no-token"])
def test_schemathesis_finds_no_5xx_and_no_answer_unlike_the_document(daemon: str, token: bool) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"} if token else {}
    _fuzz(daemon, headers, {"name": "prod"})  # an environment that exists
    _fuzz(daemon, headers, None)  # any names
