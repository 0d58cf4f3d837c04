"""Opaque, signed paging and delta tokens.

A token carries its own state (kind, token epoch and cursor numbers) and a signature made
with the tenant's secret, so tokens survive a restart without a table of their own. Raising
the tenant's token epoch (or generating a new tenant, which draws a new secret) makes every
earlier token unknown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def encode(secret: str, kind: str, *numbers: int) -> str:
    payload = ".".join([kind, *map(str, numbers)])
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:20]
    return base64.urlsafe_b64encode(f"{payload}.{sig}".encode()).decode().rstrip("=")


def decode(secret: str, kind: str, token: str, size: int | None = None) -> tuple[int, ...] | None:
    """The `size` numbers (any number, for None) of a token of this kind, or None when the token
    is not one we issued (or one of an older layout)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        payload, sig = raw.rsplit(".", 1)
    except (ValueError, UnicodeDecodeError):
        return None
    good = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:20]
    if not hmac.compare_digest(sig, good):
        return None
    parts = payload.split(".")
    if parts[0] != kind:
        return None
    try:
        numbers = tuple(int(p) for p in parts[1:])
    except ValueError:
        return None
    return numbers if size is None or len(numbers) == size else None
