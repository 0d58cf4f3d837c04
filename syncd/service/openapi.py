"""The admin API's OpenAPI 3.1 document, built from the app's route table and its models.

``document(routes)`` reads every ``ApiRoute`` of the table (``syncd.service.routing``), each with
its methods, path parameters (``{name}``: a string, one percent-encoded segment; ``{run_id:int}``:
an integer), query model, request body (what ``syncd.service.bodies.mutation`` was told: a ``Body``
model, ``JsonObject(model)``, ``RawBody(media type)`` or none) and answers (its ``responses`` and
``errors``). Nothing in it is written by hand: a route added to the table is in the document, and
its schemas are the pydantic models' own JSON Schema (2020-12, the dialect of OpenAPI 3.1), under
``components/schemas``.

Every operation also answers 500 (``Error``: anything unexpected, always JSON); every mutation
answers 400 (a body it does not take), 401 (no or a wrong admin token) and 403 (no token
configured), and needs the ``adminToken`` security scheme: ``Authorization: Bearer
<SYNCD_ADMIN_TOKEN>`` (``syncd.service.auth``). When a status is both a route's answer and an error
(``500`` of a user operation whose write failed), its schema is either (``anyOf``).
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.convertors import IntegerConvertor
from starlette.routing import BaseRoute

from syncd import __version__
from syncd.service.bodies import GUID, MUTATING_METHODS, USER_KEY, Body, JsonObject, RawBody, required_fields
from syncd.service.responses import Error
from syncd.service.routing import Answer, ApiRoute

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "adminToken"

#: What each error status means in this API (the ``description`` of its response).
ERRORS: dict[int, str] = {
    400: 'Bad input ("error": "bad request"): a body it does not take (an unknown key, a value of '
    "the wrong type, a body that is not JSON), a malformed id, a value out of its field's range",
    401: "No admin token, or a wrong one (`Authorization: Bearer <SYNCD_ADMIN_TOKEN>`)",
    403: "No admin token is configured: the daemon changes nothing through its API",
    404: "An unknown environment, run, user, role, team, group or service principal",
    409: "Refused by the rules (with the failed `checks`), a conflict, or the environment is being synced",
    500: "Unexpected: the daemon's log says more (always JSON, never plain text)",
    502: "The directory could not be read",
    503: "This endpoint runs no sync jobs",
}

DESCRIPTION = """\
The admin API of the syncd daemon (`syncd run`), which keeps Dataverse SystemUser tables in step \
with a Microsoft Entra directory by the rules R1-R26.

* Reads (`GET`) need no token; every change needs `Authorization: Bearer <SYNCD_ADMIN_TOKEN>` \
(401 without it or with a wrong one, 403 when the daemon has no token configured).
* Every error is JSON `{"error", "detail"}` (a refusal by the rules adds `checks`); a route that \
does not exist under `/api/` is a JSON 404, and a method a path does not take a JSON 405 with \
`Allow` listing the methods it takes.
* A body takes its fields exactly: an unknown key or a value of the wrong type is a 400 naming it. \
A change without a body (`refresh`, `resume`, the `DELETE`s...) takes none: `{}` or nothing.
* A path parameter is one path segment, percent-encoded: an environment named `a/b` is \
`/api/environments/a%2Fb`.
"""


def document(routes: Iterable[BaseRoute], *, version: str = __version__) -> dict[str, Any]:
    """The OpenAPI 3.1 document (a JSON-ready dict) of the ``ApiRoute``s among ``routes`` (other
    routes, such as ``/healthz``, are not part of the admin API and are left out)."""
    api = [route for route in routes if isinstance(route, ApiRoute)]
    schemas = _Schemas(api)
    paths: dict[str, dict[str, Any]] = {}
    for route in api:
        for method in sorted(_methods(route)):
            paths.setdefault(route.path_format, {})[method.lower()] = _operation(route, method, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "syncd admin API", "version": version, "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": schemas.definitions,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The daemon's admin token (SYNCD_ADMIN_TOKEN or --admin-token), "
                    "as `Authorization: Bearer <token>`",
                }
            },
        },
    }


def _methods(route: ApiRoute) -> set[str]:
    """The route's methods; HEAD goes with GET and is not listed of its own."""
    return set(route.methods or {"GET"}) - {"HEAD"}


def _body_spec(route: ApiRoute) -> Any:
    return getattr(route.endpoint, "body_spec", None)


class _Schemas:
    """The JSON Schemas of every model the routes name, in ``components/schemas``, and a ``$ref``
    to each."""

    def __init__(self, api: list[ApiRoute]) -> None:
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Error, "serialization"): None}
        for route in api:
            for answers in route.responses.values():
                for answer in answers if isinstance(answers, tuple) else (answers,):
                    if isinstance(answer, type):
                        wanted[(answer, "serialization")] = None
            model = _request_model(_body_spec(route))
            if model is not None:
                wanted[(model, "validation")] = None
        refs, defs = models_json_schema(list(wanted), ref_template=REF)
        self.definitions: dict[str, Any] = defs.get("$defs", {})
        self._refs = refs
        for (kind, mode), ref in refs.items():
            if mode == "validation" and isinstance(kind, type) and issubclass(kind, Body):
                _not_blank(self.definitions[_name(ref)], required_fields(kind))
        for schema in self.definitions.values():
            for prop in schema.get("properties", {}).values():
                _no_null_default(prop)

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return dict(self._refs[(model, mode)])


def _name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[1]


def _not_blank(schema: dict[str, Any], required: list[str]) -> None:
    """A required text of a ``Body`` must not be blank (``parse_body``): it holds a non-space."""
    for name in required:
        prop = schema.get("properties", {}).get(name, {})
        if prop.get("type") == "string":
            prop["pattern"] = r"\S"


def _no_null_default(prop: dict[str, Any]) -> None:
    """Drop ``"default": null`` from a field that is never null (an optional key: absent, not null)."""
    if "default" in prop and prop["default"] is None and "anyOf" not in prop and prop.get("type") != "null":
        del prop["default"]


def _request_model(spec: Any) -> type[BaseModel] | None:
    if isinstance(spec, type) and issubclass(spec, Body):
        return spec
    if isinstance(spec, JsonObject):
        return spec.model
    return None


def _operation(route: ApiRoute, method: str, schemas: _Schemas) -> dict[str, Any]:
    mutating = method in MUTATING_METHODS
    op: dict[str, Any] = {
        "operationId": _operation_id(method, route.path_format),
        "summary": route.summary,
        "tags": [_tag(route.path_format)],
        "parameters": _path_parameters(route) + _query_parameters(route.query),
        "security": [{SECURITY_SCHEME: []}] if mutating else [],
    }
    if mutating:
        body = _request_body(_body_spec(route), schemas)
        if body is not None:
            op["requestBody"] = body
    errors = set(route.errors) | {500} | ({400, 401, 403} if mutating else set())
    op["responses"] = {
        str(status): _response(status, route.responses.get(status), status in errors, schemas)
        for status in sorted(set(route.responses) | errors)
    }
    if not op["parameters"]:
        del op["parameters"]
    return op


def _operation_id(method: str, path: str) -> str:
    words = [p.strip("{}").split(":")[0] for p in path.split("/")[2:] if p]
    return "_".join([method.lower(), *(w.replace("-", "_").replace(".", "_") for w in words)])


def _tag(path: str) -> str:
    parts = path.split("/")
    if parts[2] == "environments" and len(parts) > 4:
        return _TAGS.get(parts[4], "environments")
    return parts[2] if parts[2] in ("environments", "runs") else "documentation"


_TAGS = {
    "users": "users",
    "app-users": "users",
    "stubs": "users",
    "roles": "roles",
    "teams": "teams",
    "groups": "teams",
}


# What a path parameter names, by its name (one name per thing across the document), and the
# schema of those that are ids.
_PATH_NAMES = {
    "name": "the environment's name",
    "user": "a user's object id (GUID) or userPrincipalName",
    "stub": "a stub user's systemuserid (GUID) or userPrincipalName",
    "role": "a security role's name",
    "team": "a team's id, its group's object id, or its name",
    "group": "a group's object id (GUID)",
    "run_id": "a run's id",
}
_PATH_IDS: dict[str, dict[str, Any]] = {"user": USER_KEY, "stub": USER_KEY, "group": GUID}


def _path_parameters(route: ApiRoute) -> list[dict[str, Any]]:
    out = []
    for name, convertor in route.param_convertors.items():
        if isinstance(convertor, IntegerConvertor):
            schema: dict[str, Any] = {"type": "integer", "minimum": 0}
            what = "a whole number"
        else:
            schema = {"type": "string", "minLength": 1, **_PATH_IDS.get(name, {})}
            what = "one path segment, percent-encoded (`a/b` is `a%2Fb`, `50%` is `50%25`)"
            schema.pop("description", None)
            what = f"{_PATH_NAMES.get(name, name)}: {what}"
        out.append({"name": name, "in": "path", "required": True, "schema": schema, "description": what})
    return out


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        _no_null_default(prop)
        description = prop.pop("description", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _request_body(spec: Any, schemas: _Schemas) -> dict[str, Any] | None:
    if isinstance(spec, RawBody):
        body = {"required": True, "content": {spec.media_type: {"schema": {"type": "string"}}}}
        if spec.description:
            body["description"] = spec.description
        return body
    model = _request_model(spec)
    if model is not None:
        required = isinstance(spec, JsonObject) or bool(required_fields(model))  # type: ignore[arg-type]
        return {
            "required": required,
            "content": {"application/json": {"schema": schemas.ref(model, "validation")}},
        }
    if isinstance(spec, JsonObject):
        return {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    return None  # none: an empty body, or {}


def _response(status: int, answer: Answer | None, error: bool, schemas: _Schemas) -> dict[str, Any]:
    if isinstance(answer, tuple):  # the request chooses the body's media type: each is declared
        parts = [_response(status, a, error, schemas) for a in answer]
        for part in parts[1:]:
            parts[0]["content"].update(part["content"])
        return parts[0]
    description = ERRORS.get(status) if error and answer is None else None
    if isinstance(answer, type) and answer.__doc__:
        description = " ".join(answer.__doc__.split("\n\n")[0].split())
    out: dict[str, Any] = {"description": description or HTTPStatus(status).phrase}
    if isinstance(answer, str):
        out["content"] = {answer: {"schema": {"type": "string"}}}
        return out
    options = ([schemas.ref(answer)] if answer is not None else []) + ([schemas.ref(Error)] if error else [])
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    out["content"] = {"application/json": {"schema": schema}}
    if status == 401:
        out["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="syncd"'}
        }
    return out
