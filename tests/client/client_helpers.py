"""Helpers for the Graph client tests: a scripted Graph on httpx.MockTransport, and recorders.

`ScriptedGraph` answers by path from a table the test fills in (a list of responses per path is
served in order, the last one repeating), and records every request it saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

BASE = "https://graph.test/v1.0"

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def page(value: list[Any], next_link: str | None = None, delta_link: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"value": value}
    if next_link is not None:
        body["@odata.nextLink"] = next_link
    if delta_link is not None:
        body["@odata.deltaLink"] = delta_link
    return httpx.Response(200, content=orjson.dumps(body), headers={"Content-Type": "application/json"})


def error(
    status: int, code: str = "x", message: str = "m", headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps({"error": {"code": code, "message": message}}), headers=headers or {}
    )


def user(uid: str = "u1", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": uid,
        "userPrincipalName": f"{uid}@contoso.com",
        "displayName": f"User {uid}",
        "givenName": "Given",
        "surname": "Sur",
        "jobTitle": None,
        "mail": f"{uid}@contoso.com",
        "businessPhones": [],
        "mobilePhone": None,
        "streetAddress": None,
        "city": None,
        "state": None,
        "postalCode": None,
        "country": None,
        "accountEnabled": True,
        "userType": "Member",
        "assignedLicenses": [],
    }
    base.update(fields)
    return base


@dataclass
class ScriptedGraph:
    routes: dict[str, list[Answer]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    _served: dict[str, int] = field(default_factory=dict)

    def on(self, path: str, *answers: Answer) -> None:
        """Answers for a path (without the /v1.0 prefix, without the query)."""
        self.routes[path] = list(answers)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/v1.0")
        answers = self.routes.get(path)
        if not answers:
            return error(404, "Request_ResourceNotFound", f"no route {path}")
        n = self._served.get(path, 0)
        self._served[path] = n + 1
        answer = answers[min(n, len(answers) - 1)]
        return answer(request) if callable(answer) else answer

    def paths(self) -> list[str]:
        return [r.url.path.removeprefix("/v1.0") for r in self.requests]


@dataclass
class Sleeps:
    delays: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
