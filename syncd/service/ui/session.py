"""Sign-in for the pages: a signed session cookie, its CSRF field, sign-out, the sign-in rate
limit and safe redirects.

The admin token (``SYNCD_ADMIN_TOKEN``) is the only credential. ``POST /login`` compares the token
given in the form with it in constant time and, when they match, sets the cookie ``COOKIE``: a
random session id signed (itsdangerous ``URLSafeTimedSerializer``, salt ``SALT``) with a key that
`Sessions` derives from the token and from a random secret made when the app starts (HMAC of the
token under ``secrets.token_bytes(32)``). A cookie therefore says nothing about the token: no one
can test guesses of the token against a cookie offline. The cookie never holds the token; it
expires after ``MAX_AGE_S`` seconds (8 h); it is HttpOnly, SameSite=Strict, and Secure when the
page was served over https. A new token ends every session (the key changes with it), and so
does a restart of the daemon (the secret is made anew in each process; sessions do not survive
it).

``POST /logout`` revokes the session id on the server (`Sessions.revoke`): a cookie saved before
the sign-out is no session afterwards. Revoked ids are kept in memory until their cookie would have
expired, ``MAX_REVOKED`` at most (past that, the secret is made anew, which ends every session);
a sign-out thus ends the session on this process, which is the only one serving the pages.

Every changing form carries the field ``csrf``, an HMAC of the session id under a key derived
like the cookie's (`Sessions.csrf_token`); `Sessions.check_csrf` compares it in constant time. A
one-line message for the page after a POST travels in the cookie ``FLASH`` (signed, read once).

`SignInLimiter` limits wrong tokens per client address: after ``MAX_FAILURES`` wrong tokens within
``FAILURE_WINDOW_S`` seconds, the address is refused (even with the right token) for
``LOCKOUT_S`` seconds; a sign-in resets its count. The address is the connection's peer, so behind
a reverse proxy every client shares the proxy's count.

Nothing is read at import time; every method takes the configured token (None or "": sign-in is
off, no session is ever valid).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
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
#: The most session ids revoked at once (signed out, not yet expired) before every session ends.
MAX_REVOKED = 10_000
#: Wrong tokens from one address within FAILURE_WINDOW_S seconds that lock it out for LOCKOUT_S.
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0
LOCKOUT_S = 60.0
#: The most client addresses `SignInLimiter` remembers (the oldest is forgotten past it).
MAX_CLIENTS = 10_000


def token_matches(given: str, token: str | None) -> bool:
    """Whether ``given`` is the configured token (constant time; never with no token configured)."""
    if not token or not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


class Sessions:
    """The sessions of one app: the random secret their keys derive from, and the ids signed out
    (see the module's docstring). Safe to use from several threads."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._revoked: dict[str, float] = {}  # session id -> when its cookie expires (time.time())
        self._lock = threading.Lock()

    def _key(self, purpose: bytes, token: str) -> bytes:
        with self._lock:
            secret = self._secret
        return hmac.new(secret, purpose + b"\0" + token.encode(), hashlib.sha256).digest()

    def _serializer(self, token: str, salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._key(b"syncd-ui", token).hex(), salt=salt)

    def new_session(self, token: str) -> str:
        """A new session cookie's value: a random id, signed with this app's key for the token."""
        return str(self._serializer(token, SALT).dumps({"sid": secrets.token_urlsafe(24)}))

    def _load(self, request: Request, token: str | None) -> tuple[str, float] | None:
        value = request.cookies.get(COOKIE)
        if not token or not value:
            return None
        try:
            data, signed = self._serializer(token, SALT).loads(
                value, max_age=MAX_AGE_S, return_timestamp=True
            )
        except BadSignature:
            return None
        sid = data.get("sid") if isinstance(data, dict) else None
        if not isinstance(sid, str) or not sid:
            return None
        return sid, signed.timestamp() + MAX_AGE_S

    def session_id(self, request: Request, token: str | None) -> str | None:
        """The id of the request's valid session (signed by this app for the current token, not
        expired, not signed out), else None."""
        loaded = self._load(request, token)
        if loaded is None:
            return None
        with self._lock:
            if loaded[0] in self._revoked:
                return None
        return loaded[0]

    def revoke(self, request: Request, token: str | None) -> None:
        """End the request's session: its id is no session from now on (on this process)."""
        loaded = self._load(request, token)
        if loaded is None:
            return
        sid, expires = loaded
        now = time.time()
        with self._lock:
            if len(self._revoked) >= MAX_REVOKED:
                self._revoked = {s: t for s, t in self._revoked.items() if t > now}
            if len(self._revoked) >= MAX_REVOKED:  # every id still live: end every session
                self._secret = secrets.token_bytes(32)
                self._revoked = {}
                return
            self._revoked[sid] = expires

    def csrf_token(self, token: str, sid: str) -> str:
        """The CSRF field of a session's forms: HMAC-SHA256 of its id, hex."""
        return hmac.new(self._key(b"syncd-ui-csrf", token), sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, given: object, token: str, sid: str) -> bool:
        """Whether a form's CSRF field is the session's (constant time)."""
        return isinstance(given, str) and hmac.compare_digest(
            given.encode(), self.csrf_token(token, sid).encode()
        )

    def set_session(self, response: Response, request: Request, token: str) -> None:
        """Set a new session cookie on the response (see the module's docstring for its flags)."""
        response.set_cookie(
            COOKIE,
            self.new_session(token),
            max_age=MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )

    def set_flash(self, response: Response, request: Request, token: str, message: str) -> None:
        """A one-line message for the next page (signed, short-lived)."""
        response.set_cookie(
            FLASH,
            str(self._serializer(token, FLASH_SALT).dumps(message[:500])),
            max_age=FLASH_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )

    def read_flash(self, request: Request, token: str | None) -> str | None:
        """The message set by `set_flash`, if any and valid (the page then clears it with
        `clear_flash`)."""
        value = request.cookies.get(FLASH)
        if not token or not value:
            return None
        try:
            message = self._serializer(token, FLASH_SALT).loads(value, max_age=FLASH_MAX_AGE_S)
        except BadSignature:
            return None
        return message if isinstance(message, str) else None


class SignInLimiter:
    """Wrong tokens counted per client address (see the module's docstring). ``clock``: seconds,
    monotonic. Safe to use from several threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # address -> (times of its recent wrong tokens, when its lockout ends or 0.0)
        self._clients: dict[str, tuple[list[float], float]] = {}
        self._lock = threading.Lock()

    def locked_for(self, client: str) -> float:
        """Seconds until ``client`` may try again (0.0: it may now)."""
        now = self.clock()
        with self._lock:
            entry = self._clients.get(client)
            return max(0.0, entry[1] - now) if entry is not None else 0.0

    def begin(self, client: str) -> float:
        """Count a sign-in attempt from ``client`` before its token is compared: 0.0 when it may go
        ahead, else the seconds it is locked out for. Checking and counting are one step, so that
        attempts sent at once get no more than MAX_FAILURES comparisons between them."""
        now = self.clock()
        with self._lock:
            times, until = self._recent(client, now)
            if until > now:
                self._store(client, times, until, now)
                return until - now
            if len(times) >= MAX_FAILURES:  # the earlier attempts are still being compared
                until = now + LOCKOUT_S
                self._store(client, [], until, now)
                return LOCKOUT_S
            self._store(client, [*times, now], until, now)
            return 0.0

    def failed(self, client: str) -> float:
        """The attempt ``begin`` counted had a wrong token: the seconds ``client`` is now locked out
        for (0.0: none)."""
        now = self.clock()
        with self._lock:
            times, until = self._recent(client, now)
            if len(times) >= MAX_FAILURES:
                times, until = [], now + LOCKOUT_S
            self._store(client, times, until, now)
            return max(0.0, until - now)

    def _recent(self, client: str, now: float) -> tuple[list[float], float]:
        times, until = self._clients.pop(client, ([], 0.0))
        return [t for t in times if now - t < FAILURE_WINDOW_S], until

    def _store(self, client: str, times: list[float], until: float, now: float) -> None:
        if len(self._clients) >= MAX_CLIENTS:
            self._clients = {
                c: e
                for c, e in self._clients.items()
                if e[1] > now or any(now - t < FAILURE_WINDOW_S for t in e[0])
            }
        while len(self._clients) >= MAX_CLIENTS:  # the oldest first (insertion order)
            del self._clients[next(iter(self._clients))]
        self._clients[client] = (times, until)

    def succeeded(self, client: str) -> None:
        """A right token from ``client``: its count starts again."""
        with self._lock:
            self._clients.pop(client, None)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def clear_session(response: Response, request: Request) -> None:
    """Expire the session cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))


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
