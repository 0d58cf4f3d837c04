"""Graph's JSON batching: `POST /v1.0/$batch` over the fake's own routes.

The body is `{"requests": [{"id", "method", "url", "headers"?, "body"?}, ...]}` with 1 to 20
requests (more, or a malformed body: 400 for the whole batch), each `url` relative to `/v1.0`
(`/users?$filter=...` or `users?...`). The answer is `{"responses": [{"id", "status", "headers",
"body"}]}` in an order of its own (drawn from the fault settings' seeded stream, as Graph promises no
order). Each sub-request is dispatched through the same app as a request of its own, carrying the
batch's `Authorization`: the token and permission checks, the faults (429 with `Retry-After`, 503,
latency, spoiled bodies) and the counters apply to it individually, as Graph's throttling applies to
each request inside a batch.

Not modelled: `dependsOn` is accepted and ignored. Sub-requests always run one after another in the
order given (so one that depends on an earlier one runs after it), but a failed dependency does not
fail its dependents (Graph answers those 424 Failed Dependency). A `$batch` inside a batch is 400.
Since sub-requests run one after another, a `latency_ms` fault delays a batch once for itself and once
for each request in it (Graph may run independent requests of a batch in parallel).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message

from syncd.directory.fake import graphio
from syncd.directory.fake.faults import Faults

MAX_REQUESTS = 20
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
# Response headers a sub-response does not repeat (they describe the HTTP message, not the answer).
_HOP = frozenset({"content-length", "transfer-encoding", "connection"})


def _requests(body: Any) -> list[dict[str, Any]]:
    """The checked sub-requests of a batch body; StoreError (400) when the batch is malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise graphio.bad_request('The batch body must be {"requests": [...]}.', "BadRequest")
    subs: list[dict[str, Any]] = body["requests"]
    if not subs:
        raise graphio.bad_request("The batch holds no request.", "BadRequest")
    if len(subs) > MAX_REQUESTS:
        raise graphio.bad_request(
            f"The batch holds {len(subs)} requests; at most {MAX_REQUESTS} are allowed.", "BadRequest"
        )
    seen: set[str] = set()
    for i, sub in enumerate(subs):
        if not isinstance(sub, dict):
            raise graphio.bad_request(f"requests[{i}] is not an object.", "BadRequest")
        rid, method, url = sub.get("id"), sub.get("method"), sub.get("url")
        if not isinstance(rid, str) or not rid:
            raise graphio.bad_request(f"requests[{i}] has no id.", "BadRequest")
        if rid in seen:
            raise graphio.bad_request(f"The request id {rid!r} is used twice in the batch.", "BadRequest")
        seen.add(rid)
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise graphio.bad_request(f"requests[{i}] has no valid method.", "BadRequest")
        if not isinstance(url, str) or not url or "://" in url:
            raise graphio.bad_request(f"requests[{i}] needs a url relative to the version.", "BadRequest")
        headers = sub.get("headers")
        if headers is not None and not (
            isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
        ):
            raise graphio.bad_request(f"requests[{i}].headers must map names to strings.", "BadRequest")
    return subs


async def _dispatch(app: ASGIApp, batch: Request, sub: dict[str, Any]) -> dict[str, Any]:
    """Run one sub-request through `app` as a request of its own; its sub-response."""
    method = str(sub["method"]).upper()
    url = str(sub["url"])
    path, _, query = url.partition("?")
    path = "/" + path.lstrip("/")
    if path.rstrip("/") == "/$batch":
        body = {"error": {"code": "BadRequest", "message": "A batch cannot hold another batch."}}
        return {"id": sub["id"], "status": 400, "headers": {"Content-Type": graphio.JSON}, "body": body}
    headers: dict[str, str] = {k.lower(): v for k, v in (sub.get("headers") or {}).items()}
    content = b""
    if "body" in sub and sub["body"] is not None:
        payload = sub["body"]
        content = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        headers.setdefault("content-type", graphio.JSON)
    for name in ("authorization", "host"):
        value = batch.headers.get(name)
        if value is not None:
            headers[name] = value
    headers["content-length"] = str(len(content))
    root = batch.scope.get("root_path", "")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": batch.scope.get("asgi", {"version": "3.0"}),
        "http_version": batch.scope.get("http_version", "1.1"),
        "method": method,
        "scheme": batch.scope.get("scheme", "http"),
        "server": batch.scope.get("server"),
        "client": batch.scope.get("client"),
        "root_path": root,
        "path": root + "/v1.0" + unquote(path),
        "raw_path": (root + "/v1.0" + path).encode(),
        "query_string": query.encode(),
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }
    sent = False
    status = 500
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": content, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for k, v in message.get("headers", []):
                name = k.decode("latin-1")
                if name.lower() not in _HOP:
                    out_headers[_title(name)] = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    raw = b"".join(chunks)
    response: dict[str, Any] = {"id": sub["id"], "status": status, "headers": out_headers}
    if raw:
        try:
            response["body"] = orjson.loads(raw)
        except orjson.JSONDecodeError:  # a spoiled answer (faults): Graph would base64 a non-JSON body
            response["body"] = raw.decode("utf-8", "replace")
    return response


def _title(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def batch_endpoint(faults: Faults) -> Any:
    """The `POST /v1.0/$batch` endpoint (the app it dispatches through is the request's own)."""

    async def handle(request: Request) -> Response:
        subs = _requests(await graphio.body_json(request))
        app: ASGIApp = request.scope["app"]
        responses = [await _dispatch(app, request, sub) for sub in subs]
        for i in range(len(responses) - 1, 0, -1):  # Graph promises no order: neither do we
            j = faults.randrange(i + 1)
            responses[i], responses[j] = responses[j], responses[i]
        return graphio.json({"responses": responses})

    return handle
