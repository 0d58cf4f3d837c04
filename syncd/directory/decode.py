"""Graph JSON to the directory's plain values.

Users, the hot path of a full read (a million users), are decoded by msgspec straight from a page's
bytes into typed structs (:class:`_GraphUser`: the Graph field names, types, and which fields may be
absent), then built into :class:`DirectoryUser` with a few lines of Python per user (id in lower
case, a null userType as Member, licences shared through a small cache). A single user object that
is already a ``dict`` (a ``$batch`` answer, a member list, ``GET /users/{id}``) goes through the same
structs with :func:`msgspec.convert`. The other objects (members, groups, roles, SKUs, service
principals) are few and keep hand-written checks on parsed JSON.

Object ids (users, members, groups, roles, service principals) come out in lower case, Graph's
own spelling, whatever case the server sent: one object never has two spellings downstream.

Every decoder raises :class:`MalformedResponse` naming the page URL and the
item; a page is decoded whole before any of it is handed out, so a bad record
never comes out as a partial page or a guessed value. When msgspec rejects a page, the page is
parsed again the slow way to say what was wrong: the envelope checks of :func:`parse_page` first,
then the item position, its id, the field's path and the offending value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
import orjson
from msgspec import UnsetType
from msgspec.structs import astuple

from syncd.directory.errors import MalformedResponse
from syncd.directory.ids import normalize_object_id
from syncd.directory.models import (
    GRAPH_USER_FIELDS,
    AssignedLicense,
    Deletion,
    DirectoryGroup,
    DirectoryRole,
    DirectoryUser,
    GroupDelta,
    GroupMember,
    MemberKind,
    RemovedUser,
    ServicePlan,
    ServicePrincipal,
    SubscribedSku,
)

#: The user fields sync reads (GRAPH.md), in the order Graph documents them.
USER_FIELDS: tuple[str, ...] = GRAPH_USER_FIELDS
#: The ``$select`` value that asks Graph for exactly those fields.
USER_SELECT: str = ",".join(USER_FIELDS)
#: Fields without which a user record cannot be decoded at all.
REQUIRED_USER_FIELDS: frozenset[str] = frozenset({"id", "userPrincipalName", "accountEnabled"})

_ODATA_KINDS: dict[str, MemberKind] = {
    "#microsoft.graph.user": MemberKind.USER,
    "#microsoft.graph.group": MemberKind.GROUP,
    "#microsoft.graph.servicePrincipal": MemberKind.SERVICE_PRINCIPAL,
}
_REMOVED_REASONS: dict[Any, Deletion] = {"changed": Deletion.SOFT, "deleted": Deletion.HARD}


class BadItem(ValueError):
    """One item did not match the contract; the page decoder adds URL and position."""


def _object_id(value: str) -> str:
    """A directory object id in its one spelling (``syncd.directory.ids``: lower case, dashed;
    braces and the 32-digit form accepted). A value that is no GUID is only lower-cased for now
    (refusing it is left to do: the test suite's own ids are not GUIDs)."""
    try:
        return normalize_object_id(value)  # Graph's own spelling is its fast path
    except ValueError:
        return value.lower()


# -- pages ---------------------------------------------------------------------------------------


class Page:
    """One parsed Graph collection page: its items and where the read goes next."""

    __slots__ = ("items", "next_link", "delta_link")

    def __init__(self, items: list[Any], next_link: str | None, delta_link: str | None) -> None:
        self.items = items
        self.next_link = next_link
        self.delta_link = delta_link


def parse_json(content: bytes, url: str) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(url, f"invalid JSON: {exc}") from None


def parse_object(content: bytes, url: str) -> dict[str, Any]:
    body = parse_json(content, url)
    if type(body) is not dict:
        raise MalformedResponse(url, f"expected a JSON object, got {type(body).__name__}")
    return body


def parse_page(content: bytes, url: str) -> Page:
    """Check the envelope of a collection page: a ``value`` list of objects and string links."""
    body = parse_object(content, url)
    items = body.get("value")
    if type(items) is not list:
        raise MalformedResponse(url, "missing 'value' list")
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise MalformedResponse(url, f"value[{i}] is not an object")
    next_link = body.get("@odata.nextLink")
    delta_link = body.get("@odata.deltaLink")
    if next_link is not None and (type(next_link) is not str or not next_link):
        raise MalformedResponse(url, "@odata.nextLink is not a string")
    if delta_link is not None and (type(delta_link) is not str or not delta_link):
        raise MalformedResponse(url, "@odata.deltaLink is not a string")
    if next_link is not None and delta_link is not None:
        raise MalformedResponse(url, "page has both @odata.nextLink and @odata.deltaLink")
    return Page(items, next_link, delta_link)


def decode_items(items: list[dict[str, Any]], url: str, decoder: Any) -> list[Any]:
    """Decode every item of a page, or raise for the first bad one (nothing partial)."""
    out: list[Any] = []
    append = out.append
    try:
        for item in items:
            append(decoder(item))
    except BadItem as exc:
        i = len(out)
        raise MalformedResponse(url, f"value[{i}] (id={_item_id(items[i])}): {exc}") from None
    return out


def _item_id(item: dict[str, Any]) -> str:
    uid = item.get("id")
    return uid if type(uid) is str else "?"


# -- users ---------------------------------------------------------------------------------------

#: DirectoryUser's fields, in GRAPH_USER_FIELDS' order (and DirectoryUser's own: users are built
#: positionally): the values a user struct is built from.
_USER_SLOTS: tuple[str, ...] = (
    "id",
    "user_principal_name",
    "display_name",
    "given_name",
    "surname",
    "job_title",
    "mail",
    "business_phones",
    "mobile_phone",
    "street_address",
    "city",
    "state",
    "postal_code",
    "country",
    "account_enabled",
    "user_type",
    "assigned_licenses",
)
#: Attribute name -> Graph name for the structs below (the one place the two spellings meet).
_GRAPH_NAMES: dict[str, str] = {
    **dict(zip(_USER_SLOTS, GRAPH_USER_FIELDS, strict=True)),
    "removed": "@removed",
    "sku_id": "skuId",
    "disabled_plans": "disabledPlans",
    "next_link": "@odata.nextLink",
    "delta_link": "@odata.deltaLink",
}


def _graph_name(name: str) -> str:
    return _GRAPH_NAMES.get(name, name)


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_UNSET = msgspec.UNSET


class _Licence(msgspec.Struct, frozen=True, gc=False, rename=_graph_name):
    """An ``assignedLicenses`` entry as sent (hashable: it is the licence cache's key)."""

    sku_id: _NonEmpty
    disabled_plans: tuple[str, ...] = ()


class _GraphUser(msgspec.Struct, gc=False, rename=_graph_name):
    """A Graph user object as sent: the fields of GRAPH.md in their order, typed. A field the item
    does not have is UNSET (a delta may send only what changed; a required one is checked after)."""

    id: _NonEmpty
    user_principal_name: _NonEmpty | UnsetType = _UNSET
    display_name: str | None | UnsetType = _UNSET
    given_name: str | None | UnsetType = _UNSET
    surname: str | None | UnsetType = _UNSET
    job_title: str | None | UnsetType = _UNSET
    mail: str | None | UnsetType = _UNSET
    business_phones: tuple[str, ...] | UnsetType = _UNSET
    mobile_phone: str | None | UnsetType = _UNSET
    street_address: str | None | UnsetType = _UNSET
    city: str | None | UnsetType = _UNSET
    state: str | None | UnsetType = _UNSET
    postal_code: str | None | UnsetType = _UNSET
    country: str | None | UnsetType = _UNSET
    account_enabled: bool | UnsetType = _UNSET
    # A null userType is an old Member account (Graph's own reading).
    user_type: Literal["Member", "Guest"] | None | UnsetType = _UNSET
    assigned_licenses: tuple[_Licence, ...] | UnsetType = _UNSET


class _Removal(msgspec.Struct, gc=False):
    reason: Literal["changed", "deleted"]


class _DeltaEntry(_GraphUser, gc=False, rename=_graph_name):
    """An item of a users delta page: a user (perhaps partly sent), or a removal (``@removed``)."""

    removed: _Removal | None | UnsetType = _UNSET


_Item = TypeVar("_Item")


class _Page(msgspec.Struct, Generic[_Item], gc=False, rename=_graph_name):
    value: list[_Item]
    next_link: _NonEmpty | None = None
    delta_link: _NonEmpty | None = None


_USERS_PAGE = msgspec.json.Decoder(_Page[_GraphUser])
_USERS_DELTA_PAGE = msgspec.json.Decoder(_Page[_DeltaEntry])
_USER_DEFAULTS: tuple[Any, ...] = tuple(
    f.default if f.default is not msgspec.NODEFAULT else _UNSET for f in msgspec.structs.fields(DirectoryUser)
)
_REQUIRED_POSITIONS = tuple(i for i, name in enumerate(GRAPH_USER_FIELDS) if name in REQUIRED_USER_FIELDS)
_ALL_FIELDS = frozenset(GRAPH_USER_FIELDS)
_N_FIELDS = len(GRAPH_USER_FIELDS)  # a _DeltaEntry's @removed comes after them

_licence_cache: dict[_Licence, AssignedLicense] = {}
_LICENCE_CACHE_MAX = 4096


def _licences(raw: tuple[_Licence, ...]) -> tuple[AssignedLicense, ...]:
    """The licences of one user; equal ones are one shared value (most users hold one of a few)."""
    cache = _licence_cache
    out = []
    for lic in raw:
        hit = cache.get(lic)
        if hit is None:
            # SKU and plan ids are GUIDs, compared case-insensitively: the catalogue's spelling.
            hit = AssignedLicense(lic.sku_id.lower(), frozenset(p.lower() for p in lic.disabled_plans))
            if len(cache) >= _LICENCE_CACHE_MAX:
                cache.clear()
            cache[lic] = hit
        out.append(hit)
    return tuple(out)


def _user(values: tuple[Any, ...]) -> DirectoryUser:
    """A DirectoryUser from a user struct's 17 values (``astuple``, GRAPH_USER_FIELDS' order), all
    of them sent; :func:`_user_with_defaults` when some may be absent."""
    (uid, upn, display_name, given_name, surname, job_title, mail, phones, mobile, street, city,
     state, postal, country, enabled, user_type, licences) = values  # fmt: skip
    return DirectoryUser(
        _object_id(uid),  # one spelling per id: Graph's ids compare case-insensitively
        upn,
        display_name,
        given_name,
        surname,
        job_title,
        mail,
        phones,
        mobile,
        street,
        city,
        state,
        postal,
        country,
        enabled,
        user_type or "Member",
        _licences(licences) if licences else (),
    )


def _user_with_defaults(values: tuple[Any, ...]) -> DirectoryUser:
    """As :func:`_user`, for a user some fields of which were not sent: each takes DirectoryUser's
    default; :class:`BadItem` when one of REQUIRED_USER_FIELDS is among them."""
    if _UNSET in values:
        for i in _REQUIRED_POSITIONS:
            if values[i] is _UNSET:
                raise BadItem(f"Object missing required field `{GRAPH_USER_FIELDS[i]}`")
        values = tuple(d if v is _UNSET else v for v, d in zip(values, _USER_DEFAULTS, strict=True))
    return _user(values)


def decode_user(item: dict[str, Any]) -> DirectoryUser:
    """One Graph user object (parsed JSON) to a :class:`DirectoryUser`; :class:`BadItem` naming the
    field when it is malformed. Same checks as a page's users (:func:`decode_users_page`)."""
    try:
        raw = msgspec.convert(item, _GraphUser)
    except msgspec.ValidationError as exc:
        raise BadItem(_explain(exc, item)) from None
    return _user_with_defaults(astuple(raw))


def decode_users_page(content: bytes, url: str) -> Page:
    """A page of users (``GET /users``) from its bytes: ``items`` are :class:`DirectoryUser`.

    Raises :class:`MalformedResponse` (URL, item position and id, the field) for a page or user
    that does not match the contract; nothing of the page is returned then."""
    page = _decode_page(_USERS_PAGE, content, url)
    users: list[DirectoryUser] = []
    append = users.append
    try:
        for raw in page.value:
            values = astuple(raw)
            append(_user_with_defaults(values) if _UNSET in values else _user(values))
    except BadItem as exc:
        i = len(users)
        raise MalformedResponse(url, f"value[{i}] (id={page.value[i].id}): {exc}") from None
    return Page(users, page.next_link, page.delta_link)


def decode_users_delta_page(content: bytes, url: str, expected: frozenset[str] = _ALL_FIELDS) -> Page:
    """A page of a users delta read from its bytes. Its ``items`` are, in the page's order, a
    :class:`DirectoryUser` for each user sent with every field of ``expected`` (the ``$select``),
    a :class:`RemovedUser` for each ``@removed`` entry, and the (lower-case) id of each user sent
    only in part (Graph may send only what changed: the caller reads those whole, never guesses).

    Raises :class:`MalformedResponse` as :func:`decode_users_page` does."""
    page = _decode_page(_USERS_DELTA_PAGE, content, url)
    if expected >= _ALL_FIELDS:
        positions = None
    else:
        positions = tuple(i for i, name in enumerate(GRAPH_USER_FIELDS) if name in expected)
    entries: list[DirectoryUser | RemovedUser | str] = []
    append = entries.append
    unset = _UNSET
    try:
        for raw in page.value:
            values = astuple(raw)
            removed = values[_N_FIELDS]
            if removed is not unset and removed is not None:
                append(RemovedUser(_object_id(raw.id), _REMOVED_REASONS[removed.reason]))
                continue
            values = values[:_N_FIELDS]
            if positions is None:
                if unset not in values:
                    append(_user(values))
                    continue
            elif all(values[i] is not unset for i in positions):
                append(_user_with_defaults(values))
                continue
            append(_object_id(raw.id))  # sent in part
    except BadItem as exc:
        i = len(entries)
        raise MalformedResponse(url, f"value[{i}] (id={page.value[i].id}): {exc}") from None
    return Page(entries, page.next_link, page.delta_link)


def _decode_page(decoder: msgspec.json.Decoder[Any], content: bytes, url: str) -> Any:
    try:
        page = decoder.decode(content)
    except msgspec.DecodeError as exc:  # ValidationError included
        fault = exc
    else:
        if page.next_link is not None and page.delta_link is not None:
            raise MalformedResponse(url, "page has both @odata.nextLink and @odata.deltaLink")
        return page
    raise _page_fault(content, url, fault)  # outside the except: no msgspec error chained to it


_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_IN_VALUE = re.compile(r"^\.value\[(?P<i>\d+)\](?P<rest>.*)$", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _page_fault(content: bytes, url: str, exc: msgspec.DecodeError) -> MalformedResponse:
    """Why msgspec rejected a page, said as the hand checks would (the slow path: errors only).

    The page is parsed again with the envelope checks of :func:`parse_page` (invalid JSON, no
    ``value`` list, an item that is not an object, a bad link raise there); otherwise the fault is
    in one item, named by position, id, the field's path and the offending value."""
    page = parse_page(content, url)
    if not isinstance(exc, msgspec.ValidationError):
        return MalformedResponse(url, f"invalid JSON: {exc}")
    found = _AT.match(str(exc))
    inside = _IN_VALUE.match(found["path"]) if found else None
    if found is None or inside is None:
        return MalformedResponse(url, str(exc))
    i = int(inside["i"])
    item = page.items[i]
    return MalformedResponse(
        url, f"value[{i}] (id={_item_id(item)}): {_say(found['what'], inside['rest'], item)}"
    )


def _explain(exc: msgspec.ValidationError, item: Any) -> str:
    """A ValidationError on one item as ``field.path: what (offending value)``."""
    found = _AT.match(str(exc))
    if found is None:
        return str(exc)
    return _say(found["what"], found["path"], item)


def _say(what: str, path: str, item: Any) -> str:
    if not path:
        return what  # the item itself: "Object missing required field `id`", "Expected `object`..."
    value = item
    for name, index in _STEP.findall(path):
        try:
            value = value[name] if name else value[int(index)]
        except (KeyError, IndexError, TypeError):
            return f"{path.lstrip('.')}: {what}"
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{path.lstrip('.')}: {what}: {shown}"


def decode_removed(item: dict[str, Any]) -> RemovedUser | None:
    """A delta entry's ``@removed`` marker, or ``None`` when the entry is not a removal."""
    removed = item.get("@removed")
    if removed is None:
        return None
    uid = item.get("id")
    if type(uid) is not str or not uid:
        raise BadItem("removed entry without a string id")
    if type(removed) is not dict:
        raise BadItem("@removed is not an object")
    deletion = _REMOVED_REASONS.get(removed.get("reason"))
    if deletion is None:
        raise BadItem(f"@removed reason is not 'changed' or 'deleted': {removed.get('reason')!r}")
    return RemovedUser(_object_id(uid), deletion)


# -- members, groups, roles ----------------------------------------------------------------------


def member_kind(item: dict[str, Any]) -> MemberKind | None:
    """The kind of a directory object, or ``None`` for kinds sync ignores (devices, contacts)."""
    odata_type = item.get("@odata.type")
    if type(odata_type) is not str:
        raise BadItem("member without an @odata.type")
    return _ODATA_KINDS.get(odata_type)


def decode_member(item: dict[str, Any]) -> GroupMember | None:
    uid = item.get("id")
    if type(uid) is not str or not uid:
        raise BadItem("member without a string id")
    kind = member_kind(item)
    return None if kind is None else GroupMember(_object_id(uid), kind)


def decode_group_delta(item: dict[str, Any]) -> GroupDelta:
    gid = item.get("id")
    if type(gid) is not str or not gid:
        raise BadItem("group without a string id")
    removed_group = item.get("@removed")
    if removed_group is not None and type(removed_group) is not dict:
        raise BadItem("@removed is not an object")
    changes = item.get("members@delta", ())
    if changes == ():
        changes = []
    if type(changes) is not list:
        raise BadItem("members@delta is not a list")
    added: list[GroupMember] = []
    removed: list[GroupMember] = []
    for change in changes:
        if type(change) is not dict:
            raise BadItem("members@delta entry is not an object")
        member = decode_member(change)
        gone = change.get("@removed")
        if gone is not None and type(gone) is not dict:
            raise BadItem("members@delta @removed is not an object")
        if member is not None:
            (added if gone is None else removed).append(member)
    return GroupDelta(_object_id(gid), added, removed, removed_group is not None)


def decode_group(item: dict[str, Any]) -> DirectoryGroup:
    """A group object (``GET /groups/{id}``): its id, displayName, groupTypes and the two flags."""
    gid = item.get("id")
    if type(gid) is not str or not gid:
        raise BadItem("group without a string id")
    name = item.get("displayName")
    if name is not None and type(name) is not str:
        raise BadItem("group displayName is not a string")
    types = item.get("groupTypes") or []
    if type(types) is not list or any(type(t) is not str for t in types):
        raise BadItem("group groupTypes is not a list of strings")
    return DirectoryGroup(
        gid.lower(),
        name or gid.lower(),
        tuple(types),
        item.get("securityEnabled") is True,
        item.get("mailEnabled") is True,
    )


def decode_role(item: dict[str, Any]) -> DirectoryRole:
    rid = item.get("id")
    name = item.get("displayName")
    template = item.get("roleTemplateId")
    if type(rid) is not str or not rid:
        raise BadItem("role without a string id")
    if type(name) is not str:
        raise BadItem("role displayName is not a string")
    if type(template) is not str or not template:
        raise BadItem("role without a string roleTemplateId")
    return DirectoryRole(rid.lower(), name, template.lower())


def _plan(raw: Any) -> ServicePlan:
    if type(raw) is not dict:
        raise BadItem("servicePlans entry is not an object")
    pid = raw.get("servicePlanId")
    name = raw.get("servicePlanName")
    applies = raw.get("appliesTo", "User")
    if type(pid) is not str or not pid:
        raise BadItem("service plan without a string servicePlanId")
    if type(name) is not str:
        raise BadItem("service plan servicePlanName is not a string")
    if type(applies) is not str:
        raise BadItem("service plan appliesTo is not a string")
    return ServicePlan(pid, name, applies)


def decode_sku(item: dict[str, Any]) -> SubscribedSku:
    sku = item.get("skuId")
    part = item.get("skuPartNumber")
    plans = item.get("servicePlans", [])
    if type(sku) is not str or not sku:
        raise BadItem("subscribedSku without a string skuId")
    if type(part) is not str:
        raise BadItem("skuPartNumber is not a string")
    if type(plans) is not list:
        raise BadItem("servicePlans is not a list")
    return SubscribedSku(sku, part, tuple(_plan(p) for p in plans))


def decode_service_principal(item: dict[str, Any]) -> ServicePrincipal:
    sid = item.get("id")
    app_id = item.get("appId")
    name = item.get("displayName")
    if type(sid) is not str or not sid:
        raise BadItem("service principal without a string id")
    if type(app_id) is not str or not app_id:
        raise BadItem("service principal without a string appId")
    if name is None:
        name = ""
    if type(name) is not str:
        raise BadItem("service principal displayName is not a string")
    return ServicePrincipal(sid.lower(), app_id.lower(), name)
