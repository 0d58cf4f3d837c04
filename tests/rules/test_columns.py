"""Column mapping and what flows (R10-R14)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rules_builders import SALES, duser, env, facts, row_for

from syncd.dataverse.lengths import SYSTEMUSER_LENGTHS
from syncd.rules import SYNCED_COLUMNS, Action, Mode, column_changes, decide, wanted_columns
from syncd.rules.columns import fit_value, wanted_columns_with_notes


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


# -- fitting directory values to their columns (R10) ---------------------------------------------


def test_r10_lengths_cover_every_synced_text_column() -> None:  # R10
    assert set(SYNCED_COLUMNS) - set(SYSTEMUSER_LENGTHS) == {"azureactivedirectoryobjectid"}
    assert SYSTEMUSER_LENGTHS["jobtitle"] == 100
    assert SYSTEMUSER_LENGTHS["internalemailaddress"] == 100
    assert SYSTEMUSER_LENGTHS["syncd_syncedemail"] == SYSTEMUSER_LENGTHS["internalemailaddress"]
    assert SYSTEMUSER_LENGTHS["fullname"] == 200


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Ada Lovelace",
        "😀 Émoji 👩‍👩‍👧 Person",  # emoji, with zero-width joiners
        "مريم الأحمد",  # right-to-left
        "\u200fכהן",  # with a right-to-left mark (not printable, but a column holds it)
        "Zoe\u0308 A\u030angstro\u0308m",  # combining characters
        "non\u00a0breaking",  # a no-break space
        "Ä" * 100,  # exactly the length
        "🚀" * 100,  # exactly the length, in characters, not bytes
        " leading and trailing ",
    ],
)
def test_r10_clean_values_pass_through_unchanged(value: str) -> None:  # R10
    assert fit_value("jobtitle", value) == (value, None)


def test_r10_an_over_long_value_is_cut_to_the_column_length() -> None:  # R10
    assert fit_value("jobtitle", "J" * 101) == ("J" * 100, "jobtitle cut to 100 characters")
    assert fit_value("fullname", "N" * 256) == ("N" * 200, "fullname cut to 200 characters")
    assert fit_value("jobtitle", "🚀" * 150) == ("🚀" * 100, "jobtitle cut to 100 characters")
    # Code points are counted, as PostgreSQL does: a combining mark is a character of its own.
    assert fit_value("jobtitle", "e" + "\u0301" * 100)[0] == "e" + "\u0301" * 99


def test_r10_control_characters_are_removed() -> None:  # R10
    assert fit_value("fullname", "Nul\x00Name") == ("NulName", "fullname: 1 control character removed")
    assert fit_value("jobtitle", "Tab\tbed\nline\r") == (
        "Tabbedline",
        "jobtitle: 3 control characters removed",
    )
    assert fit_value("lastname", "DEL\x7f") == ("DEL", "lastname: 1 control character removed")
    assert fit_value("address1_city", "\x01\x1f") == ("", "address1_city: 2 control characters removed")
    # C1 controls and other non-printable characters are not C0: a column holds them.
    assert fit_value("lastname", "\x85\u200b") == ("\x85\u200b", None)


def test_r10_control_characters_are_removed_before_cutting() -> None:  # R10
    value, note = fit_value("fullname", "\x00" * 5 + "N" * 200)
    assert value == "N" * 200
    assert note == "fullname: 5 control characters removed"
    value, note = fit_value("fullname", "\x00" + "N" * 255)
    assert value == "N" * 200
    assert note == "fullname: 1 control character removed, cut to 200 characters"


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_r10_fitted_values_fit_and_fitting_is_idempotent(value: str) -> None:  # R10
    fitted, note = fit_value("jobtitle", value)
    assert len(fitted) <= 100
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in fitted)
    assert fit_value("jobtitle", fitted) == (fitted, None)
    assert (note is None) == (fitted == value)


def test_r10_wanted_columns_are_fitted_with_one_note_per_column() -> None:  # R10
    u = duser(display_name="N" * 256, job_title="J" * 150, mail="m\x00@contoso.example", city="London")
    wanted, notes = wanted_columns_with_notes(u)
    assert wanted["fullname"] == "N" * 200
    assert wanted["jobtitle"] == "J" * 100
    assert wanted["internalemailaddress"] == "m@contoso.example"
    assert wanted["address1_city"] == "London"
    assert dict(notes) == {
        "fullname": "fullname cut to 200 characters",
        "jobtitle": "jobtitle cut to 100 characters",
        "internalemailaddress": "internalemailaddress: 1 control character removed",
    }
    assert wanted_columns(u) == wanted


def test_r10_clean_user_has_no_notes() -> None:  # R10
    u = duser(display_name="مريم 😀", surname="", job_title="")
    wanted, notes = wanted_columns_with_notes(u)
    assert not notes
    assert (wanted["fullname"], wanted["lastname"], wanted["jobtitle"]) == ("مريم 😀", "", "")


def test_r13_given_name_of_only_control_characters_gives_hash() -> None:  # R13, R10
    wanted, notes = wanted_columns_with_notes(duser(given="\x00\x07"))
    assert wanted["firstname"] == "#"
    assert "firstname" not in notes
    assert wanted_columns(duser(given="\tAda\n"))["firstname"] == "Ada"


def test_r10_create_decision_carries_the_notes() -> None:  # R10, R7, R8
    u = duser(SALES, display_name="N" * 256, job_title="Chief\x00Officer")
    for mode in (Mode.BACKGROUND, Mode.ON_DEMAND):
        d = decide(facts(u), env(group=None), None, mode)
        assert d.action is Action.CREATE
        assert d.changes["fullname"] == "N" * 200
        assert d.changes["jobtitle"] == "ChiefOfficer"
        assert d.notes == ("fullname cut to 200 characters", "jobtitle: 1 control character removed")


def test_r10_clean_decisions_carry_no_notes() -> None:  # R10
    assert decide(facts(duser(SALES)), env(group=None), None).notes == ()
    d = decide(facts(duser(SALES, job_title="Director")), env(group=None), row_for(duser(SALES)))
    assert d.action is Action.UPDATE and d.notes == ()


def test_r10_update_notes_only_the_fitted_columns_it_writes() -> None:  # R10, R11
    old = duser(SALES)
    new = duser(SALES, display_name="N" * 300, job_title="J" * 120, city="Cambridge")
    d = decide(facts(new), env(group=None), row_for(old))
    assert d.action is Action.UPDATE
    assert d.changes == {"jobtitle": "J" * 100, "address1_city": "Cambridge"}  # never fullname (R11)
    assert d.notes == ("jobtitle cut to 100 characters",)


def test_r10_enable_decision_carries_the_notes() -> None:  # R10, R9
    old = duser(SALES)
    new = duser(SALES, mail="a" * 120 + "@contoso.example")
    for mode in (Mode.BACKGROUND, Mode.ON_DEMAND):
        d = decide(facts(new), env(group=None), row_for(old, disabled=True), mode)
        assert d.action is Action.ENABLE
        assert d.changes == {"internalemailaddress": "a" * 100}
        assert d.notes == ("internalemailaddress cut to 100 characters",)


def test_r10_second_run_over_fitted_values_changes_nothing() -> None:  # R10
    u = duser(SALES, display_name="N" * 256, job_title="J\x00" * 80, mail="m" * 200, postal_code="P" * 50)
    created = decide(facts(u), env(group=None), None)
    row = row_for(None, **created.changes)  # the row as the create wrote it
    assert column_changes(wanted_columns(u), row.columns) == {}
    again = decide(facts(u), env(group=None), row)
    assert again.action is Action.KEEP
    assert again.notes == ()


def test_rules_import_no_sqlalchemy() -> None:
    """The rules are pure policy (DESIGN.md): the lengths they fit to come without SQLAlchemy."""
    code = "import sys, syncd.rules, syncd.dataverse.lengths; sys.exit('sqlalchemy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
