"""Request bodies of the daemon's JSON API, checked in one place.

Every route that changes something (``POST``, ``PUT``, ``PATCH``, ``DELETE``) is built with
``mutation``, which says what body the route takes: a ``Body`` model (its fields exactly, of their
types exactly), ``JSON_OBJECT`` (a JSON object the operation checks itself; ``JsonObject(model)``
when a model describes it for the API's OpenAPI document), ``RAW`` (bytes, e.g. a CSV), or None:
no body at all. A route that takes none refuses a non-empty one (an unknown key is
a 400 naming it; ``{}`` and an empty body are fine), so that a field the route does not take (say
``"dry_run": true``) is never silently ignored. ``ApiRoute`` refuses to build a mutating route
whose endpoint did not come from ``mutation``, so a new route cannot forget to say.

The checks run after the admin token's (401 or 403 first); a bad body is a 400
``{"error": BAD_REQUEST, "detail"}`` with a one-line detail naming the bad key or value.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.dataverse.environments import shown
from syncd.errors import BAD_REQUEST
from syncd.service.auth import require_admin
from syncd.settings import Settings

__all__ = [
    "BAD_REQUEST",
    "GUID",
    "JSON_OBJECT",
    "USER_KEY",
    "RAW",
    "BadBody",
    "Body",
    "JsonObject",
    "mutation",
    "parse_body",
    "read_body",
]

MAX_JSON_BYTES = 64 * 1024

# How the OpenAPI document describes an id (JSON Schema, added to a string field or path
# parameter). The API takes more spellings than it lists (braces, the 32-digit form, any case,
# surrounding blanks: ``syncd.directory.ids.normalize_object_id``); these are the ones it documents.
GUID: Final[dict[str, Any]] = {"format": "uuid"}
# A user named in a request (``syncd.admin.lookup.check_key``): an object id, or a userPrincipalName
# (anything holding an ``@``, without blanks, control characters or ``/ \ ? %``).
UPN_PATTERN: Final = r"^[^\s\x00-\x1f\x7f\x85/\\?%]*@[^\s\x00-\x1f\x7f\x85/\\?%]*$"
USER_KEY: Final[dict[str, Any]] = {
    "anyOf": [{"format": "uuid"}, {"pattern": UPN_PATTERN, "maxLength": 1024}],
    "description": "a user's object id (GUID) or userPrincipalName",
}
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BadBody(Exception):
    """A request body the route does not take; its message is the 400's one-line detail."""


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class JsonObject(_Marker):
    """A JSON object that the operation checks itself (e.g. ``syncd env set``'s settings, where
    ``null`` and an absent key differ); ``model`` describes it in the API's OpenAPI document only
    (it does not check it)."""

    def __init__(self, model: type[BaseModel] | None = None) -> None:
        super().__init__(f"JsonObject({model.__name__})" if model is not None else "JSON_OBJECT")
        self.model = model


class RawBody(_Marker):
    """The body's bytes as sent, of ``media_type`` (the handler checks them); ``description`` says
    what they hold, for the API's OpenAPI document."""

    def __init__(self, media_type: str = "application/octet-stream", description: str = "") -> None:
        super().__init__("RAW" if media_type == "application/octet-stream" else f"RawBody({media_type})")
        self.media_type = media_type
        self.description = description


JSON_OBJECT: Final = JsonObject()  # a JSON object, checked by the operation itself
RAW: Final = RawBody()  # the body's bytes as sent (the handler checks them)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Number(float):
    """A JSON number with a fraction or an exponent, as written (no field takes one: the error
    that refuses it names the value as given, e.g. ``1E+23``)."""

    text: str

    def __repr__(self) -> str:
        return self.text


def _number(text: str) -> float:
    number = _Number(text)
    number.text = text
    return number


def parse_json(raw: bytes) -> Any:
    """The body's JSON, its numbers as given: integers exactly, however large (orjson would read
    one beyond 64 bits as a float), so that the check of a field names the value sent; BadBody
    when it is not JSON."""
    try:
        return json.loads(raw, parse_float=_number, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BadBody(f"the body is not a JSON object ({reason})") from None


class Body(BaseModel):
    """A JSON body of the API: its fields exactly (an unknown key is refused) and of their types
    exactly (no coercion: ``1`` is not a string, ``"1"`` not a list). The fields without a default
    are required, and a required text must not be blank; ``EXPECTED`` says what each field takes
    (its JSON type first), for the error."""

    model_config = ConfigDict(extra="forbid", strict=True)
    EXPECTED: ClassVar[dict[str, str]] = {}


def required_fields(model: type[Body]) -> list[str]:
    """The fields of ``model`` without a default, in their declared order."""
    return [name for name, field in model.model_fields.items() if field.is_required()]


B = TypeVar("B", bound=Body)
BodySpec = type[Body] | _Marker | None


def parse_body(model: type[B], body: dict[str, Any]) -> B:
    """``body`` (a JSON object) as ``model``; BadBody, one line naming the first bad key or
    field, its value and what it takes, otherwise."""
    for key in body:
        if key not in model.model_fields:
            expected = ", ".join(model.model_fields) or "no field"
            raise BadBody(f"unknown field {shown(key)} in the body: expected {expected}")
    for f in required_fields(model):
        if f not in body:
            raise BadBody(f"the body needs {f!r}: {model.EXPECTED[f]}, not empty")
        if isinstance(body[f], str) and not body[f].strip():
            raise BadBody(f"{f!r} must be {model.EXPECTED[f]}, not empty: {shown(body[f])}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        f = str(exc.errors()[0]["loc"][0])
        raise BadBody(f"{f!r} must be {model.EXPECTED.get(f, 'given')}, not {shown(body.get(f))}") from None


async def json_object(request: Request, *, empty: bool = False) -> dict[str, Any]:
    """The request's body, a JSON object of at most MAX_JSON_BYTES (an empty body is ``{}`` when
    ``empty``); BadBody otherwise."""
    raw = await request.body()
    if len(raw) > MAX_JSON_BYTES:
        raise BadBody(f"the body is larger than {MAX_JSON_BYTES} bytes")
    if not raw.strip() and empty:
        return {}
    body = parse_json(raw) if raw else None
    if not isinstance(body, dict):
        raise BadBody("the body must be a JSON object")
    return body


class NoBody(Body):
    """The body of a route that takes none: nothing, or ``{}``."""


async def read_body(request: Request, spec: BodySpec) -> Any:
    """The request's body as ``spec`` says (see the module's docstring); BadBody otherwise."""
    if isinstance(spec, RawBody):
        return await request.body()
    if isinstance(spec, JsonObject):
        return await json_object(request)
    if spec is None:
        parse_body(NoBody, await json_object(request, empty=True))
        return None
    assert isinstance(spec, type) and issubclass(spec, Body)
    return parse_body(spec, await json_object(request, empty=not required_fields(spec)))


Handler = Callable[[Request, Any], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def mutation(
    handler: Handler,
    *,
    body: BodySpec,
    settings: Callable[[], Settings],
    on_error: Callable[[Exception], Response] | None = None,
) -> Endpoint:
    """The endpoint of a route that changes something: the admin token first, then the body as
    ``body`` says (a 400 naming the bad key or value), then ``handler(request, parsed_body)``.
    An unexpected exception is ``on_error``'s answer when given (else it propagates)."""

    async def endpoint(request: Request) -> Response:
        refused = require_admin(request, settings())
        if refused is not None:
            return refused
        try:
            parsed = await read_body(request, body)
            return await handler(request, parsed)
        except BadBody as exc:
            return JSONResponse({"error": BAD_REQUEST, "detail": str(exc)}, status_code=400)
        except Exception as exc:
            if on_error is None:
                raise
            return on_error(exc)

    endpoint.body_spec = body  # type: ignore[attr-defined]
    return endpoint


def declares_body(endpoint: object) -> bool:
    """Whether ``endpoint`` was built by ``mutation`` (and so says what body it takes)."""
    return hasattr(endpoint, "body_spec")
