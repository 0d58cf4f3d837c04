"""Graph JSON to the directory's plain values, with hand-written type checks.

This is the hot path of a full read (a million users means a million calls of
:func:`decode_user`), so it uses no validation library: one ``dict.get`` per
field, a cheap combined check, and a slow path only to name what was wrong.

Object ids (users, members, groups, roles, service principals) come out in lower case, Graph's
own spelling, whatever case the server sent: one object never has two spellings downstream.

Every decoder raises :class:`MalformedResponse` naming the page URL and the
item; a page is decoded whole before any of it is handed out, so a bad record
never comes out as a partial page or a guessed value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson

from syncd.directory.errors import MalformedResponse
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

_OPTIONAL_STRINGS: tuple[tuple[str, str], ...] = (
    ("displayName", "display_name"),
    ("givenName", "given_name"),
    ("surname", "surname"),
    ("jobTitle", "job_title"),
    ("mail", "mail"),
    ("mobilePhone", "mobile_phone"),
    ("streetAddress", "street_address"),
    ("city", "city"),
    ("state", "state"),
    ("postalCode", "postal_code"),
    ("country", "country"),
)
# A null userType is an old Member account (Graph's own reading).
_USER_TYPES: dict[str | None, str] = {"Member": "Member", "Guest": "Guest", None: "Member"}

_ODATA_KINDS: dict[str, MemberKind] = {
    "#microsoft.graph.user": MemberKind.USER,
    "#microsoft.graph.group": MemberKind.GROUP,
    "#microsoft.graph.servicePrincipal": MemberKind.SERVICE_PRINCIPAL,
}
_REMOVED_REASONS: dict[Any, Deletion] = {"changed": Deletion.SOFT, "deleted": Deletion.HARD}


class BadItem(ValueError):
    """One item did not match the contract; the page decoder adds URL and position."""


# -- pages ---------------------------------------------------------------------------------------


class Page:
    """One parsed Graph collection page: its items and where the read goes next."""

    __slots__ = ("items", "next_link", "delta_link")

    def __init__(self, items: list[dict[str, Any]], next_link: str | None, delta_link: str | None) -> None:
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

_licence_cache: dict[tuple[str, tuple[str, ...]], AssignedLicense] = {}
_LICENCE_CACHE_MAX = 4096


def _licence(raw: Any) -> AssignedLicense:
    if type(raw) is not dict:
        raise BadItem("assignedLicenses entry is not an object")
    sku = raw.get("skuId")
    if type(sku) is not str or not sku:
        raise BadItem("assignedLicenses entry without a string skuId")
    plans = raw.get("disabledPlans", ())
    if type(plans) is not list:
        if plans != ():
            raise BadItem("assignedLicenses disabledPlans is not a list")
        plans = []
    key = (sku, tuple(plans))
    try:
        hit = _licence_cache.get(key)
    except TypeError:  # an unhashable entry: certainly not a plan id
        raise BadItem("assignedLicenses disabledPlans holds a non-string") from None
    if hit is not None:
        return hit
    for plan in plans:
        if type(plan) is not str:
            raise BadItem("assignedLicenses disabledPlans holds a non-string")
    lic = AssignedLicense(sku, frozenset(plans))
    if len(_licence_cache) >= _LICENCE_CACHE_MAX:
        _licence_cache.clear()
    _licence_cache[key] = lic
    return lic


# Building a frozen dataclass through __init__ costs one object.__setattr__ per field, which is
# most of a user's decode time. The slot descriptors set the same slots directly; this is used only
# while DirectoryUser's fields are exactly the ones below (otherwise the plain constructor is used).
_USER_SLOTS = (
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


def _slot_builder() -> Callable[..., DirectoryUser]:
    names = tuple(f.name for f in dataclasses.fields(DirectoryUser))
    if names != _USER_SLOTS or getattr(DirectoryUser, "__post_init__", None) is not None:
        return DirectoryUser
    (s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16) = (
        DirectoryUser.__dict__[name].__set__ for name in names
    )
    new = object.__new__

    def build(
        a0: Any, a1: Any, a2: Any, a3: Any, a4: Any, a5: Any, a6: Any, a7: Any, a8: Any,
        a9: Any, a10: Any, a11: Any, a12: Any, a13: Any, a14: Any, a15: Any, a16: Any,
    ) -> DirectoryUser:  # fmt: skip
        user = new(DirectoryUser)
        s0(user, a0)
        s1(user, a1)
        s2(user, a2)
        s3(user, a3)
        s4(user, a4)
        s5(user, a5)
        s6(user, a6)
        s7(user, a7)
        s8(user, a8)
        s9(user, a9)
        s10(user, a10)
        s11(user, a11)
        s12(user, a12)
        s13(user, a13)
        s14(user, a14)
        s15(user, a15)
        s16(user, a16)
        return user

    return build


_build_user = _slot_builder()


def decode_user(item: dict[str, Any]) -> DirectoryUser:
    """One Graph user object to a :class:`DirectoryUser`; :class:`BadItem` when it is malformed."""
    g = item.get
    uid = g("id")
    upn = g("userPrincipalName")
    enabled = g("accountEnabled")
    if type(uid) is not str or not uid:
        raise BadItem("id is not a non-empty string")
    if type(upn) is not str or not upn:
        raise BadItem("userPrincipalName is not a non-empty string")
    if type(enabled) is not bool:
        raise BadItem(f"accountEnabled is not a bool: {enabled!r}")
    display_name = g("displayName")
    given_name = g("givenName")
    surname = g("surname")
    job_title = g("jobTitle")
    mail = g("mail")
    mobile = g("mobilePhone")
    street = g("streetAddress")
    city = g("city")
    state = g("state")
    postal = g("postalCode")
    country = g("country")
    str_ = str
    if not (
        (display_name is None or type(display_name) is str_)
        and (given_name is None or type(given_name) is str_)
        and (surname is None or type(surname) is str_)
        and (job_title is None or type(job_title) is str_)
        and (mail is None or type(mail) is str_)
        and (mobile is None or type(mobile) is str_)
        and (street is None or type(street) is str_)
        and (city is None or type(city) is str_)
        and (state is None or type(state) is str_)
        and (postal is None or type(postal) is str_)
        and (country is None or type(country) is str_)
    ):
        for key, _ in _OPTIONAL_STRINGS:
            value = g(key)
            if value is not None and type(value) is not str:
                raise BadItem(f"{key} is not a string or null: {value!r}")
    raw_type = g("userType")
    user_type = _USER_TYPES.get(raw_type) if raw_type is None or type(raw_type) is str else None
    if user_type is None:
        raise BadItem(f"userType is not 'Member' or 'Guest': {raw_type!r}")
    phones_raw = g("businessPhones", ())
    if type(phones_raw) is list:
        for phone in phones_raw:
            if type(phone) is not str:
                raise BadItem("businessPhones holds a non-string")
        phones: tuple[str, ...] = tuple(phones_raw)
    elif phones_raw == ():
        phones = ()
    else:
        raise BadItem("businessPhones is not a list of strings")
    lic_raw = g("assignedLicenses", ())
    if type(lic_raw) is list:
        licences = tuple([_licence(x) for x in lic_raw]) if lic_raw else ()
    elif lic_raw == ():
        licences = ()
    else:
        raise BadItem("assignedLicenses is not a list")
    return _build_user(
        uid.lower(),  # one spelling per id: Graph's ids compare case-insensitively
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
        user_type,
        licences,
    )


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
    return RemovedUser(uid.lower(), deletion)


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
    return None if kind is None else GroupMember(uid.lower(), kind)


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
    return GroupDelta(gid.lower(), added, removed, removed_group is not None)


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
