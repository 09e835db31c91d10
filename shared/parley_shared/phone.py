"""Phone identity: every format a provider uses becomes one E.164 string, once, at the edge.

Formats met in the wild (see ``shared/reference/providers.md``): Wappi chat ids
(``79115576362@c.us``), Twilio (``whatsapp:+79115576362``), Meta ``wa_id`` (bare digits),
hand-typed numbers (``+7 (911) 557-63-62``, ``8 911 557 63 62``, ``00 44 20 ...``).
Group chats (``@g.us``) and WhatsApp LIDs (``@lid``) are not phone numbers and are refused.
"""

from __future__ import annotations

import re

E164_RE = re.compile(r"^\+[1-9]\d{7,14}$")
_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
_JID_SUFFIXES = ("@c.us", "@s.whatsapp.net")
_NOT_A_PHONE_SUFFIXES = ("@g.us", "@lid", "@broadcast", "@newsletter")


class PhoneError(ValueError):
    """Raised when a value cannot be read as a phone number."""


def to_e164(raw: str) -> str:
    """Normalise a phone number or WhatsApp identity to E.164 (``+`` and 8 to 15 digits).

    Russian and Kazakh national format (``8`` + 10 digits) becomes ``+7``; an international
    ``00`` prefix becomes ``+``. Raises :class:`PhoneError` for anything else.
    """
    if not isinstance(raw, str):
        raise PhoneError("phone must be a string")
    value = raw.strip()
    lowered = value.lower()
    if lowered.endswith(_NOT_A_PHONE_SUFFIXES):
        raise PhoneError("group chats, broadcasts and LIDs are not phone numbers")
    for suffix in _JID_SUFFIXES:
        if lowered.endswith(suffix):
            value = value[: -len(suffix)]
            break
    if lowered.startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    value = _SEPARATORS.sub("", value)
    if ":" in value:  # multi-device JIDs such as 79115576362:12@s.whatsapp.net
        value = value.split(":", 1)[0]
    plus = value.startswith("+")
    digits = value[1:] if plus else value
    if not digits.isdigit() or not digits.isascii():
        raise PhoneError("phone must contain only digits after normalisation")
    if not plus:
        if digits.startswith("00"):
            digits = digits[2:]
        elif len(digits) == 11 and digits.startswith("8"):
            digits = "7" + digits[1:]
    result = "+" + digits
    if not E164_RE.match(result):
        raise PhoneError("phone must have 8 to 15 digits and not start with 0")
    return result


def is_e164(value: str) -> bool:
    return bool(E164_RE.match(value))


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
    return "+" + digits[: keep_head - 1] + "*" * (len(digits) - keep_head - 1) + digits[-2:]
