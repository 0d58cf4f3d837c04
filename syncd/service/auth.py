"""The admin API's token check, shared by every mutating route.

Mutations need `Authorization: Bearer <SYNCD_ADMIN_TOKEN>`. With no token configured every
mutation is refused (403), so an unconfigured daemon can be looked at but never changed. A
missing or wrong token gets 401. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.settings import Settings


def require_admin(request: Request, settings: Settings) -> None | Response:
    """None when the request carries the admin token; otherwise the response refusing it."""
    configured = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not configured:
        return JSONResponse(
            {
                "error": "admin API disabled",
                "detail": "no admin token is configured: set SYNCD_ADMIN_TOKEN (or --admin-token) to allow changes",
            },
            status_code=403,
        )
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return JSONResponse(
            {"error": "unauthorized", "detail": "send Authorization: Bearer <admin token>"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="syncd"'},
        )
    if not hmac.compare_digest(given.strip().encode(), configured.encode()):
        return JSONResponse(
            {"error": "unauthorized", "detail": "wrong admin token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="syncd", error="invalid_token"'},
        )
    return None
