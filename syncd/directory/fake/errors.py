"""The one error type of the fake tenant, mapped by the server to a Graph error body."""

from __future__ import annotations


class StoreError(Exception):
    """A rejected read or write: a Graph error code, a message and the HTTP status to answer with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def not_found(what: str, key: str) -> StoreError:
    return StoreError(
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-"
        f"property objects are not present. ({what})",
        404,
    )
