"""The segment syncer reading consent and identity from a file, against the in-process sandbox.

The consent column is consent to email marketing: an SMS consent column is never offered as it, and a
consenting row without an email is said not to be subscribed. A value is read however its words are
spaced or cased. A person's rows must all say yes: a phone-only row of an email row's number is that
person, and an invalid row of theirs withholds the subscribe. A member subscribed in Klaviyo whose row
gives no consent is named. A file not in UTF-8 names the line to fix, however deep in the file.
"""

from __future__ import annotations

import pytest

from graphs.segment_sync import SyncInputError, render

from .test_segment_sync import World, run, world, write_csv

__all__ = ["world"]  # a fixture, used by name


def test_an_sms_consent_column_is_never_offered_as_the_email_consent_column(world: World) -> None:
    target = world.new_list("VIP")
    both = world.home / "both.csv"
    both.write_text("email,SMS Consent,Email Consent\nann@example.com,yes,no\n")
    with pytest.raises(SyncInputError) as refused:
        run(world.context("both"), {"source": {"kind": "csv", "path": str(both)}, "target_list_id": target})
    message = str(refused.value)
    assert "'Email Consent'" in message and "(email_consent)" in message
    assert "'SMS Consent'" not in message and "(sms_consent)" not in message, message

    sms = write_csv(world.home / "sms.csv", [{"email": "ann@example.com", "sms_consent": "yes",
                                              "Text Opt In": "yes"}], ["email", "sms_consent", "Text Opt In"])
    snap = run(world.context("sms"), {"source": {"kind": "csv", "path": str(sms)}, "target_list_id": target})
    world.settle()
    result = snap.values["result"]
    assert result["adds"]["applied"] == 1 and result["subscribes"]["planned"] == 0
    assert world.consent("ann@example.com")["consent"] != "SUBSCRIBED"
    assert result["other_channel_consent"] == ["sms_consent", "text_opt_in"]
    shown = render(snap.values)
    assert "'sms_consent', 'text_opt_in' are consent for another channel than email, so not read" in shown, shown


def test_a_consenting_row_without_an_email_is_reported_not_subscribed(world: World) -> None:
    target = world.new_list("VIP")
    path = write_csv(world.home / "phones.csv",
                     [{"email": "", "phone_number": "+14155550101", "consent": "yes"},
                      {"email": "bo@example.com", "phone_number": "", "consent": "yes"}],
                     ["email", "phone_number", "consent"])
    snap = run(world.context("phones"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    world.settle()
    result = snap.values["result"]
    assert result["adds"]["applied"] == 2 and result["subscribes"]["applied"] == 1
    assert result["consent_without_email"] == 1
    shown = render(snap.values)
    assert "1 consenting row gives no email (a phone number only) and was not subscribed" in snap.values["summary"]
    assert "no email         1 consenting, not subscribed" in shown and "+14155550101" in shown, shown


@pytest.mark.parametrize("phone_row_first", [False, True])
def test_a_phone_only_row_with_the_phone_of_an_email_row_is_that_person(world: World, phone_row_first: bool) -> None:
    """Klaviyo's import puts a row that gives only a phone number on the profile holding it: the
    profile an email row of the same file gives that number to. So both rows are one person: rows
    that disagree on consent are a conflict (never subscribed), and one person is one add."""
    target = world.new_list("VIP")
    rows = [{"email": "xu@example.com", "phone_number": "+1 415 555 0112", "first_name": "Xu", "consent": "yes"},
            {"email": "", "phone_number": "+14155550112", "first_name": "", "consent": "no"},
            {"email": "yan@example.com", "phone_number": "+14155550113", "first_name": "", "consent": "yes"},
            {"email": "", "phone_number": "(415) 555-0113".replace("(", "+1 ("), "first_name": "Yan", "consent": "yes"}]
    if phone_row_first:
        rows = [rows[1], rows[0], rows[3], rows[2]]
    path = write_csv(world.home / "same.csv", rows, ["email", "phone_number", "first_name", "consent"])
    snap = run(world.context("same"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    world.settle()
    result = snap.values["result"]
    assert world.consent("xu@example.com")["consent"] != "SUBSCRIBED"  # row 3 (or 2) says no
    assert world.consent("yan@example.com")["consent"] == "SUBSCRIBED"  # both of hers say yes
    assert result["consent_conflicts"]["count"] == 1
    assert result["consent_conflicts"]["people"][0]["person"] == "xu@example.com"
    assert sorted(result["consent_conflicts"]["people"][0]["rows"]) == [2, 3]
    assert result["adds"]["planned"] == 2 and result["duplicate_rows"] == 2
    assert world.members(target) == {"xu@example.com", "yan@example.com"}
    names = {p["email"]: p.get("first_name") for p in world.client.iterate("get_profiles_for_list", id=target)}
    assert names == {"xu@example.com": "Xu", "yan@example.com": "Yan"}


def test_consent_is_read_however_its_words_are_spaced_and_cased(world: World) -> None:
    """Spaces, underscores, hyphens and case never change a consent value's words, so "Opted In" is
    "opted-in" and "Never Subscribed" is "never_subscribed" (CRM exports spell them all ways);
    anything else is still reported on its row, never guessed."""
    target = world.new_list("VIP")
    said = {"Opted In": True, "opt_in": True, "OPTIN": True, " Opted-In ": True, "Never Subscribed": False,
            "not_subscribed": False, "Opt Out": False, "OPTED_OUT": False, "opt in please": None}
    rows = [{"email": f"c{i}@example.com", "consent": value} for i, value in enumerate(said)]
    path = write_csv(world.home / "spelt.csv", rows, ["email", "consent"])
    snap = run(world.context("spelt"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    world.settle()
    result = snap.values["result"]
    assert [r["row"] for r in result["invalid"]["rows"]] == [len(said) + 1]  # only "opt in please"
    for i, consent in enumerate(said.values()):
        if consent is not None:
            state = world.consent(f"c{i}@example.com")["consent"]
            assert (state == "SUBSCRIBED") is consent, (i, state)
    assert result["subscribes"]["applied"] == 4


def test_a_member_subscribed_in_klaviyo_whose_row_gives_no_consent_is_named(world: World) -> None:
    """Consent withdrawn in the source: the syncer never unsubscribes (a later form signup would be
    undone), so the person stays subscribed, and the summary says so by name rather than "done"."""
    target = world.new_list("VIP", ["fay@example.com", "gil@example.com"])
    world.subscribe("fay@example.com", "gil@example.com")
    path = write_csv(world.home / "withdrawn.csv", [{"email": "Fay@example.com", "consent": "no"},
                                                    {"email": "gil@example.com", "consent": "yes"}],
                     ["email", "consent"])
    world.reset_counts()
    snap = run(world.context("withdrawn"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    result = snap.values["result"]
    assert not world.sent("bulk_subscribe_profiles") and not world.sent("bulk_unsubscribe_profiles")
    assert result["subscribed_without_consent"] == {"count": 1, "sample": ["Fay@example.com"]}
    assert "1 member is subscribed in Klaviyo though the source gives no consent" in snap.values["summary"]
    assert "no consent       1 in the source, still subscribed in Klaviyo" in render(snap.values)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_file_not_utf8_deep_down_names_the_line_to_fix_and_sends_nothing(world: World, kind: str) -> None:
    """Excel's "CSV (Comma delimited)" saves Windows-1252: a name like "Zoë" is one byte that is not
    UTF-8. The error names that line, however far into the file, not the row the reader had got to."""
    target = world.new_list("VIP")
    path = world.home / f"latin.{kind}"
    if kind == "csv":
        lines = [b"email,first_name,consent"] + [f"u{i}@example.com,U,yes".encode() for i in range(5000)]
        lines.append(b"zoe@example.com,Zo\xeb,yes")
    else:
        lines = [f'{{"email": "u{i}@example.com", "consent": "yes"}}'.encode() for i in range(5001)]
        lines.append(b'{"email": "zoe@example.com", "first_name": "Zo\xeb"}')
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    world.reset_counts()
    with pytest.raises(SyncInputError) as refused:
        run(world.context(f"latin-{kind}"), {"source": {"kind": kind, "path": str(path)}, "target_list_id": target})
    assert f"line 5002 of {path} is not UTF-8 text" in str(refused.value), refused.value
    assert "Zo\\xeb" in str(refused.value) and "save it as UTF-8" in str(refused.value)
    assert not [c for c in world.calls if c.operation_id in ("bulk_import_profiles", "bulk_subscribe_profiles")]


def test_a_person_with_an_invalid_row_is_not_subscribed_on_their_other_row(world: World) -> None:
    """A later row that says "no" (or "maybe") but is invalid for another field (a phone number not in
    E.164) is reported, not read; the person's earlier "yes" must not stand alone: no subscribe
    until the row is fixed, and the summary says who and why."""
    target = world.new_list("VIP")
    rows = [{"email": "wd@example.com", "phone_number": "", "consent": "yes"},
            {"email": "WD@example.com ", "phone_number": "555-0100", "consent": "no"},
            {"email": "wm@example.com", "phone_number": "", "consent": "yes"},
            {"email": "wm@example.com", "phone_number": "", "consent": "maybe"},
            {"email": "ok@example.com", "phone_number": "", "consent": "yes"}]
    path = write_csv(world.home / "typo.csv", rows, ["email", "phone_number", "consent"])
    snap = run(world.context("typo"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    world.settle()
    result = snap.values["result"]
    assert [world.consent(e)["consent"] == "SUBSCRIBED" for e in ("wd@example.com", "wm@example.com",
                                                                  "ok@example.com")] == [False, False, True]
    assert result["withheld_for_invalid_rows"] == {"count": 2, "sample": ["wd@example.com", "wm@example.com"]}
    assert result["status"] == "partial" and world.members(target) == {"wd@example.com", "wm@example.com",
                                                                       "ok@example.com"}
    assert "2 consenting people were not subscribed because another of their rows is invalid" in snap.values["summary"]
    assert "withheld         2 consenting, not subscribed" in render(snap.values)


def test_a_shopify_export_has_its_email_consent_column_named_and_its_sms_one_left_alone(world: World) -> None:
    """Shopify's customer export says consent as "Accepts Email Marketing" and "Accepts SMS Marketing":
    the first is offered as the consent column (refused before any call, never read as "no consent"),
    the second never is; a file whose email column is missing is not told to use the consent one."""
    target = world.new_list("VIP")
    path = world.home / "shopify.csv"
    path.write_text("First Name,Email,Accepts SMS Marketing,Phone,Accepts Email Marketing\n"
                    "Ann,ann@example.com,yes,,no\n")
    world.reset_counts()
    with pytest.raises(SyncInputError) as refused:
        run(world.context("shopify"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target})
    message = str(refused.value)
    assert "but 'Accepts Email Marketing' looks like the consent column" in message, message
    assert "(accepts_email_marketing)" in message and "SMS" not in message.split(str(path))[1], message
    no_email = world.home / "no-email.csv"
    no_email.write_text("Name,Accepts Email Marketing,consent\nAnn,yes,yes\n")
    with pytest.raises(SyncInputError) as refused:
        run(world.context("no-email"), {"source": {"kind": "csv", "path": str(no_email)}, "target_list_id": target})
    assert "has no email column" in str(refused.value) and "looks like one" not in str(refused.value)
    assert sum(world.sb.call_counts.values()) == 0


def test_a_mirror_sync_keeps_a_phone_only_member_whose_number_an_email_row_gives(world: World) -> None:
    """Folding a phone-only row into the email row with its number never costs the member it named:
    a member known by that phone alone stays on the list (it is in the source)."""
    target = world.new_list("VIP", ["e1@example.com"])
    phone_only: str = world.client.call("create_profile", phone_number="+14155550177").data["id"]
    world.client.call("add_profiles_to_list", id=target, profile_ids=[phone_only])
    path = write_csv(world.home / "mirror.csv", [{"email": "e1@example.com", "phone_number": "+14155550177"},
                                                  {"email": "", "phone_number": "+14155550177"}],
                     ["email", "phone_number"])
    snap = run(world.context("mirror"), {"source": {"kind": "csv", "path": str(path)}, "target_list_id": target,
                                         "mode": "mirror"})
    assert snap.values["result"]["removes"]["planned"] == 0
    ids = {p["id"] for p in world.client.iterate("get_profiles_for_list", id=target)}
    assert phone_only in ids and len(ids) == 2
