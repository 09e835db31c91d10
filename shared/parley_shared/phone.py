"""Phone identity: who a message came from and whom to answer, read once at the edge.

Two kinds of input, never confused (``phonenumbers``, the maintained port of libphonenumber):

* **A provider's identity** (:func:`from_provider`) -- Meta's ``wa_id`` (bare international
  digits), a Wappi chat id (``79115576362@c.us``), Twilio's ``whatsapp:+79115576362``. These are
  international already: the digits are the number, with a ``+`` in front. They are checked (a
  known country calling code, at most 15 digits) and never reinterpreted -- ``85291234567`` is
  Hong Kong, not a Russian number written with a trunk ``8``.
* **A number a person typed** (:func:`from_typed`) -- in the managers' API, the ignore list, the
  sandbox, the demo: ``+7 (701) 000-00-01``, ``8 701 000 00 01``, ``00 44 20 7946 0958``. Only
  here is a national format read, in the configured default region (``PHONE_DEFAULT_REGION``).

A WhatsApp chat may show no number at all: a **LID chat** (``123456789012345@lid``, a linked
identity). Such a prospect is a contact like any other, identified by that chat id: an
*address* (:func:`is_address`) is either an E.164 number or a LID chat id, and every contact key
(the agent's contacts, the gateway's chains, queue payloads) is an address. Group chats,
broadcasts and channels are no prospect and are refused.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")  # Niue and Tokelau numbers have 7 digits
LID_RE = re.compile(r"^[1-9]\d{0,24}@lid$")
MAX_ADDRESS = 40  # "@lid" and up to 25 digits; E.164 is at most 16 characters
DEFAULT_REGION = "KZ"
_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
_JID_SUFFIXES = ("@c.us", "@s.whatsapp.net")
_NOT_A_PROSPECT = ("@g.us", "@broadcast", "@newsletter")


class PhoneError(ValueError):
    """A value that is not a phone number (or not an address, where one is expected)."""


def _strip_provider_form(raw: str) -> tuple[str, bool]:
    """(the value without ``whatsapp:``, JID suffixes, device parts and separators, whether it
    carried a provider form that marks it as international)."""
    value = raw.strip()
    lowered = value.lower()
    if lowered.endswith(_NOT_A_PROSPECT):
        raise PhoneError("group chats, broadcasts and channels are not a prospect's number")
    international = False
    for suffix in _JID_SUFFIXES:
        if lowered.endswith(suffix):
            value, international = value[: -len(suffix)], True
            break
    if value.lower().startswith("whatsapp:"):
        value, international = value[len("whatsapp:") :], True
    value = _SEPARATORS.sub("", value)
    if ":" in value:  # multi-device JIDs such as 79115576362:12@s.whatsapp.net
        value = value.split(":", 1)[0]
    return value, international


def _digits(value: str) -> str:
    if not value or not value.isascii() or not value.isdigit():
        raise PhoneError("a phone number holds only digits (and a leading +)")
    return value


def from_provider(raw: str) -> str:
    """A provider's identity as E.164: its own digits with a ``+``, never reinterpreted.

    Refuses what is no number (group chats, LID chats, letters), an unknown country calling code
    and more than 15 digits. A LID chat is an address but not a number: see :func:`address_of`.
    """
    if not isinstance(raw, str):
        raise PhoneError("phone must be a string")
    if raw.strip().lower().endswith("@lid"):
        raise PhoneError("a LID chat has no phone number")
    value, _ = _strip_provider_form(raw)
    digits = _digits(value[1:] if value.startswith("+") else value)
    e164 = "+" + digits
    if not E164_RE.match(e164):
        raise PhoneError("an international number has 7 to 15 digits and does not start with 0")
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException as exc:
        raise PhoneError(f"not an international number ({exc.error_type})") from None
    code = number.country_code
    if code is None or phonenumbers.region_code_for_country_code(code) == phonenumbers.UNKNOWN_REGION:
        raise PhoneError("unknown country calling code")
    return e164


def from_typed(raw: str, region: str = DEFAULT_REGION) -> str:
    """A number a person typed, as E.164.

    ``+...`` or ``00...`` is international: its digits are kept as typed, like a provider's. Provider
    forms pasted in (``@c.us``, ``whatsapp:``) are the provider's identity. Anything else is read in
    ``region``'s national format (``8 701 ...`` in Kazakhstan) and, when it is no possible number
    there, as international digits without the plus (``79115576362``)."""
    if not isinstance(raw, str):
        raise PhoneError("phone must be a string")
    value, international = _strip_provider_form(raw)
    if value.startswith("00"):
        value = "+" + value[2:]
    if international or value.startswith("+"):
        # International already: the digits are the number (as a provider gave it, copied from the
        # API), whatever phonenumbers thinks of its length.
        return from_provider(value if value.startswith("+") else "+" + value)
    digits = _digits(value)
    candidates = [value, "+" + digits]
    number = None
    for candidate in candidates:  # national first; then the digits as an international number
        try:
            parsed = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except NumberParseException:
            continue
        if phonenumbers.is_possible_number(parsed):
            number = parsed
            break
    if number is None:
        raise PhoneError("not a possible number in the default region, nor an international one")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not E164_RE.match(e164):
        raise PhoneError("an international number has 7 to 15 digits")
    return e164


def is_e164(value: str) -> bool:
    return bool(E164_RE.match(value))


def is_lid(value: str) -> bool:
    return bool(LID_RE.match(value))


def is_address(value: str) -> bool:
    """An E.164 number or a LID chat id: what identifies a contact."""
    return is_e164(value) or is_lid(value)


def address_of(chat_id: str) -> str:
    """The contact address of a provider's chat id: its number (E.164), or the LID chat id itself."""
    value = chat_id.strip()
    if value.lower().endswith("@lid"):
        lid = value.lower()
        if not is_lid(lid):
            raise PhoneError("not a LID chat id")
        return lid
    return from_provider(value)


def typed_address(raw: str, region: str = DEFAULT_REGION) -> str:
    """An address a person gave: a LID chat id as it is, anything else as a typed number."""
    value = raw.strip()
    if value.lower().endswith("@lid"):
        return address_of(value)
    return from_typed(value, region)


def region_code(region: str) -> str:
    """A default region as phonenumbers knows it (``KZ``); raises ValueError for an unknown one."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {region!r} (an ISO 3166 two-letter code such as KZ)")
    return code


def digits_only(phone: str) -> str:
    """E.164 without the plus: what Wappi and the Meta Graph API expect as a recipient."""
    return phone.lstrip("+")


def mask_phone(phone: str) -> str:
    """Mask a phone for logs: country code and the last two digits stay, e.g. ``+7701*****01``."""
    if not phone:
        return phone
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 6:
        return "*" * len(digits)
    keep_head = 4 if len(digits) > 10 else 3
    masked = "+" + digits[: keep_head - 1] + "*" * (len(digits) - keep_head - 1) + digits[-2:]
    return masked + "@lid" if phone.endswith("@lid") else masked
