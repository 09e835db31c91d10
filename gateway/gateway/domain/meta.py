"""Meta WhatsApp Cloud API: webhook signatures and webhook bodies.

* :func:`check_signature` -- ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``,
  computed over the raw bytes exactly as received and compared in constant time.
* :func:`parse_webhook` -- the ``whatsapp_business_account`` envelope into inbound messages and
  delivery statuses. Every message type is read on purpose (``docs/gateway.md`` lists them and
  what becomes of each). A body that is not the envelope is a :class:`PayloadError` (HTTP 400);
  whatever is not forwarded -- a malformed message inside a valid envelope (so that Meta does not
  retry a whole batch for days because of one entry), a status no message of ours has, another
  webhook field -- becomes a :class:`SkippedItem`, counted and logged by the route.
* :func:`split_stale` -- messages older than :data:`MAX_MESSAGE_AGE` are not taken: Meta retries
  a webhook for up to 7 days, so an older one is a replayed body (a signature never expires),
  and its id may no longer be remembered for deduplication (retention keeps inbound ids at least
  this long, see ``gateway/retention.py``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.domain.admission import (
    InboundEvent,
    PayloadError,
    SkippedItem,
    StatusEvent,
    contacts_text,
    flow_text,
    location_text,
    order_text,
)
from parley_shared.contracts import (
    MAX_DATA_JSON,
    DeliveryState,
    InteractiveReply,
    Location,
    MediaRef,
    MessageKind,
    Order,
    OrderItem,
    Provider,
    Referral,
    SharedContact,
    SharedPhone,
    SystemNotice,
)
from parley_shared.phone import PhoneError, from_provider
from parley_shared.untrusted import json_loads

SIGNATURE_HEADER = "X-Hub-Signature-256"
_MEDIA_TYPES = {
    "image": MessageKind.IMAGE,
    "video": MessageKind.VIDEO,
    "document": MessageKind.DOCUMENT,
    "sticker": MessageKind.STICKER,
}
_STATES = {s.value: s for s in DeliveryState}
MAX_ID = 200
MAX_MESSAGE_AGE = timedelta(days=7)  # Meta's retry window for a webhook


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
    skipped: list[SkippedItem] = field(default_factory=list)  # counted and logged by the route

    @property
    def malformed(self) -> int:
        return sum(1 for s in self.skipped if s.reason == "malformed")


def parse_body(raw: bytes) -> Any:
    try:
        return json_loads(raw)
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
            batch.skipped.append(SkippedItem("malformed", detail="entry without changes"))
            continue
        for change in changes:
            value = change.get("value") if isinstance(change, Mapping) else None
            if not isinstance(value, Mapping):
                batch.skipped.append(SkippedItem("malformed", detail="change without a value"))
                continue
            name = change.get("field", "messages")
            if name != "messages":
                # Account, template, call and preference updates, echoes of the business's own messages.
                shown = name[:60] if isinstance(name, str) else type(name).__name__
                batch.skipped.append(SkippedItem("other_field", detail=shown))
                continue
            _read_value(value, batch)
    return batch


def _read_value(value: Mapping[str, Any], batch: WebhookBatch) -> None:
    names = _contact_names(value.get("contacts"))
    for kind, items in (("messages", value.get("messages")), ("statuses", value.get("statuses"))):
        if items is None:
            continue
        if not isinstance(items, list):
            batch.skipped.append(SkippedItem("malformed", detail=f"{kind} is not a list"))
            continue
        for item in items:
            try:
                if kind == "messages":
                    batch.messages.append(_message(item, names))
                else:
                    status = _status(item)
                    if isinstance(status, SkippedItem):
                        batch.skipped.append(status)
                    else:
                        batch.statuses.append(status)
            except PayloadError as exc:
                batch.skipped.append(SkippedItem("malformed", _peek(item, "id"), _peek(item, "from"), str(exc)[:200]))


def _peek(item: Any, key: str) -> str | None:
    """A field of an unreadable item, for the log line that says what was skipped."""
    value = item.get(key) if isinstance(item, Mapping) else None
    return value[:MAX_ID] if isinstance(value, str) else None


def split_stale(
    messages: list[InboundEvent], now: datetime, max_age: timedelta = MAX_MESSAGE_AGE
) -> tuple[list[InboundEvent], list[InboundEvent]]:
    """(messages to take, messages sent more than ``max_age`` before ``now``)."""
    oldest = now - max_age
    fresh = [m for m in messages if m.sent_at >= oldest]
    stale = [m for m in messages if m.sent_at < oldest]
    return fresh, stale


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


def _id(obj: Mapping[str, Any], key: str = "id") -> str:
    value = _str(obj, key, required=True, limit=10_000)
    assert value is not None
    if len(value) > MAX_ID:
        raise PayloadError(f"{key} too long")
    return value


@dataclass
class _Content:
    """What one message says, by kind (the fields of :class:`InboundEvent` past the envelope)."""

    kind: MessageKind
    text: str | None = None
    caption: str | None = None
    media: MediaRef | None = None
    interactive: InteractiveReply | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    order: Order | None = None
    reaction: str | None = None
    target: str | None = None
    system: SystemNotice | None = None
    unsupported: str | None = None


# Reads the content of one type of message.
_Reader = Callable[[Mapping[str, Any]], _Content]


def _message(item: Any, names: dict[str, str]) -> InboundEvent:
    if not isinstance(item, Mapping):
        raise PayloadError("message must be an object")
    message_type = item.get("type")
    if not isinstance(message_type, str):
        raise PayloadError("message.type must be a string")
    sender = _str(item, "from", required=True, limit=64)
    assert sender is not None
    message_id = _id(item)
    sent_at = _timestamp(item)
    content = _content(message_type[:50], item)
    return InboundEvent(
        provider=Provider.META,
        provider_message_id=message_id,
        sender=sender,
        kind=content.kind,
        sent_at=sent_at,
        text=content.text,
        caption=content.caption,
        media=content.media,
        contact_name=names.get(sender),
        interactive=content.interactive,
        location=content.location,
        contacts=content.contacts,
        order=content.order,
        referral=_referral(item.get("referral")),
        reaction=content.reaction,
        target=content.target,
        system=content.system,
        unsupported=content.unsupported,
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


def _content(message_type: str, item: Mapping[str, Any]) -> _Content:
    """The content of one message of each type Meta sends."""
    reader = _READERS.get(message_type)
    if reader is None:  # "unsupported", "unknown", "ephemeral", a type newer than this code
        return _unsupported(message_type, item)
    return reader(item)


def _text(item: Mapping[str, Any]) -> _Content:
    return _Content(MessageKind.TEXT, text=_str(_section(item, "text"), "body", required=True))


def _audio(item: Mapping[str, Any]) -> _Content:
    section = _section(item, "audio")
    kind = MessageKind.VOICE if section.get("voice") is True else MessageKind.AUDIO
    return _Content(kind, media=_media(section))


def _file(message_type: str) -> _Reader:
    def read(item: Mapping[str, Any]) -> _Content:
        section = _section(item, message_type)
        return _Content(_MEDIA_TYPES[message_type], caption=_str(section, "caption"), media=_media(section))

    return read


def _coordinate(section: Mapping[str, Any], key: str) -> float:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"location.{key} must be a number")
    return float(value)


def _location(item: Mapping[str, Any]) -> _Content:
    section = _section(item, "location")
    try:
        place = Location(
            latitude=_coordinate(section, "latitude"),
            longitude=_coordinate(section, "longitude"),
            name=_str(section, "name", limit=500),
            address=_str(section, "address", limit=1000),
            url=_str(section, "url", limit=2000),
        )
    except ValueError as exc:
        raise PayloadError(f"location: {type(exc).__name__}") from None
    return _Content(MessageKind.LOCATION, text=location_text(place), location=place)


def _contacts(item: Mapping[str, Any]) -> _Content:
    cards = item.get("contacts")
    if not isinstance(cards, list):
        raise PayloadError("contacts must be a list")
    shared: list[SharedContact] = []
    for card in cards[:50]:
        if not isinstance(card, Mapping):
            continue
        name = card.get("name")
        formatted = None
        if isinstance(name, Mapping):
            formatted = _str(name, "formatted_name", limit=300) or " ".join(
                p for p in (_str(name, "first_name", limit=150), _str(name, "last_name", limit=150)) if p
            )
        phones = []
        for entry in card.get("phones") or []:
            if isinstance(entry, Mapping) and _str(entry, "phone", limit=64):
                phones.append(
                    SharedPhone(
                        phone=_str(entry, "phone", limit=64) or "",
                        wa_id=_str(entry, "wa_id", limit=64),
                        type=_str(entry, "type", limit=50),
                    )
                )
        shared.append(SharedContact(name=formatted or None, phones=phones[:20]))
    return _Content(MessageKind.CONTACT, text=contacts_text(shared), contacts=tuple(shared))


def _interactive(item: Mapping[str, Any]) -> _Content:
    section = item.get("interactive")
    if not isinstance(section, Mapping):
        return _unsupported("interactive", item)
    reply_type = section.get("type")
    for key, kind in (("button_reply", "button"), ("list_reply", "list")):
        reply = section.get(key)
        if isinstance(reply, Mapping):
            title = _str(reply, "title", required=True, limit=300)
            description = _str(reply, "description", limit=300)
            tap = InteractiveReply(type=kind, id=_str(reply, "id", limit=256), title=title, description=description)
            return _Content(
                MessageKind.INTERACTIVE, text=f"{title}\n{description}" if description else title, interactive=tap
            )
    flow = section.get("nfm_reply")
    if isinstance(flow, Mapping):
        answers = _flow_answers(flow.get("response_json"))
        tap = InteractiveReply(
            type="flow", id=_str(flow, "name", limit=256), title=_str(flow, "body", limit=300), data=answers
        )
        return _Content(MessageKind.INTERACTIVE, text=flow_text(answers), interactive=tap)
    permission = section.get("call_permission_reply")
    if isinstance(permission, Mapping):
        response = _str(permission, "response", limit=50) or "unknown"
        return _Content(MessageKind.SYSTEM, system=SystemNotice(type="call_permission_reply", body=response))
    shown = reply_type[:50] if isinstance(reply_type, str) else "none"
    return _unsupported(f"interactive {shown}", item)


def _flow_answers(raw: Any) -> dict[str, Any]:
    """A flow's ``response_json`` as data (the flow token is Meta's, not the prospect's answer)."""
    if not isinstance(raw, str) or len(raw) > MAX_DATA_JSON:
        raise PayloadError("nfm_reply.response_json must be a JSON string")
    try:
        answers = json_loads(raw)
    except ValueError:
        raise PayloadError("nfm_reply.response_json is not JSON") from None
    if not isinstance(answers, dict):
        raise PayloadError("nfm_reply.response_json must be an object")
    return {str(k)[:100]: v for k, v in answers.items() if k != "flow_token"}


def _button(item: Mapping[str, Any]) -> _Content:
    section = _section(item, "button")
    text = _str(section, "text", limit=300) or _str(section, "payload", required=True, limit=300)
    tap = InteractiveReply(type="template_button", id=_str(section, "payload", limit=256), title=text)
    return _Content(MessageKind.INTERACTIVE, text=text, interactive=tap)


def _order(item: Mapping[str, Any]) -> _Content:
    section = _section(item, "order")
    lines = []
    for product in section.get("product_items") or []:
        if not isinstance(product, Mapping):
            continue
        quantity, price = product.get("quantity"), product.get("item_price")
        try:
            lines.append(
                OrderItem(
                    product_id=_str(product, "product_retailer_id", required=True, limit=200) or "",
                    quantity=quantity if isinstance(quantity, int) and not isinstance(quantity, bool) else 1,
                    item_price=float(price) if isinstance(price, int | float) and not isinstance(price, bool) else None,
                    currency=_str(product, "currency", limit=10),
                )
            )
        except ValueError as exc:
            raise PayloadError(f"order item: {type(exc).__name__}") from None
    if not lines:
        raise PayloadError("order without product items")
    order = Order(catalog_id=_str(section, "catalog_id", limit=200), text=_str(section, "text"), items=lines[:100])
    return _Content(MessageKind.ORDER, text=order_text(order), order=order)


def _reaction(item: Mapping[str, Any]) -> _Content:
    section = _section(item, "reaction")
    emoji = section.get("emoji")
    return _Content(
        MessageKind.REACTION,
        reaction=emoji[:50] if isinstance(emoji, str) else "",  # empty: the reaction was taken back
        target=_id(section, "message_id"),
    )


def _edit(item: Mapping[str, Any]) -> _Content:
    section = _section(item, "edit")
    target = _id(section, "original_message_id")
    edited = section.get("message")
    text = None
    if isinstance(edited, Mapping) and isinstance(edited.get("type"), str):
        inner = edited.get(edited["type"])
        if isinstance(inner, Mapping):
            text = _str(inner, "body") or _str(inner, "caption")
    return _Content(MessageKind.EDIT, text=text, target=target)


def _revoke(item: Mapping[str, Any]) -> _Content:
    return _Content(MessageKind.REVOKE, target=_id(_section(item, "revoke"), "original_message_id"))


def _system(item: Mapping[str, Any]) -> _Content:
    section = _section(item, "system")
    notice_type = _str(section, "type", limit=50) or "system"
    new_phone = None
    if notice_type == "user_changed_number":
        new_id = _str(section, "wa_id", required=True, limit=64)
        try:
            new_phone = from_provider(new_id or "")
        except PhoneError:
            raise PayloadError("system.wa_id is not a number") from None
    notice = SystemNotice(type=notice_type, body=_str(section, "body", limit=1000), new_phone=new_phone)
    return _Content(MessageKind.SYSTEM, system=notice)


def _welcome(item: Mapping[str, Any]) -> _Content:
    return _Content(MessageKind.SYSTEM, system=SystemNotice(type="request_welcome"))


def _unsupported(message_type: str, item: Mapping[str, Any]) -> _Content:
    """A message WhatsApp could not give us (Meta's ``unsupported``, a type this code does not know)."""
    parts = [message_type]
    section = item.get("unsupported")
    if isinstance(section, Mapping) and _str(section, "type", limit=50):
        parts.append(f"({_str(section, 'type', limit=50)})")
    errors = item.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        error = errors[0]
        code = error.get("code")
        title = _str(error, "title", limit=200) or _str(error, "message", limit=200)
        parts.append(f"{code if isinstance(code, int) else ''} {title or ''}".strip())
    return _Content(MessageKind.UNSUPPORTED, unsupported=": ".join(p for p in parts if p)[:500])


def _referral(section: Any) -> Referral | None:
    """Where a click-to-WhatsApp conversation came from (an ad or a post)."""
    if not isinstance(section, Mapping):
        return None
    fields = {
        "source_url": _str(section, "source_url", limit=2000),
        "source_id": _str(section, "source_id", limit=200),
        "source_type": _str(section, "source_type", limit=50),
        "headline": _str(section, "headline", limit=500),
        "body": _str(section, "body", limit=2000),
        "media_type": _str(section, "media_type", limit=50),
        "ctwa_clid": _str(section, "ctwa_clid", limit=500),
    }
    return Referral(**fields) if any(fields.values()) else None


_READERS: dict[str, _Reader] = {
    "text": _text,
    "audio": _audio,
    **{name: _file(name) for name in _MEDIA_TYPES},
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "order": _order,
    "reaction": _reaction,
    "edit": _edit,
    "revoke": _revoke,
    "system": _system,
    "request_welcome": _welcome,
}


def _status(item: Any) -> StatusEvent | SkippedItem:
    if not isinstance(item, Mapping):
        raise PayloadError("status must be an object")
    raw_state = item.get("status")
    state = _STATES.get(raw_state) if isinstance(raw_state, str) else None
    if state is None or item.get("recipient_type") == "group":
        # "played" (a voice note of ours was listened to), a state newer than this code, a group's.
        shown = raw_state[:30] if isinstance(raw_state, str) else "none"
        return SkippedItem("status_ignored", _peek(item, "id"), _peek(item, "recipient_id"), f"status {shown}")
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
