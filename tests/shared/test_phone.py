"""Phone identity: provider identities are international and kept as given; typed numbers are read
in the default region; LID chats are addresses of their own."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_shared.phone import (
    PhoneError,
    address_of,
    from_provider,
    from_typed,
    is_address,
    is_e164,
    mask_phone,
    region_code,
    typed_address,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("79115576362@c.us", "+79115576362"),
        ("79115576362@s.whatsapp.net", "+79115576362"),
        ("79115576362:12@s.whatsapp.net", "+79115576362"),
        ("whatsapp:+79115576362", "+79115576362"),
        ("16505551234", "+16505551234"),
        # Eleven digits starting with 8 are not Russian numbers in a provider's identity:
        ("85291234567", "+85291234567"),  # Hong Kong
        ("85362123456", "+85362123456"),  # Macau
        ("85512345678", "+85512345678"),  # Cambodia
        ("84912345678", "+84912345678"),  # Vietnam
        ("81312345678", "+81312345678"),  # Japan (Tokyo)
        ("5215512345678", "+5215512345678"),  # a Mexican wa_id with its mobile 1: kept as Meta gives it
    ],
)
def test_provider_identities_are_international_and_kept_as_given(raw: str, expected: str) -> None:
    assert from_provider(raw) == expected
    assert address_of(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+7 (911) 557-63-62", "+79115576362"),
        ("8 911 557 63 62", "+79115576362"),
        ("8 701 000 00 01", "+77010000001"),
        ("701 000 00 01", "+77010000001"),
        ("79115576362", "+79115576362"),  # not a number in Kazakhstan: read as international digits
        ("0044 20 7946 0958", "+442079460958"),
        ("+7 701 000 00 01", "+77010000001"),
        ("  +77010000001 ", "+77010000001"),
        ("+852 9123 4567", "+85291234567"),
        ("79115576362@c.us", "+79115576362"),  # a pasted chat id is the provider's identity
    ],
)
def test_typed_numbers_read_national_formats_in_the_default_region(raw: str, expected: str) -> None:
    assert from_typed(raw) == expected


def test_the_default_region_decides_how_a_national_number_is_read() -> None:
    assert from_typed("020 7946 0958", "GB") == "+442079460958"
    assert from_typed("(650) 555-1234", "US") == "+16505551234"
    with pytest.raises(PhoneError):
        from_typed("020 7946 0958", "KZ")
    assert region_code("kz") == "KZ"
    with pytest.raises(ValueError):
        region_code("XX")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "120363025246125486@g.us",
        "status@broadcast",
        "+0123456789",
        "12345",
        "+1234567890123456",
        "٧٩١١٥٥٧٦٣٦٢",
    ],
)
def test_non_phones_are_refused(raw: str) -> None:
    with pytest.raises(PhoneError):
        from_provider(raw)
    with pytest.raises(PhoneError):
        from_typed(raw)


def test_a_lid_chat_is_an_address_but_not_a_number() -> None:
    assert address_of("123456789012345@lid") == "123456789012345@lid"
    assert address_of("123456789012345@LID") == "123456789012345@lid"
    assert typed_address("123456789012345@lid") == "123456789012345@lid"
    assert is_address("123456789012345@lid") and not is_e164("123456789012345@lid")
    with pytest.raises(PhoneError):
        from_provider("123456789012345@lid")
    with pytest.raises(PhoneError):
        address_of("not-a-lid@lid")
    assert mask_phone("123456789012345@lid").endswith("45@lid")
    assert "6789" not in mask_phone("123456789012345@lid")


def _example(code: int) -> phonenumbers.PhoneNumber | None:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
    for region in regions:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            example = phonenumbers.example_number_for_non_geo_entity(code)
        else:
            example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
            example = example or phonenumbers.example_number(region)
        if example is not None:
            return example
    return None


def test_one_number_for_every_country_calling_code() -> None:
    """A provider's identity from every country stays in its country; typed with its + it is the same."""
    checked = 0
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        example = _example(code)
        assert example is not None, code
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        assert from_provider(e164[1:]) == e164, code
        assert from_provider(f"{e164[1:]}@c.us") == e164, code
        assert from_typed(e164) == e164, code
        assert phonenumbers.parse(from_provider(e164[1:])).country_code == code
        checked += 1
    assert checked == len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@given(st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)), st.integers(min_value=0, max_value=10**12))
def test_a_provider_id_never_changes_country(code: int, rest: int) -> None:
    digits = (str(code) + str(rest))[:15]
    try:
        result = from_provider(digits)
    except PhoneError:
        return  # too short, or no number at all: refused, never moved
    assert result == "+" + digits
    assert phonenumbers.parse(result).country_code == code
    for form in (f"{digits}@c.us", f"whatsapp:+{digits}", f"{digits}@s.whatsapp.net"):
        assert from_provider(form) == result


@given(st.text(max_size=40))
def test_anything_either_reads_or_raises_phone_error(raw: str) -> None:
    for read in (from_provider, from_typed, typed_address, address_of):
        try:
            assert is_address(read(raw))
        except PhoneError:
            pass


def test_mask_hides_the_middle() -> None:
    assert mask_phone("+77010000001") == "+770******01"
    assert "0000" not in mask_phone("+16505550000"[:-2] + "12")
