"""Sign-in for the pages: a signed session cookie, its CSRF field, and safe redirects.

The admin token (``SYNCD_ADMIN_TOKEN``) is the only credential. ``POST /login`` compares the token
given in the form with it in constant time and, when they match, sets the cookie ``COOKIE``: a
random session id signed (itsdangerous ``URLSafeTimedSerializer``, salt ``SALT``) with a key
derived from the token. The cookie never holds the token; it expires after ``MAX_AGE_S`` seconds
(8 h); it is HttpOnly, SameSite=Strict, and Secure when the page was served over https. Since the
key is derived from the token, a new token ends every session.

Every changing form carries the field ``csrf``, an HMAC of the session id under the same key
(`csrf_token`); `check_csrf` compares it in constant time. A one-line message for the page after
a POST travels in the cookie ``FLASH`` (signed, read once).

Nothing is read at import time; every function takes the configured token (None or "": sign-in is
off, no session is ever valid).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "syncd_session"
FLASH = "syncd_flash"
SALT = "syncd.ui.session"
FLASH_SALT = "syncd.ui.flash"
MAX_AGE_S = 8 * 3600
FLASH_MAX_AGE_S = 300
CSRF_FIELD = "csrf"


def _serializer(token: str, salt: str) -> URLSafeTimedSerializer:
    # The secret is a digest of the token, so that no key material equals the token itself.
    secret = hashlib.sha256(b"syncd-ui:" + token.encode()).hexdigest()
    return URLSafeTimedSerializer(secret, salt=salt)


def token_matches(given: str, token: str | None) -> bool:
    """Whether ``given`` is the configured token (constant time; never with no token configured)."""
    if not token or not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def new_session(token: str) -> str:
    """A new session cookie's value: a random id, signed with the token's key."""
    return str(_serializer(token, SALT).dumps({"sid": secrets.token_urlsafe(24)}))


def session_id(request: Request, token: str | None) -> str | None:
    """The id of the request's valid session (signed by the current token, not expired), else None."""
    value = request.cookies.get(COOKIE)
    if not token or not value:
        return None
    try:
        data = _serializer(token, SALT).loads(value, max_age=MAX_AGE_S)
    except BadSignature:
        return None
    sid = data.get("sid") if isinstance(data, dict) else None
    return sid if isinstance(sid, str) and sid else None


def csrf_token(token: str, sid: str) -> str:
    """The CSRF field of a session's forms: HMAC-SHA256 of its id, hex."""
    key = hashlib.sha256(b"syncd-ui-csrf:" + token.encode()).digest()
    return hmac.new(key, sid.encode(), hashlib.sha256).hexdigest()


def check_csrf(given: object, token: str, sid: str) -> bool:
    """Whether a form's CSRF field is the session's (constant time)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), csrf_token(token, sid).encode())


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, token: str) -> None:
    """Set a new session cookie on the response (see the module's docstring for its flags)."""
    response.set_cookie(
        COOKIE,
        new_session(token),
        max_age=MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def clear_session(response: Response, request: Request) -> None:
    """Expire the session cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))


def set_flash(response: Response, request: Request, token: str, message: str) -> None:
    """A one-line message for the next page (signed, short-lived)."""
    response.set_cookie(
        FLASH,
        str(_serializer(token, FLASH_SALT).dumps(message[:500])),
        max_age=FLASH_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def read_flash(request: Request, token: str | None) -> str | None:
    """The message set by `set_flash`, if any and valid (the page then clears it with `clear_flash`)."""
    value = request.cookies.get(FLASH)
    if not token or not value:
        return None
    try:
        message = _serializer(token, FLASH_SALT).loads(value, max_age=FLASH_MAX_AGE_S)
    except BadSignature:
        return None
    return message if isinstance(message, str) else None


def clear_flash(response: Response, request: Request) -> None:
    """Expire the message cookie."""
    response.delete_cookie(FLASH, path="/", httponly=True, samesite="strict", secure=_secure(request))


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (``/...``, no scheme, no host, not ``//`` or
    ``/\\``, no control character), else ``default``: what a ``next`` may redirect to."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(c < " " or c == "\x7f" or c == "\\" for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
