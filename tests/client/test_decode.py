"""Graph JSON to directory values: the happy path, every malformed shape, and non-ASCII data."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from client_helpers import user
from hypothesis import given
from hypothesis import strategies as st

from syncd.directory import decode
from syncd.directory.decode import (
    USER_SELECT,
    BadItem,
    decode_group_delta,
    decode_items,
    decode_member,
    decode_removed,
    decode_role,
    decode_service_principal,
    decode_sku,
    decode_user,
    decode_users_delta_page,
    decode_users_page,
    parse_page,
)
from syncd.directory.errors import DirectoryError, MalformedResponse
from syncd.directory.models import (
    AssignedLicense,
    Deletion,
    DirectoryUser,
    GroupMember,
    MemberKind,
    RemovedUser,
)

URL = "https://graph.test/v1.0/users?$top=2"


def test_user_select_is_exactly_the_graph_md_user_fields() -> None:
    assert USER_SELECT.split(",") == [
        "id", "userPrincipalName", "displayName", "givenName", "surname", "jobTitle", "mail",
        "businessPhones", "mobilePhone", "streetAddress", "city", "state", "postalCode", "country",
        "accountEnabled", "userType", "assignedLicenses",
    ]  # fmt: skip


def test_decode_full_user() -> None:
    raw = user(
        "6e7b768e-07e2-4810-8459-485f84f8f204",
        jobTitle="Engineer",
        businessPhones=["+1 425 555 0109", "+1 425 555 0110"],
        mobilePhone="+1 425 555 0111",
        streetAddress="1 Microsoft Way",
        city="Redmond",
        state="WA",
        postalCode="98052",
        country="US",
        accountEnabled=False,
        userType="Guest",
        assignedLicenses=[
            {"skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900", "disabledPlans": ["p1", "p2"]},
            {"skuId": "f30db892-07e9-47e9-837c-80727f46fd3d", "disabledPlans": []},
        ],
    )
    got = decode_user(raw)
    assert got == DirectoryUser(
        id="6e7b768e-07e2-4810-8459-485f84f8f204",
        user_principal_name="6e7b768e-07e2-4810-8459-485f84f8f204@contoso.com",
        display_name="User 6e7b768e-07e2-4810-8459-485f84f8f204",
        given_name="Given",
        surname="Sur",
        job_title="Engineer",
        mail="6e7b768e-07e2-4810-8459-485f84f8f204@contoso.com",
        business_phones=("+1 425 555 0109", "+1 425 555 0110"),
        mobile_phone="+1 425 555 0111",
        street_address="1 Microsoft Way",
        city="Redmond",
        state="WA",
        postal_code="98052",
        country="US",
        account_enabled=False,
        user_type="Guest",
        assigned_licenses=(
            AssignedLicense("6fd2c87f-b296-42f0-b197-1e91e994b900", frozenset({"p1", "p2"})),
            AssignedLicense("f30db892-07e9-47e9-837c-80727f46fd3d"),
        ),
    )
    assert got.is_guest
    with pytest.raises(AttributeError):
        got.city = "x"  # type: ignore[misc]


def test_decode_non_ascii_user_from_bytes() -> None:
    raw = user(
        "u-ü",
        userPrincipalName="jürgen.müller@contoso.onmicrosoft.com",
        displayName="Jürgen Müller 🚀",
        givenName="Jürgen",
        surname="Ñúñez 李",
        city="Zürich",
        streetAddress="Bahnhofstraße 1",
    )
    content = orjson.dumps({"value": [raw]})
    items = parse_page(content, URL).items
    got = decode_items(items, URL, decode_user)[0]
    assert got.user_principal_name == "jürgen.müller@contoso.onmicrosoft.com"
    assert got.display_name == "Jürgen Müller 🚀"
    assert got.surname == "Ñúñez 李"
    assert got.street_address == "Bahnhofstraße 1"


def test_null_user_type_is_member_and_absent_collections_are_empty() -> None:
    raw = user("u1", userType=None)
    del raw["businessPhones"], raw["assignedLicenses"]
    got = decode_user(raw)
    assert got.user_type == "Member"
    assert got.business_phones == ()
    assert got.assigned_licenses == ()


def test_users_are_built_positionally_in_the_order_of_directory_users_fields() -> None:
    assert tuple(f.name for f in msgspec.structs.fields(DirectoryUser)) == decode._USER_SLOTS
    raw = user(
        "u1", city="Oslo", businessPhones=["1"], assignedLicenses=[{"skuId": "s", "disabledPlans": []}]
    )
    got = decode_user(raw)
    again = DirectoryUser(**{f.name: getattr(got, f.name) for f in msgspec.structs.fields(DirectoryUser)})
    assert got == again and hash(got) == hash(again) and repr(got) == repr(again)


BAD_USERS: list[tuple[dict[str, Any], str]] = [
    ({"id": 5}, "id"),
    ({"id": ""}, "id"),
    ({"userPrincipalName": None}, "userPrincipalName"),
    ({"userPrincipalName": 3}, "userPrincipalName"),
    ({"accountEnabled": "true"}, "accountEnabled"),
    ({"accountEnabled": 1}, "accountEnabled"),
    ({"accountEnabled": None}, "accountEnabled"),
    ({"displayName": 7}, "displayName"),
    ({"mail": ["a@b"]}, "mail"),
    ({"country": {"x": 1}}, "country"),
    ({"userType": "Admin"}, "userType"),
    ({"userType": ["Member"]}, "userType"),
    ({"businessPhones": "123"}, "businessPhones"),
    ({"businessPhones": [123]}, "businessPhones"),
    ({"businessPhones": None}, "businessPhones"),
    ({"assignedLicenses": {"skuId": "s"}}, "assignedLicenses"),
    ({"assignedLicenses": [{"disabledPlans": []}]}, "skuId"),
    ({"assignedLicenses": [{"skuId": 1, "disabledPlans": []}]}, "skuId"),
    ({"assignedLicenses": ["s"]}, "assignedLicenses"),
    ({"assignedLicenses": [{"skuId": "s", "disabledPlans": "p"}]}, "disabledPlans"),
    ({"assignedLicenses": [{"skuId": "s", "disabledPlans": [1]}]}, "disabledPlans"),
    ({"assignedLicenses": [{"skuId": "s", "disabledPlans": [{"a": 1}]}]}, "disabledPlans"),
    ({"assignedLicenses": [{"skuId": "s", "disabledPlans": None}]}, "disabledPlans"),
]


@pytest.mark.parametrize(("change", "field"), BAD_USERS, ids=[str(c) for c, _ in BAD_USERS])
def test_malformed_user_names_the_field(change: dict[str, Any], field: str) -> None:
    raw = user("u1", **change)
    with pytest.raises(BadItem, match=field):
        decode_user(raw)


def test_missing_required_user_field_is_malformed() -> None:
    for key in ("id", "userPrincipalName", "accountEnabled"):
        raw = user("u1")
        del raw[key]
        with pytest.raises(BadItem, match=key):
            decode_user(raw)


def test_decode_items_names_url_position_and_id_and_yields_nothing() -> None:
    items = [user("good"), user("bad", accountEnabled="yes"), user("later")]
    with pytest.raises(MalformedResponse) as info:
        decode_items(items, URL, decode_user)
    err = info.value
    assert isinstance(err, DirectoryError)
    assert err.url == URL
    assert "value[1]" in err.reason and "id=bad" in err.reason and "accountEnabled" in err.reason
    assert URL in str(err)


# Collection pages whose envelope breaks the contract, and what the error must name.
MALFORMED_ENVELOPES: list[tuple[bytes, str]] = [
    (b"{not json", "invalid JSON"),
    (b"", "invalid JSON"),
    (b"[]", "JSON object"),
    (b'{"nope": []}', "value"),
    (b'{"value": {}}', "value"),
    (b'{"value": null}', "value"),
    (b'{"value": [1]}', r"value\[0\]"),
    (b'{"value": [], "@odata.nextLink": 5}', "nextLink"),
    (b'{"value": [], "@odata.deltaLink": ""}', "deltaLink"),
    (b'{"value": [], "@odata.nextLink": "https://a/x", "@odata.deltaLink": "https://a/y"}', "both"),
]


@pytest.mark.parametrize(("content", "reason"), MALFORMED_ENVELOPES)
def test_malformed_page_envelopes(content: bytes, reason: str) -> None:
    with pytest.raises(MalformedResponse, match=reason):
        parse_page(content, URL)


def test_removed_entries() -> None:
    assert decode_removed(user("u1")) is None
    assert decode_removed({"id": "a", "@removed": {"reason": "changed"}}) == RemovedUser("a", Deletion.SOFT)
    assert decode_removed({"id": "a", "@removed": {"reason": "deleted"}}) == RemovedUser("a", Deletion.HARD)
    for bad in ({"id": "a", "@removed": {"reason": "gone"}}, {"id": "a", "@removed": "deleted"},
                {"@removed": {"reason": "deleted"}}):  # fmt: skip
        with pytest.raises(BadItem):
            decode_removed(bad)


def test_members_by_odata_type() -> None:
    assert decode_member({"id": "a", "@odata.type": "#microsoft.graph.user"}) == GroupMember(
        "a", MemberKind.USER
    )
    assert decode_member({"id": "g", "@odata.type": "#microsoft.graph.group"}) == GroupMember(
        "g", MemberKind.GROUP
    )
    assert decode_member({"id": "s", "@odata.type": "#microsoft.graph.servicePrincipal"}) == GroupMember(
        "s", MemberKind.SERVICE_PRINCIPAL
    )
    assert decode_member({"id": "d", "@odata.type": "#microsoft.graph.device"}) is None
    with pytest.raises(BadItem, match="odata.type"):
        decode_member({"id": "a"})
    with pytest.raises(BadItem, match="id"):
        decode_member({"@odata.type": "#microsoft.graph.user"})


def test_group_delta_entries() -> None:
    got = decode_group_delta(
        {
            "id": "g1",
            "displayName": "Sales",
            "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": "u1"},
                {"@odata.type": "#microsoft.graph.group", "id": "g2"},
                {"@odata.type": "#microsoft.graph.user", "id": "u2", "@removed": {"reason": "deleted"}},
                {"@odata.type": "#microsoft.graph.device", "id": "d1"},
            ],
        }
    )
    assert got.id == "g1" and not got.removed_group
    assert got.added == [GroupMember("u1", MemberKind.USER), GroupMember("g2", MemberKind.GROUP)]
    assert got.removed == [GroupMember("u2", MemberKind.USER)]
    gone = decode_group_delta({"id": "g1", "@removed": {"reason": "deleted"}})
    assert gone.removed_group and gone.added == [] and gone.removed == []
    assert decode_group_delta({"id": "g3"}).added == []
    for bad in ({"id": "g", "members@delta": {}}, {"id": "g", "members@delta": [5]},
                {"id": "g", "members@delta": [{"id": "u"}]}, {"displayName": "x"}):  # fmt: skip
        with pytest.raises(BadItem):
            decode_group_delta(bad)


def test_roles_skus_service_principals() -> None:
    role = decode_role({"id": "r", "displayName": "Global Administrator",
                        "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10"})  # fmt: skip
    assert role.role_template_id == "62e90394-69f5-4237-9190-012177145e10"
    with pytest.raises(BadItem):
        decode_role({"id": "r", "displayName": "x"})
    sku = decode_sku(
        {
            "skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900",
            "skuPartNumber": "ENTERPRISEPACK",
            "servicePlans": [{"servicePlanId": "p", "servicePlanName": "EXCHANGE_S_ENTERPRISE",
                              "appliesTo": "User"}],
        }
    )  # fmt: skip
    assert sku.sku_part_number == "ENTERPRISEPACK" and sku.service_plans[0].service_plan_id == "p"
    for bad in ({"skuPartNumber": "X"}, {"skuId": "s", "skuPartNumber": "X", "servicePlans": {}},
                {"skuId": "s", "skuPartNumber": "X", "servicePlans": [{"servicePlanName": "n"}]}):  # fmt: skip
        with pytest.raises(BadItem):
            decode_sku(bad)
    sp = decode_service_principal({"id": "s", "appId": "a", "displayName": None})
    assert (sp.id, sp.app_id, sp.display_name) == ("s", "a", "")
    with pytest.raises(BadItem):
        decode_service_principal({"id": "s"})


def test_licence_cache_is_bounded_and_shares_values() -> None:
    a = decode_user(user("a", assignedLicenses=[{"skuId": "s", "disabledPlans": ["p"]}]))
    b = decode_user(user("b", assignedLicenses=[{"skuId": "s", "disabledPlans": ["p"]}]))
    assert a.assigned_licenses[0] is b.assigned_licenses[0]
    for i in range(decode._LICENCE_CACHE_MAX + 10):
        decode_user(user("c", assignedLicenses=[{"skuId": f"s{i}", "disabledPlans": []}]))
    assert len(decode._licence_cache) <= decode._LICENCE_CACHE_MAX


_opt_text = st.none() | st.text(max_size=40)


@given(
    uid=st.text(min_size=1, max_size=40),
    upn=st.text(min_size=1, max_size=60),
    names=st.lists(_opt_text, min_size=11, max_size=11),
    phones=st.lists(st.text(max_size=20), max_size=3),
    enabled=st.booleans(),
    guest=st.booleans(),
    licences=st.lists(
        st.tuples(st.text(min_size=1, max_size=36), st.lists(st.text(max_size=36), max_size=3)), max_size=3
    ),
)
def test_any_valid_user_round_trips_through_json(
    uid: str,
    upn: str,
    names: list[str | None],
    phones: list[str],
    enabled: bool,
    guest: bool,
    licences: list[tuple[str, list[str]]],
) -> None:
    keys = ["displayName", "givenName", "surname", "jobTitle", "mail", "mobilePhone", "streetAddress",
            "city", "state", "postalCode", "country"]  # fmt: skip
    raw: dict[str, Any] = dict(zip(keys, names, strict=True))
    raw.update(
        id=uid,
        userPrincipalName=upn,
        businessPhones=phones,
        accountEnabled=enabled,
        userType="Guest" if guest else "Member",
        assignedLicenses=[{"skuId": s, "disabledPlans": p} for s, p in licences],
    )
    got = decode_items(parse_page(orjson.dumps({"value": [raw]}), URL).items, URL, decode_user)[0]
    assert got.id == uid.lower() and got.user_principal_name == upn  # ids in one spelling
    assert got.display_name == raw["displayName"] and got.country == raw["country"]
    assert got.business_phones == tuple(phones)
    assert got.account_enabled is enabled and got.is_guest is guest
    # SKU and plan ids are GUIDs, compared case-insensitively: they come out in the catalogue's case.
    assert got.assigned_licenses == tuple(
        AssignedLicense(s.lower(), frozenset(x.lower() for x in p)) for s, p in licences
    )


# -- whole users pages from their bytes (msgspec) ------------------------------------------------


def _body(items: list[Any], **links: str) -> bytes:
    return orjson.dumps({"value": items, **links})


def test_user_struct_fields_are_the_graph_md_fields_in_order() -> None:
    assert decode._GraphUser.__struct_encode_fields__ == decode.USER_FIELDS


def test_users_page_gives_what_decode_user_gives() -> None:
    raws = [
        user("6E7B768E-07E2-4810-8459-485F84F8F204", city="Zürich", businessPhones=["1", "2"],
             assignedLicenses=[{"skuId": "s", "disabledPlans": ["p2", "p1"]}, {"skuId": "t"}]),
        user("u2", userType=None, accountEnabled=False, givenName=None, **{"@odata.type": "#x"}),
        user("u3", userType="Guest"),
    ]  # fmt: skip
    page = decode_users_page(_body(raws, **{"@odata.nextLink": "https://a/next"}), URL)
    assert page.items == [decode_user(raw) for raw in raws]
    assert page.next_link == "https://a/next" and page.delta_link is None
    assert page.items[0].id == "6e7b768e-07e2-4810-8459-485f84f8f204"  # one spelling
    assert page.items[1].user_type == "Member"
    assert page.items[0].assigned_licenses[1] == AssignedLicense("t")
    assert type(page.items[0]) is DirectoryUser


def test_users_page_fills_the_defaults_of_fields_not_selected() -> None:
    page = decode_users_page(_body([{"id": "a", "userPrincipalName": "a@x", "accountEnabled": True}]), URL)
    assert page.items == [DirectoryUser("a", "a@x")]


def test_users_delta_page_sorts_users_removals_and_partial_users() -> None:
    raws = [
        user("U1"),
        {"id": "U2", "@removed": {"reason": "changed"}},
        {"id": "U3", "@removed": {"reason": "deleted"}},
        {"id": "U4", "displayName": "changed only"},
        user("u5", **{"@removed": None}),
    ]
    page = decode_users_delta_page(_body(raws, **{"@odata.deltaLink": "https://a/d"}), URL)
    assert page.items == [
        decode_user(raws[0]),
        RemovedUser("u2", Deletion.SOFT),
        RemovedUser("u3", Deletion.HARD),
        "u4",
        decode_user(raws[4]),
    ]
    assert page.delta_link == "https://a/d"
    # With a narrower $select, a user with every selected field is whole.
    narrow = frozenset({"id", "userPrincipalName", "accountEnabled", "displayName"})
    item = {"id": "a", "userPrincipalName": "a@x", "accountEnabled": True, "displayName": "A"}
    (got,) = decode_users_delta_page(_body([item]), URL, narrow).items
    assert got == DirectoryUser("a", "a@x", display_name="A")


@pytest.mark.parametrize(("change", "field"), BAD_USERS, ids=[str(c) for c, _ in BAD_USERS])
def test_malformed_user_in_a_page_names_position_id_and_field(change: dict[str, Any], field: str) -> None:
    for decoder in (decode_users_page, decode_users_delta_page):
        with pytest.raises(MalformedResponse, match=field) as info:
            decoder(_body([user("good"), user("u1", **change)]), URL)
        assert info.value.url == URL and info.value.reason.startswith("value[1] (id=")


def test_page_fault_says_the_path_and_the_value() -> None:
    body = _body([user("good"), user("bad", assignedLicenses=[{"skuId": "s", "disabledPlans": ["p", 7]}])])
    with pytest.raises(MalformedResponse) as info:
        decode_users_page(body, URL)
    assert info.value.reason == (
        "value[1] (id=bad): assignedLicenses[0].disabledPlans[1]: Expected `str`, got `int`: 7"
    )
    missing = user("m")
    del missing["accountEnabled"]
    with pytest.raises(MalformedResponse, match=r"value\[0\] \(id=m\): .*accountEnabled"):
        decode_users_page(_body([missing]), URL)
    with pytest.raises(MalformedResponse, match=r"value\[0\].*reason"):
        decode_users_delta_page(_body([{"id": "a", "@removed": {"reason": "gone"}}]), URL)


@pytest.mark.parametrize(("content", "reason"), MALFORMED_ENVELOPES)
def test_malformed_users_page_envelopes(content: bytes, reason: str) -> None:
    for decoder in (decode_users_page, decode_users_delta_page):
        with pytest.raises(MalformedResponse, match=reason):
            decoder(content, URL)


def test_ids_in_any_spelling_of_a_guid_come_out_in_one_and_licence_ids_in_lower_case() -> None:
    # Graph compares object ids case-insensitively; a braced or 32-digit id is the same object
    # (one row, not two), and an upper-case skuId is the same licence (R4).
    guid = "0716f711-7d41-4597-ac48-82bf986f4cc9"
    for spelling in (guid.upper(), "{" + guid + "}", guid.replace("-", "")):
        raw = user(
            spelling,
            assignedLicenses=[{"skuId": "B30411F5-FEA1-4A59-9AD9-3DB7C7EAD579", "disabledPlans": ["AB"]}],
        )
        page = decode_users_page(orjson.dumps({"value": [raw]}), URL).items[0]
        assert page.id == guid and decode_user(raw).id == guid
        assert page.assigned_licenses == (
            AssignedLicense("b30411f5-fea1-4a59-9ad9-3db7c7ead579", frozenset({"ab"})),
        )
        delta = decode_users_delta_page(
            orjson.dumps({"value": [{"id": spelling, "@removed": {"reason": "deleted"}}]}), URL
        )
        assert delta.items[0].id == guid
