"""Fault injection and request counters for the fake Graph (the /v1.0 endpoints only).

A fault setting says what share of requests to answer 429 (with `Retry-After`) or 503, how
slowly to answer, and whether to spoil successful JSON answers in one of a few ways. Others
switch on the untidy parts of Graph's paging that the endpoints themselves play out: repeats
across delta pages, empty pages, a 410 in the middle of a delta read, and whether a delta read
leaves changes made during it to the next round. The draws come from one seeded random stream,
so a run with the same requests is repeatable.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from syncd.directory.fake import graphio
from syncd.directory.fake.errors import StoreError

COUNTERS = (
    "requests",
    "throttled",
    "unavailable",
    "malformed",
    "repeated",
    "empty_pages",
    "gone_mid_read",
)
MALFORMED = (None, "invalid_json", "missing_id", "wrong_type", "foreign_next_link")
FOREIGN_LINK = "https://graph.attacker.example/v1.0/users?$skiptoken=stolen"

Endpoint = Callable[[Request], Awaitable[Response]]
ENDPOINT = "syncd.fake.endpoint"  # the request scope key naming the endpoint, for the counters


@dataclass
class FaultSettings:
    throttle_ratio: float = 0.0
    retry_after: float = 1.0
    unavailable_ratio: float = 0.0
    latency_ms: float = 0.0
    malformed: str | None = None
    malformed_ratio: float = 1.0
    seed: int = 0
    # The share of users-delta pages (not the last) that also carry an older copy of a user who
    # comes again later in the same read: its previous version, or a `changed` tombstone.
    delta_repeat_ratio: float = 0.0
    # The share of pages (users and groups delta, users, group members and owners) answered with
    # no items and a nextLink that goes on where that page would have.
    empty_page_ratio: float = 0.0
    # The share of users- and groups-delta requests that follow a nextLink answered 410 Gone.
    gone_mid_read_ratio: float = 0.0
    # False (Graph's way): a delta read is not bounded; an object changed during it comes in it.
    # True: a read stops at the change it began at, and later changes come in the next round.
    defer_mid_read_changes: bool = False

    @classmethod
    def parse(cls, body: Any) -> FaultSettings:
        if not isinstance(body, dict):
            raise StoreError("Request_BadRequest", "Faults must be a JSON object.")
        unknown = set(body) - set(cls.__dataclass_fields__)
        if unknown:
            raise StoreError("Request_BadRequest", f"Unknown fault setting {sorted(unknown)[0]!r}.")
        out = cls()
        for key, value in body.items():
            if key == "malformed":
                if value not in MALFORMED:
                    raise StoreError("Request_BadRequest", f"malformed must be one of {MALFORMED}.")
            elif key == "defer_mid_read_changes":
                if not isinstance(value, bool):
                    raise StoreError("Request_BadRequest", f"{key} must be true or false.")
            elif key == "seed":
                if not isinstance(value, int) or isinstance(value, bool):
                    raise StoreError("Request_BadRequest", "seed must be an integer.")
            else:
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise StoreError("Request_BadRequest", f"{key} must be a number >= 0.")
                if key.endswith("_ratio") and value > 1:
                    raise StoreError("Request_BadRequest", f"{key} must be between 0 and 1.")
                if key in _LIMITS and value > _LIMITS[key]:
                    raise StoreError("Request_BadRequest", f"{key} must be at most {_LIMITS[key]:g}.")
            setattr(out, key, value)
        return out


# Upper bounds of the settings that are durations: a minute of latency per request and an hour of
# Retry-After are beyond anything Graph does, and a larger value only hangs the caller.
_LIMITS = {"latency_ms": 60_000.0, "retry_after": 3_600.0}


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def spoil(body: bytes, how: str) -> bytes:
    """A successful JSON answer spoiled in one of the MALFORMED ways."""
    if how == "invalid_json":
        return body[: max(1, len(body) // 2)]
    obj = orjson.loads(body)
    if not isinstance(obj, dict):
        return body
    items = obj.get("value")
    if how == "missing_id":
        target = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else obj
        target.pop("id", None)
    elif how == "wrong_type":
        if isinstance(items, list):
            obj["value"] = "not-a-list"
        else:
            obj["id"] = 12345
    elif how == "foreign_next_link":
        obj.pop("@odata.deltaLink", None)
        obj["@odata.nextLink"] = FOREIGN_LINK
    return orjson.dumps(obj)


class Faults:
    """The current fault settings, their random stream, and the request counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings = FaultSettings()
        self._rng = random.Random(0)
        self.reset_counters()

    def set(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings
            self._rng = random.Random(settings.seed)

    def clear(self) -> None:
        self.set(FaultSettings())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self.settings)

    def reset_counters(self) -> None:
        with self._lock:
            self._totals: Counter[str] = Counter()
            self._by_endpoint: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def counters(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {k: self._totals[k] for k in COUNTERS}
            out["by_endpoint"] = {name: dict(c) for name, c in sorted(self._by_endpoint.items())}
            return out

    def _count(self, name: str, what: str) -> None:
        with self._lock:
            self._totals[what] += 1
            self._by_endpoint[name][what] += 1

    def chance(self, request: Request, what: str, ratio: float) -> bool:
        """Whether to play out the untidy behaviour `what` (a counter) on this request, drawn from
        the seeded stream with probability `ratio` (no draw at all when it is 0)."""
        if ratio <= 0:
            return False
        with self._lock:
            hit = self._rng.random() < ratio
        if hit:
            self._count(request.scope.get(ENDPOINT, request.url.path), what)
        return hit

    def randrange(self, n: int) -> int:
        """A number in [0, n) from the seeded stream."""
        with self._lock:
            return self._rng.randrange(n)

    def _draw(self) -> tuple[bool, bool, bool]:
        with self._lock:
            s, r = self.settings, self._rng.random
            throttle = s.throttle_ratio > 0 and r() < s.throttle_ratio
            unavailable = not throttle and s.unavailable_ratio > 0 and r() < s.unavailable_ratio
            malformed = s.malformed is not None and s.malformed_ratio > 0 and r() < s.malformed_ratio
            return throttle, unavailable, malformed

    def wrap(self, name: str, endpoint: Endpoint) -> Endpoint:
        """The endpoint with counting, faults and Graph error bodies for `StoreError`."""

        async def handle(request: Request) -> Response:
            request.scope[ENDPOINT] = name
            self._count(name, "requests")
            settings = self.settings
            if settings.latency_ms:
                await asyncio.sleep(settings.latency_ms / 1000)
            throttle, unavailable, malformed = self._draw()
            if throttle:
                self._count(name, "throttled")
                return graphio.error(
                    429,
                    "TooManyRequests",
                    "Too many requests; retry later.",
                    {"Retry-After": _retry_after(settings.retry_after)},
                )
            if unavailable:
                self._count(name, "unavailable")
                return graphio.error(
                    503,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable.",
                    {"Retry-After": _retry_after(settings.retry_after)},
                )
            try:
                response = await endpoint(request)
            except StoreError as exc:
                return graphio.error(exc.status, exc.code, exc.message)
            if malformed and response.status_code == 200 and settings.malformed:
                self._count(name, "malformed")
                body = spoil(bytes(response.body), settings.malformed)
                return Response(body, status_code=200, media_type=graphio.JSON)
            return response

        return handle
