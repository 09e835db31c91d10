"""Wappi: reading its messages and deciding where a poll stops.

Wappi's ``date`` filter is unreliable, so the poller pages the whole account newest-first and
stops at its own cursor (:class:`Cursor`): the newest provider time ingested, read back a little
further (the overlap, for messages that reach WhatsApp late with an older time), plus the ids
already seen in that window (several messages share a second; a bare timestamp would replay or
skip them). Pages shift while they are read (new messages push old ones down), so the same
message can appear on two pages: everything is deduplicated by id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.domain.admission import InboundEvent, PayloadError
from parley_shared.contracts import MediaRef, MessageKind, Provider

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
    "location": MessageKind.LOCATION,
}
MEDIA_KINDS = frozenset(
    {MessageKind.VOICE, MessageKind.AUDIO, MessageKind.IMAGE, MessageKind.DOCUMENT, MessageKind.VIDEO}
)
# Reactions, revoked messages, notifications: nothing a prospect said.
IGNORED_TYPES = frozenset({"reaction", "revoked", "e2e_notification", "notification_template", "call_log", "gp2"})
MAX_ID = 200


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


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value.strip() else None


def to_event(message: WappiMessage) -> InboundEvent | None:
    """The provider-neutral event, or None for what is no prospect's message (reactions, deletions)."""
    raw = message.raw
    wappi_type = raw.get("type") if isinstance(raw.get("type"), str) else "chat"
    if wappi_type in IGNORED_TYPES or raw.get("isDeleted") is True:
        return None
    kind = KINDS.get(wappi_type, MessageKind.OTHER)
    from_me = raw.get("fromMe") is True or raw.get("is_me") is True
    sender = raw.get("chatId") if isinstance(raw.get("chatId"), str) else raw.get("from")
    if not isinstance(sender, str) or not sender:
        raise PayloadError("message has no sender")
    media = None
    text = None
    caption = _text(raw, "caption")
    if kind in MEDIA_KINDS:
        media = MediaRef(
            media_id=message.id,
            mime_type=_text(raw, "mimetype") or _text(raw, "mime_type"),
            file_name=(_text(raw, "file_name") or "")[:500] or None,
        )
    elif kind is MessageKind.TEXT or kind is MessageKind.OTHER:
        text = _text(raw, "body")
    name = _text(raw, "senderName")
    return InboundEvent(
        provider=Provider.WAPPI,
        provider_message_id=message.id,
        sender=sender,
        kind=kind,
        sent_at=datetime.fromtimestamp(message.time, UTC),
        text=text,
        caption=caption,
        media=media,
        contact_name=name,
        from_me=from_me,
    )


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
