from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_shared.phone import PhoneError, is_e164, mask_phone, to_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("79115576362@c.us", "+79115576362"),
        ("79115576362@s.whatsapp.net", "+79115576362"),
        ("79115576362:12@s.whatsapp.net", "+79115576362"),
        ("whatsapp:+79115576362", "+79115576362"),
        ("+7 (911) 557-63-62", "+79115576362"),
        ("8 911 557 63 62", "+79115576362"),
        ("79115576362", "+79115576362"),
        ("16505551234", "+16505551234"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+7 701 000 00 01", "+77010000001"),
        ("  +77010000001 ", "+77010000001"),
    ],
)
def test_every_format_we_meet_becomes_e164(raw: str, expected: str) -> None:
    assert to_e164(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "abc", "120363025246125486@g.us", "123456789@lid", "+0123456789", "12345", "+1234567890123456", "٧٩١١٥٥٧٦٣٦٢"],
)
def test_non_phones_are_refused(raw: str) -> None:
    with pytest.raises(PhoneError):
        to_e164(raw)


@given(st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True))
def test_normalisation_is_idempotent_and_formats_agree(phone: str) -> None:
    digits = phone[1:]
    assert to_e164(phone) == phone
    assert to_e164(f"whatsapp:{phone}") == phone
    assert to_e164(f"{digits}@c.us") == (
        phone if not (len(digits) == 11 and digits.startswith("8")) else to_e164(digits)
    )
    assert is_e164(to_e164(phone))


@given(st.text(max_size=40))
def test_anything_either_normalises_or_raises_phone_error(raw: str) -> None:
    try:
        assert is_e164(to_e164(raw))
    except PhoneError:
        pass


def test_mask_hides_the_middle() -> None:
    assert mask_phone("+77010000001") == "+770******01"
    assert "0000" not in mask_phone("+16505550000"[:-2] + "12")
