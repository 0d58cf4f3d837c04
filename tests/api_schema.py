"""The admin API's answers checked against its OpenAPI document (``syncd.service.openapi``).

``check_answer(doc, response)`` finds the operation of a response's request (method and path, the
path matched against the document's templates), and checks that the status is one the operation
declares and that the JSON body matches that status's schema (jsonschema, Draft 2020-12, the
document's ``components`` resolving the ``$ref``s). An answer of no operation (an unknown route's
404, a 405) must still be an ``Error``. ``checked(client, doc)`` makes a test client check every
answer under ``/api/`` so, so that the admin tests pin the document to what the handlers send.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from syncd.service.routing import route_path


def _pattern(template: str) -> re.Pattern[str]:
    parts = [re.escape(p) if not p.startswith("{") else "[^/]+" for p in template.split("/")]
    return re.compile("/".join(parts))


@cache
def _templates(paths: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    return [(t, _pattern(t)) for t in paths]


def operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    """The document's operation for ``method`` on ``path`` (as sent, percent-encoded), or None."""
    for template, pattern in _templates(tuple(doc["paths"])):
        if pattern.fullmatch(path) and method.lower() in doc["paths"][template]:
            return dict(doc["paths"][template][method.lower()])
    return None


def _validate(doc: dict[str, Any], schema: dict[str, Any], body: Any, where: str) -> None:
    validator = Draft202012Validator({**schema, "components": doc["components"]})
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise AssertionError(
            f"{where}: the answer does not match its schema at {list(e.absolute_path)}: {e.message}\n"
            f"{str(body)[:1500]}"
        )


def check_answer(doc: dict[str, Any], response: httpx.Response) -> None:
    """AssertionError when ``response`` is not what the document declares for its request."""
    request = response.request
    raw = request.url.raw_path.split(b"?", 1)[0]
    path = route_path({"raw_path": raw, "root_path": ""}) or request.url.path
    where = f"{request.method} {path} -> {response.status_code}"
    op = operation(doc, request.method, path)
    response.read()
    if op is None:
        assert response.status_code in (404, 405), f"{where}: no operation in the document"
        _validate(doc, {"$ref": "#/components/schemas/Error"}, response.json(), where)
        return
    declared = op["responses"].get(str(response.status_code))
    assert declared is not None, f"{where}: status not declared (only {sorted(op['responses'])})"
    media = response.headers.get("content-type", "").split(";")[0]
    content = declared.get("content", {})
    assert media in content, f"{where}: {media!r} not declared ({sorted(content)})"
    if media == "application/json":
        _validate(doc, content[media]["schema"], response.json(), where)


def checked(client: httpx.Client, doc: dict[str, Any]) -> httpx.Client:
    """``client``, checking every answer under ``/api/`` with ``check_answer``."""

    def hook(response: httpx.Response) -> None:
        if response.request.url.path.startswith("/api/"):
            check_answer(doc, response)

    client.event_hooks["response"] = [*client.event_hooks["response"], hook]
    return client
