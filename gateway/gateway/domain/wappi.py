"""Wappi: reading its messages and deciding where a poll stops.

Every type Wappi reports is read on purpose (``docs/gateway.md`` lists them): text, voice and
audio, images, documents, videos, stickers, contact cards, locations, reactions, deletions,
button and list replies, orders; WhatsApp's own notices are skipped (counted and logged), and a
type this code does not know is forwarded as ``unsupported``. Field names beyond those in
``shared/reference/providers.md`` are read in both reported spellings where they differ.

Wappi's ``date`` filter is unreliable, so the poller pages the whole account newest-first and
stops at its own cursor (:class:`Cursor`): the newest provider time ingested, read back a little
further (the overlap, for messages that reach WhatsApp late with an older time), plus the ids
already seen in that window (several messages share a second; a bare timestamp would replay or
skip them). Pages shift while they are read (new messages push old ones down), so the same
message can appear on two pages: everything is deduplicated by id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.domain.admission import InboundEvent, PayloadError, SkippedItem, contacts_text, location_text
from parley_shared.contracts import (
    InteractiveReply,
    Location,
    MediaRef,
    MessageKind,
    Provider,
    SharedContact,
    SharedPhone,
)

KINDS: dict[str, MessageKind] = {
    "chat": MessageKind.TEXT,
    "text": MessageKind.TEXT,
    "ptt": MessageKind.VOICE,
    "audio": MessageKind.AUDIO,
    "image": MessageKind.IMAGE,
    "document": MessageKind.DOCUMENT,
    "video": MessageKind.VIDEO,
    "sticker": MessageKind.STICKER,
    "vcard": MessageKind.CONTACT,
    "multi_vcard": MessageKind.CONTACT,
    "location": MessageKind.LOCATION,
    "reaction": MessageKind.REACTION,
    "revoked": MessageKind.REVOKE,
    "buttons_response": MessageKind.INTERACTIVE,
    "template_button_reply": MessageKind.INTERACTIVE,
    "list_response": MessageKind.INTERACTIVE,
    "order": MessageKind.ORDER,
}
MEDIA_KINDS = frozenset(
    {
        MessageKind.VOICE,
        MessageKind.AUDIO,
        MessageKind.IMAGE,
        MessageKind.DOCUMENT,
        MessageKind.VIDEO,
        MessageKind.STICKER,
    }
)
# What WhatsApp itself puts in a chat (security-code notices, call logs, group events): no
# prospect's words. Skipped, counted and logged.
SYSTEM_NOTICES = frozenset(
    {"e2e_notification", "notification_template", "notification", "call_log", "gp2", "protocol", "ciphertext"}
)
MAX_ID = 200
_TAP_TYPES: dict[str, str] = {
    "buttons_response": "button",
    "template_button_reply": "template_button",
    "list_response": "list",
}
_TAP_IDS = ("selectedButtonId", "selectedRowId", "selectedId", "selected_id", "buttonId")
_TARGET_IDS = ("stanzaId", "stanza_id", "reactionParentId", "parentMsgKey")
_VCARD_NAME = re.compile(r"^FN[^:]*:(.+)$", re.MULTILINE)
_VCARD_TEL = re.compile(r"^(?:item\d+\.)?TEL([^:]*):(.+)$", re.MULTILINE)
_VCARD_WAID = re.compile(r"waid=(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class WappiMessage:
    """The fields of one Wappi message the gateway relies on (poll and webhook shapes)."""

    id: str
    time: int
    raw: Mapping[str, Any]


def read_message(raw: Any) -> WappiMessage:
    """Check the minimum every message must have: an id and a Unix time."""
    if not isinstance(raw, Mapping):
        raise PayloadError("a message must be an object")
    message_id = raw.get("id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID:
        raise PayloadError("message.id must be a non-empty string")
    when = raw.get("time")
    if isinstance(when, str) and when.isdigit():
        when = int(when)
    if isinstance(when, bool) or not isinstance(when, int) or not 0 <= when < 2**37:
        raise PayloadError("message.time must be a Unix timestamp")
    return WappiMessage(message_id, when, raw)


def read_page(body: Any) -> tuple[list[WappiMessage], int]:
    """A ``messages/all/get`` response: its valid messages (malformed ones dropped) and their count."""
    if not isinstance(body, Mapping) or body.get("status") not in ("done", None):
        raise PayloadError("not a successful Wappi response")
    items = body.get("messages")
    if not isinstance(items, list):
        raise PayloadError("response has no messages list")
    out = []
    for item in items:
        try:
            out.append(read_message(item))
        except PayloadError:
            continue
    return out, len(items)


def _text(raw: Mapping[str, Any], key: str, limit: int = 4096 * 4) -> str | None:
    value = raw.get(key)
    return value[:limit] if isinstance(value, str) and value.strip() else None


def _first(raw: Mapping[str, Any], keys: tuple[str, ...], limit: int = 256) -> str | None:
    for key in keys:
        value = _text(raw, key, limit)
        if value is not None:
            return value
    return None


def to_event(message: WappiMessage) -> InboundEvent | SkippedItem:
    """The provider-neutral event, or a :class:`SkippedItem` for what is no prospect's message
    (WhatsApp's own notices; a message without a sender)."""
    raw = message.raw
    raw_type = raw.get("type")
    wappi_type = raw_type if isinstance(raw_type, str) else "chat"
    sender = raw.get("chatId") if isinstance(raw.get("chatId"), str) else raw.get("from")
    if not isinstance(sender, str) or not sender:
        return SkippedItem("malformed", message.id, None, "message without a sender")
    if wappi_type in SYSTEM_NOTICES:
        return SkippedItem("system_notice", message.id, sender, f"wappi {wappi_type[:40]}")
    from_me = raw.get("fromMe") is True or raw.get("is_me") is True
    base: dict[str, Any] = {
        "provider": Provider.WAPPI,
        "provider_message_id": message.id,
        "sender": sender,
        "sent_at": datetime.fromtimestamp(message.time, UTC),
        "contact_name": _text(raw, "senderName", 200),
        "from_me": from_me,
    }
    if raw.get("isDeleted") is True or wappi_type == "revoked":
        # The deleted message keeps its id here: the revoke is an event of its own about it.
        target = _first(raw, _TARGET_IDS) or message.id
        base["provider_message_id"] = f"{message.id}:revoked"[:MAX_ID]
        return InboundEvent(**base, kind=MessageKind.REVOKE, target=target)
    kind = KINDS.get(wappi_type)
    if kind is None:
        return InboundEvent(**base, kind=MessageKind.UNSUPPORTED, unsupported=f"wappi type {wappi_type[:40]}")
    caption = _text(raw, "caption", 4096)
    if kind in MEDIA_KINDS:
        media = MediaRef(
            media_id=message.id,
            mime_type=_text(raw, "mimetype", 200) or _text(raw, "mime_type", 200),
            file_name=_text(raw, "file_name", 500),
        )
        return InboundEvent(**base, kind=kind, caption=caption, media=media)
    if kind is MessageKind.REACTION:
        emoji = _text(raw, "body", 50) or _text(raw, "reaction", 50) or ""
        return InboundEvent(**base, kind=kind, reaction=emoji, target=_first(raw, _TARGET_IDS))
    if kind is MessageKind.CONTACT:
        cards = tuple(_vcards(raw))
        return InboundEvent(**base, kind=kind, text=contacts_text(list(cards)), contacts=cards)
    if kind is MessageKind.LOCATION:
        place = _location(raw)
        text = location_text(place) if place is not None else _text(raw, "body")
        return InboundEvent(**base, kind=kind, text=text, location=place)
    if kind is MessageKind.INTERACTIVE:
        title = _text(raw, "body", 300) or _text(raw, "selectedDisplayText", 300)
        tap = InteractiveReply(type=_TAP_TYPES[wappi_type], id=_first(raw, _TAP_IDS), title=title)
        return InboundEvent(**base, kind=kind, text=title, interactive=tap)
    return InboundEvent(**base, kind=kind, text=_text(raw, "body"))


def _vcards(raw: Mapping[str, Any]) -> list[SharedContact]:
    """Shared contact cards: Wappi gives the vCard text in ``body`` (several in a ``multi_vcard``)."""
    texts: list[str] = []
    body = _text(raw, "body", 100_000) or ""
    if body.lstrip().startswith("[") and isinstance(raw.get("vcardList"), list):
        body = ""
    texts.extend(part for part in body.split("END:VCARD") if "BEGIN:VCARD" in part)
    for item in raw.get("vcardList") or []:
        value = item.get("vcard") if isinstance(item, Mapping) else item
        if isinstance(value, str):
            texts.append(value)
    cards = []
    for text in texts[:50]:
        name = _VCARD_NAME.search(text)
        phones = []
        for params, number in _VCARD_TEL.findall(text)[:20]:
            waid = _VCARD_WAID.search(params)
            phones.append(SharedPhone(phone=number.strip()[:64] or "?", wa_id=waid.group(1) if waid else None))
        cards.append(SharedContact(name=name.group(1).strip()[:300] if name else None, phones=phones))
    return cards


def _number(raw: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _location(raw: Mapping[str, Any]) -> Location | None:
    """A shared place: ``lat``/``lng`` (or ``latitude``/``longitude``) and a description, when present."""
    latitude, longitude = _number(raw, "lat", "latitude"), _number(raw, "lng", "longitude")
    if latitude is None or longitude is None:
        return None
    try:
        return Location(
            latitude=latitude,
            longitude=longitude,
            name=_text(raw, "loc", 500) or _text(raw, "name", 500),
            address=_text(raw, "address", 1000),
        )
    except ValueError:
        return None


# ---------------------------------------------------------------------------- cursor
@dataclass(frozen=True)
class Cursor:
    """Where reading stops: the newest provider time ingested and the ids already seen near it.

    A message's ``time`` is set by the sender's phone, so a message that reaches WhatsApp late
    can carry a time older than ones already read. Reading therefore goes ``overlap_s`` further
    back than the newest time (the *floor*), and the ids seen since the floor are remembered so
    that those are not taken twice. Equal timestamps are handled by the same id set.
    """

    time: int
    seen: Mapping[str, int] = field(default_factory=dict)  # message id -> its time, for times >= floor
    overlap_s: int = 0

    @classmethod
    def initial(cls, floor: int, overlap_s: int) -> Cursor:
        """No cursor yet: everything older than ``floor`` is history."""
        return cls(floor + overlap_s, {}, overlap_s)

    @property
    def floor(self) -> int:
        return self.time - self.overlap_s

    def covers(self, message: WappiMessage) -> bool:
        """Already ingested, or older than where reading stops."""
        return message.time < self.floor or message.id in self.seen

    def advanced(self, new: Iterable[WappiMessage]) -> Cursor:
        """The cursor after ``new`` is ingested: never moves backwards; forgets ids below the floor."""
        new = list(new)
        newest = max([self.time, *(m.time for m in new)])
        floor = newest - self.overlap_s
        seen = {**self.seen, **{m.id: m.time for m in new}}
        return Cursor(newest, {i: t for i, t in seen.items() if t >= floor}, self.overlap_s)

    def encode_seen(self) -> str:
        return json.dumps(dict(sorted(self.seen.items())))

    @classmethod
    def decode(cls, time: int, seen: str, overlap_s: int) -> Cursor:
        try:
            loaded = json.loads(seen)
        except ValueError:
            loaded = {}
        if not isinstance(loaded, dict):
            loaded = {}
        clean = {str(k): int(v) for k, v in loaded.items() if isinstance(v, int) and not isinstance(v, bool)}
        return cls(int(time), clean, overlap_s)


@dataclass
class PollBatch:
    """What one poll collected so far: new messages by id, and whether paging may stop."""

    cursor: Cursor
    new: dict[str, WappiMessage] = field(default_factory=dict)
    reached_cursor: bool = False

    def add_page(self, page: Iterable[WappiMessage]) -> None:
        """Take one newest-first page; paging may stop once a message below the floor shows up."""
        for message in page:
            if self.cursor.covers(message):
                if message.time < self.cursor.floor:
                    self.reached_cursor = True
                continue
            self.new.setdefault(message.id, message)

    def in_order(self) -> list[WappiMessage]:
        """New messages oldest first (the order they are published in)."""
        return sorted(self.new.values(), key=lambda m: (m.time, m.id))

    def next_cursor(self) -> Cursor:
        return self.cursor.advanced(self.new.values())
