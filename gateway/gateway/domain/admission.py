"""Provider-neutral inbound data: what every provider's payload is parsed into.

A provider parser (``domain/wappi.py``, ``domain/meta.py``, the sandbox route) turns its own
shape into :class:`InboundEvent` values; :func:`admit` decides what happens to each one and
:func:`to_contract` builds the queue payload. No I/O here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from parley_shared.contracts import (
    MAX_TEXT,
    Contract,
    DeliveryState,
    InboundMedia,
    IncomingMessage,
    InteractiveReply,
    Location,
    MediaRef,
    MessageKind,
    Order,
    Provider,
    Referral,
    SharedContact,
    SystemNotice,
    VoiceTranscriptionRequest,
    stable_id,
)
from parley_shared.phone import PhoneError, address_of, mask_phone
from parley_shared.topology import INCOMING, MEDIA, VOICE, WorkQueue

VOICE_KINDS = frozenset({MessageKind.VOICE, MessageKind.AUDIO})
# Files the gateway fetches and keeps before the agent sees the message (``workers/media.py``).
FILE_KINDS = frozenset({MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.DOCUMENT, MessageKind.STICKER})
# Kinds about another message: ``target`` names it (a provider message id).
TARGETED_KINDS = frozenset({MessageKind.REACTION, MessageKind.EDIT, MessageKind.REVOKE})
MAX_NAME = 200


class PayloadError(ValueError):
    """A provider payload that cannot be read (the HTTP edge answers 400)."""


@dataclass(frozen=True)
class InboundEvent:
    """One message as a provider reported it, before any decision is taken."""

    provider: Provider
    provider_message_id: str
    sender: str  # the provider's own identity format: "7701...@c.us", "7701...", "+7701..."
    kind: MessageKind
    sent_at: datetime
    text: str | None = None
    caption: str | None = None
    media: MediaRef | None = None
    contact_name: str | None = None
    from_me: bool = False
    interactive: InteractiveReply | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    order: Order | None = None
    referral: Referral | None = None
    reaction: str | None = None
    target: str | None = None  # the provider id of the message a reaction, an edit or a revoke is about
    system: SystemNotice | None = None
    unsupported: str | None = None


@dataclass(frozen=True)
class SkippedItem:
    """Something a provider delivered that is no prospect's message to forward -- counted under
    ``reason`` and logged with the masked sender and the provider id, never dropped silently."""

    reason: str
    provider_message_id: str | None = None
    sender: str | None = None
    detail: str | None = None

    def log_fields(self) -> dict[str, str | None]:
        return {
            "reason": self.reason,
            "provider_message_id": self.provider_message_id,
            "sender": mask_phone(self.sender) if self.sender else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class StatusEvent:
    """A delivery status a provider reported for one of our outgoing messages."""

    provider: Provider
    provider_message_id: str
    state: DeliveryState
    occurred_at: datetime
    error_code: str | None = None
    error_reason: str | None = None


class Verdict(enum.StrEnum):
    PUBLISH = "publish"
    IGNORED = "ignored"  # logged, not published
    SKIPPED = "skipped"  # not logged: own message, group chat, not a phone


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    phone: str | None = None
    reason: str | None = None


def admit(event: InboundEvent, ignored: set[str] | frozenset[str]) -> Admission:
    """Own messages, group chats and what is neither a number nor a LID chat are skipped; the
    sender's address is its number as the provider gave it (E.164, never reinterpreted) or its LID
    chat id; ignored addresses are logged only."""
    if event.from_me:
        return Admission(Verdict.SKIPPED, reason="own_message")
    try:
        phone = address_of(event.sender)
    except PhoneError:
        lowered = event.sender.lower()
        return Admission(Verdict.SKIPPED, reason="group" if lowered.endswith("@g.us") else "not_a_phone")
    if phone in ignored:
        return Admission(Verdict.IGNORED, phone=phone, reason="ignore_list")
    return Admission(Verdict.PUBLISH, phone=phone)


# ---------------------------------------------------------------------------- how the agent reads a kind
def location_text(place: Location) -> str:
    """How the agent reads a shared location."""
    named = ", ".join(p for p in (place.name, place.address) if p)
    where = f"({place.latitude}, {place.longitude})"
    return f"Location: {named} {where}" if named else f"Location: {where}"


def contacts_text(cards: list[SharedContact]) -> str | None:
    """How the agent reads shared contact cards: each name with its numbers."""
    parts = []
    for card in cards:
        numbers = ", ".join(p.phone for p in card.phones)
        parts.append(" ".join(p for p in (card.name, numbers) if p))
    shown = "; ".join(p for p in parts if p)
    return f"Shared contacts: {shown}" if shown else None


def flow_text(answers: Mapping[str, Any]) -> str:
    """How the agent reads a submitted form: one line per answer."""
    lines = [f"{key}: {value}" for key, value in answers.items() if not isinstance(value, dict | list)]
    return "Form answers:\n" + "\n".join(lines) if lines else "Form submitted"


def order_text(order: Order) -> str:
    """How the agent reads a catalogue order: one line per product."""
    lines = []
    for item in order.items:
        price = f" at {item.item_price:g} {item.currency or ''}".rstrip() if item.item_price is not None else ""
        lines.append(f"{item.quantity} x {item.product_id}{price}")
    note = f"\n{order.text}" if order.text else ""
    return "Order:\n" + "\n".join(lines) + note


def _no_nul(value: str | None) -> str | None:
    return value.replace("\x00", "") if value is not None and "\x00" in value else value


def _deep_no_nul(value: Any) -> Any:
    if isinstance(value, str):
        return _no_nul(value)
    if isinstance(value, dict):
        return {_deep_no_nul(k): _deep_no_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_no_nul(v) for v in value]
    return value


M = TypeVar("M", bound=BaseModel)


def _model_no_nul(model: M | None) -> M | None:
    if model is None:
        return None
    return type(model).model_validate(_deep_no_nul(model.model_dump()))


def without_nul(event: InboundEvent) -> InboundEvent:
    """The event with every NUL character removed from its strings (ids, sender, name, text,
    caption, media and every structured part): PostgreSQL refuses NUL in text, so one would fail
    every attempt to store the message and end as a dead letter."""
    return dataclasses.replace(
        event,
        provider_message_id=_no_nul(event.provider_message_id) or "",
        sender=_no_nul(event.sender) or "",
        text=_no_nul(event.text),
        caption=_no_nul(event.caption),
        contact_name=_no_nul(event.contact_name),
        media=_model_no_nul(event.media),
        interactive=_model_no_nul(event.interactive),
        location=_model_no_nul(event.location),
        contacts=tuple(c for c in (_model_no_nul(c) for c in event.contacts) if c is not None),
        order=_model_no_nul(event.order),
        referral=_model_no_nul(event.referral),
        reaction=_no_nul(event.reaction),
        target=_no_nul(event.target),
        system=_model_no_nul(event.system),
        unsupported=_no_nul(event.unsupported),
    )


def chat_id_of(event: InboundEvent) -> str:
    """The provider's own id of the chat, kept beside the address: replies go exactly there."""
    return event.sender.strip()[:200]


def inbound_message_id(provider: Provider, provider_message_id: str) -> str:
    """The id the agent sees for a provider message (the same for its transcription)."""
    return stable_id("in", provider.value, provider_message_id)


def voice_request_id(provider: Provider, provider_message_id: str) -> str:
    return stable_id("voice", provider.value, provider_message_id)


def media_request_id(provider: Provider, provider_message_id: str) -> str:
    return stable_id("media", provider.value, provider_message_id)


def _clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:limit] if value else None


def to_contract(
    event: InboundEvent, phone: str, received_at: datetime, *, target_message_id: str | None = None
) -> tuple[WorkQueue, Contract]:
    """The queue and payload for an admitted event: voice notes wait for transcription, files for
    the media worker; everything else goes to the agent at once. ``target_message_id``: the
    ``message_id`` of the message a reaction, an edit or a revoke is about."""
    name = _clip(event.contact_name, MAX_NAME)
    if event.kind in VOICE_KINDS and event.media is not None:
        request = VoiceTranscriptionRequest(
            message_id=voice_request_id(event.provider, event.provider_message_id),
            correlation_id=inbound_message_id(event.provider, event.provider_message_id),
            phone=phone,
            contact_name=name,
            provider=event.provider,
            provider_message_id=event.provider_message_id,
            kind=event.kind,
            media=event.media,
            sent_at=event.sent_at,
            received_at=received_at,
            chat_id=chat_id_of(event),
            referral=event.referral,
        )
        return VOICE, request
    message_id = inbound_message_id(event.provider, event.provider_message_id)
    message = IncomingMessage(
        message_id=message_id,
        correlation_id=message_id,
        phone=phone,
        contact_name=name,
        provider=event.provider,
        provider_message_id=event.provider_message_id,
        kind=event.kind,
        text=_clip(event.text, MAX_TEXT * 4),
        caption=_clip(event.caption, MAX_TEXT),
        media=event.media,
        sent_at=event.sent_at,
        received_at=received_at,
        chat_id=chat_id_of(event),
        interactive=event.interactive,
        location=event.location,
        contacts=list(event.contacts),
        order=event.order,
        referral=event.referral,
        reaction=event.reaction,
        target_message_id=target_message_id,
        system=event.system,
        unsupported=event.unsupported,
    )
    if event.kind in FILE_KINDS and event.media is not None:
        media = InboundMedia(
            message_id=media_request_id(event.provider, event.provider_message_id),
            correlation_id=message_id,
            message=message,
        )
        return MEDIA, media
    return INCOMING, message


def transcribed(
    request: VoiceTranscriptionRequest,
    *,
    text: str | None,
    error: str | None,
    received_at: datetime,
    media: MediaRef | None = None,
) -> IncomingMessage:
    """The voice note as the agent sees it: with its transcript, or without text and a reason;
    ``media``: what became of its file (kept, or why not)."""
    message_id = inbound_message_id(request.provider, request.provider_message_id)
    transcript = _clip(_no_nul(text), MAX_TEXT * 4)
    return IncomingMessage(
        message_id=message_id,
        correlation_id=request.correlation_id,
        phone=request.phone,
        contact_name=request.contact_name,
        provider=request.provider,
        provider_message_id=request.provider_message_id,
        kind=request.kind,
        text=transcript,
        media=media or request.media.model_copy(update={"inline_b64": None}),
        transcribed=transcript is not None,
        transcription_error=None if transcript else (error or "empty transcript")[:500],
        sent_at=request.sent_at,
        received_at=received_at,
        previous_message_id=request.previous_message_id,
        chat_id=request.chat_id,
        referral=request.referral,
    )
