"""Column mapping and what flows (R10-R14)."""

from __future__ import annotations

from rules_builders import SALES, duser, env, facts, row_for

from syncd.rules import SYNCED_COLUMNS, Action, Mode, column_changes, decide, wanted_columns


def test_r10_synced_columns_exact_names() -> None:  # R10
    assert SYNCED_COLUMNS == (
        "domainname",
        "fullname",
        "firstname",
        "lastname",
        "jobtitle",
        "internalemailaddress",
        "address1_telephone1",
        "mobilephone",
        "address1_line1",
        "address1_city",
        "address1_stateorprovince",
        "address1_postalcode",
        "address1_country",
        "azureactivedirectoryobjectid",
    )


def test_r10_mapping_from_directory_user() -> None:  # R10
    u = duser()
    cols = wanted_columns(u)
    assert set(cols) == set(SYNCED_COLUMNS)
    assert cols["domainname"] == u.user_principal_name
    assert cols["fullname"] == "Ada Lovelace"
    assert cols["firstname"] == "Ada"
    assert cols["lastname"] == "Lovelace"
    assert cols["jobtitle"] == "Engineer"
    assert cols["internalemailaddress"] == "ada@contoso.example"
    assert cols["address1_telephone1"] == "+44 20 7946 0000"  # first of businessPhones
    assert cols["mobilephone"] == "+44 7700 900000"
    assert cols["address1_line1"] == "1 Analytical Row"
    assert cols["address1_city"] == "London"
    assert cols["address1_stateorprovince"] == "Greater London"
    assert cols["address1_postalcode"] == "N1 9GU"
    assert cols["address1_country"] == "UK"
    assert cols["azureactivedirectoryobjectid"] == u.id


def test_r10_no_business_phone_maps_to_none() -> None:  # R10
    assert wanted_columns(duser(business_phones=()))["address1_telephone1"] is None


def test_r10_changes_flow_on_every_sync() -> None:  # R10
    u = duser(job_title="Director", city="Cambridge")
    row = row_for(duser())
    assert column_changes(wanted_columns(u), row.columns) == {
        "jobtitle": "Director",
        "address1_city": "Cambridge",
    }


def test_r11_fullname_is_never_updated_after_creation() -> None:  # R11
    old = duser(SALES)
    new = duser(SALES, display_name="Augusta Ada King", job_title="Countess")
    d = decide(facts(new), env(group=None), row_for(old))
    assert d.action is Action.UPDATE
    assert d.changes == {"jobtitle": "Countess"}
    d2 = decide(facts(duser(SALES, display_name="Augusta Ada King")), env(group=None), row_for(old))
    assert d2.action is Action.KEEP


def test_r11_fullname_written_at_creation() -> None:  # R11
    d = decide(facts(duser(SALES)), env(group=None), None, Mode.ON_DEMAND)
    assert d.action is Action.CREATE
    assert d.changes["fullname"] == "Ada Lovelace"


def test_r12_email_follows_mail_until_edited() -> None:  # R12
    new = duser(mail="ada.king@contoso.example")
    assert column_changes(wanted_columns(new), row_for(duser()).columns) == {
        "internalemailaddress": "ada.king@contoso.example"
    }


def test_r12_customer_edited_email_is_never_written_again() -> None:  # R12
    new = duser(mail="ada.king@contoso.example")
    row = row_for(duser(), email_edited=True, internalemailaddress="ada@customer-edit.example")
    assert column_changes(wanted_columns(new), row.columns, email_edited=True) == {}


def test_r13_blank_given_name_gives_hash() -> None:  # R13
    assert wanted_columns(duser(given=None))["firstname"] == "#"
    assert wanted_columns(duser(given=""))["firstname"] == "#"
    assert wanted_columns(duser(given="   "))["firstname"] == "#"


def test_r13_application_users_always_hash() -> None:  # R13
    assert wanted_columns(duser(given="Robot"), application=True)["firstname"] == "#"


def test_r14_only_synced_columns_are_ever_written() -> None:  # R14
    row = row_for(duser(), new_custom_column="customer value", businessunitid="bu-1")
    d = decide(facts(duser(job_title="Director")), env(group=None), row)
    assert set(d.changes) <= set(SYNCED_COLUMNS)
    assert d.changes == {"jobtitle": "Director"}
