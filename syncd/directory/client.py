"""The daemon's Microsoft Graph v1.0 client (synchronous, page by page).

Every read is a generator of pages: the client never holds more than one page
of the tenant. A page is fetched, checked and decoded whole before it is
handed out, so a malformed page raises :class:`MalformedResponse` and nothing
of it is used. Pages already handed out stay valid, but a read that raised is
incomplete: callers must not treat it as the whole directory (no deletions or
disables may follow from it).

Throttling (429) and unavailability (503/504, no response) are retried with
``Retry-After`` when Graph gives one, and bounded exponential backoff with
full jitter when it does not. Links (``@odata.nextLink``/``@odata.deltaLink``)
are followed only back to the base URL's scheme, host and port.

Users known by id are read in batches (:meth:`GraphClient.users_by_ids`): 15 ids to a
``$filter=id in (...)`` (Graph's default limit on an ``in``), 20 such requests to a JSON batch
(``POST /$batch``, Graph's limit), so 300 ids a round trip. Each request inside a batch is answered
on its own; those throttled or unavailable are sent again in a later batch, by the same rules.

A 401 gets one new token and one retry (a claims challenge in ``WWW-Authenticate``
is handed to the token provider); a second 401, a provider that cannot renew its
token, or a 403 ``Authorization_RequestDenied`` raises :class:`DirectoryAuthError`
with one line naming the likely cause (for a 403, the application permission the
endpoint needs, from :mod:`syncd.directory.permissions`).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import random
import re
import ssl
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson
import structlog

from syncd.directory.auth import RefreshableTokenProvider, TokenProvider
from syncd.directory.decode import (
    REQUIRED_USER_FIELDS,
    USER_FIELDS,
    USER_SELECT,
    BadItem,
    Page,
    decode_group,
    decode_group_delta,
    decode_items,
    decode_member,
    decode_role,
    decode_service_principal,
    decode_sku,
    decode_user,
    decode_users_delta_page,
    decode_users_page,
    parse_object,
    parse_page,
)
from syncd.directory.errors import (
    DeadlineReached,
    DirectoryAuthError,
    DirectoryError,
    DirectoryUnavailable,
    FullResyncRequired,
    GraphError,
    MalformedResponse,
)
from syncd.directory.ids import normalize_object_id
from syncd.directory.models import (
    DirectoryGroup,
    DirectoryRole,
    DirectoryUser,
    GroupDelta,
    GroupMember,
    MemberKind,
    RemovedUser,
    ServicePrincipal,
    SubscribedSku,
    UsersDeltaPage,
)
from syncd.directory.permissions import DIRECTORY_READ_ALL, need_for
from syncd.optional_imports import hidden

with hidden("rich", "click"):  # httpx's own command line (httpx.main), which syncd never runs
    import httpx

__all__ = [
    "USER_SELECT",
    "ClientStats",
    "DirectoryAuthError",
    "DirectoryError",
    "DirectoryUnavailable",
    "FullResyncRequired",
    "GraphError",
    "MalformedResponse",
    "DeltaReader",
    "GraphClient",
    "MemberPage",
]

log = structlog.get_logger(__name__)

RETRY_STATUSES = frozenset({429, 503, 504})
#: Graph's default limit on the values of one ``in`` (15), and on the requests of one JSON batch (20).
IDS_PER_FILTER = 15
REQUESTS_PER_BATCH = 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_QUERY_SAFE = ",'=*"

T = TypeVar("T")
#: A page of group or role members: users decoded in full when asked for, other kinds as ids.
MemberPage = list[DirectoryUser | GroupMember]


@dataclass(slots=True)
class ClientStats:
    """Running counts for metrics: every HTTP attempt, and how many were throttled or retried."""

    requests: int = 0
    throttled: int = 0  # 429 answers
    unavailable: int = 0  # 503/504 answers and attempts without a response
    retries: int = 0
    token_refreshes: int = 0  # new tokens asked for after a 401 or a claims challenge
    subrequests: int = 0  # requests answered inside JSON batches (each batch is one of `requests`)


class DeltaReader(Generic[T]):
    """Iterates the pages of one delta read; once exhausted, ``delta_link`` is the next checkpoint.

    ``delta_link`` stays ``None`` until the last page has been read, so a caller
    that stops early (or sees an error) never stores a checkpoint it has not
    earned. A reader can be iterated once.
    """

    def __init__(self, pages: Callable[[DeltaReader[T]], Generator[T, None, None]]) -> None:
        self.delta_link: str | None = None
        self.pages = 0
        self._iter = pages(self)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        page = next(self._iter)
        self.pages += 1
        return page

    def close(self) -> None:
        self._iter.close()


class GraphClient:
    """A Graph v1.0 client for the reads sync needs.

    ``sleep`` and ``rand`` are the waiting and the jitter source (tests inject
    their own); ``on_request`` is called with each attempt's HTTP status (0 when
    the attempt got no response), for metrics.

    ``verify``: the TLS trust (an ``ssl.SSLContext`` built from a CA bundle, or True for the
    system's); ``trust_env``: whether the proxy variables (``HTTPS_PROXY``, ``NO_PROXY``...) apply,
    as in httpx (syncd.testing turns them off: the fake tenant is on loopback); ``deadline`` (a
    ``time.monotonic()`` value, or None) bounds the waits between
    retries: a wait that would end after it raises :class:`DeadlineReached` instead
    (a sync run sets it to its own deadline).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token_provider: TokenProvider,
        transport: httpx.BaseTransport | None = None,
        page_size: int = 999,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 300.0,
        timeout: float = 60.0,
        on_request: Callable[[int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
    ) -> None:
        if not 1 <= page_size <= 999:
            raise ValueError("page_size must be within 1..999")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(httpx.URL(self.base_url))
        if self._origin[0] not in _DEFAULT_PORTS:
            raise ValueError(f"base_url must be an absolute http(s) URL: {base_url!r}")
        self._tokens = token_provider
        self.page_size = page_size
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.on_request = on_request
        self._sleep = sleep
        self._rand = rand
        self.stats = ClientStats()
        self.deadline: float | None = None
        self.timeout = timeout
        self._http = httpx.Client(
            transport=transport, timeout=timeout, follow_redirects=False, verify=verify, trust_env=trust_env
        )

    def __repr__(self) -> str:
        return f"GraphClient({self.base_url!r})"

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections (the token provider is its owner's to close)."""
        self._http.close()

    # -- users -----------------------------------------------------------------------------------

    def iter_users(
        self, select: Sequence[str] | None = None, *, filter: str | None = None
    ) -> Iterator[list[DirectoryUser]]:
        """All users, a page at a time (``$top`` = page size)."""
        params = {"$select": _user_select(select), "$top": str(self.page_size)}
        if filter:
            params["$filter"] = filter
        for page in self._pages(self._url("/users", params), decode=decode_users_page):
            yield page.items

    def get_user(self, id_or_upn: str, select: Sequence[str] | None = None) -> DirectoryUser | None:
        """One user by object id or userPrincipalName; ``None`` when the directory has no such user."""
        if not id_or_upn:
            raise ValueError("a user id or userPrincipalName is required")
        found = self._get_object(f"/users/{quote(id_or_upn, safe='@')}", select)
        return None if found is None else _one_user(*found)

    def users_by_ids(
        self, ids: Iterable[str], select: Sequence[str] | None = None
    ) -> dict[str, DirectoryUser]:
        """The users among ``ids`` that the directory has (active, not soft-deleted), keyed by their
        canonical (lower-case) object id; an id it does not have, or one that is not a GUID, is simply
        absent. Looked up ``IDS_PER_FILTER`` ids to a ``$filter=id in (...)`` and up to
        ``REQUESTS_PER_BATCH`` of those to a ``POST /$batch``: 300 ids per round trip.

        A sub-request answered 429/503/504 is sent again in a later batch, after its ``Retry-After``
        (or bounded backoff), within ``max_retries`` and the deadline, as :meth:`_get` does for whole
        requests; a 401 gets one new token; any other error raises as a single request would."""
        wanted: dict[str, None] = {}
        for oid in ids:
            try:
                wanted[normalize_object_id(oid)] = None
            except (TypeError, ValueError):
                continue
        keys = list(wanted)
        fields = _user_select(select)
        chunks = [keys[i : i + IDS_PER_FILTER] for i in range(0, len(keys), IDS_PER_FILTER)]
        found: dict[str, DirectoryUser] = {}
        for b in range(0, len(chunks), REQUESTS_PER_BATCH):
            urls = {
                str(n): "/users?"
                + "&".join(
                    k + "=" + quote(v, safe=_QUERY_SAFE)
                    for k, v in (
                        ("$select", fields),
                        ("$filter", "id in (" + ",".join(f"'{oid}'" for oid in chunk) + ")"),
                    )
                )
                for n, chunk in enumerate(chunks[b : b + REQUESTS_PER_BATCH], 1)
            }
            for url, body in self._batch_get(urls).values():
                raw = parse_page(orjson.dumps(body), url)
                users = decode_items(raw.items, url, decode_user)
                if raw.next_link is not None:  # Graph pages at 100: never for 15 ids, but follow it
                    for page in self._pages(self._check_link(raw.next_link, url), decode=decode_users_page):
                        users.extend(page.items)
                for user in users:
                    if user.id in wanted:
                        found[user.id] = user
        return found

    def _batch_get(self, urls: dict[str, str]) -> dict[str, tuple[str, Any]]:
        """GET each of ``urls`` (request id -> URL relative to the base) in one ``POST /$batch``,
        sending the sub-requests that were throttled or unavailable again until each has an answer.
        Returns request id -> (absolute URL, the JSON body of its 2xx answer)."""
        batch_url = self.base_url + "/$batch"
        pending = dict(urls)
        done: dict[str, tuple[str, Any]] = {}
        attempt = 0
        renewed = False
        while pending:
            attempt += 1
            payload = {"requests": [{"id": k, "method": "GET", "url": u} for k, u in pending.items()]}
            response = self._request(
                "POST", batch_url, {"Content-Type": "application/json"}, orjson.dumps(payload)
            )
            answers = _batch_responses(response.content, batch_url, pending)
            self.stats.subrequests += len(answers)
            again: dict[str, str] = {}
            waits: list[float] = []
            last: tuple[str, int] = ("", 0)
            for rid, (status, headers, body) in answers.items():
                url = self.base_url + pending[rid]
                if status < 300:
                    done[rid] = (url, body)
                    continue
                if status in RETRY_STATUSES:
                    if status == 429:
                        self.stats.throttled += 1
                    else:
                        self.stats.unavailable += 1
                    again[rid] = pending[rid]
                    told = self._retry_after_value(headers.get("retry-after"))
                    waits.append(self._backoff(attempt) if told is None else told)
                    last = (url, status)
                    continue
                code, message = _error_fields(body, status)
                if status == 401:
                    renewed = self._renew_or_raise(
                        headers.get("www-authenticate"), url, code, message, renewed
                    )
                    again[rid] = pending[rid]
                    continue
                if status == 403 and code == "Authorization_RequestDenied":
                    raise DirectoryAuthError(_explain_403(url, self.base_url, message), url=url, status=403)
                if status == 410:
                    raise FullResyncRequired(url, headers.get("location"))
                raise GraphError(url, status, code, message)
            pending = again
            if pending and waits:
                url, status = last
                if attempt > self.max_retries:
                    raise DirectoryUnavailable(url, status, attempt)
                wait = max(waits)
                log.debug(
                    "graph.batch_retry",
                    url=url,
                    status=status,
                    attempt=attempt,
                    delay=wait,
                    requests=len(pending),
                )
                self._wait(wait, url, status)
        return done

    def get_deleted_user(self, user_id: str, select: Sequence[str] | None = None) -> DirectoryUser | None:
        """A soft-deleted (restorable) user from the directory's deleted items, by object id
        (``GET /directory/deletedItems/{id}``); ``None`` when there is no such deleted user, or
        when the deleted item with this id is not a user."""
        if not user_id:
            raise ValueError("a user id is required")
        found = self._get_object(f"/directory/deletedItems/{_seg(user_id)}", select)
        if found is None or found[0].get("@odata.type", "#microsoft.graph.user") != "#microsoft.graph.user":
            return None
        return _one_user(*found)

    def iter_deleted_user_ids(self) -> Iterator[str]:
        """The object ids (lower case) of every soft-deleted, restorable user, from the directory's
        deleted items (``GET /directory/deletedItems/microsoft.graph.user``, paged). Raises what every
        read raises (GraphError, DirectoryAuthError, MalformedResponse)."""
        params = {"$select": "id", "$top": str(self.page_size)}
        for page in self._pages(self._url("/directory/deletedItems/microsoft.graph.user", params)):
            for item in page.items:
                oid = item.get("id") if isinstance(item, dict) else None
                try:
                    yield normalize_object_id(oid)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise MalformedResponse(
                        page.url, f"a deleted item whose id is not a GUID: {oid!r}"
                    ) from None

    def _get_object(self, path: str, select: Sequence[str] | None) -> tuple[dict[str, Any], str] | None:
        """One directory object with the user fields selected, and its URL; ``None`` on a 404."""
        url = self._url(path, {"$select": _user_select(select)})
        response = self._get_or_none(url)
        return None if response is None else (parse_object(response.content, url), url)

    def users_delta(
        self, delta_link: str | None = None, select: Sequence[str] | None = None
    ) -> DeltaReader[UsersDeltaPage]:
        """A users delta read: from scratch (a full read) or from a stored delta link.

        Raises :class:`FullResyncRequired` when Graph has forgotten the token.
        """
        fields = _user_select(select)
        start = (
            self._check_link(delta_link, self.base_url)
            if delta_link
            else self._url("/users/delta", {"$select": fields})
        )
        expected = frozenset(fields.split(","))

        def decode(content: bytes, url: str) -> Page:
            return decode_users_delta_page(content, url, expected)

        def pages(reader: DeltaReader[UsersDeltaPage]) -> Generator[UsersDeltaPage, None, None]:
            for page in self._pages(start, delta=True, decode=decode):
                yield self._users_delta_page(page, expected)
                if page.delta_link is not None:
                    reader.delta_link = page.delta_link

        return DeltaReader(pages)

    def latest_users_delta_link(self, select: Sequence[str] | None = None) -> str:
        """A delta link for "from now on", without reading any user (``$deltatoken=latest``)."""
        url = self._url("/users/delta", {"$select": _user_select(select), "$deltatoken": "latest"})
        for page in self._pages(url, delta=True):
            if page.delta_link is not None:
                return page.delta_link
        raise MalformedResponse(url, "no @odata.deltaLink")  # pragma: no cover - _pages ensures one

    def _users_delta_page(self, page: _FetchedPage, expected: frozenset[str]) -> UsersDeltaPage:
        """A decoded users delta page (:func:`decode_users_delta_page`) with its partly sent users
        read whole."""
        entries: list[DirectoryUser | RemovedUser | str] = page.items
        partial = any(type(entry) is str for entry in entries)
        if partial:
            # Read the partly sent users whole, 300 to a round trip; one gone since is left out (the
            # next delta reports the removal).
            partial_ids = [entry for entry in entries if isinstance(entry, str)]
            log.debug("graph.delta.partial_users", users=len(partial_ids))
            whole = self.users_by_ids(partial_ids, select=sorted(expected))
            resolved: list[DirectoryUser | RemovedUser | str] = []
            for entry in entries:
                if isinstance(entry, str):
                    user = whole.get(entry)
                    if user is None:
                        continue
                    entry = user
                resolved.append(entry)
            entries = resolved
        users = [entry for entry in entries if isinstance(entry, DirectoryUser)]
        removed = [entry for entry in entries if isinstance(entry, RemovedUser)]
        return UsersDeltaPage(users, removed, entries)  # type: ignore[arg-type]

    # -- groups, roles, members ------------------------------------------------------------------

    def iter_group_members(
        self, group_id: str, select: Sequence[str] | str | None = USER_SELECT
    ) -> Iterator[MemberPage]:
        """A group's direct members: users as :class:`DirectoryUser` when ``select`` asks for user
        fields, otherwise (and for groups and service principals) as :class:`GroupMember`.
        Devices and contacts are skipped."""
        return self._members(f"/groups/{_seg(group_id)}/members", select)

    def get_group(self, group_id: str) -> DirectoryGroup | None:
        """One group by object id (``GET /groups/{id}?$select=id,displayName,groupTypes,...``);
        ``None`` when the directory has no such group. Raises what every read raises."""
        if not group_id:
            raise ValueError("a group id is required")
        url = self._url(
            f"/groups/{_seg(group_id)}", {"$select": "id,displayName,groupTypes,securityEnabled,mailEnabled"}
        )
        response = self._get_or_none(url)
        if response is None:
            return None
        try:
            return decode_group(parse_object(response.content, url))
        except BadItem as exc:
            raise MalformedResponse(url, str(exc)) from None

    def iter_member_of_groups(self, user_id: str) -> Iterator[list[str]]:
        """The ids (lower case) of the groups the user is a *direct* member of, a page at a time
        (``GET /users/{id}/memberOf``; directory roles and administrative units are left out).
        Raises GraphError (404 for an unknown user) and what every read raises."""
        params = {"$select": "id", "$top": str(self.page_size)}
        for page in self._pages(self._url(f"/users/{_seg(user_id)}/memberOf", params)):
            ids: list[str] = []
            for i, item in enumerate(page.items):
                if item.get("@odata.type") != "#microsoft.graph.group":
                    continue
                gid = item.get("id")
                if type(gid) is not str or not gid:
                    raise MalformedResponse(page.url, f"value[{i}]: a group without a string id")
                ids.append(gid.lower())
            yield ids

    def iter_group_owners(self, group_id: str) -> Iterator[MemberPage]:
        return self._members(f"/groups/{_seg(group_id)}/owners", None)

    def iter_role_members(
        self, role_id: str, select: Sequence[str] | str | None = None
    ) -> Iterator[MemberPage]:
        """A directory role's members; users as :class:`DirectoryUser` when ``select`` asks for user fields."""
        return self._members(f"/directoryRoles/{_seg(role_id)}/members", select)

    def _members(self, path: str, select: Sequence[str] | str | None) -> Iterator[MemberPage]:
        params = {"$top": str(self.page_size)}
        full_users = select is not None
        if full_users:
            params["$select"] = _user_select(select)
        for page in self._pages(self._url(path, params)):
            out: MemberPage = []
            for i, item in enumerate(page.items):
                try:
                    member = decode_member(item)
                    if member is None:
                        continue
                    if full_users and member.kind is MemberKind.USER:
                        out.append(decode_user(item))
                    else:
                        out.append(member)
                except BadItem as exc:
                    raise MalformedResponse(page.url, f"value[{i}]: {exc}") from None
            yield out

    def groups_delta(
        self, delta_link: str | None = None, group_id: str | None = None
    ) -> DeltaReader[list[GroupDelta]]:
        """A groups delta read with direct-member changes (``members@delta``).

        ``group_id`` limits the read to one group (``$filter=id eq '...'``). The
        same group may appear on several pages: its changes add up.
        """
        if delta_link:
            start = self._check_link(delta_link, self.base_url)
        else:
            params = {"$select": "id,displayName,members"}
            if group_id:
                params["$filter"] = f"id eq '{_odata_str(group_id)}'"
            start = self._url("/groups/delta", params)

        def pages(reader: DeltaReader[list[GroupDelta]]) -> Generator[list[GroupDelta], None, None]:
            for page in self._pages(start, delta=True):
                yield decode_items(page.items, page.url, decode_group_delta)
                if page.delta_link is not None:
                    reader.delta_link = page.delta_link

        return DeltaReader(pages)

    def directory_roles(self) -> list[DirectoryRole]:
        """The activated directory roles."""
        return self._all(self._url("/directoryRoles", {}), decode_role)

    def subscribed_skus(self) -> list[SubscribedSku]:
        return self._all(self._url("/subscribedSkus", {}), decode_sku)

    def service_principals(self, app_id: str | None = None) -> list[ServicePrincipal]:
        params = {"$select": "id,appId,displayName"}
        if app_id:
            params["$filter"] = f"appId eq '{_odata_str(app_id)}'"
        return self._all(self._url("/servicePrincipals", params), decode_service_principal)

    def organization(self) -> dict[str, Any]:
        """The tenant's organization object (``id`` is the tenant id)."""
        url = self._url("/organization", {})
        for page in self._pages(url):
            if page.items:
                org = page.items[0]
                if type(org.get("id")) is not str:
                    raise MalformedResponse(page.url, "organization without a string id")
                return org
        raise MalformedResponse(url, "no organization object")

    def _all(self, url: str, decoder: Callable[[dict[str, Any]], T]) -> list[T]:
        out: list[T] = []
        for page in self._pages(url):
            out.extend(decode_items(page.items, page.url, decoder))
        return out

    # -- paging and links ------------------------------------------------------------------------

    def _url(self, path: str, params: dict[str, str]) -> str:
        url = self.base_url + path
        if params:
            url += "?" + "&".join(k + "=" + quote(v, safe=_QUERY_SAFE) for k, v in params.items())
        return url

    def _check_link(self, link: str, url: str) -> str:
        """A link is followed only when it is absolute and points back at the base URL's origin."""
        try:
            parsed = httpx.URL(link)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise MalformedResponse(url, f"invalid link {link!r}") from None
        if not parsed.is_absolute_url:
            raise MalformedResponse(url, f"link is not absolute: {link!r}")
        if _origin(parsed) != self._origin:
            raise MalformedResponse(url, f"link points at another host: {link!r}")
        return link

    def _pages(
        self, url: str, *, delta: bool = False, decode: Callable[[bytes, str], Page] = parse_page
    ) -> Iterator[_FetchedPage]:
        """Fetch a collection page by page, following nextLinks; a delta read must end in a deltaLink.
        Each page is decoded whole by ``decode`` (its bytes, its URL) before it is handed out:
        :func:`parse_page` gives parsed JSON items, :func:`decode_users_page` users."""
        headers = {"Prefer": f"odata.maxpagesize={self.page_size}"} if delta else None
        seen: set[str] = set()
        while True:
            seen.add(url)
            response = self._get(url, headers)
            raw = decode(response.content, url)
            page = _FetchedPage(url, raw)
            if raw.next_link is not None:
                next_url = self._check_link(raw.next_link, url)
                if next_url in seen:
                    raise MalformedResponse(url, "@odata.nextLink repeats a page of this read")
            elif delta:
                if raw.delta_link is None:
                    raise MalformedResponse(url, "delta page ends without @odata.deltaLink")
                self._check_link(raw.delta_link, url)
            yield page
            if raw.next_link is None:
                return
            url = next_url

    # -- one request, with retries ---------------------------------------------------------------

    def read_page(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The items of the first page of ``GET {base}{path}``, as Graph sent them (a probe, for
        ``syncd directory check``). Raises what every read raises (DirectoryAuthError, GraphError...)."""
        url = self._url(path, params or {})
        return list(parse_page(self._get(url).content, url).items)

    def _get_or_none(self, url: str) -> httpx.Response | None:
        """``GET url``; None when Graph answers 404 (no such object), any other error raised."""
        try:
            return self._get(url)
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise

    def _get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self._request("GET", url, headers)

    def _request(
        self, method: str, url: str, headers: dict[str, str] | None = None, content: bytes | None = None
    ) -> httpx.Response:
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            try:
                token = self._tokens.token()
            except DirectoryAuthError as exc:
                if not exc.transient:
                    raise
                # The sign-in authority is unreachable: retried like an unavailable Graph.
                self.stats.unavailable += 1
                self._notify(0)
                if attempt > self.max_retries:
                    raise
                delay = self._backoff(attempt)
                log.warning("graph.token_retry", url=url, attempt=attempt, delay=round(delay, 2))
                self._wait(delay, url, None)
                continue
            request_headers = {"Accept": "application/json", "Authorization": "Bearer " + token}
            if headers:
                request_headers.update(headers)
            self.stats.requests += 1
            timeout = self._timeout_within_deadline(url)
            try:
                response = self._http.request(
                    method, url, headers=request_headers, content=content, timeout=timeout
                )
            except httpx.TransportError as exc:
                self.stats.unavailable += 1
                self._notify(0)
                if attempt > self.max_retries:
                    raise DirectoryUnavailable(url, None, attempt) from exc
                delay = self._backoff(attempt)
                log.debug("graph.retry", url=url, status=None, error=type(exc).__name__, delay=delay)
                self._wait(delay, url, None)
                continue
            status = response.status_code
            self._notify(status)
            if status < 300:
                return response
            if status in RETRY_STATUSES:
                if status == 429:
                    self.stats.throttled += 1
                else:
                    self.stats.unavailable += 1
                if attempt > self.max_retries:
                    raise DirectoryUnavailable(url, status, attempt)
                told = self._retry_after(response)
                wait = self._backoff(attempt) if told is None else told
                log.debug("graph.retry", url=url, status=status, attempt=attempt, delay=wait)
                response.close()
                self._wait(wait, url, status)
                continue
            code, message = _error_body(response)
            if status == 401:
                renewed = self._renew_or_raise(
                    response.headers.get("WWW-Authenticate"), url, code, message, renewed
                )
                attempt -= 1  # a renewal is not a retry of an unavailable Graph
                continue
            if status == 403 and code == "Authorization_RequestDenied":
                raise DirectoryAuthError(
                    _explain_403(url, self.base_url, message, method), url=url, status=403
                )
            if status == 410:
                raise FullResyncRequired(url, response.headers.get("Location"))
            raise GraphError(url, status, code, message)

    def _renew_or_raise(
        self, www_authenticate: str | None, url: str, code: str, message: str, renewed: bool
    ) -> bool:
        """After a 401: get one new token (answering a claims challenge, if the header carries one) and
        return True for the caller to retry; raise DirectoryAuthError when this request already had its
        renewal or the provider cannot renew."""
        claims = _claims_challenge(www_authenticate)
        if (
            not renewed
            and isinstance(self._tokens, RefreshableTokenProvider)
            and self._tokens.refresh(claims)
        ):
            log.info("graph.token_renewed", url=url, claims_challenge=claims is not None)
            self.stats.token_refreshes += 1
            return True
        raise DirectoryAuthError(
            _explain_401(code, message, renewed, claims is not None), url=url, status=401
        )

    def _notify(self, status: int) -> None:
        if self.on_request is not None:
            self.on_request(status)

    def _timeout_within_deadline(self, url: str) -> Any:
        """The request's timeout: the client's, cut to what is left before the deadline (a slow answer
        must not hold a run past it). Raises DeadlineReached when nothing is left."""
        if self.deadline is None:
            return httpx.USE_CLIENT_DEFAULT
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineReached(url, None, 0.0)
        return min(self.timeout, left)

    def _wait(self, delay: float, url: str, status: int | None) -> None:
        if self.deadline is not None and time.monotonic() + delay > self.deadline:
            raise DeadlineReached(url, status, delay)
        self.stats.retries += 1
        if delay > 0:
            self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return ceiling * self._rand()

    def _retry_after(self, response: httpx.Response) -> float | None:
        return self._retry_after_value(response.headers.get("Retry-After"))

    def _retry_after_value(self, value: str | None) -> float | None:
        """A ``Retry-After`` value (seconds or an HTTP date) as seconds to wait, capped; None when absent
        or unreadable."""
        if not isinstance(value, str):
            return None
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            seconds = when.timestamp() - time.time()
        if seconds != seconds:  # NaN
            return None
        return min(max(seconds, 0.0), self.retry_after_max)


class _FetchedPage:
    __slots__ = ("url", "items", "next_link", "delta_link")

    def __init__(self, url: str, page: Page) -> None:
        self.url = url
        self.items = page.items
        self.next_link = page.next_link
        self.delta_link = page.delta_link


def _one_user(body: dict[str, Any], url: str) -> DirectoryUser:
    return decode_items([body], url, decode_user)[0]  # type: ignore[no-any-return]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme)


def _user_select(select: Sequence[str] | str | None) -> str:
    if select is None:
        return USER_SELECT
    fields = select.split(",") if isinstance(select, str) else list(select)
    missing = [f for f in USER_FIELDS if f in REQUIRED_USER_FIELDS and f not in fields]
    return ",".join([*missing, *fields])


def _seg(value: str) -> str:
    if not value:
        raise ValueError("an object id is required")
    return quote(value, safe="")


def _odata_str(value: str) -> str:
    return value.replace("'", "''")


def _error_fields(body: Any, status: int) -> tuple[str, str]:
    """Graph's ``{"error": {"code", "message"}}`` of a batch sub-response body, or what can be said without it."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        message = error.get("message")
        return error["code"], message if isinstance(message, str) else ""
    return "unknown", f"HTTP {status}"


def _batch_responses(
    content: bytes, url: str, pending: dict[str, str]
) -> dict[str, tuple[int, dict[str, str], Any]]:
    """A ``$batch`` answer checked against the request ids sent: id -> (status, headers with lower-case
    names, body). Every id must be answered once; the answers may come in any order."""
    body = parse_object(content, url)
    responses = body.get("responses")
    if type(responses) is not list:
        raise MalformedResponse(url, "missing 'responses' list")
    out: dict[str, tuple[int, dict[str, str], Any]] = {}
    for i, item in enumerate(responses):
        if type(item) is not dict:
            raise MalformedResponse(url, f"responses[{i}] is not an object")
        rid, status, headers = item.get("id"), item.get("status"), item.get("headers") or {}
        if type(rid) is not str or rid not in pending or rid in out:
            raise MalformedResponse(
                url, f"responses[{i}] answers no request sent, or one answered before: {rid!r}"
            )
        if type(status) is not int or not 100 <= status <= 599:
            raise MalformedResponse(url, f"responses[{i}] has no valid status: {status!r}")
        if type(headers) is not dict:
            raise MalformedResponse(url, f"responses[{i}].headers is not an object")
        names = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)}
        out[rid] = (status, names, item.get("body"))
    missing = pending.keys() - out.keys()
    if missing:
        raise MalformedResponse(url, f"no answer for request {sorted(missing)[0]!r}")
    return out


def _error_body(response: httpx.Response) -> tuple[str, str]:
    """Graph's ``{"error": {"code", "message"}}``, or what can be said without it."""
    try:
        body = orjson.loads(response.content)
        error = body["error"]
        code, message = error.get("code"), error.get("message")
        if isinstance(code, str):
            return code, message if isinstance(message, str) else ""
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        pass
    return "unknown", response.reason_phrase or f"HTTP {response.status_code}"


_AUTH_PARAM = re.compile(r'([A-Za-z_]+)="([^"]*)"')


def _claims_challenge(header: str | None) -> str | None:
    """The claims (decoded JSON text) of a ``WWW-Authenticate: Bearer ... error="insufficient_claims",
    claims="<base64>"`` challenge (Graph's continuous access evaluation), or None."""
    if not header or "insufficient_claims" not in header:
        return None
    params = dict(_AUTH_PARAM.findall(header))
    if params.get("error") != "insufficient_claims" or not params.get("claims"):
        return None
    raw = params["claims"]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _explain_401(code: str, message: str, renewed: bool, challenged: bool = False) -> str:
    """One line for a 401 syncd cannot get past (``challenged``: it came with a claims challenge)."""
    said = f"401 {code}: {message}".rstrip(": ")
    if renewed and challenged:
        return (
            f"Graph challenged a token newly issued for its claims ({said}): continuous access evaluation or a "
            "Conditional Access policy refuses this application; check the policies that apply to workload "
            "identities, and whether the application's access was revoked"
        )
    if renewed:
        return (
            f"Graph refused a newly issued token ({said}): the token is for another tenant or cloud, or the "
            "application's access was revoked; check SYNCD_DIRECTORY_TENANT_ID, and that "
            "SYNCD_DIRECTORY_AUTHORITY is the cloud of SYNCD_DIRECTORY_URL"
        )
    return (
        f"Graph refused the bearer token ({said}): a fixed SYNCD_DIRECTORY_TOKEN is wrong or has expired and "
        "cannot be renewed; configure SYNCD_DIRECTORY_CLIENT_ID with a secret or a certificate"
    )


def _explain_403(url: str, base_url: str, message: str, method: str = "GET") -> str:
    """One line for a 403 Authorization_RequestDenied: the permission the endpoint needs."""
    path = url[len(base_url) :] if url.startswith(base_url) else httpx.URL(url).path
    path = path.split("?", 1)[0]
    need = need_for(method, path)
    wanted = f"{need.least} (or {DIRECTORY_READ_ALL})" if need else "a permission for this endpoint"
    return (
        f"the application lacks the Graph permission {wanted} for {method} {path} (403 Authorization_RequestDenied: "
        f"{message}): add it as an application permission and grant admin consent"
    )
