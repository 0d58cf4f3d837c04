"""Errors in Dataverse's shape: `{"error": {"code": "0x...", "message": "..."}}`.

The codes and messages follow "Troubleshoot Dataverse Web API client errors" and what Dataverse
answers for the same mistakes:

- an unknown entity set or function: 404, `0x8006088a`, "Resource not found for the segment 'X'."
- an unknown property ($select, $filter, $orderby): 400, `0x0`,
  "Could not find a property named 'X' on type 'Microsoft.Dynamics.CRM.systemuser'."
- a query option that cannot be parsed (a $filter syntax error, a bad $top): 400, `0x80060888`
- a record that does not exist: 404, `0x80040217`, "Entity 'systemuser' With Id = ... Does Not Exist"
- a method the resource does not take: 405, `0x80060888`; writes to a table that takes none here: 501, `0x80060888`
- the errors of writes (read-only columns, If-Match, creating or deleting users): `writer`, `writes`
"""

from __future__ import annotations

from typing import Any

RESOURCE_NOT_FOUND = "0x8006088a"
PROPERTY_NOT_FOUND = "0x0"
BAD_QUERY = "0x80060888"
RECORD_NOT_FOUND = "0x80040217"


class ODataError(Exception):
    """An error answered to the client in Dataverse's shape."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def bad_query(message: str) -> ODataError:
    return ODataError(400, BAD_QUERY, message)


def no_segment(segment: str) -> ODataError:
    return ODataError(404, RESOURCE_NOT_FOUND, f"Resource not found for the segment '{segment}'.")


def no_property(name: str, logical_name: str) -> ODataError:
    return ODataError(
        400,
        PROPERTY_NOT_FOUND,
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{logical_name}'.",
    )


def no_record(logical_name: str, key: str) -> ODataError:
    return ODataError(404, RECORD_NOT_FOUND, f"Entity '{logical_name}' With Id = {key} Does Not Exist")


def not_implemented(method: str) -> ODataError:
    return ODataError(
        501,
        BAD_QUERY,
        f"The HTTP method '{method}' is not served here: this simulated environment takes the writes a "
        "customer makes on users (PATCH systemusers) and answers every other table read-only.",
    )


def method_not_allowed(method: str, path: str) -> ODataError:
    return ODataError(405, BAD_QUERY, f"The HTTP method '{method}' is not allowed on '{path}'.")
