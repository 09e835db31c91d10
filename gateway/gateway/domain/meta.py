"""Meta WhatsApp Cloud API: webhook signatures and webhook bodies.

* :func:`check_signature` -- ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``,
  computed over the raw bytes exactly as received and compared in constant time.
* :func:`parse_webhook` -- the ``whatsapp_business_account`` envelope into inbound messages and
  delivery statuses. A body that is not the envelope is a :class:`PayloadError` (HTTP 400); a
  single malformed message inside a valid envelope is skipped and counted, so that Meta does not
  retry a whole batch for days because of one entry.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.domain.admission import InboundEvent, PayloadError, StatusEvent
from parley_shared.contracts import DeliveryState, MediaRef, MessageKind, Provider

SIGNATURE_HEADER = "X-Hub-Signature-256"
_MEDIA_TYPES = {
    "image": MessageKind.IMAGE,
    "video": MessageKind.VIDEO,
    "document": MessageKind.DOCUMENT,
    "sticker": MessageKind.STICKER,
}
_SKIPPED_TYPES = frozenset({"reaction", "system", "unsupported", "request_welcome", "ephemeral", "unknown"})
_STATES = {s.value: s for s in DeliveryState}
MAX_ID = 200


class SignatureCheck(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    INVALID = "invalid"


def sign(secret: bytes, body: bytes) -> str:
    """The header value Meta would send for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def check_signature(secret: bytes, body: bytes, header: str | None) -> SignatureCheck:
    if not header:
        return SignatureCheck.MISSING
    given = header.strip().encode("ascii", "replace")
    expected = sign(secret, body).encode()
    if given[:7].lower() == b"sha256=":
        given = b"sha256=" + given[7:].lower()
    return SignatureCheck.OK if hmac.compare_digest(given, expected) else SignatureCheck.INVALID


@dataclass
class WebhookBatch:
    messages: list[InboundEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    malformed: int = 0  # entries skipped because they could not be read
    skipped: int = 0  # well-formed but nothing to forward (reactions, system notices)


def parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("body is not JSON") from None


def parse_webhook(body: Any) -> WebhookBatch:
    """Read the envelope; every change's messages and statuses become events."""
    if not isinstance(body, Mapping):
        raise PayloadError("body must be a JSON object")
    if body.get("object") != "whatsapp_business_account":
        raise PayloadError("object must be whatsapp_business_account")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("entry must be a list")
    batch = WebhookBatch()
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        if not isinstance(changes, list):
            batch.malformed += 1
            continue
        for change in changes:
            value = change.get("value") if isinstance(change, Mapping) else None
            if not isinstance(value, Mapping):
                batch.malformed += 1
                continue
            if change.get("field", "messages") != "messages":
                batch.skipped += 1
                continue
            _read_value(value, batch)
    return batch


def _read_value(value: Mapping[str, Any], batch: WebhookBatch) -> None:
    names = _contact_names(value.get("contacts"))
    for kind, items in (("messages", value.get("messages")), ("statuses", value.get("statuses"))):
        if items is None:
            continue
        if not isinstance(items, list):
            batch.malformed += 1
            continue
        for item in items:
            try:
                if kind == "messages":
                    event = _message(item, names)
                    if event is None:
                        batch.skipped += 1
                    else:
                        batch.messages.append(event)
                else:
                    status = _status(item)
                    if status is None:
                        batch.skipped += 1
                    else:
                        batch.statuses.append(status)
            except PayloadError:
                batch.malformed += 1


def _contact_names(contacts: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    if isinstance(contacts, list):
        for contact in contacts:
            if not isinstance(contact, Mapping):
                continue
            profile = contact.get("profile")
            name = profile.get("name") if isinstance(profile, Mapping) else None
            wa_id = contact.get("wa_id")
            if isinstance(wa_id, str) and isinstance(name, str):
                names[wa_id] = name
    return names


def _str(obj: Mapping[str, Any], key: str, *, required: bool = False, limit: int = 4096) -> str | None:
    value = obj.get(key)
    if isinstance(value, str) and value.strip():
        return value[:limit]
    if required:
        raise PayloadError(f"{key} must be a non-empty string")
    return None


def _timestamp(obj: Mapping[str, Any]) -> datetime:
    value = obj.get("timestamp")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 11:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**37:
        raise PayloadError("timestamp must be Unix seconds")
    return datetime.fromtimestamp(value, UTC)


def _id(obj: Mapping[str, Any]) -> str:
    value = _str(obj, "id", required=True, limit=10_000)
    assert value is not None
    if len(value) > MAX_ID:
        raise PayloadError("id too long")
    return value


def _message(item: Any, names: dict[str, str]) -> InboundEvent | None:
    if not isinstance(item, Mapping):
        raise PayloadError("message must be an object")
    message_type = item.get("type")
    if not isinstance(message_type, str):
        raise PayloadError("message.type must be a string")
    if message_type in _SKIPPED_TYPES:
        return None
    sender = _str(item, "from", required=True, limit=64)
    assert sender is not None
    message_id = _id(item)
    sent_at = _timestamp(item)
    kind, text, caption, media = _content(message_type, item)
    return InboundEvent(
        provider=Provider.META,
        provider_message_id=message_id,
        sender=sender,
        kind=kind,
        sent_at=sent_at,
        text=text,
        caption=caption,
        media=media,
        contact_name=names.get(sender),
    )


def _section(item: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = item.get(key)
    if not isinstance(section, Mapping):
        raise PayloadError(f"{key} must be an object")
    return section


def _media(section: Mapping[str, Any]) -> MediaRef:
    media_id = _str(section, "id", required=True, limit=500)
    return MediaRef(
        media_id=media_id,
        mime_type=_str(section, "mime_type", limit=200),
        sha256=_str(section, "sha256", limit=200),
        file_name=_str(section, "filename", limit=500),
    )


def _content(message_type: str, item: Mapping[str, Any]) -> tuple[MessageKind, str | None, str | None, MediaRef | None]:
    """(kind, text, caption, media) of one message; interactive and button replies become text."""
    if message_type == "text":
        return MessageKind.TEXT, _str(_section(item, "text"), "body", required=True), None, None
    if message_type == "audio":
        section = _section(item, "audio")
        kind = MessageKind.VOICE if section.get("voice") is True else MessageKind.AUDIO
        return kind, None, None, _media(section)
    if message_type in _MEDIA_TYPES:
        section = _section(item, message_type)
        return _MEDIA_TYPES[message_type], None, _str(section, "caption"), _media(section)
    if message_type == "interactive":
        section = _section(item, "interactive")
        for key in ("button_reply", "list_reply"):
            reply = section.get(key)
            if isinstance(reply, Mapping):
                title = _str(reply, "title", required=True)
                description = _str(reply, "description")
                return MessageKind.TEXT, f"{title}\n{description}" if description else title, None, None
        raise PayloadError("interactive message without a reply")
    if message_type == "button":
        section = _section(item, "button")
        text = _str(section, "text") or _str(section, "payload", required=True)
        return MessageKind.TEXT, text, None, None
    if message_type == "location":
        section = _section(item, "location")
        parts = [p for p in (_str(section, "name"), _str(section, "address")) if p]
        lat, lon = section.get("latitude"), section.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            parts.append(f"({lat}, {lon})")
        return MessageKind.LOCATION, " ".join(parts) or None, None, None
    if message_type == "contacts":
        contacts = item.get("contacts")
        names = []
        if isinstance(contacts, list):
            for contact in contacts:
                name = contact.get("name") if isinstance(contact, Mapping) else None
                formatted = _str(name, "formatted_name") if isinstance(name, Mapping) else None
                if formatted:
                    names.append(formatted)
        return MessageKind.CONTACT, ", ".join(names) or None, None, None
    return MessageKind.OTHER, None, None, None


def _status(item: Any) -> StatusEvent | None:
    if not isinstance(item, Mapping):
        raise PayloadError("status must be an object")
    raw_state = item.get("status")
    state = _STATES.get(raw_state) if isinstance(raw_state, str) else None
    if state is None:
        return None
    code = reason = None
    errors = item.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        error = errors[0]
        raw_code = error.get("code")
        code = str(raw_code)[:50] if isinstance(raw_code, int | str) and not isinstance(raw_code, bool) else None
        data = error.get("error_data")
        details = _str(data, "details") if isinstance(data, Mapping) else None
        reason = (details or _str(error, "message") or _str(error, "title") or "")[:1000] or None
    return StatusEvent(
        provider=Provider.META,
        provider_message_id=_id(item),
        state=state,
        occurred_at=_timestamp(item),
        error_code=code,
        error_reason=reason,
    )
