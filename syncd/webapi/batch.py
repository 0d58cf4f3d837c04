"""`$batch`: several requests in one POST, as "Execute batch operations using the Web API" shows.

The request is `multipart/mixed; boundary=...`; each part is `Content-Type: application/http`
holding one request (`GET <url> HTTP/1.1`, headers, an empty line, a body). `<url>` may be
absolute (`https://host/prod/api/data/v9.2/systemusers?...`, how the SDK writes it), absolute
from the host (`/prod/api/data/v9.2/...`) or relative to the service root (`systemusers?...`); the
SDK writes the query of a list unencoded, spaces and quotes included, so the request line is read
as method, the last word (the HTTP version), and everything between as the URL. A part that is
itself `multipart/mixed` is a change set: its writes are answered 501 like any write.

The response is `multipart/mixed; boundary=batchresponse_<uuid>`, one `application/http` part per
request in order (up to the first failure, unless `Prefer: odata.continue-on-error`), each `HTTP/1.1 <status> <reason>`, its headers and its JSON body. A request for
another environment's URL inside the batch is refused (404), so a batch never crosses
environments.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlsplit

from syncd.webapi.errors import ODataError, bad_query
from syncd.webapi.service import Response

_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
CRLF = "\r\n"


#: Dataverse's limit on the requests of one $batch (change sets' requests included).
MAX_BATCH_REQUESTS = 1000


def _content_type(part: str) -> str:
    return (_headers_and_body(part)[0].get("content-type") or [""])[0]


def boundary_of(content_type: str) -> str | None:
    m = _BOUNDARY.search(content_type or "")
    return m.group(1) if m else None


def _split(body: str, boundary: str) -> list[str]:
    """The parts between `--boundary` lines (CRLF or LF), up to `--boundary--`."""
    parts: list[str] = []
    current: list[str] | None = None
    for line in body.replace("\r\n", "\n").split("\n"):
        if line.rstrip() == f"--{boundary}":
            if current is not None:
                parts.append("\n".join(current))
            current = []
        elif line.rstrip() == f"--{boundary}--":
            if current is not None:
                parts.append("\n".join(current))
            return parts
        elif current is not None:
            current.append(line)
    raise bad_query("The batch request body is not terminated by its closing boundary.")


def _headers_and_body(text: str) -> tuple[dict[str, list[str]], str]:
    head, _, body = text.partition("\n\n")
    headers: dict[str, list[str]] = {}
    for line in head.split("\n"):
        if ":" in line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return headers, body


Execute = Callable[[str, str, dict[str, list[str]]], Response]


def _parse_request(text: str) -> tuple[str, str, dict[str, list[str]]]:
    """(method, url, headers) of one `application/http` part's request."""
    lines = text.lstrip("\n").split("\n")
    words = lines[0].split() if lines else []
    if len(words) < 2:
        raise bad_query(f"The batch part does not start with a request line: {lines[:1]!r}.")
    method = words[0].upper()
    if len(words) >= 3 and words[-1].upper().startswith("HTTP/"):
        url = " ".join(words[1:-1])
    else:
        url = " ".join(words[1:])
    headers, _body = _headers_and_body("\n".join(lines[1:]))
    return method, url, headers


def _part(response: Response, content_id: str | None) -> str:
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {reason}"]
    lines.append(f"Content-Type: {response.content_type()}")
    lines.append("OData-Version: 4.0")
    for k, v in response.headers.items():
        if k != "Content-Type":
            lines.append(f"{k}: {v}")
    lines.append("")
    lines.append(response.content().decode())
    return CRLF.join(lines)


def run_batch(
    body: str, content_type: str, execute: Execute, *, continue_on_error: bool = False
) -> tuple[bytes, str]:
    """Answer a `$batch` body; returns (response body, its Content-Type).

    As Dataverse does, the batch stops at the first request that fails unless the client sent
    `Prefer: odata.continue-on-error`; the failed request's error is the last part.
    """
    boundary = boundary_of(content_type)
    if not content_type.lower().startswith("multipart/mixed") or boundary is None:
        raise bad_query("The content type of a $batch request must be multipart/mixed with a boundary.")
    out_boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[str] = []
    parts = _split(body, boundary)
    requests = sum(
        len(_split(inner, boundary_of(ctype) or "")) if ctype.lower().startswith("multipart/mixed") else 1
        for inner, ctype in ((_headers_and_body(p)[1], _content_type(p)) for p in parts)
    )
    if requests > MAX_BATCH_REQUESTS:
        raise bad_query(
            f"The number of requests in a batch is limited to {MAX_BATCH_REQUESTS}; this one holds {requests}."
        )
    for raw in parts:
        headers, inner = _headers_and_body(raw)
        ctype = (headers.get("content-type") or [""])[0]
        if ctype.lower().startswith("multipart/mixed"):
            cs_boundary = boundary_of(ctype) or ""
            cs_out = f"changesetresponse_{uuid.uuid4()}"
            cs_chunks = []
            for cs_raw in _split(inner, cs_boundary):
                cs_headers, cs_inner = _headers_and_body(cs_raw)
                content_id = _first(cs_headers, "content-id")
                cs_chunks.append(f"--{cs_out}{CRLF}" + _part(_one(cs_inner, execute), content_id))
            cs_body = CRLF.join(cs_chunks) + f"{CRLF}--{cs_out}--"
            chunks.append(
                f"--{out_boundary}{CRLF}Content-Type: multipart/mixed; boundary={cs_out}{CRLF}{CRLF}{cs_body}"
            )
            continue
        content_id = _first(headers, "content-id")
        response = _one(inner, execute)
        chunks.append(f"--{out_boundary}{CRLF}" + _part(response, content_id))
        if response.status >= 400 and not continue_on_error:
            break
    text = CRLF.join(chunks) + f"{CRLF}--{out_boundary}--{CRLF}"
    return text.encode(), f"multipart/mixed; boundary={out_boundary}"


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _one(text: str, execute: Execute) -> Response:
    try:
        method, url, headers = _parse_request(text)
        return execute(method, url, headers)
    except ODataError as exc:
        return Response(exc.status, exc.body())


def split_url(url: str) -> tuple[str, str]:
    """(path, query) of a batch part's URL, whatever form it takes."""
    parts = urlsplit(url)
    return parts.path, parts.query
